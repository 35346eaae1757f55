# -*- test-case-name: tests.test_workers -*-
"""
``--workers N``: several processes serving the same listening sockets.

Design: **the supervisor binds, the workers adopt.**  The supervisor (the ``twistd``
process) parses every ``--listen`` endpoint string and listens on it as usual, but hands
nothing to a protocol: it stops reading its ports at once and spawns ``N`` worker
processes (``python -c "from twisted_journey.workers import main; main()" ...``), each
inheriting listening descriptors.  A worker parses the same endpoint strings against a
reactor that, instead of binding, *adopts* its inherited descriptor (``adoptStreamPort``),
so whatever the string wraps around the socket (``ssl:`` and ``tls:`` TLS, ``haproxy:``
PROXY headers) is built in the worker exactly as a single-process server builds it.

- A ``tcp:``/``tcp6:`` endpoint (also inside ``ssl:``, ``tls:``, ``haproxy:``) gets **one
  socket per worker**, all bound to the same address with ``SO_REUSEPORT`` (Twisted's
  ``tcp.makeBinding(reusePort=True)``) by the supervisor, which keeps holding them.  The
  kernel spreads new connections over the sockets by a hash of their addresses: evenly,
  with no thundering herd, and without a fast worker taking a whole burst (which
  matters for long-lived journey-mux clients).  While a worker is down its socket is
  closed (:meth:`WorkerPool.closeSlot`), so that the kernel sends its share to the
  others, and bound again for its replacement.
- A ``unix:`` or ``systemd:`` socket cannot be multiplied: it is **one socket shared** by
  every worker, with one accept queue; a worker accepts one connection per wakeup (as
  nginx does by default) so that a burst spreads over the workers that are awake.

Binding in the supervisor also means that privileged ports are bound once, before twistd
drops privileges, and ``tcp:0`` is one port for every worker.

The supervisor:

- restarts a worker that exits while it is not stopping, or could not be started at all,
  after a delay that doubles with each quick failure (:attr:`WorkerPool.firstDelay` to
  :attr:`WorkerPool.maxDelay`) and goes back to the first once a worker has stayed up
  :attr:`WorkerPool.stableAfter` seconds;
- stops the server, with the worker's sentence and exit status 1, when a worker could not
  start for a reason a restart will not change (it exits with ``CANNOT_START``);
- forwards ``SIGUSR1`` (journey-mux reopens its data log) and the ``SIGTERM`` or
  ``SIGINT`` that stops it to every worker, waits :attr:`WorkerPool.stopTimeout` seconds
  for them to finish, then ``SIGKILL``\\ s the rest, and only then closes its sockets;
- relays each worker's log events into its own log, marked ``worker-N``.

Workers run in their own process group (the terminal's Ctrl-C reaches the supervisor
only, which forwards it) and stop by themselves within a second of the supervisor's death.

Across workers: ``--max-connections`` is shared out (worker ``i`` of ``N`` may hold
``M // N`` connections, plus one for ``i < M % N``), so the whole server never holds more
than ``M``; ``--max-per-peer`` applies in each worker, so one host may hold up to ``N``
times that many.  journey-mux writes one data file per worker, ``PATH.wI``
(:func:`workerOutput`); a restarted worker appends to its predecessor's file, after
cutting a record its predecessor was killed in the middle of writing
(:func:`dropTornRecord`); its connection numbers (``CONN``) are unique across workers and
restarts (:class:`ConnectionNumbers`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from twisted.application.service import IService, MultiService, Service
from twisted.internet import tcp
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python import usage
from twisted.python.failure import Failure

from twisted_journey import _twisted
from twisted_journey.datalog import open_output
from twisted_journey.eventlog import AcceptFailures, EventStream, classic_line, event_stream
from twisted_journey.settings import SettingError

__all__ = [
    "ConnectionNumbers",
    "Listener",
    "WorkerContext",
    "WorkerPool",
    "adoptingReactor",
    "checkMuxWorkers",
    "connectionShare",
    "dropTornRecord",
    "isWorker",
    "main",
    "removeAbandoned",
    "supervise",
    "workerContext",
    "workerCount",
    "workerExtras",
    "workerOutput",
]

#: The options key a worker process sets (to its :class:`WorkerContext`).
WORKER = "worker-context"


def availableCores() -> int:
    """
    The number of cores this process may run on (its CPU affinity, where the system has
    one, else ``os.cpu_count()``).
    """
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def workerCount(name: str, value: str | int) -> int:
    """
    ``--workers``: a whole number of at least 1, or ``auto`` for one per core.

    :raises SettingError: otherwise, naming the option ``name``.
    """
    if value == "auto":
        return availableCores()
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise SettingError(f"{name} must be a whole number of at least 1, or auto, not {value!r}.")
    return number


def connectionShare(maxConnections: int | None, workers: int, index: int) -> int | None:
    """
    Worker ``index``'s share of ``--max-connections`` among ``workers`` workers: the
    shares add up to ``maxConnections`` exactly.
    """
    if maxConnections is None:
        return None
    return maxConnections // workers + (1 if index < maxConnections % workers else 0)


def workerOutput(path: str, index: int) -> str:
    """
    The data file worker ``index`` writes for ``--output path``: ``PATH.w0``,
    ``PATH.w1``... (rotated as ``PATH.w0-TIMESTAMP``..., like any data log).
    """
    return f"{path}.w{index}"


def checkMuxWorkers(options: Any) -> None:
    """
    Refuse journey-mux options that cannot work with several workers.

    :raises usage.UsageError: for standard output or ``--broadcast`` with ``--workers``.
    """
    if options["workers"] <= 1:
        return
    if options["output"] == "-":
        raise usage.UsageError(
            "--workers needs --output PATH: each worker writes its own PATH.wN, "
            "and standard output cannot be shared without mixing records."
        )
    if options["broadcast"]:
        raise usage.UsageError(
            "--broadcast cannot be used with --workers: a worker relays only to its own clients."
        )


def dropTornRecord(path: str) -> int:
    """
    Cut a record left unfinished at the end of worker data file ``path`` (its writer was
    killed in the middle of a write), so that the restarted worker appends whole records
    after whole records.

    Anything but a regular file (a FIFO, a device) is left alone: it has no end to cut,
    and opening a FIFO would wake, then end, the reader waiting at its other end.

    :return: the number of bytes cut.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return 0
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        size = info.st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            if end == size and chunk.endswith(b"\n"):
                return 0
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        return size - end
    finally:
        os.close(fd)


