# -*- test-case-name: tests.test_workers -*-
"""
The supervisor of ``--workers N``: the ``twistd`` process that binds every ``--listen``
endpoint once, keeps ``N`` worker processes serving its sockets
(:class:`WorkerPool`), relays their log events, restarts them, and stops them
(see :mod:`twisted_journey.workers` for the design).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

import twisted_journey
from twisted_journey import _twisted, service, startup
from twisted_journey.datagrams import bind_udp, socket_drops
from twisted_journey.datalog import open_output
from twisted_journey.eventlog import AcceptFailures, EventStream, classic_line, event_stream
from twisted_journey.listen import ListenError, ListenSpec
from twisted_journey.settings import ServerSettings
from twisted_journey.workers.listeners import BindingReactor, IdleFactory, Listener, Rebound
from twisted_journey.workers.worker import CANNOT_START, workerOutput

__all__ = [
    "METRICS_LOCK",
    "METRICS_PREFIX",
    "WorkerPool",
    "removeAbandoned",
    "supervise",
]


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
        numbers it reserves (:class:`~twisted_journey.workers.worker.ConnectionNumbers`).
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


class WorkerPool(Service):
    """
    Binds every ``--listen`` endpoint once and keeps ``count`` worker processes serving
    them (see :mod:`twisted_journey.workers`).

    Not ``twisted.runner.procmon``'s ``ProcessMonitor``: it spawns each process with only
    standard input, output and error (no ``childFDs``), so it cannot pass a worker its
    listening descriptors or the pipe it reserves connection numbers through, and it
    knows nothing of a start that fails for good.

    :param settings: the server's settings: its endpoints and how many workers.
    :param module: the tap module the workers run (``twisted_journey.tap.greet``...).
    :param reactor: the real reactor.
    :param arguments: the tool's arguments, which each worker parses again.
    :param datagrams: journey-mux's ``udp:`` listeners: each is one socket, bound here
        and shared by every worker (a datagram is read by exactly one of them, and
        what waits in the socket outlives a worker's death).

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

    def __init__(
        self,
        settings: ServerSettings,
        module: str,
        reactor: Any,
        arguments: Sequence[str] = (),
        datagrams: Sequence[ListenSpec] = (),
    ) -> None:
        self.settings = settings
        self.datagrams = list(datagrams)
        #: the bound ``udp:`` sockets, in ``--listen`` order
        self.datagramSockets: list[socket.socket] = []
        self.arguments = list(arguments)
        self.module = module
        self.reactor = reactor
        self.clock = reactor
        self.count = settings.workers
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
        binder = BindingReactor(reactor, self.count)
        self._binder = binder
        _twisted.throttleAcceptFailures(AcceptFailures().failed)
        self.ports = MultiService()
        for listening in service.listeningServices(settings.listen, IdleFactory(), binder):
            listening.setServiceParent(self.ports)

    # The listening ports are bound here, before twistd drops privileges.
    def privilegedStartService(self) -> None:
        """
        Bind every endpoint (or exit with one sentence saying why not).
        """
        super().privilegedStartService()
        self.ports.privilegedStartService()
        self._bindDatagrams()

    def _bindDatagrams(self) -> None:
        """
        Bind the ``udp:`` sockets not bound yet (or exit with one sentence saying why not).
        """
        for spec in self.datagrams[len(self.datagramSockets) :]:
            try:
                self.datagramSockets.append(bind_udp(spec))
            except ListenError as e:
                raise startup.StartError(str(e)) from None

    def startService(self) -> None:
        """
        Start forwarding signals and spawn the workers.
        """
        super().startService()
        self._bindDatagrams()
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
        Bind worker ``index``'s own sockets again where :meth:`closeSlot` closed them;
        they listen only once the worker is started (:meth:`listenSlot`).

        :raises Exception: when one cannot be bound (the slot then counts as failed).
        """
        for listener in self._ownListeners():
            if listener.ports[index] is None:
                assert listener.address is not None
                port = self._binder.bindAgain(*listener.address)
                listener.ports[index] = port
                listener.fds[index] = port.fileno()

    def listenSlot(self, index: int) -> None:
        """
        Worker ``index`` has been started: the sockets :meth:`openSlot` bound again for
        it take connections from now on.
        """
        for listener in self._ownListeners():
            port = listener.ports[index]
            if isinstance(port, Rebound):
                port.listen()

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
        datagrams = []
        for sock in self.datagramSockets:
            childFDs[nextFd] = sock.fileno()
            datagrams.append(nextFd)
            nextFd += 1
        self.controlFd = nextFd
        childFDs[nextFd] = "r"
        configuration = {
            "module": self.module,
            "index": index,
            "count": self.count,
            "listeners": described,
            "datagrams": datagrams,
            "argv": self.arguments,
            "metricsInterval": self.metricsInterval,
            "restarted": self._starts[index] > 0,
            "control": self.controlFd,
            "connStart": self.reserved[index],
        }
        argv = [
            sys.executable,
            "-c",
            "from twisted_journey.workers.worker import main; main()",
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
        root = os.path.dirname(os.path.dirname(os.path.abspath(twisted_journey.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if self.metricsDirectory is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metricsDirectory
        return env

    def spawn(self, index: int) -> None:
        """
        Start worker ``index``, with its own sockets open.  A start that fails (no
        descriptor left for its pipes, its socket cannot be bound again...) is a failed
        worker: it is tried again after the backoff delay.  A socket bound again for it
        listens only once it has started, so a failed start resets no client.
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
        self.listenSlot(index)
        self._starts[index] += 1
        self._closeIdleSlots()
        self.log.info("Started worker {index} (pid {pid})", index=index, pid=worker.pid)

    def datagramDrops(self) -> int:
        """
        The datagrams the kernel dropped on the ``udp:`` sockets because their receive
        buffers were full (counted per socket, so not by any one worker).
        """
        return sum(socket_drops(sock) for sock in self.datagramSockets)

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
            for sock in self.datagramSockets:
                sock.close()
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


def supervise(
    settings: ServerSettings,
    module: str,
    arguments: Sequence[str],
    reactor: Any = None,
    datagrams: Sequence[ListenSpec] = (),
) -> IService:
    """
    The service twistd runs for ``--workers N`` (``N > 1``): a :class:`WorkerPool`, and
    the metrics endpoint when ``--metrics`` is given.

    :param settings: the server's settings.
    :param module: the tap module the workers run.
    :param arguments: the tool's arguments, which each worker parses again.
    :param datagrams: journey-mux's ``udp:`` listeners (see :class:`WorkerPool`).
    :raises SystemExit: with one sentence, when a worker's data file cannot be opened.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
        # twistd's own log, on sys.stdout under -n: never blocking (see eventlog).
        sys.stdout = event_stream(sys.stdout, classic_line)
    path = settings.outputPath
    if path is not None:
        for index in range(settings.workers):
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
    pool = WorkerPool(settings, module, reactor, arguments, datagrams)
    pool.setServiceParent(parent)
    if settings.metrics:
        # Imported only when asked for: it loads twisted.web and prometheus_client.
        from twisted_journey import metrics

        metrics.supervisorService(settings.metrics, pool, reactor).setServiceParent(parent)
    return parent
