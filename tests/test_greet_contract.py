"""
The greeting server's behaviour contract, written once and run against every engine as a
real process on loopback: ``twistd -n journey-greet`` and each mode of
``python -m twisted_journey.fallback.greet``.

Clients are Python sockets, ``nc`` when it is installed, and ``journey greet`` itself.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    catchesSignal,
    connect,
    fallbackArgv,
    freePort,
    journeyArgv,
    readAll,
    run,
    selfSignedCertificate,
    socketPath,
    startServer,
    twistdArgv,
    waitFor,
)

GREETING = b"Thank you for connecting\r\n"


def serverHolds(local: int, remote: int) -> bool:
    """
    Whether the server end of the loopback IPv4 connection from port ``local`` to port
    ``remote`` is still open (``ESTABLISHED`` in ``/proc/net/tcp``): a server that closes
    or aborts it leaves that state at once, however much unsent data it held.
    """
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (
                int(fields[1].rsplit(":", 1)[1], 16) == remote
                and int(fields[2].rsplit(":", 1)[1], 16) == local
                and fields[3] == "01"
            ):
                return True
    return False


def processTree(pid: int) -> list[int]:
    """
    ``pid`` and every process descended from it (a forking server's children).
    """
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def memoryOf(pid: int) -> int:
    """
    The memory in bytes that process ``pid`` and its descendants use: the sum of their
    proportional set sizes (``Pss`` in ``/proc/PID/smaps_rollup``), so that a page shared
    by a forking server's parent and children counts once, as it costs once.
    """
    total = 0
    for member in processTree(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue  # a child that exited meanwhile
    return total


def ipv6Available() -> bool:
    """
    Whether ``::1`` can be bound here.
    """
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class GreetContract:
    """
    What every greeting engine must do.  Subclasses set :meth:`argv`.
    """

    #: shown in failure messages
    engine = ""
    #: the exit status after SIGTERM: twistd re-raises the signal, as a daemon should
    sigtermStatus = 0
    #: whether the engine sends to many clients at once (``serial`` serves one at a time)
    concurrent = True
    #: the greeting size for the memory test: large enough that a tenth of a copy per
    #: client is well above the engine's own cost per client
    largeGreeting = 16 * 1024 * 1024

    def argv(self, *options: str) -> list[str]:
        """
        The command line starting this engine with ``options``.
        """
        raise NotImplementedError

    def start(self, *options: str, listen: str | None = None, address: Any = None) -> ServerProcess:
        """
        Start the engine listening on a fresh loopback port (or ``listen``), wait until
        it accepts, and stop it after the test.

        :return: the server; ``self.address`` is where it listens.
        """
        if listen is None:
            port = freePort()
            listen, address = f"tcp:{port}:interface=127.0.0.1", ("127.0.0.1", port)
        self.address = address
        return startServer(self, self.argv("--listen", listen, *options), address)

    def greeting(self, address: Any = None) -> bytes:
        """
        Connect, read until the server closes, return what it sent.
        """
        return readAll(connect(address or self.address))

    def test_defaultGreeting(self) -> None:
        """
        A client gets exactly ``Thank you for connecting\\r\\n`` and then EOF.
        """
        self.start()
        self.assertEqual(self.greeting(), GREETING)

    def test_nc(self) -> None:
        """
        ``nc``, the chapter's client, prints the greeting and exits when the server closes.
        """
        nc = shutil.which("nc")
        if nc is None:
            raise SkipTest("nc is not installed")
        self.start()
        host, port = self.address
        result = subprocess.run(
            [nc, host, str(port)], stdin=subprocess.DEVNULL, capture_output=True, timeout=PATIENCE
        )
        self.assertEqual(result.stdout, GREETING)

    def test_journeyGreet(self) -> None:
        """
        ``journey greet HOST PORT`` prints the greeting and exits 0.
        """
        self.start()
        host, port = self.address
        result = run(journeyArgv("greet", host, str(port)))
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, GREETING, b""))

    def test_message(self) -> None:
        """
        ``--message`` text is sent UTF-8 encoded with CRLF appended.
        """
        self.start("--message", "欢迎 {evil} ✓")
        self.assertEqual(self.greeting(), "欢迎 {evil} ✓\r\n".encode())

    def test_messageFileIsExact(self) -> None:
        """
        A large binary ``--message-file`` arrives byte for byte.
        """
        data = os.urandom(3 * 1024 * 1024 + 7)
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(data)
        self.start("--message-file", path)
        self.assertEqual(self.greeting(), data)

    def test_unixSocket(self) -> None:
        """
        ``--listen unix:PATH`` serves the greeting on a unix socket.
        """
        path = socketPath(self)
        self.start(listen=f"unix:{path}", address=path)
        self.assertEqual(self.greeting(path), GREETING)

    def test_tcp6(self) -> None:
        """
        ``--listen tcp6:PORT:interface=\\:\\:1`` serves IPv6 clients.
        """
        if not ipv6Available():
            raise SkipTest("IPv6 loopback is not available")
        port = freePort("::1")
        self.start(listen=rf"tcp6:{port}:interface=\:\:1", address=("::1", port))
        self.assertEqual(self.greeting(), GREETING)

    def test_severalListeners(self) -> None:
        """
        Repeated ``--listen`` serves on each.
        """
        first, second = freePort(), freePort()
        self.start(
            "--listen",
            f"tcp:{second}:interface=127.0.0.1",
            listen=f"tcp:{first}:interface=127.0.0.1",
            address=("127.0.0.1", first),
        )
        self.assertEqual(self.greeting(("127.0.0.1", first)), GREETING)
        self.assertEqual(self.greeting(("127.0.0.1", second)), GREETING)

    def test_manyClientsAtOnce(self) -> None:
        """
        Two hundred clients connected at once each get the whole greeting.
        """
        self.start("--quiet")
        clients = [connect(self.address) for _ in range(200)]
        self.assertEqual([readAll(c) for c in clients], [GREETING] * 200)

    def test_clientThatTalks(self) -> None:
        """
        A client that sends data (even hostile data) still gets the whole greeting.
        """
        self.start()
        sock = connect(self.address)
        sock.sendall(b"{evil}\x1b[2J\x00\r\n")
        received = b""
        try:
            with sock:
                while chunk := sock.recv(1024):
                    received += chunk
        except ConnectionResetError:
            pass  # the server closed with our bytes unread: the kernel may reset after EOF
        self.assertEqual(received, GREETING)

    def test_timeoutDropsNonReader(self) -> None:
        """
        A client that never reads a large greeting is dropped after ``--timeout``, and the
        server goes on serving others.
        """
        data = b"x" * (16 * 1024 * 1024)
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(data)
        self.start("--message-file", path, "--timeout", "1")
        stalled = connect(self.address, receiveBuffer=4096)
        ports = stalled.getsockname()[1], stalled.getpeername()[1]
        waitFor(lambda: not serverHolds(*ports), "the server to give up on the stalled client")
        received = 0
        try:
            with stalled:
                while chunk := stalled.recv(1 << 20):
                    received += len(chunk)
        except ConnectionResetError:
            pass
        self.assertLess(received, len(data))
        self.assertEqual(self.greeting(), data)

    def test_largeGreetingMemoryIsShared(self) -> None:
        """
        A large greeting costs the server about the same memory however many clients
        hold it unread: every connection sends from the one greeting in bounded pieces,
        never from a copy of its own (issue 10, item 1: 100 non-reading clients of a
        50 MB greeting took the Twisted engine from 100 MB to 4.8 GB).
        """
        self.assertMemoryShared(lambda *options: self.start(*options), connect)

    def assertMemoryShared(
        self,
        start: Callable[..., ServerProcess],
        client: Callable[..., socket.socket],
    ) -> None:
        """
        Forty clients with a 4 KB receive buffer never read a 16 MB greeting
        (:attr:`largeGreeting`); the server's memory (its whole process tree, by ``Pss``)
        must grow by less than a tenth of forty copies.

        :param start: starts the server with the options given, setting ``self.address``.
        :param client: connects a client to an address, with ``receiveBuffer=``.
        """
        if not os.path.exists("/proc/self/smaps_rollup"):
            raise SkipTest("needs /proc/PID/smaps_rollup (Linux 4.14 or later)")
        size, clients = self.largeGreeting, 40
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(os.urandom(1024) * (size // 1024))
        server = start("--message-file", path, "--timeout", "120", "--quiet")
        pid = server.process.pid
        self.assertEqual(len(readAll(client(self.address))), size)  # warm: one served whole
        before = memoryOf(pid)
        held = [client(self.address, receiveBuffer=4096) for _ in range(clients)]
        for sock in held:
            self.addCleanup(sock.close)
        # Wait until the server is sending to every client it serves at once (serial
        # mode serves one): a client with bytes waiting has been greeted in part.
        expected = clients if self.concurrent else 1
        deadline = time.monotonic() + PATIENCE
        while True:
            readable = select.select(held, [], [], 0.1)[0]
            if len(readable) >= expected or time.monotonic() > deadline:
                break
        self.assertGreaterEqual(len(readable), expected)
        growth = 0
        for _ in range(10):  # a settling second: the largest growth seen
            time.sleep(0.1)
            growth = max(growth, memoryOf(pid) - before)
        bound = clients * size // 10
        self.assertLess(
            growth,
            bound,
            f"{self.engine}: {clients} clients holding a {size}-byte greeting grew the "
            f"server by {growth} bytes (bound {bound})",
        )

    def test_clientsThatSpeakFirst(self) -> None:
        """
        Two hundred clients that each send ``hello\\r\\n`` before reading all get the
        whole greeting: the server never closes with their bytes unread, which would
        reset the connection and could discard the greeting (issue 10, item 7).

        The server is stopped (``SIGSTOP``) while the clients connect and send, so their
        bytes have surely arrived before it accepts them: a client whose bytes arrive
        only after the server has greeted it and closed is answered with a reset by any
        server that does not linger, which is not what this checks.
        """
        server = self.start("--quiet")
        clients = []
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for _ in range(200):
                sock = connect(self.address)
                sock.sendall(b"hello\r\n")
                clients.append(sock)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        received = []
        for sock in clients:
            data = b""
            try:
                with sock:
                    while chunk := sock.recv(65536):
                        data += chunk
            except ConnectionResetError:
                data += b"<reset>"
            received.append(data)
        failed = [data for data in received if data != GREETING]
        self.assertEqual(failed, [], f"{self.engine}: {len(failed)} of 200 clients failed")

    def test_slowReaderThatSpoke(self) -> None:
        """
        A client that sends a line first and then reads a large greeting slowly gets all
        of it: the server does not close while the client's bytes are unread and part of
        the greeting is still queued, which would reset the connection and discard the
        rest (issue 10, item 7, for a greeting that does not fit in one ``send``).
        """
        data = os.urandom(4 * 1024 * 1024)
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(data)
        self.start("--message-file", path, "--quiet")
        sock = connect(self.address, receiveBuffer=4096)
        sock.sendall(b"hello\r\n")
        time.sleep(0.5)  # the server has sent what the kernel takes; the rest waits
        received = b""
        try:
            with sock:
                while chunk := sock.recv(65536):
                    received += chunk
        except ConnectionResetError:
            pass
        self.assertEqual((len(received), received == data), (len(data), True), self.engine)

    def test_eventsAndQuiet(self) -> None:
        """
        Each connection is logged as ``Got connection from 127.0.0.1:PORT``; with
        ``--quiet`` it is not.
        """
        server = self.start()
        sock = connect(self.address)
        clientPort = sock.getsockname()[1]
        readAll(sock)
        expected = f"Got connection from 127.0.0.1:{clientPort}".encode()
        deadline = time.monotonic() + PATIENCE
        while expected not in server.stdout + server.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(expected, server.stdout + server.stderr)

        quiet = self.start("--quiet")
        for _ in range(3):
            self.greeting()
        quiet.stop()
        self.assertNotIn(b"Got connection from", quiet.stdout + quiet.stderr)

    def test_stopsOnSigterm(self) -> None:
        """
        SIGTERM stops the server cleanly and removes its unix socket.
        """
        path = socketPath(self)
        server = self.start(listen=f"unix:{path}", address=path)
        # Listening comes before the handler: a SIGTERM in between meets the default action.
        waitFor(
            lambda: catchesSignal(server.process.pid, signal.SIGTERM),
            "the server's SIGTERM handler",
            server=server,
        )
        self.assertEqual(server.stop(signal.SIGTERM), self.sigtermStatus, server.output())
        self.assertFalse(os.path.exists(path))

    def test_badOptions(self) -> None:
        """
        A mistake on the command line is a non-zero exit with one sentence, no traceback.
        """
        for options, expected in [
            (["--message-file", "/nonexistent/file"], b"cannot read --message-file"),
            (["--timeout", "soon"], b"--timeout must be a number of seconds above 0"),
            (
                ["--message", "a", "--message-file", "b"],
                b"give --message or --message-file, not both.",
            ),
        ]:
            result = run(self.argv(*options))
            self.assertNotEqual(result.returncode, 0)
            self.assertIn(expected, result.stdout + result.stderr)
            self.assertNotIn(b"Traceback", result.stdout + result.stderr)

    def test_portInUse(self) -> None:
        """
        A port that is already taken is reported in one line, with a non-zero exit.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            result = run(self.argv("--listen", f"tcp:{port}:interface=127.0.0.1"))
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn(b"in use", output)


class TwistdGreetTests(GreetContract, SynchronousTestCase):
    """
    The contract for ``twistd -n journey-greet``, plus what only it offers.
    """

    engine = "twistd"
    sigtermStatus = -signal.SIGTERM

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-greet", *options)

    def waitForLog(self, server: ServerProcess, text: bytes) -> None:
        """
        Wait until the server's log shows ``text``.
        """
        deadline = time.monotonic() + PATIENCE
        while text not in server.stdout:
            if time.monotonic() > deadline:
                self.fail(f"{text!r} never logged\n{server.output()}")
            time.sleep(0.05)

    def servedGreeting(self, address: Any = None) -> bytes:
        """
        A greeting, once the server serves one: the probe that saw the server start may
        still hold a place for a moment while its large greeting fails to send.
        """
        deadline = time.monotonic() + PATIENCE
        while not (data := self.greeting(address)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return data

    def holdConnections(
        self, server: ServerProcess, address: Any, count: int
    ) -> list[socket.socket]:
        """
        Open ``count`` clients that do not read a large greeting, and wait until the
        server has admitted each.
        """
        held = []
        for _ in range(count):
            sock = connect(address, receiveBuffer=4096)
            held.append(sock)
            self.waitForLog(server, b"Got connection from 127.0.0.1:%d" % sock.getsockname()[1])
        return held

    def test_maxConnections(self) -> None:
        """
        Past ``--max-connections`` a client is closed at once with nothing sent, and
        served again once a place is free.
        """
        size = 8 * 1024 * 1024
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"y" * size)
        server = self.start("--message-file", path, "--max-connections", "2", "--timeout", "60")
        self.assertEqual(len(self.servedGreeting()), size)
        held = self.holdConnections(server, self.address, 2)
        self.assertEqual(self.greeting(), b"", server.output())
        self.waitForLog(server, b"Refused connection from 127.0.0.1")
        held[0].close()
        self.assertEqual(len(self.servedGreeting()), size)
        held[1].close()

    def test_maxPerPeer(self) -> None:
        """
        ``--max-per-peer`` refuses a host at its limit while another host is served.
        """
        size = 8 * 1024 * 1024
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"y" * size)
        port = freePort()
        server = self.start(
            "--message-file",
            path,
            "--max-per-peer",
            "1",
            "--timeout",
            "60",
            listen=f"tcp:{port}:interface=0.0.0.0",
            address=("127.0.0.1", port),
        )
        self.assertEqual(len(self.servedGreeting()), size)
        (held,) = self.holdConnections(server, self.address, 1)
        self.assertEqual(self.greeting(), b"")
        other = socket.socket()
        other.bind(("127.0.0.2", 0))
        other.settimeout(PATIENCE)
        other.connect(("127.0.0.2", port))
        self.assertEqual(len(readAll(other)), size)
        held.close()

    def test_tls(self) -> None:
        """
        ``--listen ssl:...`` serves the greeting over TLS: any Twisted endpoint works.
        """
        key, cert = selfSignedCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        self.start(
            listen=f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            address=("127.0.0.1", port),
        )
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        with context.wrap_socket(connect(self.address), server_hostname="localhost") as tls:
            received = b""
            while chunk := tls.recv(1024):
                received += chunk
        self.assertEqual(received, GREETING)

    def test_tlsLargeGreeting(self) -> None:
        """
        A large greeting over TLS arrives whole: the producer that writes it in pieces
        works through the TLS transport too.
        """
        data = os.urandom(3 * 1024 * 1024 + 7)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        key, cert = selfSignedCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        self.start(
            "--message-file",
            path,
            listen=f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            address=("127.0.0.1", port),
        )
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        with context.wrap_socket(connect(self.address), server_hostname="localhost") as tls:
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
        self.assertEqual(b"".join(chunks), data)

    def test_tlsLargeGreetingMemoryIsShared(self) -> None:
        """
        Over TLS too, clients that never read a large greeting cost the server far less
        than a copy each: the pieces go through the TLS transport's producer support.
        """
        key, cert = selfSignedCertificate(os.path.abspath(self.mktemp()))
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False

        def start(*options: str) -> ServerProcess:
            port = freePort()
            return self.start(
                *options,
                listen=f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                address=("127.0.0.1", port),
            )

        def client(address: Any, receiveBuffer: int | None = None) -> socket.socket:
            sock = connect(address, receiveBuffer=receiveBuffer)
            return context.wrap_socket(sock, server_hostname="localhost")

        self.assertMemoryShared(start, client)

    def test_reactors(self) -> None:
        """
        ``twistd --reactor=NAME`` works for the select, poll and asyncio reactors (the
        dropin installs no reactor of its own).
        """
        for reactor in ["select", "poll", "asyncio"]:
            port = freePort()
            argv = twistdArgv("journey-greet", "--listen", f"tcp:{port}:interface=127.0.0.1")
            argv.insert(argv.index("--nodaemon"), f"--reactor={reactor}")
            server = startServer(self, argv, ("127.0.0.1", port))
            self.assertEqual(self.greeting(("127.0.0.1", port)), GREETING, reactor)
            server.stop()