def isWorker(options: Any) -> bool:
    """
    Whether ``options`` were parsed in a worker process (set up by :func:`main`).
    """
    return options.get(WORKER) is not None


# --- listening sockets: bound by the supervisor, adopted by the workers -----------------


class Listener:
    """
    The listening socket(s) the supervisor holds for one endpoint.

    :ivar fds: their descriptors in the supervisor: one shared by every worker, or one
        per worker (``tcp:``/``tcp6:``, ``SO_REUSEPORT``).
    :ivar family: their address family.
    :ivar childFd: the descriptor number it must have in a worker: the one systemd gave
        for a ``systemd:`` listener (so the worker's ``LISTEN_FDS`` stay true), else
        ``None`` (any free number).
    :ivar mode: the permissions of a ``unix:`` socket file.
    :ivar ports: the supervisor's ports holding ``fds``, ``None`` where a worker's
        own socket is closed while its slot is down (:meth:`WorkerPool.closeSlot`).
    :ivar address: ``(interface, port, backlog)`` to bind a worker's own socket again.
    """

    def __init__(
        self,
        fds: list[int],
        family: int,
        childFd: int | None = None,
        mode: int | None = None,
        ports: list[Any] | None = None,
        address: tuple[str, int, int] | None = None,
    ) -> None:
        self.fds = fds
        self.family = family
        self.childFd = childFd
        self.mode = mode
        self.ports: list[Any | None] = list(ports or [])
        self.address = address
        #: the port the endpoint returned (its service closes that one)
        self.first = self.ports[0] if self.ports else None

    @property
    def shared(self) -> bool:
        """
        Whether every worker accepts from the same socket.
        """
        return len(self.fds) == 1

    def fdFor(self, index: int) -> int:
        """
        The supervisor's descriptor that worker ``index`` inherits.
        """
        return self.fds[0] if self.shared else self.fds[index]

    def asJSON(self, childFd: int) -> dict[str, Any]:
        """
        What a worker needs to know, with the descriptor it has there.
        """
        return {
            "fd": childFd,
            "family": int(self.family),
            "mode": self.mode,
            "shared": self.shared,
        }


class _Idle(Factory):
    """
    The factory of the supervisor's ports, which never accept.
    """

    noisy = False

    def logPrefix(self) -> str:
        """
        How the supervisor's ports name themselves in the log.
        """
        return "supervisor"


class _BindingReactor:
    """
    The supervisor's reactor for endpoint strings: it binds and listens like the real
    reactor, then stops reading the port (the workers accept), and notes the socket.
    A TCP listen call binds one ``SO_REUSEPORT`` socket per worker (the kernel spreads
    the connections over them).  Everything else is the real reactor's.

    A port the pool closes while a slot is down is bound again by :meth:`bindOne`.
    """

    def __init__(self, reactor: Any, count: int = 1) -> None:
        self._reactor = reactor
        self.count = count
        self.listeners: list[Listener] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _hold(self, port: Any, childFd: int | None = None, mode: int | None = None) -> Any:
        port.stopReading()
        self.listeners.append(Listener([port.fileno()], port.socket.family, childFd, mode))
        return port

    def bindOne(self, interface: str, port: int, backlog: int) -> Any:
        """
        Bind and listen on one ``SO_REUSEPORT`` socket, never accepting on it.
        """
        binding = tcp.makeBinding(interface, port, reuseAddress=True, reusePort=True)
        listening = self._reactor.listenTCP(binding, _Idle(), backlog, interface)
        listening.stopReading()
        return listening

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        ports: list[Any] = []
        number = port
        try:
            for _ in range(self.count):
                listening = self.bindOne(interface, number, backlog)
                ports.append(listening)
                # tcp:0 picks a port for the first socket; the others join it.
                number = listening.getHost().port
        except BaseException:
            for listening in ports:
                listening.stopListening()
            raise
        self.listeners.append(
            Listener(
                [p.fileno() for p in ports],
                ports[0].socket.family,
                ports=ports,
                address=(interface, number, backlog),
            )
        )
        return ports[0]

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        return self.listenTCP(port, factory, backlog, interface)

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        listening = self._reactor.listenUNIX(address, _Idle(), backlog, mode, wantPID)
        return self._hold(listening, mode=mode)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        port = self._reactor.adoptStreamPort(fileDescriptor, addressFamily, _Idle())
        return self._hold(port, childFd=fileDescriptor)


