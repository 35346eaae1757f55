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
  matters for long-lived journey-mux clients).  Because the supervisor holds every socket,
  a dead worker's queue is not reset: the connections waiting in it are accepted by its
  replacement, in the same slot.
- A ``unix:`` or ``systemd:`` socket cannot be multiplied: it is **one socket shared** by
  every worker, with one accept queue; a worker accepts one connection per wakeup (as
  nginx does by default) so that a burst spreads over the workers that are awake.

Binding in the supervisor also means that privileged ports are bound once, before twistd
drops privileges, and ``tcp:0`` is one port for every worker.

The supervisor:

- restarts a worker that exits while it is not stopping, after a delay that doubles with
  each quick failure (:attr:`WorkerPool.firstDelay` to :attr:`WorkerPool.maxDelay`) and
  goes back to the first once a worker has stayed up :attr:`WorkerPool.stableAfter`
  seconds;
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
(:func:`dropTornRecord`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
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

from twisted_journey.datalog import open_output
from twisted_journey.eventlog import classic_line, event_stream
from twisted_journey.settings import SettingError

__all__ = [
    "Listener",
    "WorkerPool",
    "checkMuxWorkers",
    "connectionShare",
    "dropTornRecord",
    "isWorker",
    "listeningReactor",
    "main",
    "serverExtras",
    "supervise",
    "workerCount",
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
    ``PATH.w1``... (rotated as ``PATH.w0.1``...).
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

    :return: the number of bytes cut.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
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


def _internals() -> Any:
    """
    :mod:`twisted_journey._twisted`, imported when first needed rather than with this
    module: a worker runs this module as its main program, and must set ``LISTEN_PID``
    (see :func:`main`) before anything imports ``twisted.internet.endpoints``, which
    reads systemd's variables once, at import.
    """
    from twisted_journey import _twisted

    return _twisted


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
    """

    def __init__(
        self, fds: list[int], family: int, childFd: int | None = None, mode: int | None = None
    ) -> None:
        self.fds = fds
        self.family = family
        self.childFd = childFd
        self.mode = mode

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

    :ivar extraPorts: the per-worker ports past the first of each TCP endpoint (the
        endpoint's service knows only the first), for the pool to close.
    """

    def __init__(self, reactor: Any, count: int = 1) -> None:
        self._reactor = reactor
        self.count = count
        self.listeners: list[Listener] = []
        self.extraPorts: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _hold(self, port: Any, childFd: int | None = None, mode: int | None = None) -> Any:
        port.stopReading()
        self.listeners.append(Listener([port.fileno()], port.socket.family, childFd, mode))
        return port

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        ports: list[Any] = []
        number = port
        try:
            for _ in range(self.count):
                binding = tcp.makeBinding(interface, number, reuseAddress=True, reusePort=True)
                listening = self._reactor.listenTCP(binding, _Idle(), backlog, interface)
                listening.stopReading()
                ports.append(listening)
                # tcp:0 picks a port for the first socket; the others join it.
                number = listening.getHost().port
        except BaseException:
            for listening in ports:
                listening.stopListening()
            raise
        self.listeners.append(Listener([p.fileno() for p in ports], ports[0].socket.family))
        self.extraPorts.extend(ports[1:])
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
        port: tcp.Port = _internals().adoptListeningPort(
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


def serverExtras(options: Any, factory: Any, parent: MultiService) -> None:
    """
    Add what a serving process runs beside its ports: in a worker with ``--metrics``,
    the sync of its counters for the supervisor; in a single process with ``--metrics``,
    the metrics endpoint itself.  The supervisor of ``--workers N`` adds its own.
    """
    context = options.get(WORKER)
    if context is not None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from twisted_journey import metrics

            metrics.WorkerMetrics(factory, context.index, context.metricsInterval).setServiceParent(
                parent
            )
    elif options.get("metrics") and options.get("workers", 1) <= 1:
        from twisted_journey import metrics

        metrics.processService(options, factory).setServiceParent(parent)


def listeningReactor(options: Any, reactor: Any) -> Any:
    """
    The reactor :func:`twisted_journey.tap.common.listeningService` parses endpoint
    strings against: in a worker, one that adopts the inherited sockets; else ``reactor``.
    """
    context = options.get(WORKER)
    if context is None:
        return reactor
    return _AdoptingReactor(reactor, context.listeners)


# --- the supervisor ----------------------------------------------------------------------


class WorkerContext:
    """
    What a worker process knows of its place: set on its options by :func:`main`.

    :ivar index: this worker's number, ``0`` to ``count - 1``.
    :ivar count: how many workers there are.
    :ivar listeners: the inherited sockets, in ``--listen`` order.
    :ivar metricsInterval: seconds between syncs of the counters for ``--metrics``.
    """

    def __init__(
        self,
        index: int,
        count: int,
        listeners: list[dict[str, Any]],
        metricsInterval: float = 0.5,
    ) -> None:
        self.index = index
        self.count = count
        self.listeners = listeners
        self.metricsInterval = metricsInterval


class _WorkerProcess(ProcessProtocol):
    """
    The supervisor's side of one worker: relays its log events, tells the pool when it
    ends.
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

    def connectionMade(self) -> None:
        """
        Note the pid; close the worker's standard input (it reads none).
        """
        self.pid = self.transport.pid  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """
        Split what the worker writes into lines, and log each.
        """
        self.ready = True
        lines = (self._buffers.get(childFD, b"") + data).split(b"\n")
        self._buffers[childFD] = lines.pop()
        for line in lines:
            self.pool.relay(self.index, line, childFD == 2)

    def processEnded(self, reason: Failure) -> None:
        """
        Flush what is left of its output, and tell the pool.
        """
        for childFD, rest in self._buffers.items():
            if rest:
                self.pool.relay(self.index, rest, childFD == 2)
        self._buffers = {}
        self.pool.workerEnded(self, reason)
        self.ended.callback(None)


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
    """

    log = Logger()
    firstDelay = 0.1
    maxDelay = 10.0
    stableAfter = 10.0
    stopTimeout = 10.0
    #: seconds between a worker's syncs of its counters into the metrics directory
    metricsInterval = 0.5

    def __init__(self, options: Any, module: str, reactor: Any) -> None:
        self.options = options
        self.module = module
        self.reactor = reactor
        self.clock = reactor
        self.count: int = options["workers"]
        self.metricsDirectory: str | None = None
        self.restarts = 0
        self.workers: dict[int, _WorkerProcess] = {}
        self._failures = [0] * self.count
        self._pending: dict[int, IDelayedCall] = {}
        self._stopping = False
        self._stopSignal = signal.SIGTERM
        self._previousHandlers: dict[int, Any] = {}
        binder = _BindingReactor(reactor, self.count)
        self._binder = binder
        from twisted_journey.tap.common import listeningService

        self.ports = listeningService(options, _Idle(), cast(Any, binder))

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
            if worker.pid is not None:
                try:
                    os.kill(worker.pid, number)
                except ProcessLookupError:
                    pass

    def workerArguments(self, index: int) -> tuple[list[str], dict[int, int | str]]:
        """
        The command line and descriptor map for worker ``index``.
        """
        childFDs: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        systemdFds = {listener.childFd for listener in self._binder.listeners}
        inherited = int(_internals().systemdEnvironment().get("LISTEN_FDS", "0"))
        nextFd = max([2 + inherited, *(fd for fd in systemdFds if fd is not None)]) + 1
        described = []
        for listener in self._binder.listeners:
            childFd = listener.childFd
            if childFd is None:
                childFd, nextFd = nextFd, nextFd + 1
            childFDs[childFd] = listener.fdFor(index)
            described.append(listener.asJSON(childFd))
        configuration = {
            "module": self.module,
            "index": index,
            "count": self.count,
            "listeners": described,
            "argv": list(getattr(self.options, "argv", [])),
            "metricsInterval": self.metricsInterval,
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
        env.update(_internals().systemdEnvironment())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if self.metricsDirectory is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metricsDirectory
        return env

    def spawn(self, index: int) -> None:
        """
        Start worker ``index``.
        """
        self._pending.pop(index, None)
        argv, childFDs = self.workerArguments(index)
        worker = _WorkerProcess(self, index)
        self.workers[index] = worker
        self.reactor.spawnProcess(
            worker, argv[0], argv, env=self.workerEnvironment(), childFDs=childFDs
        )
        self.log.info("Started worker {index} (pid {pid})", index=index, pid=worker.pid)

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
        A worker exited: unless stopping, restart it after its backoff delay.
        """
        index = worker.index
        if self.workers.get(index) is worker:
            del self.workers[index]
        if self.metricsDirectory is not None and worker.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, self.metricsDirectory)
        status = getattr(reason.value, "status", None)
        signalNumber = getattr(reason.value, "signal", None)
        if self._stopping:
            return
        how = (
            f"killed by signal {signalNumber}"
            if signalNumber
            else f"exited with status {getattr(reason.value, 'exitCode', status)}"
        )
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

    def stopService(self) -> Deferred[None]:
        """
        Stop the workers with the signal that stopped us (``SIGKILL`` past
        :attr:`stopTimeout`), then close the sockets.
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

        def stopped(_: object) -> Deferred[None] | None:
            if killer.active():
                killer.cancel()
            if self.metricsDirectory is not None:
                shutil.rmtree(self.metricsDirectory, ignore_errors=True)
            for port in self._binder.extraPorts:
                port.stopListening()
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
    try:
        options.parseOptions(configuration["argv"])
        options[WORKER] = WorkerContext(
            index, count, configuration["listeners"], configuration["metricsInterval"]
        )
        options["max-connections"] = connectionShare(options["max-connections"], count, index)
        if options.get("output") not in (None, "-"):
            options["output"] = workerOutput(options["output"], index)
            dropTornRecord(options["output"])
        service: IService = module.makeService(options)
        service.privilegedStartService()
    except (usage.UsageError, SystemExit) as e:
        sys.stderr.write(f"worker {index}: {e}\n")
        sys.exit(1)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    _watchParent(reactor, parent)
    reactor.run()


#: For the type checker: what a signal handler looks like.
_Handler = Callable[[int, Any], Any]