class FallbackGreetContract(GreetContract):
    """
    The contract for one mode of the stdlib fallback; subclasses set ``mode``.
    """

    mode = ""

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("greet", "--mode", self.mode, *options)

    def test_unsupportedEndpoint(self) -> None:
        """
        An endpoint type only Twisted has is refused naming what is supported.
        """
        result = run(self.argv("--listen", "ssl:4433"))
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"accepts only tcp:, tcp6:, unix:", result.stderr)
        self.assertNotIn(b"Traceback", result.stderr)


class SelectFallbackGreetTests(FallbackGreetContract, SynchronousTestCase):
    """
    The contract for ``--mode select`` (the default).
    """

    mode = "select"
    engine = "fallback --mode select"


class SerialFallbackGreetTests(FallbackGreetContract, SynchronousTestCase):
    """
    The contract for ``--mode serial``.
    """

    mode = "serial"
    engine = "fallback --mode serial"
    concurrent = False


class ThreadingFallbackGreetTests(FallbackGreetContract, SynchronousTestCase):
    """
    The contract for ``--mode threading``.
    """

    mode = "threading"
    engine = "fallback --mode threading"


class ForkingFallbackGreetTests(FallbackGreetContract, SynchronousTestCase):
    """
    The contract for ``--mode forking``.
    """

    mode = "forking"
    #: a child process costs about 1 MB (its ``Pss``): a larger greeting keeps the
    #: test's bound, a tenth of a copy per client, well above that
    largeGreeting = 48 * 1024 * 1024
    engine = "fallback --mode forking"

    def test_stopWhileForking(self) -> None:
        """
        ``SIGTERM`` while the server forks a child for each of a stream of clients stops
        it: the signal is never swallowed by ``fork``'s handlers (where it once left the
        server running, and logging's lock held).
        """
        import threading

        for _ in range(5):
            server = self.start()
            done = threading.Event()

            def connectAgainAndAgain(done: threading.Event = done) -> None:
                while not done.is_set():
                    try:
                        connect(self.address, timeout=1.0).close()
                    except OSError:
                        return

            clients = [threading.Thread(target=connectAgainAndAgain) for _ in range(2)]
            for client in clients:
                client.start()
            try:
                waitFor(
                    lambda server=server: server.stderr.count(b"Got connection") >= 20,
                    "twenty clients",
                    server=server,
                )
                server.process.send_signal(signal.SIGTERM)
                try:
                    server.process.wait(PATIENCE)
                except subprocess.TimeoutExpired:
                    self.fail(f"SIGTERM did not stop the server\n{server.output()}")
            finally:
                done.set()
                for client in clients:
                    client.join()
