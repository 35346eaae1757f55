"""
Tests for ``--workers N`` (:mod:`twisted_journey.workers`: its listeners, supervisor and
worker modules): option parsing, the share of
``--max-connections``, the adopted ports, and real supervisors with real workers.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    catchesSignal,
    connect,
    environment,
    freePort,
    readAll,
    selfSignedCertificate,
    socketPath,
    startServer,
    twistdArgv,
    waitFor,
)
from twisted_journey.settings import SettingError, worker_count
from twisted_journey.tap import greet as tap_greet
from twisted_journey.tap import mux as tap_mux
from twisted_journey.workers.listeners import AdoptingReactor, Listener
from twisted_journey.workers.supervisor import (
    METRICS_LOCK,
    WorkerPool,
    _WorkerProcess,
    removeAbandoned,
)
from twisted_journey.workers.worker import (
    CANNOT_START,
    ConnectionNumbers,
    WorkerContext,
    connectionShare,
    dropTornRecord,
    workerOutput,
)

GREETING = b"Thank you for connecting\r\n"


def parse(module: object, *argv: str) -> usage.Options:
    """
    Parse ``argv`` with ``module.Options``.
    """
    options = module.Options()  # type: ignore[attr-defined]
    options.parseOptions(list(argv))
    return options  # type: ignore[no-any-return]


class OptionTests(SynchronousTestCase):
    """
    ``--workers`` and the settings derived from it.
    """

    def test_workerCount(self) -> None:
        """
        A whole number of at least 1, or ``auto`` for the cores this process may use.
        """
        self.assertEqual(worker_count("--workers", "3"), 3)
        self.assertEqual(worker_count("--workers", "auto"), len(os.sched_getaffinity(0)))
        for bad in ("0", "-1", "x", ""):
            error = self.assertRaises(SettingError, worker_count, "--workers", bad)
            self.assertEqual(
                str(error), f"--workers must be a whole number of at least 1, or auto, not {bad!r}."
            )

    def test_defaultsAndParsing(self) -> None:
        """
        One worker and no metrics by default, for both tools; the arguments are kept.
        """
        for module in (tap_greet, tap_mux):
            options = parse(module)
            self.assertEqual((options["workers"], options["metrics"]), (1, None))
        options = parse(tap_greet, "--workers", "2", "--metrics", "tcp:0", "-q")
        self.assertEqual((options["workers"], options["metrics"]), (2, "tcp:0"))
        self.assertEqual(options.argv, ["--workers", "2", "--metrics", "tcp:0", "-q"])  # type: ignore[attr-defined]

    def test_usageErrors(self) -> None:
        """
        Options that cannot work with several workers are one-sentence usage errors.
        """
        cases = [
            (tap_greet, ["--workers", "0"], "--workers must be a whole number of at least 1"),
            (
                tap_greet,
                ["--workers", "3", "--max-connections", "2"],
                "--max-connections (2) must be at least --workers (3): it is shared out",
            ),
            (tap_greet, ["--metrics", "bogus:1"], "--metrics 'bogus:1' is not a usable endpoint"),
            (tap_mux, ["--workers", "2"], "--workers needs --output PATH"),
            (
                tap_mux,
                ["--workers", "2", "-o", "x", "--broadcast"],
                "--broadcast cannot be used with --workers",
            ),
        ]
        for module, argv, message in cases:
            error = self.assertRaises(usage.UsageError, parse, module, *argv)
            self.assertTrue(str(error).startswith(message), (argv, str(error)))

    def test_connectionShare(self) -> None:
        """
        The workers' shares of ``--max-connections`` add up to it exactly.
        """
        for limit in range(3, 20):
            for count in range(1, 4):
                shares = [connectionShare(limit, count, i) for i in range(count)]
                self.assertEqual(sum(shares), limit)  # type: ignore[arg-type]
                self.assertLessEqual(max(shares) - min(shares), 1)  # type: ignore[operator]
        self.assertIsNone(connectionShare(None, 4, 0))


class WorkerSettingsTests(SynchronousTestCase):
    """
    :meth:`WorkerContext.serverSettings`: what a worker serves with.
    """

    def test_shareAndOwnFile(self) -> None:
        """
        A worker gets its share of ``--max-connections`` and its own ``PATH.wI``; every
        other setting is the server's.
        """
        options = parse(tap_mux, "--workers", "2", "--max-connections", "5", "-o", "x", "-q")
        server = options.settings  # type: ignore[attr-defined]
        shares = [WorkerContext(i, 2, []).serverSettings(server) for i in range(2)]
        self.assertEqual([s.maxConnections for s in shares], [3, 2])
        self.assertEqual([s.output for s in shares], ["x.w0", "x.w1"])
        self.assertEqual(replace(shares[1], maxConnections=5, output="x"), server)
        greet = parse(tap_greet, "--workers", "2").settings  # type: ignore[attr-defined]
        self.assertEqual(WorkerContext(0, 2, []).serverSettings(greet), greet)


class TornRecordTests(SynchronousTestCase):
    """
    :func:`dropTornRecord` cuts an unfinished last record, and nothing else.
    """

    def test_cases(self) -> None:
        """
        Whole files are left alone; a torn tail is cut back to the last newline, however
        far back it is; a file of one torn record becomes empty; a missing file is fine.
        """
        path = self.mktemp()
        cases = [
            (b"", b"", 0),
            (b"a\nb\n", b"a\nb\n", 0),
            (b"a\nb\nhalf", b"a\nb\n", 4),
            (b"a\n" + b"x" * 200000, b"a\n", 200000),
            (b"torn", b"", 4),
        ]
        for content, expected, cut in cases:
            Path(path).write_bytes(content)
            self.assertEqual(dropTornRecord(path), cut)
            self.assertEqual(Path(path).read_bytes(), expected)
        self.assertEqual(dropTornRecord(path + ".missing"), 0)


class _RecordingPool(WorkerPool):
    """
    A pool that records the workers it would start instead of starting them.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.spawned: list[int] = []

    def spawn(self, index: int) -> None:
        self._pending.pop(index, None)
        self.spawned.append(index)
        worker = _WorkerProcess(self, index)
        worker.pid = 1000 + len(self.spawned)
        self.workers[index] = worker