class _AdoptingReactor:
    """
    A worker's reactor for endpoint strings: each listen call, in the order of the
    ``--listen`` options, adopts the next inherited socket instead of binding one.
    ``ssl:`` gets its TLS factory wrapped around the adopted port, as ``listenSSL`` does.
    """

    def __init__(self, reactor: Any, listeners: list[dict[str, Any]]) -> None:
        self._reactor = reactor
        self._pending = list(listeners)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _adopt(self, factory: IProtocolFactory, keepFd: bool = False) -> IListeningPort:
        listener = self._pending.pop(0)
        fd, family = listener["fd"], listener["family"]
        # unix: one socket every worker shares; tcp: this worker's own SO_REUSEPORT socket
        # unless the endpoint could not have one per worker.
        port: tcp.Port = _twisted.adoptListeningPort(
            self._reactor, fd, family, factory, shared=listener.get("shared", True)
        )
        if family == socket.AF_UNIX and listener["mode"] is not None:
            port.mode = listener["mode"]  # type: ignore[attr-defined]
        port.startListening()
        if not keepFd:
            # The port holds a duplicate; ``adoptStreamPort``'s own callers close theirs.
            os.close(fd)
        return cast(IListeningPort, port)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self._adopt(factory)

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._adopt(TLSMemoryBIOFactory(contextFactory, False, factory))

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        return self._adopt(factory)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        return self._adopt(factory, keepFd=True)


def workerContext(options: Any) -> WorkerContext | None:
    """
    The :class:`WorkerContext` a worker's options carry, or ``None`` outside a worker.
    """
    return cast("WorkerContext | None", options.get(WORKER))


def workerExtras(context: WorkerContext, factory: Any, parent: MultiService) -> None:
    """
    Add what a worker runs beside its ports: its share of the connection numbers and,
    under ``--metrics``, the sync of its counters for the supervisor.
    """
    if hasattr(factory, "connectionNumber"):
        factory.connectionNumber = context.numbers
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from twisted_journey import metrics

        metrics.WorkerMetrics(factory, context.index, context.metricsInterval).setServiceParent(
            parent
        )


def adoptingReactor(context: WorkerContext, reactor: Any) -> Any:
    """
    The reactor a worker parses its endpoint strings against: one that adopts the
    sockets the supervisor bound instead of binding its own.
    """
    return _AdoptingReactor(reactor, context.listeners)


# --- the supervisor ----------------------------------------------------------------------


class ConnectionNumbers:
    """
    The connection numbers (journey-mux's ``CONN``) of one worker, unique for the life of
    the server across workers and restarts.

    Worker ``index`` of ``count`` numbers its connections ``index + 1``,
    ``index + 1 + count``, ``index + 1 + 2 * count``... (stride ``count``); a restarted
    worker goes on after every number its predecessors in the same slot could have used.
    For that, a worker *reserves* its numbers in blocks of :attr:`block` before using
    them, writing the end of the block (a decimal line) to a pipe the supervisor reads
    (``control``); the supervisor starts the next worker of the slot after it.  So
    numbers are unique and increase within each ``PATH.wI``, and some are skipped at each
    restart.

    :param index: the worker's number.
    :param count: how many workers there are.
    :param start: how many numbers of this slot its predecessors reserved.
    :param control: the descriptor of the pipe to the supervisor, or ``None`` (tests).
    """

    block = 1024

    def __init__(self, index: int, count: int, start: int = 0, control: int | None = None):
        self.index = index
        self.count = count
        self.start = start
        self.control = control
        self.reserved = start

    def __call__(self, served: int) -> int:
        """
        The number of this worker's ``served``-th connection (from 1), reserved first.
        """
        step = self.start + served - 1
        if step >= self.reserved:
            self.reserved = step + self.block
            if self.control is not None:
                try:
                    os.write(self.control, b"%d\n" % self.reserved)
                except OSError:
                    pass  # The supervisor is gone: this worker stops within a second.
        return step * self.count + self.index + 1


class WorkerContext:
    """
    What a worker process knows of its place: set on its options by :func:`main`.

    :ivar index: this worker's number, ``0`` to ``count - 1``.
    :ivar count: how many workers there are.
    :ivar listeners: the inherited sockets, in ``--listen`` order.
    :ivar metricsInterval: seconds between syncs of the counters for ``--metrics``.
    :ivar numbers: this worker's connection numbers.
    """

    def __init__(
        self,
        index: int,
        count: int,
        listeners: list[dict[str, Any]],
        metricsInterval: float = 0.5,
        numbers: ConnectionNumbers | None = None,
    ) -> None:
        self.index = index
        self.count = count
        self.listeners = listeners
        self.metricsInterval = metricsInterval
        self.numbers = numbers or ConnectionNumbers(index, count)


