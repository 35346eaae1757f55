"""
The event log never blocks a server: :class:`twisted_journey.eventlog.EventStream` on its
own, then every server (twistd's journey-greet and journey-mux, with and without
``--workers``, and the stdlib twins) with its event log on a pipe that nobody reads.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    PATIENCE,
    connect,
    environment,
    fallbackArgv,
    freePort,
    readAll,
    twistdArgv,
)
from twisted_journey.eventlog import (
    DEFAULT_BUFFER,
    AcceptFailures,
    EventStream,
    accept_failure_sentence,
    dropped_sentence,
)
from twisted_journey.settings import DEFAULT_GREETING

#: Linux's F_SETPIPE_SZ: the smallest pipe (one page) fills after a few dozen events.
F_SETPIPE_SZ = 1031

#: Connections made while nobody reads the event log: their events (about 100 bytes each,
#: more for a worker's) overflow a one-page pipe and the stream's buffer.
CLIENTS = DEFAULT_BUFFER // 60


def _smallPipe() -> tuple[int, int]:
    """
    A pipe of one page: ``(read end, write end)``.
    """
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    return read, write


def _readAvailable(fd: int, wait: float) -> bytes:
    """
    What can be read from ``fd`` (non-blocking) within ``wait`` seconds of its becoming
    readable; empty at EOF or when nothing came.
    """
    chunks = []
    while select.select([fd], [], [], wait)[0]:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        wait = 0
    return b"".join(chunks)


class EventStreamTests(SynchronousTestCase):
    """
    :class:`EventStream` over a pipe: writes never block, and what is dropped is said.
    """

    def setUp(self) -> None:
        self.read, self.write = _smallPipe()
        os.set_blocking(self.read, False)
        self.addCleanup(os.close, self.read)
        self.addCleanup(os.close, self.write)
        self.stream = EventStream(self.write, limit=8192)
        self.addCleanup(self.stream.close, 0)

    def test_neverBlocksAndSaysWhatWasDropped(self) -> None:
        """
        Writing far more than the pipe and the buffer hold returns at once; whole events
        are dropped and counted, and once the pipe is read the stream writes every event
        it kept, then one line saying how many it dropped.
        """
        events = [f"event {i:05d}\n" for i in range(5000)]
        for event in events:
            self.stream.write(event)
        self.assertGreater(self.stream.dropped, 0)
        received = b""
        deadline = time.monotonic() + PATIENCE

        def kept() -> list[bytes]:
            return [line for line in received.splitlines(True) if line.startswith(b"event ")]

        while len(kept()) + self._reported(received) < len(events):
            if time.monotonic() > deadline:
                break
            received += _readAvailable(self.read, 1.0)
        self.assertEqual(self._reported(received), self.stream.dropped)
        self.assertEqual(len(kept()) + self.stream.dropped, len(events))
        # Whole events, in order, none torn.
        self.assertEqual(kept(), sorted(kept()))
        self.assertTrue(all(len(line) == len(events[0]) for line in kept()))

    def test_drainWaitsForTheWriter(self) -> None:
        """
        :meth:`EventStream.drain` returns once a reader has taken what was queued (the
        events and the word of what was dropped), and within its timeout while none does.
        """
        for i in range(3000):
            self.stream.write(f"event {i:05d}\n")
        self.stream.drain(0.1)  # nobody reads: returns all the same
        received = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():  # one read at a time, then look at stop again
                if select.select([self.read], [], [], 0.05)[0]:
                    received.append(os.read(self.read, 65536))

        thread = threading.Thread(target=reader)
        thread.start()
        self.stream.drain(PATIENCE)
        stop.set()
        thread.join()
        # Everything was written before drain() returned: what is left is in the pipe.
        try:
            received.append(os.read(self.read, 65536))
        except BlockingIOError:
            pass
        self.assertEqual(self._reported(b"".join(received)), self.stream.dropped)

    def test_forkedChildWritesItsOwnOnly(self) -> None:
        """
        A forked child's stream writes the child's events, never those its parent had
        queued (the parent writes them).
        """
        for i in range(500):
            self.stream.write(f"early {i:04d}\n")
        self.stream.drain(0.5)  # nobody reads: the writer is stuck in a write
        late = [f"late {i:04d}\n".encode() for i in range(100)]
        for event in late:
            self.stream.write(event.decode())  # queued behind the stuck write
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                self.stream.write("child\n")
                self.stream.close(PATIENCE)
            finally:
                os._exit(0)
        received = b""
        exited = False
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            received += _readAvailable(self.read, 0.1)
            if not exited:
                exited = os.waitpid(pid, os.WNOHANG)[0] == pid
            elif late[-1] in received and b"child\n" in received:
                break
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.assertEqual(received.count(b"child\n"), 1)
        self.assertEqual([e for e in late if received.count(e) > 1], [])

    def test_oversizedEventReported(self) -> None:
        """
        An event larger than the whole buffer, dropped while the writer waits with
        nothing queued, is said to be dropped all the same.
        """
        read, write = os.pipe()  # room for everything written here
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        stream = EventStream(write, limit=8192)
        stream.write("queued " + "x" * 5000 + "\n")  # past PIPE_BUF: the writer writes it
        stream.drain(PATIENCE)
        stream.write("huge " + "x" * 9000 + "\n")  # past the 8192-byte buffer
        self.assertEqual(stream.dropped, 1)
        stream.drain(PATIENCE)
        stream.close(PATIENCE)
        os.set_blocking(read, False)
        self.assertEqual(self._reported(_readAvailable(read, 1.0)), 1)

    @staticmethod
    def _reported(received: bytes) -> int:
        """
        How many dropped events the lines in ``received`` report.
        """
        total = 0
        for line in received.splitlines():
            count = line.partition(b" ")[0]
            if count.isdigit() and dropped_sentence(int(count)).encode() == line:
                total += int(count)
        return total

    def test_signalHandlerWritesDuringAWrite(self) -> None:
        """
        A signal handler that logs while the main thread is inside :meth:`write` (twistd
        logs ``Received SIGTERM`` from its handler) writes its event instead of waiting
        for ever on the lock its own thread holds.
        """
        script = """
