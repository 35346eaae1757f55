"""
journey-mux's behaviour contract, written once and run against every engine as a real
process on loopback: ``twistd -n journey-mux`` and ``python -m twisted_journey.fallback.mux``
with each backend (the fallbacks run where ``import twisted`` fails, which proves they
do not need it).  ``journey send`` is tested against each, with and without Twisted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    connect,
    environment,
    fallbackArgv,
    freePort,
    journeyArgv,
    run,
    socketPath,
    startServer,
    twistdArgv,
    waitFor,
)
from twisted_journey.records import PARTIAL, TRUNCATED, split_marker, unescape

#: One connection's hostile input, and the text records it must become (TIME and the peer's
#: port replaced by ``T`` and ``P``), identical for every engine.
HOSTILE = (
    b"hello {evil} {0.__class__}\r\n"
    b"\x1b[31mred\x1b[0m\tNUL\x00 DEL\x7f\n"
    b"bad utf-8 \xff\xfe \xc3 ok \xe6\x97\xa5\xe5\xbf\x97 caf\xc3\xa9\n"
    b'bidi \xe2\x80\xaeevil\xe2\x80\xac back\\slash "quoted"\n'
    b"CR inside\rline\n" + b"L" * 100 + b"ONG\n"
    b"FAKE 2026-11-27T00:00:00.000000Z 10.0.0.1:1 1 forged\\n\n"
    b"unterminated"
)
HOSTILE_TEXT = (
    b"T 127.0.0.1:P 2 hello {evil} {0.__class__}\n"
    b"T 127.0.0.1:P 2 \\x1b[31mred\\x1b[0m\\tNUL\\x00 DEL\\x7f\n"
    b"T 127.0.0.1:P 2 bad utf-8 \\xff\\xfe \\xc3 ok \xe6\x97\xa5\xe5\xbf\x97 caf\xc3\xa9\n"
    b'T 127.0.0.1:P 2 bidi \\u202eevil\\u202c back\\\\slash "quoted"\n'
    b"T 127.0.0.1:P 2 CR inside\\rline\n"
    b"T 127.0.0.1:P 2 " + b"L" * 100 + b"\\[truncated]\n"
    b"T 127.0.0.1:P 2 FAKE 2026-11-27T00:00:00.000000Z 10.0.0.1:1 1 forged\\\\n\n"
    b"T 127.0.0.1:P 2 unterminated\\[partial]\n"
)

_TEXT = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (127\.0\.0\.1):(\d+) (\d+) (.*)$")


def normalize(output: bytes) -> bytes:
    """
    Text records with the time and the peer's port replaced by ``T`` and ``P``.
    """
    out = []
    for record in output.split(b"\n")[:-1]:
        match = _TEXT.match(record)
        assert match is not None, record
        out.append(b"T %s:P %s %s\n" % (match.group(2), match.group(4), match.group(5)))
    return b"".join(out)


def parse(output: bytes, recordFormat: str = "text") -> dict[int, list[tuple[bytes, bytes]]]:
    """
    Records by connection number, as ``(unescaped line, marker)`` in file order.
    """
    byConn: dict[int, list[tuple[bytes, bytes]]] = {}
    for record in output.split(b"\n")[:-1]:
        if recordFormat == "json":
            fields = json.loads(record)
            conn, line = fields["conn"], fields["line"].encode("utf-8")
        else:
            match = _TEXT.match(record)
            assert match is not None, record
            conn, line = int(match.group(4)), match.group(5)
        text, marker = split_marker(line)
        byConn.setdefault(conn, []).append((unescape(text), marker))
    return byConn


class MuxContract:
    """
    What every journey-mux engine must do.  Subclasses define :meth:`argv` and ``env``.
    """

    engine = ""
    env: dict[str, str] | None = None
    #: how the engine exits on SIGTERM (twistd re-raises the signal once it has shut down)
    stoppedStatus = 0

    def argv(self, *options: str) -> list[str]:
        """
        The command line for this engine with ``options``.
        """
        raise NotImplementedError

    def start(
        self, *options: str, flushInterval: str | None = "0.1"
    ) -> tuple[ServerProcess, tuple[str, int], Path]:
        """
        Start the engine on a free loopback port writing to a fresh data log (or as
        ``options`` say); the probe connection of :func:`startServer` is connection 1.

        :param flushInterval: the ``--flush-interval`` unless ``options`` give one: a
            tenth of a second, so that a test waiting for records on disk does not wait
            for the default second to pass; ``None`` for the engine's default.
        :return: the process, its address and the data log path.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()
        if "--output" not in options:
            options = ("--output", str(output), *options)
        if flushInterval is not None and "--flush-interval" not in options:
            options = ("--flush-interval", flushInterval, *options)
        address = ("127.0.0.1", port)
        server = startServer(
            self,
            self.argv("--listen", f"tcp:{port}:interface=127.0.0.1", *options),
            address,
            env=self.env,
        )
        return server, address, output

    def stopped(self, server: ServerProcess, output: Path) -> bytes:
        """
        Stop ``server`` with SIGTERM; check it exited 0; return the data log.
        """
        status = server.stop(signal.SIGTERM)
        self.assertEqual(status, self.stoppedStatus, server.output())
        return output.read_bytes()

    def test_hostileInput(self) -> None:
        """
        Format strings, control bytes, terminal escapes, invalid UTF-8, bidi controls, an
        over-long line and a forged record are recorded escaped, exactly as specified
        (the same bytes for every engine), and the unterminated end is marked partial.
        """
        server, address, output = self.start("--max-line-length", "100")
        with connect(address) as sock:
            sock.sendall(HOSTILE)
        waitFor(lambda: b"partial" in output.read_bytes(), "the partial record")
        self.assertEqual(normalize(self.stopped(server, output)), HOSTILE_TEXT)

    def test_jsonFormat(self) -> None:
        """
        JSON records parse and hold each line's text as a JSON string, the exact bytes in
        ``b64`` when they are not valid UTF-8, and the markers as fields.
        """
        server, address, output = self.start("--format", "json", "--max-line-length", "100")
        with connect(address) as sock:
            sock.sendall(HOSTILE)
        waitFor(lambda: b"partial" in output.read_bytes(), "the partial record")
        data = self.stopped(server, output)
        expected = [split_marker(line.split(b" ", 3)[3]) for line in HOSTILE_TEXT.split(b"\n")[:-1]]
        found = []
        for record in data.split(b"\n")[:-1]:
            fields = json.loads(record)
            self.assertEqual(fields["conn"], 2)
            raw = fields["line"].encode("utf-8")
            if "b64" in fields:
                raw = base64.b64decode(fields["b64"])
            marker = TRUNCATED if fields.pop("truncated", False) else b""
            marker = PARTIAL if fields.pop("partial", False) else marker
            self.assertLessEqual(set(fields), {"time", "peer", "conn", "line", "b64"})
            found.append((raw, marker))
        self.assertEqual(found, [(unescape(text), marker) for text, marker in expected])
        self.assertEqual(
            json.loads(data.split(b"\n")[1])["line"], "\x1b[31mred\x1b[0m\tNUL\x00 DEL\x7f"
        )

    def test_rawMode(self) -> None:
        """
        ``--mode raw``: each received chunk is a record, newlines escaped; the records put
        together are exactly what was sent.
        """
        server, address, output = self.start("--mode", "raw")
        sent = b"first\r\nsecond\x00\nno newline"
        with connect(address) as sock:
            sock.sendall(sent)
        waitFor(lambda: b"no newline" in output.read_bytes(), "the records")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(b"".join(line for line, _ in byConn[2]), sent)
        self.assertEqual({marker for _, marker in byConn[2]}, {b""})

    def test_rawModeBroadcast(self) -> None:
        """
        ``--mode raw --broadcast``: each chunk is relayed as received to the other
        clients (there are no lines to wait for).
        """
        server, address, output = self.start("--mode", "raw", "--broadcast")
        sent = b"no newline\x00 at all\r"
        # Accepted in order: the listener is a client before the talker's bytes are read.
        with connect(address) as listener, connect(address) as talker:
            talker.sendall(sent)
            listener.settimeout(PATIENCE)
            received = b""
            while len(received) < len(sent) and (chunk := listener.recv(4096)):
                received += chunk
        self.assertEqual(received, sent)
        self.stopped(server, output)

    def test_concurrentInterleaved(self) -> None:
        """
        Many clients writing interleaved lines, in pieces that split lines: every line is
        recorded once, in order per connection, with no record mixing two clients.
        """
        server, address, output = self.start("--quiet")
        clients = [connect(address) for _ in range(30)]
        streams = {
            index: b"".join(
                b"client %d line %d %s\n" % (index, n, b"x" * (n % 50)) for n in range(300)
            )
            for index in range(len(clients))
        }
        positions = dict.fromkeys(streams, 0)
        chooser = random.Random(1235)
        while positions:
            index = chooser.choice(list(positions))
            stream, start = streams[index], positions[index]
            end = min(len(stream), start + chooser.randint(1, 200))
            clients[index].sendall(stream[start:end])
            if end == len(stream):
                del positions[index]
                clients[index].close()
            else:
                positions[index] = end
        waitFor(lambda: output.read_bytes().count(b"\n") >= 30 * 300, "all records")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(len(byConn), 30)
        recorded = {}
        for lines in byConn.values():
            self.assertEqual({marker for _, marker in lines}, {b""})
            index = int(lines[0][0].split()[1])
            recorded[index] = b"".join(line + b"\n" for line, _ in lines)
        self.assertEqual(recorded, streams)

    def test_resetMidLine(self) -> None:
        """
        A client that resets its connection mid-line has what arrived recorded as partial;
        another client is unaffected.
        """
        server, address, output = self.start()
        other = connect(address)
        other.sendall(b"before\n")
        rude = connect(address)
        rude.sendall(b"complete\nhalf a li")
        waitFor(lambda: b"complete" in output.read_bytes(), "the first line")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()
        waitFor(lambda: b"half a li" in output.read_bytes(), "the partial line")
        other.sendall(b"after\n")
        other.close()
        waitFor(lambda: b"after" in output.read_bytes(), "the other client's line")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(byConn[2], [(b"before", b""), (b"after", b"")])
        self.assertEqual(byConn[3], [(b"complete", b""), (b"half a li", PARTIAL)])

    def test_overlongLinesDoNotAffectOthers(self) -> None:
        """
        A client sending a line far over the limit gets it recorded truncated and keeps
        its connection; the next line and other clients' lines are intact.
        """
        server, address, output = self.start("--max-line-length", "1000")
        big = connect(address)
        small = connect(address)
        big.sendall(b"A" * 300_000)
        small.sendall(b"small\n")
        big.sendall(b"B" * 300_000 + b"\nnext\n")
        big.close()
        small.close()
        waitFor(lambda: b"next" in output.read_bytes(), "the line after the long one")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(byConn[2], [(b"A" * 1000, TRUNCATED), (b"next", b"")])
        self.assertEqual(byConn[3], [(b"small", b"")])

    def test_sigtermWhileSending(self) -> None:
        """
        SIGTERM while clients are sending: every byte the server read (as its own count
        says) is in the data log, in order, and the server exits 0.
        """
        # The default interval: what the stop itself must write is up to a second's worth.
        server, address, output = self.start(flushInterval=None)
        stop = threading.Event()
        streams: dict[int, bytes] = {}

        def send(index: int) -> None:
            payload = b"".join(b"c%d n%d %s\n" % (index, n, b"y" * 60) for n in range(20000))
            streams[index] = payload
            try:
                with connect(address) as sock:
                    view = memoryview(payload)
                    while view and not stop.is_set():
                        sent = sock.send(view[:4096])
                        view = view[sent:]
            except OSError:
                pass

        threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        try:
            waitFor(lambda: output.stat().st_size > 200_000, "records on disk")
            status = server.stop(signal.SIGTERM)
        finally:
            stop.set()
            for thread in threads:
                thread.join(PATIENCE)
        self.assertEqual(status, self.stoppedStatus, server.output())
        byConn = parse(output.read_bytes())
        log = (server.stdout + server.stderr).decode("utf-8", "replace")
        counts = {
            int(conn): int(size)
            for conn, size in re.findall(r"Connection (\d+) from \S+ closed[^:]*: (\d+) bytes", log)
        }
        checked = 0
        for conn, lines in byConn.items():
            self.assertEqual([marker for _, marker in lines[:-1] if marker], [])
            rebuilt = b"".join(line + (b"\n" if not marker else b"") for line, marker in lines)
            index = int(lines[0][0].split()[0][1:])
            self.assertTrue(streams[index].startswith(rebuilt), f"conn {conn}")
            self.assertEqual(len(rebuilt), counts[conn], f"conn {conn}\n{log}")
            checked += 1
        self.assertGreaterEqual(checked, 1)

    def test_rotationUnderLoad(self) -> None:
        """
        Rotating every 50 kB while clients send: no file passes the size, every file ends
        with a whole record, and every line is recorded once.
        """
        server, address, output = self.start(
            "--rotate-bytes", "50000", "--rotate-keep", "1000", "--quiet"
        )
        sent = {}
        clients = [connect(address) for _ in range(10)]
        for n in range(400):
            for index, sock in enumerate(clients):
                line = b"client %d line %d %s\n" % (index, n, b"z" * 40)
                sock.sendall(line)
                sent.setdefault(index, []).append(line)
        for sock in clients:
            sock.close()
        total = sum(len(lines) for lines in sent.values())

        def files() -> list[Path]:
            # Rotated files are PATH-YYYYMMDDTHHMMSS.ffffffZ: by name is oldest first.
            found = [p for p in output.parent.iterdir() if p.name.startswith(output.name)]
            return sorted(found, key=lambda p: (p == output, p.name))

        def linesOnDisk() -> int:
            # A rotation may rename a file between listing and reading it: look again.
            try:
                return sum(p.read_bytes().count(b"\n") for p in files())
            except FileNotFoundError:
                return 0

        waitFor(lambda: linesOnDisk() >= total, "all records")
        self.stopped(server, output)
        paths = files()
        self.assertGreater(len(paths), 5)
        contents = [p.read_bytes() for p in paths]
        for content in contents:
            self.assertLessEqual(len(content), 50000)
            self.assertTrue(content.endswith(b"\n"))
        byConn = parse(b"".join(contents))
        recorded = {
            int(lines[0][0].split()[1]): [line + b"\n" for line, _ in lines]
            for lines in byConn.values()
        }
        self.assertEqual(recorded, sent)

    def test_reopenOnSigusr1(self) -> None:
        """
        After logrotate moves the data log away, ``SIGUSR1`` makes the server write a new
        one at the same path; records before the signal are in the moved file.
        """
        server, address, output = self.start("--flush-interval", "0.1")
        sock = connect(address)
        sock.sendall(b"before\n")
        waitFor(lambda: b"before" in output.read_bytes(), "the first record")
        moved = output.with_name(output.name + ".1")
        output.rename(moved)
        server.process.send_signal(signal.SIGUSR1)
        waitFor(output.exists, "the reopened data log")
        sock.sendall(b"after\n")
        sock.close()
        waitFor(lambda: b"after" in output.read_bytes(), "the second record")
        self.stopped(server, output)
        self.assertEqual(parse(moved.read_bytes())[2], [(b"before", b"")])
        self.assertEqual(parse(output.read_bytes())[2], [(b"after", b"")])

    def test_devFull(self) -> None:
        """
        With ``--output /dev/full`` the write error is reported critically, with the count
        of records lost, and the server keeps serving.
        """
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        server, address, _ = self.start("--output", "/dev/full", "--flush-interval", "0.1")
        with connect(address) as sock:
            sock.sendall(b"lost\n" * 10)
        waitFor(
            lambda: b"No space left on device" in server.stdout + server.stderr, "the error report"
        )
        with connect(address) as sock:
            sock.sendall(b"still served\n")
        waitFor(
            lambda: b"13 bytes, 1 records" in server.stdout + server.stderr, "the second client"
        )
        status = server.stop(signal.SIGTERM)
        log = server.stdout + server.stderr
        self.assertEqual(status, self.stoppedStatus, server.output())
        self.assertIn(b"CRITICAL", log.upper())
        self.assertRegex(
            log.decode(), r"cannot write data log /dev/full: No space left on device; 10 records"
        )
        self.assertRegex(log.decode(), r"11 records lost")

    def test_broadcastSlowReader(self) -> None:
        """
        With ``--broadcast``, lines reach the other clients; a client that never reads is
        dropped once its backlog passes the limit (logged), and the rest carry on.
        """
        server, address, output = self.start("--broadcast")
        sleeper = connect(address, receiveBuffer=4096)
        listener = connect(address)
        talker = connect(address)
        time.sleep(0.3)
        payload = b"".join(b"chat line %06d %s\n" % (n, b"c" * 80) for n in range(80000))
        received = bytearray()

        def listen() -> None:
            while len(received) < len(payload):
                chunk = listener.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=listen)
        reader.start()
        talker.sendall(payload)
        reader.join(PATIENCE)
        self.assertEqual(bytes(received), payload)
        waitFor(
            lambda: b"stopped reading" in server.stdout + server.stderr, "the slow client dropped"
        )
        sleeper.settimeout(PATIENCE)
        drained = 0
        with contextlib.suppress(OSError):
            while chunk := sleeper.recv(65536):
                drained += len(chunk)
        self.assertLess(drained, len(payload))
        for sock in (sleeper, listener, talker):
            sock.close()
        waitFor(lambda: output.read_bytes().count(b"chat line") >= 80000, "all records")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(b"".join(line + b"\n" for line, _ in byConn[4]), payload)

    def test_stopsOnSigterm(self) -> None:
        """
        SIGTERM stops a server listening on a unix socket cleanly, with what a client sent
        over it recorded, and removes the socket file.
        """
        path = socketPath(self)
        output = Path(self.mktemp()).absolute()
        server = startServer(
            self,
            self.argv("--listen", f"unix:{path}", "--output", str(output)),
            path,
            env=self.env,
        )
        with connect(path) as sock:
            sock.sendall(b"over a unix socket\n")
        waitFor(lambda: b"over a unix socket" in output.read_bytes(), "the record")
        self.assertIn(b" unix 2 over a unix socket\n", self.stopped(server, output))
        self.assertFalse(os.path.exists(path))

    def test_sendRoundTrip(self) -> None:
        """
        ``journey send FILE`` (Twisted client) and ``journey send < FILE`` (stdlib client,
        Twisted blocked): what comes out of the data log is the file, byte for byte.
        """
        server, address, output = self.start()
        chooser = random.Random(3)
        content = b"".join(
            bytes(chooser.randrange(256) for _ in range(chooser.randrange(200))).replace(b"\n", b"")
            + b"\n"
            for _ in range(2000)
        )
        path = Path(self.mktemp())
        path.write_bytes(content)
        twisted = run(journeyArgv("send", "127.0.0.1", str(address[1]), str(path)))
        self.assertEqual((twisted.returncode, twisted.stderr), (0, b""))
        stdlib = run(
            journeyArgv("send", "127.0.0.1", str(address[1])),
            input=content,
            env=environment(stdlibOnly=True),
        )
        self.assertEqual((stdlib.returncode, stdlib.stderr), (0, b""))
        waitFor(lambda: output.read_bytes().count(b"\n") >= 4000, "all records")
        byConn = parse(self.stopped(server, output))
        for conn in (2, 3):
            rebuilt = b"".join(line + b"\n" for line, _ in byConn[conn])
            # CR-LF becomes LF: compare with that one normalisation.
            self.assertEqual(rebuilt, content.replace(b"\r\n", b"\n"), f"conn {conn}")