class _WorkerProcess(ProcessProtocol):
    """
    The supervisor's side of one worker: relays its log events, tells the pool when it
    ends.

    :ivar lastError: the last line the worker wrote to its standard error (where a
        worker that cannot start writes the sentence saying why).
    """

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.pid: int | None = None
        #: whether it has written anything yet: it handles SIGUSR1 from then on
        self.ready = False
        self.ended: Deferred[None] = Deferred()
        self._buffers = {1: b"", 2: b""}
        self.startedAt = pool.clock.seconds()
        self.lastError = ""
        self._control = b""

    def connectionMade(self) -> None:
        """
        Note the pid; close the worker's standard input (it reads none).
        """
        self.pid = self.transport.pid  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """
        Split what the worker writes into lines, and log each; note the connection
        numbers it reserves (:class:`ConnectionNumbers`).
        """
        if childFD == self.pool.controlFd:
            self._reserved(data)
            return
        self.ready = True
        lines = (self._buffers.get(childFD, b"") + data).split(b"\n")
        self._buffers[childFD] = lines.pop()
        for line in lines:
            self._line(childFD, line)

    def _reserved(self, data: bytes) -> None:
        """
        Note the highest number of connection numbers the worker has reserved.
        """
        lines = (self._control + data).split(b"\n")
        self._control = lines.pop()
        for line in lines:
            if line.isdigit():
                self.pool.reserve(self.index, int(line))

    def _line(self, childFD: int, line: bytes) -> None:
        """
        Relay one line; remember the last one of standard error.
        """
        if childFD == 2 and line.strip():
            self.lastError = line.decode("utf-8", "replace").strip()
        self.pool.relay(self.index, line, childFD == 2)

    def signal(self, number: int) -> None:
        """
        Send signal ``number`` to the worker, unless it has exited already.
        """
        from twisted.internet.error import ProcessExitedAlready

        if self.transport is None:
            return
        try:
            self.transport.signalProcess(number)
        except (ProcessExitedAlready, ProcessLookupError):
            pass

    def processEnded(self, reason: Failure) -> None:
        """
        Flush what is left of its output, and tell the pool.
        """
        for childFD, rest in self._buffers.items():
            if rest:
                self._line(childFD, rest)
        self._buffers = {}
        self.pool.workerEnded(self, reason)
        self.ended.callback(None)


#: The status a worker exits with when it cannot start for a reason that a restart
#: will not change (a link planted at its data file, a missing TLS key...): sysexits'
#: ``EX_CONFIG``.  The supervisor then stops, with the sentence the worker wrote.
CANNOT_START = 78

#: The ``errno`` values of a start failure that may go away by itself (descriptors or
#: memory short for now, a full disk): such a worker is started again.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EAGAIN,
        errno.ENOBUFS,
        errno.EINTR,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EBUSY,
    }
)


def _exitAtEnd(status: int) -> None:
    """
    Make this process exit with ``status`` once twistd has finished (it always exits 0
    after a reactor stop that no signal caused), after the event log has written what
    it holds (within :data:`~twisted_journey.eventlog.EXIT_WAIT`): ``os._exit`` skips
    the ``atexit`` calls registered before this one, the event log's among them.
    """
    import atexit

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if isinstance(stream, EventStream):
                    stream.close()
                else:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    atexit.register(leave)


#: The name of ``--metrics`` directories (:meth:`WorkerPool.makeMetricsDirectory`) starts so.
METRICS_PREFIX = "journey-metrics-"
#: The file in one whose lock says that its supervisor runs.
METRICS_LOCK = "supervisor.lock"