import os, signal, sys
from twisted_journey.eventlog import EventStream
read, write = os.pipe()
stream = EventStream(write)
signal.signal(signal.SIGUSR2, lambda number, frame: stream.write("from the handler\\n"))
real = stream._poll

class Signalling:
    def poll(self, timeout):
        stream._poll = real
        os.kill(os.getpid(), signal.SIGUSR2)  # handled before the next line runs
        return real.poll(timeout)

stream._poll = Signalling()
stream.write("from the loop\\n")
stream.close(5)
os.close(write)
sys.stdout.buffer.write(os.read(read, 4096))
"""
        try:
            result = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                timeout=PATIENCE,
                env=environment(),
            )
        except subprocess.TimeoutExpired:
            self.fail("a write from a signal handler waited for ever")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            sorted(result.stdout.splitlines()), [b"from the handler", b"from the loop"]
        )

    def test_closeIsBounded(self) -> None:
        """
        :meth:`EventStream.close` returns within its timeout though the pipe is full and
        the writer is stuck.
        """
        for i in range(5000):
            self.stream.write(f"event {i}\n")
        started = time.monotonic()
        self.stream.close(0.2)
        self.assertLess(time.monotonic() - started, PATIENCE)


class AcceptFailuresTests(SynchronousTestCase):
    """
    :class:`AcceptFailures`: one event per interval, with the count of the others.
    """

    def test_oncePerInterval(self) -> None:
        """
        The first failure is said at once; the next ones within the interval are held
        back and counted in the first event after it.
        """
        now = [100.0]
        failures = AcceptFailures(interval=1.0, clock=lambda: now[0])
        said = []
        for _ in range(40):  # eight a second for five seconds
            said.append(failures.failed("EMFILE"))
            now[0] += 0.125
        events = [sentence for sentence in said if sentence is not None]
        self.assertEqual(
            events,
            [accept_failure_sentence("EMFILE", 0)] + [accept_failure_sentence("EMFILE", 7)] * 4,
        )
        self.assertEqual(failures.held_back, 7)


class StalledEventLogContract:
    """
    A server whose event log is a pipe nobody reads keeps serving, drops events rather
    than wait, says so once the log is read, and exits promptly on ``SIGTERM``.
    """

    #: whether the events go to stderr (the stdlib twins) rather than stdout (twistd)
    eventsOnStderr = False

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def checkServes(self, port: int) -> None:
        """
        Fail unless the server serves one more client, now.
        """
        raise NotImplementedError

    def start(self, port: int) -> tuple[subprocess.Popen[bytes], int]:
        """
        Start the server with its event log on a one-page pipe; wait until it listens.

        :return: the process, and the read end of its event log.
        """
        read, write = _smallPipe()
        os.set_blocking(read, False)
        self.addCleanup(os.close, read)  # type: ignore[attr-defined]
        streams: dict[str, Any] = {"stdout": write, "stderr": subprocess.DEVNULL}
        if self.eventsOnStderr:
            streams = {"stdout": subprocess.DEVNULL, "stderr": write}
        process = subprocess.Popen(
            self.argv(port),
            stdin=subprocess.DEVNULL,
            env=environment(),
            cwd=self.directory,
            **streams,
        )
        os.close(write)
        self.addCleanup(self._kill, process)  # type: ignore[attr-defined]
        deadline = time.monotonic() + PATIENCE
        started = b""
        while True:
            started += _readAvailable(read, 0.05)  # the start-up lines, before the load
            try:
                connect(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server never listened: {started!r}") from None
        return process, read

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        """
        Make sure the server is gone.
        """
        if process.poll() is None:
            process.kill()
        process.wait()

    def load(self, port: int) -> None:
        """
        :data:`CLIENTS` clients that connect and leave (each an event).
        """
        for _ in range(CLIENTS):
            connect(("127.0.0.1", port)).close()

    def test_stalledLog(self) -> None:
        """
        Events never block the server (see the class docstring).
        """
        self.directory = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        os.makedirs(self.directory)
        port = freePort()
        process, events = self.start(port)
        self.load(port)
        self.checkServes(port)
        # Read the log: the events it kept, then how many it dropped.
        received = b""
        deadline = time.monotonic() + PATIENCE
        while b"log events were dropped" not in received:
            received += _readAvailable(events, 1.0)
            if time.monotonic() > deadline:
                self.fail(f"no word of dropped events in {received[-2000:]!r}")  # type: ignore[attr-defined]
        # Stall it again, then stop it: it exits without anyone reading.
        self.load(port)
        self.checkServes(port)
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            self.fail("the server did not exit on SIGTERM while its log was stalled")  # type: ignore[attr-defined]
        # twistd ends with the signal, as it does without a stalled log; a twin exits 0.
        self.assertIn(status, (0, -signal.SIGTERM))  # type: ignore[attr-defined]


class GreetChecks(StalledEventLogContract):
    """
    A greeting server serves when a client gets the whole greeting.
    """

    def checkServes(self, port: int) -> None:
        self.assertEqual(  # type: ignore[attr-defined]
            readAll(connect(("127.0.0.1", port))), DEFAULT_GREETING
        )


class MuxChecks(StalledEventLogContract):
    """
    A multiplexer serves when a client's line reaches its data log.
    """

    def checkServes(self, port: int) -> None:
        marker = f"line {time.monotonic_ns()}".encode()
        with connect(("127.0.0.1", port)) as client:
            client.sendall(marker + b"\n")
            client.shutdown(socket.SHUT_WR)
            client.recv(1)
        output = Path(self.directory, "data.log")
        deadline = time.monotonic() + PATIENCE
        while marker not in (output.read_bytes() if output.exists() else b""):
            if time.monotonic() > deadline:
                self.fail("the line never reached the data log")  # type: ignore[attr-defined]
            time.sleep(0.05)


class TwistedGreetTests(GreetChecks, SynchronousTestCase):
    """
    ``twistd -n journey-greet``.
    """

    options: tuple[str, ...] = ()

    def argv(self, port: int) -> list[str]:
        return twistdArgv(
            "journey-greet", "--listen", f"tcp:{port}:interface=127.0.0.1", *self.options
        )


class TwistedGreetWorkersTests(TwistedGreetTests):
    """
    ``twistd -n journey-greet --workers 2``: workers' events go through the supervisor.
    """

    options = ("--workers", "2")


class TwistedMuxTests(MuxChecks, SynchronousTestCase):
    """
    ``twistd -n journey-mux``.
    """

    options: tuple[str, ...] = ()

    def argv(self, port: int) -> list[str]:
        return twistdArgv(
            "journey-mux",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--output",
            os.path.join(self.directory, "data.log"),
            "--flush-interval",
            "0.1",
            *self.options,
        )


class TwistedMuxWorkersTests(TwistedMuxTests):
    """
    ``twistd -n journey-mux --workers 2``.
    """

    options = ("--workers", "2")

    def checkServes(self, port: int) -> None:
        # With workers, the data log is one file per worker.
        marker = f"line {time.monotonic_ns()}".encode()
        with connect(("127.0.0.1", port)) as client:
            client.sendall(marker + b"\n")
            client.shutdown(socket.SHUT_WR)
            client.recv(1)
        deadline = time.monotonic() + PATIENCE
        while not any(marker in p.read_bytes() for p in Path(self.directory).glob("data.log*")):
            if time.monotonic() > deadline:
                self.fail("the line never reached a data log")
            time.sleep(0.05)


class StdlibMuxTests(MuxChecks, SynchronousTestCase):
    """
    The stdlib multiplexer, whose events go to stderr.
    """

    eventsOnStderr = True

    def argv(self, port: int) -> list[str]:
        return fallbackArgv(
            "mux",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--output",
            os.path.join(self.directory, "data.log"),
            "--flush-interval",
            "0.1",
        )


class StdlibGreetTests(GreetChecks, SynchronousTestCase):
    """
    The stdlib greeting server, whose events go to stderr.
    """

    eventsOnStderr = True

    def argv(self, port: int) -> list[str]:
        return fallbackArgv("greet", "--listen", f"tcp:{port}:interface=127.0.0.1")