class BackoffTests(SynchronousTestCase):
    """
    :class:`WorkerPool` restarts a worker that exits after a delay that doubles
    with each quick failure, up to a cap, and starts again from the first delay once a
    worker has stayed up.
    """

    def test_backoff(self) -> None:
        """
        0.1, 0.2, 0.4... seconds, capped at 10; a worker that ran 10 seconds resets it.
        """
        from twisted.internet.error import ProcessTerminated

        clock = MemoryReactorClock()
        options = parse(tap_greet, "--workers", "2", "--listen", "tcp:0")
        pool = _RecordingPool(options.settings, "twisted_journey.tap.greet", clock)  # type: ignore[attr-defined]
        pool.spawn(0)

        def crash(after: float) -> float:
            """
            Let worker 0 run ``after`` seconds, kill it, return the restart delay.
            """
            clock.advance(after)
            worker = pool.workers[0]
            worker.processEnded(Failure(ProcessTerminated(signal=9)))
            [call] = clock.getDelayedCalls()
            delay = call.getTime() - clock.seconds()
            clock.advance(delay)
            return delay

        delays = [round(crash(0.01), 3) for _ in range(9)]
        self.assertEqual(delays, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])
        self.assertEqual(round(crash(10.0), 3), 0.1)
        self.assertEqual(pool.restarts, 10)
        self.assertEqual(pool.spawned, [0] * 11)


