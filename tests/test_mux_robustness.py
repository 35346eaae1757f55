"""
journey-mux under attack, on both engines (``twistd -n journey-mux`` and the stdlib twin),
as real processes on loopback: a full disk, an output nobody reads, ``SIGUSR1`` from the
first instant, descriptor exhaustion, logrotate renames with size rotation under load, and
storms of reset connections.  Each test is sized to run in seconds.
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    catchesSignal,
    connect,
    environment,
    fallbackArgv,
    freePort,
    mountTmpfs,
    waitFor,
)
from tests.test_mux_contract import parse
from twisted_journey.records import PARTIAL

_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class PipedServer(ServerProcess):
    """
    A server process whose standard output is the descriptor ``stdout`` (a pipe), its
    standard error a file as usual.
    """

    def __init__(self, argv: list[str], stdout: int, env: dict[str, str] | None) -> None:
        self.argv = argv
        self._directory = tempfile.mkdtemp(prefix="journey-server-")
        self.stdoutPath = Path(self._directory, "stdout")
        self.stdoutPath.write_bytes(b"")
        self.stderrPath = Path(self._directory, "stderr")
        with open(self.stderrPath, "wb") as err:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=err,
                env=environment() if env is None else env,
                cwd=self._directory,
            )


def lostCount(log: str) -> int:
    """
    The records a server said it lost, from its closing line.
    """
    found = re.findall(r"(\d+) records lost", log)
    assert found, log
    return int(found[-1])


class MuxRobustness:
    """
    Attacks every journey-mux engine must withstand.  Subclasses define :meth:`argv`.
    """

    env: dict[str, str] | None = None
    stoppedStatus = 0

    def argv(self, *options: str, logfile: str | None = None) -> list[str]:
        """
        The command line for this engine with ``options``; events go to ``logfile``
        when given (else to stdout or stderr, as the engine does).
        """
        raise NotImplementedError

    def start(
        self, *options: str, output: str | None = None, **popen: Any
    ) -> tuple[ServerProcess, tuple[str, int], Path]:
        """
        Start the engine on a free loopback port writing to ``output`` (a fresh path by
        default), and wait until it listens.
        """
        port = freePort()
        path = Path(output or Path(self.mktemp()).absolute())
        address = ("127.0.0.1", port)
        server = ServerProcess(
            self.argv(
                "--listen",
                f"tcp:{port}:interface=127.0.0.1:backlog=1024",
                "--output",
                str(path),
                *options,
            ),
            env=self.env,
            **popen,
        )
        self.addCleanup(server.stop, signal.SIGKILL)  # type: ignore[attr-defined]
        server.waitForListening(address)
        return server, address, path

    def log(self, server: ServerProcess) -> str:
        """
        Everything the server logged so far.
        """
        return (server.stdout + server.stderr).decode("utf-8", "replace")

    def stop(self, server: ServerProcess) -> str:
        """
        SIGTERM; the server must exit as it should; its log.
        """
        status = server.stop(signal.SIGTERM)
        self.assertEqual(status, self.stoppedStatus, server.output())  # type: ignore[attr-defined]
        return self.log(server)

    # --- a full disk ------------------------------------------------------------------------

    def test_fullDiskKeepsRecordsWhole(self) -> None:
        """
        On a real, tiny ``tmpfs`` filled up while clients send: every record on disk is
        whole (none cut, none glued to the next: in text, that would read as a forged
        record), writing resumes when space comes back, and the records on disk plus the
        count the server reports lost are exactly the lines sent.
        """
        self.fullDisk("text")

    def test_fullDiskKeepsJsonParsable(self) -> None:
        """
        The same with ``--format json``: every record on disk parses.
        """
        self.fullDisk("json")

    def fullDisk(self, recordFormat: str) -> None:
        """
        Fill a tiny ``tmpfs`` under a server writing ``recordFormat`` records, free it,
        and check every record and the count of those lost.
        """
        directory = mountTmpfs(self, "256k")
        filler = Path(directory, "filler")
        filler.write_bytes(b"f" * 180_000)
        output = os.path.join(directory, "data.log")
        server, address, path = self.start(
            "--flush-interval", "0.05", "--quiet", "--format", recordFormat, output=output
        )
        sent = 0
        with connect(address) as sock:
            for n in range(2000):  # about 130 kB of records: past the room left
                sock.sendall(b"line %05d %s\n" % (n, b"d" * (n % 37)))
                sent += 1
        waitFor(lambda: b"No space left" in server.stderr + server.stdout, "the disk full")
        filler.unlink()
        with connect(address) as sock:
            for n in range(2000, 2100):
                sock.sendall(b"line %05d after\n" % n)
                sent += 1
        waitFor(
            lambda: b"02099 after" in path.read_bytes(), "the records after the space came back"
        )
        log = self.stop(server)
        byConn = parse(path.read_bytes(), recordFormat)  # fails on a cut or glued record
        onDisk = [line for lines in byConn.values() for line, marker in lines]
        for line in onDisk:
            self.assertRegex(line.decode(), r"^line \d{5} (d*|after)$")
        self.assertEqual(len(set(onDisk)), len(onDisk))
        self.assertEqual(len(onDisk) + lostCount(log), sent, log)
        self.assertGreater(lostCount(log), 0)
        self.assertIn(b"line 02099 after", onDisk)

    # --- an output nobody reads -------------------------------------------------------------

    def test_stalledOutputPausesClientsAndStops(self) -> None:
        """
        ``--output -`` into a pipe nobody reads (twistd with its defaults: its own log
        goes to standard error then): the server pauses its clients (logged)
        rather than blocking; once the pipe is read again every line arrives; when it
        stalls again, ``SIGTERM`` still stops the server, which reports how many records
        the output did not take, and those plus the records that came out are every
        record it read.
        """
        port = freePort()
        address = ("127.0.0.1", port)
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        server = PipedServer(
            self.argv(
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--output",
                "-",
                "--flush-interval",
                "0.1",
            ),
            write,
            self.env,
        )
        os.close(write)
        self.addCleanup(server.stop, signal.SIGKILL)
        server.waitForListening(address)

        def events() -> str:
            return self.log(server)

        line = b"x" * 199 + b"\n"
        stop = threading.Event()
        sent = [0] * 6

        def send(index: int) -> None:
            with connect(address) as sock:
                sock.settimeout(0.2)
                while not stop.is_set():
                    try:
                        sock.sendall(b"%d %s" % (index, line))
                    except TimeoutError:
                        continue  # paused: the server reads nothing
                    except OSError:
                        return
                    sent[index] += 1
                    if sent[index] == 10_000 and index < 3:
                        return  # three clients send a known amount and close

        senders = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for thread in senders:
            thread.start()
        self.addCleanup(stop.set)
        waitFor(lambda: "reading no client" in events(), "the clients paused")
        # The server is not stuck: it still takes signals and answers them.
        os.kill(server.process.pid, signal.SIGUSR1)
        waitFor(lambda: "Reopened" in events(), "the reopen logged")
        # Read the pipe: everything flows again.
        received = bytearray()
        reading = threading.Event()
        reading.set()

        def reader() -> None:
            while reading.is_set():
                try:
                    chunk = os.read(read, 1 << 16)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                if not chunk:
                    return
                received.extend(chunk)

        os.set_blocking(read, False)
        drain = threading.Thread(target=reader)
        drain.start()
        waitFor(lambda: "caught up" in events(), "the clients resumed")
        for index in range(3):
            senders[index].join(PATIENCE)
        waitFor(
            lambda: all(received.count(b"%d x" % i) == 10_000 for i in range(3)),
            "every line of the clients that finished",
        )
        # Stall it again, and stop it.
        reading.clear()
        drain.join(PATIENCE)
        waitFor(lambda: events().count("reading no client") >= 2, "the clients paused again")
        status = server.stop(signal.SIGTERM)
        stop.set()
        for thread in senders:
            thread.join(PATIENCE)
        self.assertEqual(status, self.stoppedStatus, events())
        log = events()
        match = re.search(r"did not take the last (\d+) records", log)
        self.assertIsNotNone(match, log)
        assert match is not None
        os.set_blocking(read, True)
        while chunk := os.read(read, 1 << 16):
            received.extend(chunk)
        records = bytes(received).split(b"\n")
        # Every record that came out is whole but maybe the very last, cut by the stop.
        complete = [r for r in records[:-1] if r]
        for record in complete:
            self.assertTrue(record.endswith(b" x" + b"x" * 198), record[-60:])
        counted = sum(
            int(n)
            for n in re.findall(
                r"Connection \d+ from \S+ closed[^:]*: \d+ bytes, (\d+) records", log
            )
        )
        self.assertEqual(len(complete) + int(match.group(1)), counted)

    # --- SIGUSR1 from the first instant -----------------------------------------------------

    def test_sigusr1WhileStarting(self) -> None:
        """
        ``SIGUSR1`` is handled before the server opens its data log (the first thing a
        logrotate could race with: here a FIFO, whose opening waits for a reader), and a
        tight loop of it from then on, through start-up, neither kills the server nor
        stops it serving.
        """
        port = freePort()
        address = ("127.0.0.1", port)
        fifo = Path(self.mktemp()).absolute()
        os.mkfifo(fifo)
        server = ServerProcess(
            self.argv("--listen", f"tcp:{port}:interface=127.0.0.1", "--output", str(fifo)),
            env=self.env,
        )
        self.addCleanup(server.stop, signal.SIGKILL)
        pid = server.process.pid
        deadline = time.monotonic() + 10
        while not catchesSignal(pid, signal.SIGUSR1):
            if server.process.poll() is not None:
                self.fail(f"server exited\n{server.output()}")
            if time.monotonic() > deadline:
                self.fail(f"SIGUSR1 not handled before the data log was opened\n{server.output()}")
            time.sleep(0.001)
        for _ in range(50):  # while it waits to open the data log
            os.kill(pid, signal.SIGUSR1)
        received = bytearray()
        reading = threading.Event()
        reading.set()
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)

        def read() -> None:
            while reading.is_set():
                try:
                    received.extend(os.read(reader, 65536))
                except BlockingIOError:
                    pass
                time.sleep(0.005)

        thread = threading.Thread(target=read)
        thread.start()
        self.addCleanup(thread.join, PATIENCE)
        self.addCleanup(reading.clear)
        listening = False
        sent = 0
        deadline = time.monotonic() + PATIENCE
        while sent < 300 or not listening:
            if server.process.poll() is not None:
                self.fail(f"SIGUSR1 killed the server\n{server.output()}")
            os.kill(pid, signal.SIGUSR1)
            sent += 1
            if not listening:
                try:
                    connect(address, timeout=0.05).close()
                    listening = True
                except OSError:
                    pass
            self.assertLess(time.monotonic(), deadline)
        with connect(address) as sock:
            sock.sendall(b"still serving\n")
        waitFor(lambda: b"still serving" in received, "the record")
        self.stop(server)

    # --- descriptor exhaustion --------------------------------------------------------------

    def test_descriptorExhaustion(self) -> None:
        """
        At ``ulimit -n 64``, 300 clients each sending a line and half-closing: none is
        accepted and closed unread; every line is recorded (the clients past the limit
        wait in the listen backlog until others leave).
        """

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

        server, address, output = self.start("--quiet", preexec_fn=limit)
        clients: dict[socket.socket, int] = {}
        outcome: dict[int, str] = {}
        with selectors.DefaultSelector() as selector:
            for n in range(300):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(address)
                clients[sock] = n
                selector.register(sock, selectors.EVENT_WRITE)
            deadline = time.monotonic() + PATIENCE
            while len(outcome) < len(clients) and time.monotonic() < deadline:
                for key, mask in selector.select(0.5):
                    sock = key.fileobj  # type: ignore[assignment]
                    n = clients[sock]
                    if mask & selectors.EVENT_WRITE:
                        try:
                            sock.send(b"client %03d says hello\n" % n)
                            sock.shutdown(socket.SHUT_WR)
                        except OSError as e:
                            outcome[n] = f"send: {e}"
                            selector.unregister(sock)
                            continue
                        selector.modify(sock, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(100)
                        outcome[n] = "closed" if not data else f"data {data!r}"
                    except OSError as e:
                        outcome[n] = f"recv: {e}"
                    selector.unregister(sock)
        for sock in clients:
            sock.close()
        self.assertEqual(len(outcome), 300, "some clients were never answered")
        self.assertEqual({n: o for n, o in outcome.items() if o != "closed"}, {}, self.log(server))
        waitFor(lambda: output.read_bytes().count(b"says hello") == 300, "every line")
        self.stop(server)
        lines = sorted(line for byConn in parse(output.read_bytes()).values() for line, _ in byConn)
        self.assertEqual(lines, [b"client %03d says hello" % n for n in range(300)])

    # --- logrotate and size rotation under load ---------------------------------------------

    def test_renamesAndRotationUnderLoad(self) -> None:
        """
        50 clients sending while the data log is rotated by size and, every 0.1 s, renamed
        by someone else (``SIGUSR1`` after every other rename): every line sent is in
        exactly one file, none torn, none duplicated, in order per client.
        """
        directory = Path(tempfile.mkdtemp(prefix="journey-rot-"))
        self.addCleanup(shutil.rmtree, directory, True)
        server, address, output = self.start(
            "--rotate-bytes", "30000", "--rotate-keep", "100000", "--flush-interval", "0.05",
            "--quiet", output=str(directory / "data.log"),
        )  # fmt: skip
        linesEach = 300

        def send(index: int) -> None:
            with connect(address) as sock:
                for n in range(linesEach):
                    sock.sendall(b"c%02d n%04d %s\n" % (index, n, b"r" * 40))
                    if n % 30 == 0:
                        time.sleep(0.01)

        senders = [threading.Thread(target=send, args=(i,)) for i in range(50)]
        for thread in senders:
            thread.start()
        renames = 0
        while any(thread.is_alive() for thread in senders) or renames < 10:
            time.sleep(0.1)
            with_signal = renames % 2 == 0
            try:
                output.rename(directory / f"moved.{renames:04d}")
            except FileNotFoundError:
                pass
            if with_signal:
                os.kill(server.process.pid, signal.SIGUSR1)
            renames += 1
        for thread in senders:
            thread.join(PATIENCE)

        def everything() -> bytes:
            return b"".join(p.read_bytes() for p in sorted(directory.iterdir()))

        waitFor(lambda: everything().count(b"\n") >= 50 * linesEach, "every line")
        log = self.stop(server)
        byConn = parse(everything())
        self.assertEqual(lostCount(log), 0)
        seen: dict[int, list[int]] = {}
        for lines in byConn.values():
            for line, marker in lines:
                self.assertEqual(marker, b"")
                client, number, rest = line.split(b" ")
                self.assertEqual(rest, b"r" * 40)
                seen.setdefault(int(client[1:]), []).append(int(number[1:]))
        # Files hold records in time order within each file; across files a client's
        # lines are all there exactly once.
        self.assertEqual(
            {client: sorted(numbers) for client, numbers in seen.items()},
            {client: list(range(linesEach)) for client in range(50)},
        )

    # --- reset storms -----------------------------------------------------------------------

    def test_resetStorm(self) -> None:
        """
        200 clients that send lines and a partial one, then reset: the server survives,
        what it read of each is recorded in order (the unterminated end marked partial),
        and it serves the next client.
        """
        server, address, output = self.start()
        for wave in range(4):
            socks = []
            for n in range(50):
                sock = connect(address)
                sock.sendall(
                    b"".join(b"w%d c%02d line %d\n" % (wave, n, k) for k in range(20))
                    + b"w%d c%02d half" % (wave, n)
                )
                socks.append(sock)
            for sock in socks:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        with connect(address) as sock:
            sock.sendall(b"after the storm\n")
        waitFor(lambda: b"after the storm" in output.read_bytes(), "the last client")
        self.stop(server)
        byConn = parse(output.read_bytes())
        self.assertEqual(byConn[max(byConn)], [(b"after the storm", b"")])
        for conn, lines in byConn.items():
            if conn == max(byConn):
                continue
            wave, client = lines[0][0].split()[:2]
            expected = [(b"%s %s line %d" % (wave, client, k), b"") for k in range(20)]
            expected.append((b"%s %s half" % (wave, client), PARTIAL))
            self.assertEqual(lines, expected[: len(lines)], conn)
            for line, marker in lines:
                self.assertEqual(marker == PARTIAL, line.endswith(b"half"))


class TwistedRobustnessTests(MuxRobustness, SynchronousTestCase):
    """
    The attacks on ``twistd -n journey-mux``.
    """

    stoppedStatus = -signal.SIGTERM

    def argv(self, *options: str, logfile: str | None = None) -> list[str]:
        twistd = [*_TWISTD, "--nodaemon", "--pidfile="]
        if logfile is not None:
            twistd.append(f"--logfile={logfile}")
        return [*twistd, "journey-mux", *options]

    def test_sigusr1StillRotatesTwistdLog(self) -> None:
        """
        With ``--logfile``, ``SIGUSR1`` both reopens the data log and rotates twistd's own
        log, as twistd alone would: catching it early does not stop twistd installing its
        handler.
        """
        logfile = Path(self.mktemp()).absolute()
        port = freePort()
        output = Path(self.mktemp()).absolute()
        server = ServerProcess(
            self.argv(
                "--listen", f"tcp:{port}:interface=127.0.0.1", "--output", str(output),
                logfile=str(logfile),
            )
        )  # fmt: skip
        self.addCleanup(server.stop, signal.SIGKILL)
        server.waitForListening(("127.0.0.1", port))
        os.kill(server.process.pid, signal.SIGUSR1)
        waitFor(lambda: Path(f"{logfile}.1").exists(), "twistd's log rotated")
        waitFor(
            lambda: "Reopened data log" in Path(f"{logfile}.1").read_text() + logfile.read_text(),
            "the data log reopened",
        )
        self.assertEqual(server.stop(signal.SIGTERM), self.stoppedStatus)


class FallbackRobustnessTests(MuxRobustness, SynchronousTestCase):
    """
    The attacks on the stdlib twin (``epoll``, Twisted blocked).
    """

    env = environment(stdlibOnly=True)

    def argv(self, *options: str, logfile: str | None = None) -> list[str]:
        assert logfile is None, "the twin logs to standard error"
        return fallbackArgv("mux", "--backend", "epoll", *options)


class FallbackSelectRobustnessTests(FallbackRobustnessTests):
    """
    The descriptor exhaustion attack on the stdlib twin's ``select`` loop.
    """

    def argv(self, *options: str, logfile: str | None = None) -> list[str]:
        return fallbackArgv("mux", "--backend", "select", *options)

    def setUp(self) -> None:
        if self._testMethodName != "test_descriptorExhaustion":
            raise SkipTest("the other attacks run against the epoll loop")