class SendCommandTests(SynchronousTestCase):
    """
    ``journey send``'s mistakes, with and without Twisted: one sentence and a non-zero exit.
    """

    def test_sendErrors(self) -> None:
        """
        A closed port, a missing file or an unreadable input: one sentence, exit 1; a bad
        port or two files: exit 2.
        """
        port = str(freePort())
        for env in (environment(), environment(stdlibOnly=True)):
            refused = run(journeyArgv("send", "127.0.0.1", port), env=env)
            self.assertEqual(
                (refused.returncode, refused.stderr),
                (
                    1,
                    f"journey send: connection to 127.0.0.1 port {port} refused: is the server running?\n".encode(),
                ),
            )
            missing = run(journeyArgv("send", "127.0.0.1", port, "/nonexistent/file"), env=env)
            self.assertEqual(
                (missing.returncode, missing.stderr),
                (1, b"journey send: cannot read '/nonexistent/file': No such file or directory.\n"),
            )
            usage = run(journeyArgv("send", "127.0.0.1", "99999"), env=env)
            self.assertEqual(
                (usage.returncode, usage.stderr),
                (2, b"journey send: '99999' is not a port number from 1 to 65535.\n"),
            )
            twoFiles = run(journeyArgv("send", "127.0.0.1", "1", "a", "b"), env=env)
            self.assertEqual(twoFiles.returncode, 2)

    def test_unreadableInput(self) -> None:
        """
        A directory as FILE is reported as unreadable input, exit 1, by both clients.
        """
        server = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(server.close)
        port = str(server.getsockname()[1])
        for env in (environment(), environment(stdlibOnly=True)):
            result = run(journeyArgv("send", "127.0.0.1", port, "/"), env=env)
            self.assertEqual(
                (result.returncode, result.stderr),
                (1, b"journey send: cannot read the input: Is a directory.\n"),
            )