class _FakeProcess:
    """
    The transport of a worker started by :class:`_SpawningReactor`: records signals.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[int] = []

    def closeStdin(self) -> None:
        pass

    def signalProcess(self, number: int) -> None:
        self.signals.append(number)


class _SpawningReactor(MemoryReactorClock):
    """
    A memory reactor whose ``spawnProcess`` fails with ``EMFILE`` (as ``os.pipe()`` does
    when descriptors run out) as many times as asked, then "starts" fake processes.
    """

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.processes: list[tuple[object, _FakeProcess]] = []

    def spawnProcess(self, protocol: object, *args: object, **kwargs: object) -> _FakeProcess:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        transport = _FakeProcess(90_000_000 + len(self.processes))
        protocol.makeConnection(transport)  # type: ignore[attr-defined]
        self.processes.append((protocol, transport))
        return transport


def _pool(reactor: MemoryReactorClock) -> WorkerPool:
    """
    A two-worker journey-greet pool on ``reactor`` (no endpoint bound).
    """
    options = parse(tap_greet, "--workers", "2", "--listen", "tcp:0")
    return WorkerPool(options.settings, "twisted_journey.tap.greet", reactor)  # type: ignore[attr-defined]


class StartFailureTests(SynchronousTestCase):
    """
    A worker that cannot be started (``spawnProcess`` raises) is a failed worker: it is
    tried again with the backoff delay, and stopping never waits for it.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, object]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_failedStartIsRetried(self) -> None:
        """
        Two failed starts are logged and retried after 0.1 then 0.2 seconds; the third
        starts the worker.
        """
        reactor = _SpawningReactor(failures=2)
        pool = _pool(reactor)
        pool.spawn(0)
        self.assertNotIn(0, pool.workers)
        delays = []
        for _ in range(2):
            [call] = reactor.getDelayedCalls()
            delays.append(round(call.getTime() - reactor.seconds(), 3))
            reactor.advance(call.getTime() - reactor.seconds())
        self.assertEqual(delays, [0.1, 0.2])
        self.assertEqual(pool.workers[0].pid, 90_000_000)
        self.assertEqual(reactor.getDelayedCalls(), [])
        messages = [e.get("how") for e in self.events if "how" in e]
        self.assertEqual(messages, ["could not be started (Too many open files)"] * 2)

    def test_stopWhileAStartFails(self) -> None:
        """
        SIGTERM while one worker's start has failed: the running worker is signalled,
        stopping completes once it ends, and the failed one is not started again.
        """
        from twisted.internet.error import ProcessTerminated

        reactor = _SpawningReactor()
        pool = _pool(reactor)
        pool.spawn(0)
        reactor.failures = 1
        pool.spawn(1)
        self.assertEqual(sorted(pool.workers), [0])
        stopping = pool.stopService()
        [(protocol, transport)] = reactor.processes
        self.assertEqual(transport.signals, [signal.SIGTERM])
        self.assertNoResult(stopping)
        protocol.processEnded(Failure(ProcessTerminated(signal=signal.SIGTERM)))  # type: ignore[attr-defined]
        self.successResultOf(stopping)
        reactor.advance(60)
        self.assertEqual(len(reactor.processes), 1)

    def test_stopAlwaysCompletes(self) -> None:
        """
        A worker whose end never comes, even after SIGKILL, holds stopping up for
        ``stopTimeout + killGrace`` seconds at most.
        """
        reactor = _SpawningReactor()
        pool = _pool(reactor)
        pool.spawn(0)
        stopping = pool.stopService()
        reactor.advance(pool.stopTimeout)
        [(_, transport)] = reactor.processes
        self.assertEqual(transport.signals, [signal.SIGTERM, signal.SIGKILL])
        self.assertNoResult(stopping)
        reactor.advance(pool.killGrace)
        self.successResultOf(stopping)

    def test_reboundSocketListensOnlyOnceStarted(self) -> None:
        """
        A slot whose socket was closed while it was down gets a socket bound again for
        each start, which does not listen while the start fails (a client could connect
        there and be reset when it is closed) and listens once the worker has started.
        """

        class Reactor(_SpawningReactor):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                return global_reactor.listenTCP(*args, **kwargs)  # type: ignore[attr-defined]

        reactor = Reactor(failures=1)
        pool = _pool(reactor)
        running = socket.socket()
        self.addCleanup(running.close)
        running.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        running.bind(("127.0.0.1", 0))
        running.listen()
        address = running.getsockname()

        class Running:
            def fileno(self) -> int:
                return running.fileno()

            def stopListening(self) -> None:
                running.close()

        listener = Listener(
            [running.fileno(), -1],
            socket.AF_INET,
            ports=[Running(), None],
            address=(address[0], address[1], 50),
        )
        pool._binder.listeners[:] = [listener]
        listening: list[int] = []
        spawn = reactor.spawnProcess

        def spawnProcess(protocol: object, *args: object, **kwargs: object) -> _FakeProcess:
            fd = kwargs["childFDs"][3]  # type: ignore[index]
            with socket.socket(fileno=os.dup(fd)) as slot:
                listening.append(slot.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            return spawn(protocol, *args, **kwargs)

        reactor.spawnProcess = spawnProcess  # type: ignore[method-assign]
        pool.spawn(1)
        self.assertIsNone(listener.ports[1])
        [call] = reactor.getDelayedCalls()
        reactor.advance(call.getTime() - reactor.seconds())
        self.assertEqual(sorted(pool.workers), [1])
        fd = listener.fds[1]
        with socket.socket(fileno=os.dup(fd)) as slot:
            listening.append(slot.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            self.assertEqual(slot.getsockname(), address)
        self.addCleanup(listener.ports[1].stopListening)
        self.assertEqual(listening, [0, 0, 1])

    def test_reboundByHostName(self) -> None:
        """
        A ``tcp:`` interface given as a host name (which Twisted's ports accept) is bound
        again for a restart as Twisted bound it, listening only when told.
        """
        from twisted_journey.workers.listeners import Rebound

        rebound = Rebound("localhost", 0, 5)
        self.addCleanup(rebound.stopListening)
        self.assertEqual(rebound.socket.getsockname()[0], "127.0.0.1")
        accepting = (socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        self.assertEqual(rebound.socket.getsockopt(*accepting), 0)
        rebound.listen()
        self.assertEqual(rebound.socket.getsockopt(*accepting), 1)

    def test_workerThatCannotStartStopsTheServer(self) -> None:
        """
        A worker that exits with ``CANNOT_START`` is not restarted: the server stops
        with the sentence the worker wrote, and will exit with status 1.
        """
        from twisted.internet.error import ProcessTerminated

        reactor = _SpawningReactor()
        pool = _pool(reactor)
        statuses: list[int] = []
        pool.exitAtEnd = statuses.append  # type: ignore[method-assign]
        pool.spawn(0)
        [(protocol, _)] = reactor.processes
        sentence = b"worker 0 cannot start: cannot open --output 'x.w0': a link is there.\n"
        protocol.childDataReceived(2, sentence)  # type: ignore[attr-defined]
        protocol.processEnded(  # type: ignore[attr-defined]
            Failure(ProcessTerminated(exitCode=CANNOT_START))
        )
        self.assertEqual(pool.failure, sentence.decode().strip())
        self.assertEqual(statuses, [1])
        self.assertTrue(reactor.hasStopped)
        self.assertEqual(reactor.getDelayedCalls(), [])
        [critical] = [e for e in self.events if e.get("log_format", "").startswith("Stopping")]  # type: ignore[union-attr]
        self.assertEqual(critical["sentence"], sentence.decode().strip())


class ExitAtEndTests(SynchronousTestCase):
    """
    L{twisted_journey.workers.supervisor._exitAtEnd} ends the process with its status only once the event log has
    written what it holds.
    """

    def test_eventLogWrittenFirst(self) -> None:
        """
        Events queued for a slow reader of the event log are all written before the
        process exits with the status given, as any exit waits for them.
        """
        import subprocess
        import sys

        from tests.support import environment

        script = (
            "import atexit, sys\n"
            "from twisted_journey import eventlog\n"
            "from twisted_journey.workers import supervisor\n"
            "sys.stdout = eventlog.event_stream(sys.stdout)\n"
            "supervisor._exitAtEnd(1)\n"
            "atexit.register(lambda: (sys.stderr.write('exiting\\n'), sys.stderr.flush()))\n"
            "for i in range(200):\n"
            "    sys.stdout.write('%04d %s\\n' % (i, 'x' * 1000))\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        self.addCleanup(child.wait)
        self.addCleanup(child.stderr.close)  # type: ignore[union-attr]
        self.addCleanup(child.stdout.close)  # type: ignore[union-attr]
        assert child.stdout is not None and child.stderr is not None
        errors = []
        # Nothing is read from the log until the process is on its way out: the
        # events past the pipe's capacity are still queued then.
        for line in child.stderr:
            errors.append(line)
            if line == b"exiting\n":
                break
        self.assertEqual(errors[-1:], [b"exiting\n"], b"".join(errors))
        lines = child.stdout.read().splitlines()
        self.assertEqual(child.wait(PATIENCE), 1)
        self.assertEqual(len(lines), 200)
        self.assertEqual(lines[-1][:5], b"0199 ")


class WorkerEnvironmentTests(SynchronousTestCase):
    """
    What a worker is started with.
    """

    def test_packageFirstOnPath(self) -> None:
        """
        The directory holding this very package comes first on a worker's
        ``PYTHONPATH``, so that a worker runs the supervisor's code, from a checkout too.
        """
        import twisted_journey

        first = _pool(_SpawningReactor()).workerEnvironment()["PYTHONPATH"].split(os.pathsep)[0]
        self.assertEqual(
            Path(first, "twisted_journey", "__init__.py").resolve(),
            Path(twisted_journey.__file__).resolve(),
        )


class ConnectionNumberTests(SynchronousTestCase):
    """
    :class:`ConnectionNumbers` and the supervisor's side of it: ``CONN`` is unique
    across workers and restarts.
    """

    def test_strides(self) -> None:
        """
        Worker I of N numbers its connections I+1, I+1+N...: no two workers share one.
        """
        numbers = [ConnectionNumbers(i, 3) for i in range(3)]
        seen = [n(k) for n in numbers for k in range(1, 2000)]
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual([numbers[1](k) for k in (1, 2, 3)], [2, 5, 8])

    def test_reservations(self) -> None:
        """
        A worker writes each block it reserves to its control pipe before using it; the
        supervisor starts the slot's next worker after the highest, so no number repeats.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        first = ConnectionNumbers(1, 2, 0, write)
        used = [first(k) for k in range(1, 1500)]
        written = os.read(read, 100)
        self.assertEqual(written, b"1024\n2048\n")
        pool = _pool(_SpawningReactor())
        pool.spawn(1)
        protocol, _ = pool.reactor.processes[0]
        protocol.childDataReceived(pool.controlFd, written[:3])
        protocol.childDataReceived(pool.controlFd, written[3:])
        self.assertEqual(pool.reserved, [0, 2048])
        argv, childFDs = pool.workerArguments(1)
        configuration = json.loads(argv[-1])
        self.assertEqual(childFDs[configuration["control"]], "r")
        second = ConnectionNumbers(1, 2, configuration["connStart"])
        later = [second(k) for k in range(1, 100)]
        self.assertGreater(min(later), max(used))
        self.assertTrue(all(n % 2 == 0 for n in used + later))


class _Hello(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hi")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class AdoptedPortTests(TestCase):
    """
    The ports a worker adopts: a closed one leaves the shared socket (and its file)
    usable by the next worker.  These lean on Twisted's private adopting constructors,
    so they fail loudly if a Twisted upgrade changes them.
    """

    def _listener(self, family: int, address: object) -> socket.socket:
        sock = socket.socket(family)
        self.addCleanup(sock.close)
        sock.bind(address)
        sock.listen(16)
        sock.setblocking(False)
        return sock

    @inlineCallbacks
    def _adoptTwice(self, sock: socket.socket, address: object) -> object:
        """
        Adopt ``sock`` in one port, close it, adopt it again, and get a greeting.
        """
        for _ in range(2):
            description = {"fd": os.dup(sock.fileno()), "family": int(sock.family), "mode": None}
            adopting = AdoptingReactor(global_reactor, [description])
            port = adopting.listenTCP(0, Factory.forProtocol(_Hello))
            self.assertEqual(port.numberAccepts, 1)
            yield port.stopListening()
        port = AdoptingReactor(
            global_reactor,
            [{"fd": os.dup(sock.fileno()), "family": int(sock.family), "mode": None}],
        ).listenTCP(0, Factory.forProtocol(_Hello))
        self.addCleanup(port.stopListening)
        client = connect(address, timeout=5)
        client.setblocking(False)
        data = b""
        deadline = time.monotonic() + PATIENCE
        while not data and time.monotonic() < deadline:
            d: Deferred[None] = Deferred()
            global_reactor.callLater(0.01, d.callback, None)  # type: ignore[attr-defined]
            yield d
            try:
                data = client.recv(10)
            except BlockingIOError:
                pass
        client.close()
        self.assertEqual(data, b"hi")
        return None

    def test_unixSocketSurvivesAWorker(self) -> None:
        """
        Closing an adopted ``unix:`` port neither removes the socket file nor shuts the
        socket down.
        """
        path = socketPath(self)
        sock = self._listener(socket.AF_UNIX, path)
        d = self._adoptTwice(sock, path)
        d.addCallback(lambda _: self.assertTrue(os.path.exists(path)))
        return d

    def test_tcpSocketSurvivesAWorker(self) -> None:
        """
        Closing an adopted ``tcp:`` port does not shut the shared socket down.
        """
        sock = self._listener(socket.AF_INET, ("127.0.0.1", 0))
        return self._adoptTwice(sock, sock.getsockname())


def _workerPids(supervisor: int) -> set[int]:
    """
    The pids of ``supervisor``'s children.
    """
    text = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    return {int(pid) for pid in text.split()}


def _waitForWorkers(server: ServerProcess, count: int, starts: int = 0) -> None:
    """
    Wait until workers 0 to ``count - 1`` have logged that they listen, workers have
    started listening at least ``starts`` times in all (restarts included), and the
    supervisor's reactor runs with its signal handlers (the workers start before it: a
    signal sent earlier would meet Python's defaults).  ``SIGUSR1`` is caught only
    by the supervisor's handlers, installed once its reactor runs.
    """

    def listening() -> bool:
        log = server.stdout
        every = all(
            re.search(rb"\[worker-%d [^]]*\] [^\n]*starting on" % index, log)
            for index in range(count)
        )
        return (
            every
            and len(re.findall(rb"\[worker-\d+ [^]]*\] [^\n]*starting on", log)) >= starts
            and catchesSignal(server.process.pid, signal.SIGUSR1)
        )

    waitFor(listening, f"{count} workers never listened", server=server)


class GreetWorkersTests(SynchronousTestCase):
    """
    ``twistd journey-greet --workers 2`` on a TCP and a UNIX socket.
    """

    def setUp(self) -> None:
        self.port = freePort()
        self.path = socketPath(self)
        self.server = startServer(
            self,
            twistdArgv(
                "journey-greet",
                "--listen",
                f"tcp:{self.port}:interface=127.0.0.1",
                "--listen",
                f"unix:{self.path}",
                "--workers",
                "2",
            ),
            ("127.0.0.1", self.port),
        )
        _waitForWorkers(self.server, 2)

    def test_servesRestartsAndStops(self) -> None:
        """
        Both sockets are served; a worker killed with SIGKILL is replaced, and serving
        goes on; SIGUSR1 kills no worker; SIGTERM stops every worker and removes the
        socket file.
        """
        for _ in range(20):
            self.assertEqual(readAll(connect(("127.0.0.1", self.port))), GREETING)
            self.assertEqual(readAll(connect(self.path)), GREETING)
        before = _workerPids(self.server.process.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        waitFor(
            lambda: len(_workerPids(self.server.process.pid) - {victim}) == 2,
            "the killed worker was not restarted",
            server=self.server,
        )
        for _ in range(20):
            self.assertEqual(readAll(connect(("127.0.0.1", self.port))), GREETING)
        running = _workerPids(self.server.process.pid)
        self.server.process.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        self.assertEqual(_workerPids(self.server.process.pid), running)
        _stopCleanly(self.server)
        self.assertFalse(os.path.exists(self.path))
        for pid in running:
            self.assertFalse(Path(f"/proc/{pid}").exists() and _isAlive(pid), pid)
        log = self.server.stdout.decode()
        self.assertIn(f"Worker 0 (pid {victim}) killed by signal 9; restarting it", log)
        self.assertRegex(
            log, r"\[worker-1 twisted_journey\.greet\.GreetFactory#info\] Got connection"
        )


class GreetWorkersSignalTests(SynchronousTestCase):
    """
    How the workers of ``twistd journey-greet --workers 2`` end.
    """

    def setUp(self) -> None:
        self.port = freePort()
        self.server = startServer(
            self,
            twistdArgv(
                "journey-greet",
                "--listen",
                f"tcp:{self.port}:interface=127.0.0.1",
                "--workers",
                "2",
                "--quiet",
            ),
            ("127.0.0.1", self.port),
        )
        _waitForWorkers(self.server, 2)
        self.workers = _workerPids(self.server.process.pid)

    def test_sigintIsForwarded(self) -> None:
        """
        SIGINT to the supervisor reaches every worker as SIGINT.
        """
        self.server.stop(signal.SIGINT)
        log = self.server.stdout
        for index in range(2):
            self.assertIn(b"[worker-%d twisted.internet.base#info] Received SIGINT" % index, log)
        self.assertFalse(any(_isAlive(pid) for pid in self.workers))

    def test_addressInUse(self) -> None:
        """
        A second ``--workers 2`` server started on the address the first serves fails
        at once with one sentence, as one process does, rather than joining the first's
        ``SO_REUSEPORT`` sockets and taking a share of its clients.
        """
        import subprocess

        argv = twistdArgv(
            "journey-greet", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
            "--workers", "2", "--message", "intruder",
        )  # fmt: skip
        try:
            second = subprocess.run(argv, env=environment(), capture_output=True, timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.fail("a second server on the same address kept running")
        self.assertEqual(second.returncode, 1, second)
        self.assertEqual(
            second.stderr,
            b"cannot listen on tcp:%d:interface=127.0.0.1: Address already in use.\n" % self.port,
        )
        for _ in range(10):
            self.assertEqual(readAll(connect(("127.0.0.1", self.port))), GREETING)

    def test_orphansStop(self) -> None:
        """
        Workers whose supervisor was killed with SIGKILL stop by themselves.
        """
        self.server.process.kill()
        self.server.process.wait()
        waitFor(
            lambda: not any(_isAlive(pid) for pid in self.workers),
            "orphaned workers kept running",
            server=self.server,
        )


def _stopCleanly(server: ServerProcess) -> None:
    """
    Stop ``server`` with SIGTERM and check that twistd shut down in order (it ends by
    raising the signal that stopped it again).
    """
    status = server.stop()
    if status not in (0, -signal.SIGTERM) or b"Server Shut Down." not in server.stdout:
        raise AssertionError(f"status {status}\n{server.output()}")


def _isAlive(pid: int) -> bool:
    """
    Whether ``pid`` runs (is neither gone nor a zombie).
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


LINE = re.compile(rb"^\S+ 127\.0\.0\.1:\d+ \d+ c(\d+) n(\d+) x+$")


class _TwoMuxWorkers:
    """
    Starts ``twistd journey-mux --workers 2`` writing ``self.output.wN``, for a
    ``SynchronousTestCase``.
    """

    def setUp(self) -> None:
        self.port = freePort()
        self.output = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]

    def start(self, *extra: str, listen: str | None = None) -> ServerProcess:
        """
        Start journey-mux with two workers on ``listen`` (by default a TCP port on
        127.0.0.1), with ``extra`` options.
        """
        server = startServer(
            self,
            twistdArgv(
                "journey-mux",
                "--listen",
                listen or f"tcp:{self.port}:interface=127.0.0.1",
                "--workers",
                "2",
                "--output",
                self.output,
                "--quiet",
                "--flush-interval",
                "0.1",
                *extra,
            ),
            ("127.0.0.1", self.port),
        )
        _waitForWorkers(server, 2)
        return server

    def records(self) -> list[bytes]:
        """
        Every record in every worker's file (none for a file not there).
        """
        lines = []
        for index in range(2):
            path = Path(workerOutput(self.output, index))
            if path.exists():
                lines.extend(path.read_bytes().splitlines(keepends=True))
        return lines


class MuxWorkersTests(_TwoMuxWorkers, SynchronousTestCase):
    """
    ``twistd journey-mux --workers 2``: a file per worker, whole records, restarts.
    """

    def test_killedWorkerLosesNoWrittenRecord(self) -> None:
        """
        Clients stream lines while a worker is killed with SIGKILL: every record in the
        files is whole, no line is recorded twice, every line sent to the surviving
        worker is recorded, and the restarted worker serves.
        """
        server = self.start()
        clients = [connect(("127.0.0.1", self.port)) for _ in range(6)]
        reset: set[int] = set()
        for number in range(200):
            for client, sock in enumerate(clients):
                try:
                    sock.sendall(b"c%d n%d %s\n" % (client, number, b"x" * 40))
                except OSError:
                    reset.add(client)
            if number == 100:
                os.kill(min(_workerPids(server.process.pid)), signal.SIGKILL)
        for client, sock in enumerate(clients):
            # The killed worker's connections are reset; the others stay open (mux
            # sends nothing).
            sock.settimeout(0.5)
            try:
                if sock.recv(1) == b"":
                    reset.add(client)
            except TimeoutError:
                pass
            except OSError:
                reset.add(client)
            sock.close()
        _waitForWorkers(server, 2, starts=3)
        with connect(("127.0.0.1", self.port)) as late:
            late.sendall(b"c99 n0 " + b"x" * 40 + b"\n")
        waitFor(
            lambda: any(b" c99 n0 " in record for record in self.records()),
            "the restarted worker recorded nothing",
            server=server,
        )
        _stopCleanly(server)
        seen = set()
        perClient: dict[int, list[int]] = {}
        for record in self.records():
            self.assertTrue(record.endswith(b"\n"), record)
            match = LINE.match(record.rstrip(b"\n"))
            self.assertIsNotNone(match, record)
            assert match is not None
            key = (int(match.group(1)), int(match.group(2)))
            self.assertNotIn(key, seen)
            seen.add(key)
            perClient.setdefault(key[0], []).append(key[1])
        self.assertIn((99, 0), seen)
        # The killed worker's clients lost what it had not written; the others (if the
        # kernel gave the surviving worker any) lost nothing.
        for client in set(range(6)) - reset:
            self.assertEqual(sorted(perClient.get(client, [])), list(range(200)), client)
        for numbers in perClient.values():
            # What a client's worker wrote is a prefix of what the client sent.
            self.assertEqual(sorted(numbers), list(range(len(numbers))))

    def test_connectionNumbersAreUnique(self) -> None:
        """
        ``CONN`` never repeats, across the two workers' files and a worker's restart.
        """
        server = self.start()

        def send(first: int) -> None:
            for number in range(first, first + 8):
                with connect(("127.0.0.1", self.port)) as sock:
                    sock.sendall(b"c%d n0 %s\n" % (number, b"x" * 8))

        def recorded(count: int) -> bool:
            return len(self.records()) >= count

        send(0)
        waitFor(lambda: recorded(8), "the first lines were not recorded", server=server)
        os.kill(_workerOf(server, 1), signal.SIGKILL)
        _waitForWorkers(server, 2, starts=3)
        send(8)
        waitFor(lambda: recorded(16), "the later lines were not recorded", server=server)
        _stopCleanly(server)
        conns = [int(record.split()[2]) for record in self.records()]
        self.assertEqual(len(conns), 16)
        self.assertEqual(len(set(conns)), 16, conns)
        for index in range(2):
            path = Path(workerOutput(self.output, index))
            inFile = [int(r.split()[2]) for r in path.read_bytes().splitlines()]
            self.assertEqual(inFile, sorted(inFile))
            self.assertTrue(all(n % 2 == (index + 1) % 2 for n in inFile), inFile)

    def test_maxConnectionsIsShared(self) -> None:
        """
        ``--max-connections 2`` with two workers: never more than two open in all.
        """
        server = self.start("--max-connections", "2")
        held = []
        opened = [connect(("127.0.0.1", self.port)) for _ in range(6)]
        time.sleep(1.0)
        for sock in opened:
            sock.settimeout(0.2)
            try:
                refused = sock.recv(1) == b""
            except TimeoutError:
                refused = False
            if refused:
                sock.close()
            else:
                held.append(sock)
        for sock in held:
            sock.close()
        self.assertGreaterEqual(len(held), 1)
        self.assertLessEqual(len(held), 2)
        _stopCleanly(server)


class WrappedEndpointTests(SynchronousTestCase):
    """
    Workers build what an endpoint string wraps around the adopted socket: TLS for
    ``ssl:``, the PROXY protocol for ``haproxy:``.
    """

    def test_ssl(self) -> None:
        """
        ``ssl:`` with two workers: a TLS client gets the greeting from each connection.
        """
        import ssl

        keyPath, certPath = selfSignedCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        server = startServer(
            self,
            twistdArgv(
                "journey-greet",
                "--listen",
                f"ssl:{port}:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}",
                "--workers",
                "2",
                "--quiet",
            ),
            ("127.0.0.1", port),
        )
        _waitForWorkers(server, 2)
        context = ssl.create_default_context(cafile=certPath)
        for _ in range(6):
            with context.wrap_socket(
                connect(("127.0.0.1", port)), server_hostname="localhost"
            ) as tls:
                received = b""
                while chunk := tls.recv(100):
                    received += chunk
            self.assertEqual(received, GREETING)
        _stopCleanly(server)

    def test_haproxy(self) -> None:
        """
        ``haproxy:tcp:`` with two workers: the record names the client the PROXY header
        gives, not the proxy.
        """
        port = freePort()
        output = os.path.abspath(self.mktemp())
        server = startServer(
            self,
            twistdArgv(
                "journey-mux",
                "--listen",
                f"haproxy:tcp:{port}:interface=127.0.0.1",
                "--workers",
                "2",
                "--output",
                output,
                "--quiet",
                "--flush-interval",
                "0.1",
            ),
            ("127.0.0.1", port),
        )
        _waitForWorkers(server, 2)
        for number in range(6):
            with connect(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"PROXY TCP4 192.0.2.%d 127.0.0.1 4000%d 1235\r\nline %d\n"
                    % (number, number, number)
                )
        files = [Path(workerOutput(output, i)) for i in range(2)]

        def recorded() -> bytes:
            return b"".join(path.read_bytes() for path in files if path.exists())

        waitFor(lambda: recorded().count(b"\n") == 6, "not every line was recorded", server=server)
        for number in range(6):
            self.assertIn(b" 192.0.2.%d:4000%d " % (number, number), recorded())
        _stopCleanly(server)

    def test_systemd(self) -> None:
        """
        ``systemd:`` with two workers under ``systemd-socket-activate``: the workers adopt
        the socket systemd handed the supervisor, found by its name.
        """
        import shutil

        activate = shutil.which("systemd-socket-activate")
        if activate is None:
            raise SkipTest("systemd-socket-activate is not installed")
        port = freePort()
        server = startServer(
            self,
            [
                activate,
                "-E",
                "PYTHONPATH",
                "-l",
                f"127.0.0.1:{port}",
                "--fdname=journey",
                *twistdArgv(
                    "journey-greet",
                    "--listen",
                    "systemd:domain=INET:name=journey",
                    "--workers",
                    "2",
                ),
            ],
            ("127.0.0.1", port),
        )
        _waitForWorkers(server, 2)
        for _ in range(10):
            self.assertEqual(readAll(connect(("127.0.0.1", port))), GREETING)
        _stopCleanly(server)


def _workerOf(server: ServerProcess, index: int) -> int:
    """
    The pid of worker ``index`` of ``server``, from its latest "Started worker" event.
    """
    found = re.findall(rb"Started worker %d \(pid (\d+)\)" % index, server.stdout)
    if not found:
        raise AssertionError(f"worker {index} never started\n{server.output()}")
    return int(found[-1])


def _waitForExit(server: ServerProcess) -> int:
    """
    Wait (bounded) for ``server`` to exit by itself; fail with its output if it does not.
    """
    try:
        return server.process.wait(PATIENCE)
    except Exception:
        raise AssertionError(f"the server did not stop by itself\n{server.output()}") from None


class SlotDownTests(_TwoMuxWorkers, SynchronousTestCase):
    """
    ``twistd journey-mux --workers 2`` while one worker cannot run: its socket takes no
    connections while it is down, and a worker that can never start again stops the
    server with one sentence.
    """

    def test_noBlackHoleWhileAStartFails(self) -> None:
        """
        The supervisor runs out of descriptors (a lowered ``RLIMIT_NOFILE``), and worker 1
        is killed: its restarts fail (``EMFILE`` in ``os.pipe()``) and are retried; its
        socket takes no connection meanwhile, so every client's line is recorded by
        worker 0; SIGTERM then stops the server.
        """
        import resource

        server = self.start()
        pid = server.process.pid
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (descriptors, descriptors))
        os.kill(_workerOf(server, 1), signal.SIGKILL)
        waitFor(
            lambda: server.stdout.count(b"could not be started (Too many open files)") >= 2,
            "worker 1's restart did not fail twice",
            server=server,
        )
        for number in range(20):
            with connect(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"client %d\n" % number)
        waitFor(
            lambda: all(b" client %d\n" % n in b"".join(self.records()) for n in range(20)),
            "lines sent while worker 1 was down were not all recorded",
            server=server,
        )
        self.assertEqual(Path(workerOutput(self.output, 1)).read_bytes(), b"")
        _stopCleanly(server)

    def _cannotRestart(self, server: ServerProcess, sentence: bytes) -> None:
        """
        Kill worker 1 of ``server``: the server stops by itself, with status 1 and
        ``sentence`` in its log.
        """
        os.kill(_workerOf(server, 1), signal.SIGKILL)
        status = _waitForExit(server)
        log = server.stdout
        self.assertEqual(status, 1, server.output())
        self.assertIn(b"Stopping the server: worker 1 cannot start: " + sentence, log)
        self.assertNotIn(b"Traceback", log + server.stderr)

    def test_plantedLink(self) -> None:
        """
        A symbolic link planted at ``PATH.w1``: worker 1 cannot be restarted, and the
        server stops with the sentence saying why.
        """
        server = self.start()
        name = workerOutput(self.output, 1)
        os.remove(name)
        os.symlink(self.output + ".elsewhere", name)
        self._cannotRestart(
            server,
            b"cannot open --output %s: a symbolic link is there, and the data log is never "
            b"written through one." % repr(name).encode(),
        )
        self.assertFalse(os.path.exists(self.output + ".elsewhere"))

    def test_missingKey(self) -> None:
        """
        The ``ssl:`` key removed while serving: worker 1 cannot be restarted, and the
        server stops with one sentence.
        """
        keyPath, certPath = selfSignedCertificate(os.path.abspath(self.mktemp()))
        server = self.start(
            listen=f"ssl:{self.port}:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}"
        )
        os.remove(keyPath)
        self._cannotRestart(server, b"--listen 'ssl:")

    def test_fifos(self) -> None:
        """
        FIFOs at ``PATH.w0`` and ``PATH.w1``, each with a reader: the workers write their
        records into them as one process writes into a FIFO ``--output``.  Worker 1's
        reader ends with it when it is killed, so its restart has no reader: the server
        stops with one sentence.
        """
        import subprocess

        copies = []
        for index in range(2):
            name = workerOutput(self.output, index)
            os.mkfifo(name)
            copy = Path(self.mktemp())
            with copy.open("wb") as out:
                reader = subprocess.Popen(["cat", name], stdout=out)
            self.addCleanup(reader.wait)
            self.addCleanup(reader.kill)
            copies.append(copy)
        server = self.start()
        for number in range(10):
            with connect(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"client %d\n" % number)
        waitFor(
            lambda: all(
                b" client %d\n" % n in b"".join(c.read_bytes() for c in copies) for n in range(10)
            ),
            "the lines did not all reach the FIFOs' readers",
            server=server,
        )
        name = workerOutput(self.output, 1)
        self._cannotRestart(
            server,
            b"cannot open --output %s: it is a FIFO that no process reads." % repr(name).encode(),
        )


class MetricsDirectoryTests(SynchronousTestCase):
    """
    The ``--metrics`` directory of a supervisor: one that a supervisor killed with
    ``SIGKILL`` left behind is removed at the next start.
    """

    def test_removeAbandoned(self) -> None:
        """
        Only directories of this user, named like ours, whose lock nobody holds (or that
        have none and are old) are removed; links and live directories stay.
        """
        import fcntl

        parent = os.path.abspath(self.mktemp())
        os.mkdir(parent)

        def directory(name: str, lock: bool = True) -> str:
            path = os.path.join(parent, name)
            os.mkdir(path)
            Path(path, "counter_1.db").write_bytes(b"x")
            if lock:
                Path(path, METRICS_LOCK).touch()
            return path

        abandoned = directory("journey-metrics-a")
        live = directory("journey-metrics-b")
        held = os.open(os.path.join(live, METRICS_LOCK), os.O_RDONLY)
        self.addCleanup(os.close, held)
        fcntl.flock(held, fcntl.LOCK_EX)
        old = directory("journey-metrics-c", lock=False)
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        young = directory("journey-metrics-d", lock=False)
        target = directory("elsewhere")
        os.symlink(target, os.path.join(parent, "journey-metrics-link"))
        other = directory("other-metrics-e")
        self.assertEqual(sorted(removeAbandoned(parent)), [abandoned, old])
        for path in (live, young, target, other, os.path.join(parent, "journey-metrics-link")):
            self.assertTrue(os.path.exists(path), path)
        self.assertTrue(os.path.exists(os.path.join(target, "counter_1.db")))

    def test_poolHoldsItsDirectory(self) -> None:
        """
        The pool's directory is private, locked while the pool runs, removed by stopping.
        """
        parent = os.path.abspath(self.mktemp())
        os.mkdir(parent)
        pool = _pool(_SpawningReactor())
        directory = pool.makeMetricsDirectory(parent)
        self.assertEqual(pool.metricsDirectory, directory)
        self.assertEqual(os.stat(directory).st_mode & 0o777, 0o700)
        self.assertEqual(removeAbandoned(parent), [])
        self.successResultOf(pool.stopService())
        self.assertFalse(os.path.exists(directory))

    def test_concurrentStartKeepsDirectory(self) -> None:
        """
        Another supervisor starting at the same moment (its L{removeAbandoned}
        running while this pool takes its lock) leaves this pool's directory alone.
        """
        import fcntl

        parent = os.path.abspath(self.mktemp())
        os.mkdir(parent)
        realFlock = fcntl.flock
        removed: list[list[str]] = []

        def flock(fd: int, operation: int) -> None:
            if operation & fcntl.LOCK_EX and not removed:
                removed.append(removeAbandoned(parent))
            realFlock(fd, operation)

        self.patch(fcntl, "flock", flock)
        pool = _pool(_SpawningReactor())
        directory = pool.makeMetricsDirectory(parent)
        self.assertEqual(removed, [[]])
        self.assertTrue(os.path.isdir(directory))
        self.assertTrue(os.path.exists(os.path.join(directory, METRICS_LOCK)))
        self.assertEqual(removeAbandoned(parent), [])
        self.successResultOf(pool.stopService())

    def test_killedSupervisorsDirectoryIsRemoved(self) -> None:
        """
        ``SIGKILL`` the supervisor of ``--workers 2 --metrics``: its directory stays in
        the temporary directory until the next supervisor starts there.
        """
        from tests.support import environment

        temporary = os.path.abspath(self.mktemp())
        os.mkdir(temporary)

        def start() -> ServerProcess:
            port = freePort()
            server = startServer(
                self,
                twistdArgv(
                    "journey-greet",
                    "--listen",
                    f"tcp:{port}:interface=127.0.0.1",
                    "--workers",
                    "2",
                    "--metrics",
                    "tcp:0:interface=127.0.0.1",
                    "--quiet",
                ),
                ("127.0.0.1", port),
                env=environment(TMPDIR=temporary),
            )
            _waitForWorkers(server, 2)
            return server

        server = start()
        [first] = os.listdir(temporary)
        server.process.kill()
        server.process.wait()
        self.assertEqual(os.listdir(temporary), [first])
        server = start()
        [second] = os.listdir(temporary)
        self.assertNotEqual(second, first)
        _stopCleanly(server)
        self.assertEqual(os.listdir(temporary), [])


#: A tool module for :class:`StopWhileStartingTests`: journey-greet, whose service maker
#: receives a SIGINT (as a supervisor forwards it) in the middle of the worker's start-up.
_STOPPED_WHILE_STARTING = """
import os, signal
from twisted_journey.tap import greet
Options = greet.Options
def makeService(options, reactor=None, worker=None):
    service = greet.makeService(options, reactor, worker)
    os.kill(os.getpid(), signal.SIGINT)
    return service
"""


class StopWhileStartingTests(SynchronousTestCase):
    """
    A worker that receives the supervisor's stop before its reactor runs.
    """

    def test_stopDuringStartUp(self) -> None:
        """
        A ``SIGINT`` that arrives while a worker builds its service is acted on once its
        reactor runs: the worker logs it, shuts down and exits 0, with no
        ``KeyboardInterrupt`` traceback in its log.
        """
        import subprocess
        import sys

        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "stopped_tool.py").write_text(_STOPPED_WHILE_STARTING)
        listening = socket.socket()
        self.addCleanup(listening.close)
        listening.bind(("127.0.0.1", 0))
        listening.listen(5)
        port = listening.getsockname()[1]
        configuration = {
            "module": "stopped_tool",
            "index": 0,
            "count": 1,
            "listeners": [
                {
                    "fd": listening.fileno(),
                    "family": int(socket.AF_INET),
                    "mode": None,
                    "shared": False,
                }
            ],
            "argv": ["--listen", f"tcp:{port}:interface=127.0.0.1", "--quiet"],
            "metricsInterval": 1.0,
        }
        env = environment()
        env["PYTHONPATH"] = os.pathsep.join([str(directory.absolute()), env["PYTHONPATH"]])
        worker = subprocess.run(
            [
                sys.executable,
                "-c",
                "from twisted_journey.workers.worker import main; main()",
                json.dumps(configuration),
            ],
            pass_fds=[listening.fileno()],
            env=env,
            capture_output=True,
            timeout=PATIENCE,
        )
        output = worker.stdout + worker.stderr
        self.assertNotIn(b"KeyboardInterrupt", output)
        self.assertIn(b"Received SIGINT", output)
        self.assertEqual(worker.returncode, 0, output.decode(errors="replace"))