def removeAbandoned(parent: str | None = None, graceSeconds: float = 60.0) -> list[str]:
    """
    Remove the ``--metrics`` directories that supervisors killed with ``SIGKILL`` (which
    removes nothing) left in ``parent`` (the temporary directory by default): those of
    this user whose ``METRICS_LOCK`` nobody holds, or that have none and are older
    than ``graceSeconds`` (a directory of an older version, or of a supervisor killed as
    it made it).  Anything else at such a name (a link, another user's directory) is
    left alone.

    :return: the directories removed.
    """
    import fcntl
    import tempfile
    import time

    parent = parent or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(METRICS_PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            try:
                lock = os.open(
                    os.path.join(entry.path, METRICS_LOCK),
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                )
            except FileNotFoundError:
                if time.time() - info.st_mtime < graceSeconds:
                    continue
            else:
                try:
                    fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # Its supervisor runs.
                finally:
                    os.close(lock)
            shutil.rmtree(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


# Not twisted.runner.procmon.ProcessMonitor: it spawns each process with only standard
# input, output and error (no childFDs), so it cannot hand a worker its listening sockets
# or the pipe it reserves connection numbers through, and it knows nothing of a start
# that fails for good.
class WorkerPool(Service):
    """
    Binds every ``--listen`` endpoint once and keeps ``count`` worker processes serving
    them (see the module docstring).

    :param options: the tool's parsed options.
    :param module: the tap module the workers run (``twisted_journey.tap.greet``...).
    :param reactor: the real reactor.

    :ivar restarts: workers restarted since start.
    :ivar metricsDirectory: the ``PROMETHEUS_MULTIPROC_DIR`` handed to the workers, or
        ``None`` without ``--metrics``.
    :ivar failure: the sentence the pool stopped the server with, when a worker could
        not start for a reason that will not go away; else ``None``.
    :ivar exitAtEnd: called with ``1`` after such a stop, to make the process exit
        non-zero.
    """

    log = Logger()
    firstDelay = 0.1
    maxDelay = 10.0
    stableAfter = 10.0
    stopTimeout = 10.0
    #: seconds past :attr:`stopTimeout` after which stopping stops waiting for workers
    #: that were sent ``SIGKILL`` (they have always ended by then)
    killGrace = 5.0
    #: seconds between a worker's syncs of its counters into the metrics directory
    metricsInterval = 0.5
    exitAtEnd: Callable[[int], None] = staticmethod(_exitAtEnd)
    #: the descriptor a worker writes its connection-number reservations to, set by
    #: :meth:`workerArguments`
    controlFd = -1

    def __init__(self, options: Any, module: str, reactor: Any) -> None:
        self.options = options
        self.module = module
        self.reactor = reactor
        self.clock = reactor
        self.count: int = options["workers"]
        self.metricsDirectory: str | None = None
        self._metricsLock: int | None = None
        self.restarts = 0
        self.failure: str | None = None
        self.workers: dict[int, _WorkerProcess] = {}
        self._failures = [0] * self.count
        self._starts = [0] * self.count
        #: per slot: how many connection numbers its workers have reserved
        self.reserved = [0] * self.count
        self._pending: dict[int, IDelayedCall] = {}
        #: slots whose replacement is due after :attr:`firstDelay`: their sockets stay
        #: open for it
        self._imminent: set[int] = set()
        self._stopping = False
        self._stopSignal = signal.SIGTERM
        self._previousHandlers: dict[int, Any] = {}
        binder = _BindingReactor(reactor, self.count)
        self._binder = binder
        # Imported here, not with this module: twisted_journey.service loads Twisted's
        # endpoint parsers, which read systemd's variables, and a worker sets LISTEN_PID
        # first (see main).
        from twisted_journey import service

        _twisted.throttleAcceptFailures(AcceptFailures().failed)
        self.ports = MultiService()
        for listening in service.listeningServices(options["listen"], _Idle(), binder):
            listening.setServiceParent(self.ports)

    # The listening ports are bound here, before twistd drops privileges.
    def privilegedStartService(self) -> None:
        """
        Bind every endpoint (or exit with one sentence saying why not).
        """
        super().privilegedStartService()
        self.ports.privilegedStartService()

    def startService(self) -> None:
        """
        Start forwarding signals and spawn the workers.
        """
        super().startService()
        self.ports.startService()
        # After the reactor's own handlers (twistd starts services before reactor.run).
        self.reactor.callWhenRunning(self._installSignalHandlers)
        for index in range(self.count):
            self.spawn(index)

    def _installSignalHandlers(self) -> None:
        """
        Put :meth:`_signalled` in front of the handlers of the signals we forward.
        """
        if self._stopping:
            return
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            self._previousHandlers[number] = signal.signal(number, self._signalled)

    def _signalled(self, number: int, frame: Any) -> None:
        """
        Forward ``SIGUSR1`` to the workers; remember which of ``SIGTERM``/``SIGINT``
        stops us, to stop them with it.  Then chain to the handler that was there.
        """
        if number == signal.SIGUSR1:
            self.signalWorkers(number)
        else:
            self._stopSignal = signal.Signals(number)
        previous = self._previousHandlers.get(number)
        if callable(previous):
            previous(number, frame)

    def signalWorkers(self, number: int) -> None:
        """
        Send signal ``number`` to every running worker; ``SIGUSR1`` only to those that
        have started (before, it would kill them; and they open the data log afresh).
        """
        for worker in list(self.workers.values()):
            if number == signal.SIGUSR1 and not worker.ready:
                continue
            worker.signal(number)

    # --- the metrics directory ----------------------------------------------------------

    def makeMetricsDirectory(self, parent: str | None = None) -> str:
        """
        Make the private directory (``mkdtemp``: mode 0700) the workers write their
        counters into for ``--metrics``, in ``parent`` (the temporary directory:
        ``TMPDIR`` or ``/tmp``), and remove those a supervisor killed with ``SIGKILL``
        left there (:func:`removeAbandoned`).  While the supervisor runs it holds a lock
        on the directory's ``METRICS_LOCK`` (through ``twistd``'s daemon fork too);
        :meth:`stopService` removes the directory.

        :return: the directory, also set as :attr:`metricsDirectory`.
        """
        import fcntl
        import tempfile

        removeAbandoned(parent)
        directory = tempfile.mkdtemp(prefix=METRICS_PREFIX, dir=parent)
        # The lock is taken under another name, then renamed to METRICS_LOCK: another
        # supervisor's removeAbandoned never finds it there unheld (it would remove
        # this directory) nor holds it as this one locks it.
        locking = os.path.join(directory, METRICS_LOCK + ".new")
        lock = os.open(
            locking, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(locking, os.path.join(directory, METRICS_LOCK))
        self._metricsLock = lock
        self.metricsDirectory = directory
        return directory

    # --- each slot's own sockets: open while its worker runs --------------------------

    def _ownListeners(self) -> list[Listener]:
        """
        The listeners with a socket of each worker's own (``tcp:``, ``SO_REUSEPORT``).
        """
        return [listener for listener in self._binder.listeners if listener.address is not None]

    def isOpen(self, index: int) -> bool:
        """
        Whether worker ``index``'s own sockets are open (taking connections).
        """
        return all(listener.ports[index] is not None for listener in self._ownListeners())

    def openSlot(self, index: int) -> None:
        """
        Bind worker ``index``'s own sockets again where :meth:`closeSlot` closed them.

        :raises Exception: when one cannot be bound (the slot then counts as failed).
        """
        for listener in self._ownListeners():
            if listener.ports[index] is None:
                assert listener.address is not None
                port = self._binder.bindOne(*listener.address)
                listener.ports[index] = port
                listener.fds[index] = port.fileno()

    def closeSlot(self, index: int) -> None:
        """
        Close worker ``index``'s own sockets while no worker serves them, so that the
        kernel sends their share of new connections to the sockets of running workers
        (connections waiting in a closed socket's queue are reset, or moved to another
        socket where ``net.ipv4.tcp_migrate_req`` is 1).  One socket of each address stays
        open when no other is, so that the address stays ours: its connections wait for
        the restart.

        A worker whose replacement is due after the first delay (:attr:`firstDelay`: it
        had not failed lately) keeps its sockets for that replacement, which accepts
        what waits in them; they are closed if it cannot be started, or dies quickly too.
        """
        if not any(self.isOpen(other) for other in range(self.count) if other != index):
            return
        for listener in self._ownListeners():
            port = listener.ports[index]
            if port is not None:
                listener.ports[index] = None
                port.stopListening()

    def _closeIdleSlots(self) -> None:
        """
        Close the sockets of every slot waiting for a restart that is not imminent, now
        that some worker's are open.
        """
        for index in list(self._pending):
            if index not in self.workers and index not in self._imminent:
                self.closeSlot(index)

    # --- starting, restarting, failing --------------------------------------------------

    def workerArguments(self, index: int) -> tuple[list[str], dict[int, int | str]]:
        """
        The command line and descriptor map for worker ``index``.
        """
        childFDs: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        systemdFds = {listener.childFd for listener in self._binder.listeners}
        inherited = int(_twisted.systemdEnvironment().get("LISTEN_FDS", "0"))
        nextFd = max([2 + inherited, *(fd for fd in systemdFds if fd is not None)]) + 1
        described = []
        for listener in self._binder.listeners:
            childFd = listener.childFd
            if childFd is None:
                childFd, nextFd = nextFd, nextFd + 1
            childFDs[childFd] = listener.fdFor(index)
            described.append(listener.asJSON(childFd))
        self.controlFd = nextFd
        childFDs[nextFd] = "r"
        configuration = {
            "module": self.module,
            "index": index,
            "count": self.count,
            "listeners": described,
            "argv": list(getattr(self.options, "argv", [])),
            "metricsInterval": self.metricsInterval,
            "restarted": self._starts[index] > 0,
            "control": self.controlFd,
            "connStart": self.reserved[index],
        }
        argv = [
            sys.executable,
            "-c",
            "from twisted_journey.workers import main; main()",
            json.dumps(configuration),
        ]
        return argv, childFDs

    def workerEnvironment(self) -> dict[str, str]:
        """
        The environment of a worker: ours, with this package importable, the metrics
        directory named, and systemd's description of the sockets it handed us (which
        Twisted removed from our environment as it read it).
        """
        env = dict(os.environ)
        env.update(_twisted.systemdEnvironment())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if self.metricsDirectory is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metricsDirectory
        return env

    def spawn(self, index: int) -> None:
        """
        Start worker ``index``, with its own sockets open.  A start that fails (no
        descriptor left for its pipes, its socket cannot be bound again...) is a failed
        worker: it is tried again after the backoff delay.
        """
        self._pending.pop(index, None)
        self._imminent.discard(index)
        if self._stopping or self.failure is not None:
            return
        worker = _WorkerProcess(self, index)
        self.workers[index] = worker
        try:
            self.openSlot(index)
            argv, childFDs = self.workerArguments(index)
            self.reactor.spawnProcess(
                worker, argv[0], argv, env=self.workerEnvironment(), childFDs=childFDs
            )
        except Exception as e:
            if self.workers.get(index) is worker:
                del self.workers[index]
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            self.closeSlot(index)
            self._restartLater(index, worker, f"could not be started ({reason})")
            return
        self._starts[index] += 1
        self._closeIdleSlots()
        self.log.info("Started worker {index} (pid {pid})", index=index, pid=worker.pid)

    def reserve(self, index: int, reserved: int) -> None:
        """
        Worker ``index`` has reserved its slot's connection numbers up to ``reserved``:
        its successors go on after them.
        """
        self.reserved[index] = max(self.reserved[index], reserved)

    def relay(self, index: int, line: bytes, stderr: bool) -> None:
        """
        Log a line worker ``index`` wrote: a JSON log event is published as it was, marked
        ``worker-N``; anything else (a traceback on stderr) is logged as text.
        """
        text = line.decode("utf-8", "replace").rstrip("\r")
        if not text:
            return
        if not stderr and text.startswith("{"):
            try:
                event = eventFromJSON(text)
            except ValueError:
                pass
            else:
                namespace = event.get("log_namespace", "-")
                level = event.get("log_level")
                levelName = getattr(level, "name", "-")
                event["log_system"] = f"worker-{index} {namespace}#{levelName}"
                globalLogPublisher(event)
                return
        self.log.warn("worker-{index}: {line}", index=index, line=text)

    def workerEnded(self, worker: _WorkerProcess, reason: Failure) -> None:
        """
        A worker exited: unless stopping, close its sockets and restart it after its
        backoff delay; or, when it could not start for a reason that a restart will not
        change, stop the server.
        """
        index = worker.index
        if self.workers.get(index) is worker:
            del self.workers[index]
        if self.metricsDirectory is not None and worker.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, self.metricsDirectory)
        if self._stopping:
            return
        status = getattr(reason.value, "exitCode", None)
        signalNumber = getattr(reason.value, "signal", None)
        if status == CANNOT_START and not signalNumber:
            self.fail(worker.lastError or f"worker {index} cannot start.")
            return
        how = f"killed by signal {signalNumber}" if signalNumber else f"exited with status {status}"
        if self._restartLater(index, worker, how) <= self.firstDelay:
            # Its replacement comes at once: it will accept what waits in the queue.
            self._imminent.add(index)
        else:
            self.closeSlot(index)

    def _restartLater(self, index: int, worker: _WorkerProcess, how: str) -> float:
        """
        Start worker ``index`` again after its backoff delay, which doubles with each
        quick failure.

        :return: the delay.
        """
        if self.clock.seconds() - worker.startedAt >= self.stableAfter:
            self._failures[index] = 0
        delay = min(self.maxDelay, self.firstDelay * 2 ** self._failures[index])
        self._failures[index] += 1
        self.restarts += 1
        self.log.warn(
            "Worker {index} (pid {pid}) {how}; restarting it in {delay:.1f} seconds",
            index=index,
            pid=worker.pid,
            how=how,
            delay=delay,
        )
        self._pending[index] = self.clock.callLater(delay, self.spawn, index)
        return delay

    def fail(self, sentence: str) -> None:
        """
        A worker cannot start, and a restart would not change that: log ``sentence``,
        stop the server, and make it exit with status 1.
        """
        if self.failure is not None or self._stopping:
            return
        self.failure = sentence
        self.log.critical(
            "Stopping the server: {sentence}",
            sentence=sentence,
        )
        self.exitAtEnd(1)
        from twisted.internet.error import ReactorNotRunning

        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def stopService(self) -> Deferred[None]:
        """
        Stop the workers with the signal that stopped us (``SIGKILL`` past
        :attr:`stopTimeout`), then close the sockets.  Stopping always completes: a slot
        waiting for its restart has no worker to wait for.
        """
        super().stopService()
        self._stopping = True
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        for number, previous in self._previousHandlers.items():
            signal.signal(number, previous)
        self._previousHandlers.clear()
        running = list(self.workers.values())
        self.signalWorkers(self._stopSignal)
        killer = self.clock.callLater(self.stopTimeout, self._killAll)
        done: Deferred[Any] = DeferredList([w.ended for w in running])

        def giveUp() -> None:
            if not done.called:
                done.callback([])

        giveUpCall = self.clock.callLater(self.stopTimeout + self.killGrace, giveUp)

        def stopped(_: object) -> Deferred[None] | None:
            for call in (killer, giveUpCall):
                if call.active():
                    call.cancel()
            if self.metricsDirectory is not None:
                shutil.rmtree(self.metricsDirectory, ignore_errors=True)
            if self._metricsLock is not None:
                os.close(self._metricsLock)
                self._metricsLock = None
            for listener in self._ownListeners():
                for port in listener.ports:
                    # The endpoint's service closes the port it got from the endpoint.
                    if port is not None and port is not listener.first:
                        port.stopListening()
            if not self.ports.running:
                return None
            return cast("Deferred[None] | None", self.ports.stopService())

        done.addCallback(stopped)
        return cast("Deferred[None]", done)

    def _killAll(self) -> None:
        """
        Workers still running after :attr:`stopTimeout`: kill them.
        """
        if self.workers:
            self.log.warn(
                "{count} workers still running after {timeout} seconds: killing them",
                count=len(self.workers),
                timeout=self.stopTimeout,
            )
        self.signalWorkers(signal.SIGKILL)


def supervise(options: Any, module: str, reactor: Any = None) -> IService:
    """
    The service twistd runs for ``--workers N`` (``N > 1``): a :class:`WorkerPool`, and
    the metrics endpoint when ``--metrics`` is given.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
        # twistd's own log, on sys.stdout under -n: never blocking (see eventlog).
        sys.stdout = event_stream(sys.stdout, classic_line)
    path = options.get("output")
    if path not in (None, "-"):
        for index in range(options["workers"]):
            name = workerOutput(path, index)
            try:
                if stat.S_ISFIFO(os.lstat(name).st_mode):
                    # Its worker waits for the reader, as one process does; opening it
                    # here would wait too, and then hand the reader an end of file.
                    continue
            except FileNotFoundError:
                pass
            except OSError as e:
                raise SystemExit(f"cannot open --output {name!r}: {e.strerror or e}.") from None
            try:
                os.close(open_output(name))
            except OSError as e:
                # SystemExit: twistd prints it and exits 1 (a UsageError here is a traceback).
                raise SystemExit(f"cannot open --output {name!r}: {e.strerror or e}.") from None
    parent = MultiService()
    pool = WorkerPool(options, module, reactor)
    pool.setServiceParent(parent)
    if options.get("metrics"):
        from twisted_journey import metrics

        metrics.supervisorService(options, pool, reactor).setServiceParent(parent)
    return parent


# --- the worker process ------------------------------------------------------------------


def _watchParent(reactor: Any, parent: int) -> None:
    """
    Stop the reactor when the supervisor is gone (we have been re-parented).
    """
    from twisted.internet.task import LoopingCall

    def check() -> None:
        if os.getppid() != parent:
            reactor.stop()

    LoopingCall(check).start(1.0, now=False)


def _jsonLine(sentence: str) -> str:
    """
    ``sentence`` as a JSON log event line, as a worker writes its events.
    """
    from twisted.logger import LogLevel, eventAsJSON

    event = {
        "log_format": "{sentence}",
        "sentence": sentence,
        "log_time": time.time(),
        "log_namespace": "twisted_journey.eventlog",
        "log_level": LogLevel.warn,
    }
    return eventAsJSON(event) + "\n"


def main(argv: list[str] | None = None) -> None:
    """
    Run one worker: ``argv[1]`` is the JSON configuration the supervisor wrote
    (:meth:`WorkerPool.workerArguments`).
    """
    configuration = json.loads((sys.argv if argv is None else argv)[1])
    parent = os.getppid()
    # Our own process group: the terminal's Ctrl-C goes to the supervisor, which forwards.
    os.setpgid(0, 0)
    if "LISTEN_FDS" in os.environ:
        # The systemd: sockets are where the supervisor got them; they are ours now.
        os.environ["LISTEN_PID"] = str(os.getpid())
    # SIGUSR1 must not kill a worker that has no use for it (journey-greet).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    import importlib

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, jsonFileLogObserver

    # The pipe to the supervisor never blocks this worker: events it cannot take are
    # dropped and counted (see eventlog).
    sys.stdout = event_stream(sys.stdout, _jsonLine)
    globalLogBeginner.beginLoggingTo(
        [jsonFileLogObserver(sys.stdout, recordSeparator="")], redirectStandardIO=False
    )
    module = importlib.import_module(configuration["module"])
    options = module.Options()
    index, count = configuration["index"], configuration["count"]
    held: int | None = None
    try:
        options.parseOptions(configuration["argv"])
        numbers = ConnectionNumbers(
            index, count, configuration.get("connStart", 0), configuration.get("control")
        )
        options[WORKER] = WorkerContext(
            index, count, configuration["listeners"], configuration["metricsInterval"], numbers
        )
        options["max-connections"] = connectionShare(options["max-connections"], count, index)
        if options.get("output") not in (None, "-"):
            options["output"] = workerOutput(options["output"], index)
            held = _holdReader(options["output"], configuration.get("restarted", False))
            dropTornRecord(options["output"])
        service: IService = module.makeService(options)
        service.privilegedStartService()
    except (Exception, SystemExit) as e:
        _cannotStart(index, e)
    finally:
        if held is not None:
            os.close(held)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    _watchParent(reactor, parent)
    reactor.run()


def _holdReader(path: str, restarted: bool) -> int | None:
    """
    For a worker whose data file ``path`` is a FIFO: the first worker waits for the
    FIFO's reader when it opens it, as the single-process server does; a restarted one
    does not wait (its predecessor's end may have ended the reader), and holds the FIFO
    open while it opens its data log, so that its reader sees no end of file between.

    :return: the descriptor to close once the data log is open, or ``None``.
    :raises SystemExit: when a restarted worker's FIFO has no reader.
    """
    try:
        if not restarted or not stat.S_ISFIFO(os.lstat(path).st_mode):
            return None
        return open_output(path, wait=False)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise SystemExit(
                f"cannot open --output {path!r}: it is a FIFO that no process reads."
            ) from None
        raise


def _cannotStart(index: int, error: BaseException) -> None:
    """
    End a worker that could not start, with one sentence on standard error: with
    ``CANNOT_START`` (the supervisor stops the server) unless the cause may go away
    by itself (an ``errno`` in ``TRANSIENT_ERRNOS``: the supervisor tries again).
    """
    cause: BaseException | None = error
    transient = False
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
            transient = True
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}" + (f": {error.filename!r}" if error.filename else "")
    else:
        text = str(error) or type(error).__name__
    sentence = text if text.endswith(".") else text + "."
    sys.stderr.write(f"worker {index} cannot start: {sentence}\n")
    sys.stderr.flush()
    os._exit(1 if transient else CANNOT_START)


#: For the type checker: what a signal handler looks like.
_Handler = Callable[[int, Any], Any]