class TwistedMuxTests(MuxContract, SynchronousTestCase):
    """
    The contract for ``twistd -n journey-mux``.
    """

    engine = "twistd"
    stoppedStatus = -signal.SIGTERM

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-mux", *options)

    def test_idleTimeout(self) -> None:
        """
        ``--timeout``: a silent client is dropped, its unterminated line recorded as partial;
        a client that keeps sending is not dropped.
        """
        server, address, output = self.start("--timeout", "2")
        idle = connect(address)
        busy = connect(address)
        idle.sendall(b"said something")
        started = time.monotonic()
        for _ in range(30):  # three seconds, a line every 0.1
            busy.sendall(b"still here\n")
            time.sleep(0.1)
        try:
            closed = idle.recv(100)
        except ConnectionResetError:  # an aborted connection is reset
            closed = b""
        self.assertEqual(closed, b"")
        self.assertLess(time.monotonic() - started, PATIENCE)
        busy.sendall(b"last\n")
        busy.close()
        waitFor(lambda: b"last" in output.read_bytes(), "the busy client's last line")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(byConn[2], [(b"said something", PARTIAL)])
        self.assertEqual(len(byConn[3]), 31)
        self.assertIn(b"idle for 2.0 seconds", server.stdout)

    def test_sendPrintsRelayedLinesWhileInputIsOpen(self) -> None:
        """
        ``journey send`` with a pipe for input that stays open prints what a ``--broadcast``
        server relays as it arrives, not only between reads of its input; when the input
        ends it half-closes and exits 0.
        """
        self.relayWhileInputIsOpen(environment())

    def test_stdlibSendPrintsRelayedLinesWhileInputIsOpen(self) -> None:
        """
        The stdlib ``journey send`` (Twisted blocked) does the same.
        """
        self.relayWhileInputIsOpen(environment(stdlibOnly=True))

    def startSender(self, address: Any, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """
        Start ``journey send`` to ``address`` in ``env`` with its input, output and errors
        on pipes; it is killed and its pipes closed after the test.
        """
        sender = subprocess.Popen(
            journeyArgv("send", address[0], str(address[1])),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.addCleanup(sender.wait, PATIENCE)
        self.addCleanup(sender.kill)
        for pipe in (sender.stdin, sender.stdout, sender.stderr):
            self.addCleanup(pipe.close)  # type: ignore[union-attr]
        return sender

    def test_sendInterrupted(self) -> None:
        """
        Ctrl-C on ``journey send`` (either engine) while its input is still open ends it
        with status 130 and no complaint about the server.
        """
        _, address, output = self.start()
        for engine, env in [("twisted", environment()), ("stdlib", environment(stdlibOnly=True))]:
            sender = self.startSender(address, env)
            assert sender.stdin is not None
            line = f"sent by the {engine} client".encode()
            sender.stdin.write(line + b"\n")
            sender.stdin.flush()
            waitFor(lambda line=line: line in output.read_bytes(), engine)
            sender.send_signal(signal.SIGINT)
            _, err = sender.communicate(timeout=PATIENCE)
            self.assertEqual((sender.returncode, err), (130, b""), engine)

    def relayWhileInputIsOpen(self, env: dict[str, str]) -> None:
        """
        Run ``journey send`` in ``env`` against a ``--broadcast`` server, its input a pipe
        left open, and check it prints another client's line before its input ends.
        """
        server, address, output = self.start("--broadcast", "--flush-interval", "0.1")
        sender = self.startSender(address, env)
        assert sender.stdin is not None and sender.stdout is not None
        sender.stdin.write(b"from the sender\n")
        sender.stdin.flush()
        waitFor(lambda: b"from the sender" in output.read_bytes(), "the sender's line")
        with connect(address) as talker:
            talker.sendall(b"from the talker\n")
            printed = bytearray()
            deadline = time.monotonic() + PATIENCE
            with selectors.DefaultSelector() as selector:
                selector.register(sender.stdout, selectors.EVENT_READ)
                while b"from the talker\n" not in printed and time.monotonic() < deadline:
                    if selector.select(max(0.0, deadline - time.monotonic())):
                        chunk = os.read(sender.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        printed += chunk
            self.assertEqual(bytes(printed), b"from the talker\n")
            self.assertIsNone(sender.poll())
            sender.stdin.close()
            self.assertEqual(sender.wait(PATIENCE), 0)
        self.assertEqual(sender.stderr.read(), b"")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(byConn[2], [(b"from the sender", b"")])
        self.assertEqual(byConn[3], [(b"from the talker", b"")])


class FallbackSelectTests(MuxContract, SynchronousTestCase):
    """
    The contract for the stdlib fallback on ``select()``, and its descriptor ceiling.
    """

    engine = "select"
    env = environment(stdlibOnly=True)

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("mux", "--backend", self.engine, *options)

    def test_refusesDescriptorsBeyondSelect(self) -> None:
        """
        A client whose descriptor would be 1024 or more is refused with a message naming
        the remedy; clients already connected are still served.
        """
        server, address, output = self.start()
        first = connect(address)
        first.sendall(b"first\n")
        clients = []
        try:
            for _ in range(1100):
                clients.append(connect(address))
            waitFor(lambda: b"beyond select()'s limit" in server.stderr, "a refusal")
            first.sendall(b"still here\n")
            first.close()
            waitFor(lambda: b"still here" in output.read_bytes(), "the first client's line")
        finally:
            for sock in clients:
                sock.close()
        self.assertIn(b"run with --backend poll or epoll", server.stderr)
        self.assertEqual(
            parse(self.stopped(server, output))[2], [(b"first", b""), (b"still here", b"")]
        )


class FallbackPollTests(FallbackSelectTests):
    """
    The contract for the stdlib fallback on ``poll()``.
    """

    engine = "poll"

    def test_refusesDescriptorsBeyondSelect(self) -> None:
        """
        Only ``select`` has the ceiling.
        """
        raise SkipTest("poll() has no descriptor ceiling")


class FallbackEpollTests(FallbackPollTests):
    """
    The contract for the stdlib fallback on ``epoll``.
    """

    engine = "epoll"
