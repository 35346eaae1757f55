"""
Tests for :mod:`twisted_journey.listen`, the endpoint subset the stdlib engines read, and
for the listen backlog and ``unix:`` path handling of every journey server on both engines.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    fallbackArgv,
    freePort,
    selfSignedCertificate,
    socketPath,
    startServer,
    twistdArgv,
)
from twisted_journey.listen import (
    DEFAULT_BACKLOG,
    ListenError,
    ListenSpec,
    bind,
    bind_all,
    format_peer,
    parse_listen,
    remove_socket_files,
    with_backlog,
)


class ParseListenTests(SynchronousTestCase):
    """
    ``parse_listen`` reads Twisted's syntax for ``tcp:``, ``tcp6:`` and ``unix:``.
    """

    def test_tcpDefaults(self) -> None:
        """
        ``tcp:PORT`` binds every IPv4 interface with the system's maximum backlog (not
        Twisted's 50).
        """
        self.assertEqual(parse_listen("tcp:1234"), ListenSpec("tcp", port=1234, interface=""))
        self.assertEqual(parse_listen("tcp:1234").backlog, DEFAULT_BACKLOG)
        self.assertEqual(parse_listen("unix:/a").backlog, DEFAULT_BACKLOG)

    def test_defaultBacklogIsTheSystemMaximum(self) -> None:
        """
        :data:`DEFAULT_BACKLOG` is the kernel's ``net.core.somaxconn`` (where there is one),
        and never below nginx's 511.
        """
        self.assertGreaterEqual(DEFAULT_BACKLOG, 511)
        try:
            maximum = int(Path("/proc/sys/net/core/somaxconn").read_text())
        except OSError:
            raise SkipTest("no /proc/sys/net/core/somaxconn here") from None
        self.assertEqual(DEFAULT_BACKLOG, min(max(maximum, 511), 65535))

    def test_positionalFieldsInTwistedsOrder(self) -> None:
        """
        Positional fields are Twisted's, in Twisted's order: ``tcp:PORT:INTERFACE:BACKLOG``,
        but ``tcp6:PORT:BACKLOG:INTERFACE``.
        """
        self.assertEqual(
            parse_listen("tcp:1:127.0.0.1:9"),
            ListenSpec("tcp", port=1, interface="127.0.0.1", backlog=9),
        )
        self.assertEqual(
            parse_listen(r"tcp6:1:9:\:\:1"), ListenSpec("tcp6", port=1, interface="::1", backlog=9)
        )

    def test_keywords(self) -> None:
        """
        ``port=``, ``interface=`` and ``backlog=`` may be given by name, in any order.
        """
        self.assertEqual(
            parse_listen("tcp:backlog=7:interface=127.0.0.1:port=80"),
            ListenSpec("tcp", port=80, interface="127.0.0.1", backlog=7),
        )

    def test_tcp6EscapedInterface(self) -> None:
        """
        Backslash escapes the colons of an IPv6 address, as in Twisted.
        """
        spec = parse_listen(r"tcp6:0:interface=\:\:1")
        self.assertEqual((spec.kind, spec.port, spec.interface), ("tcp6", 0, "::1"))
        self.assertEqual(spec.family, socket.AF_INET6)

    def test_tcp6DefaultsToAllInterfaces(self) -> None:
        """
        ``tcp6:PORT`` binds ``::``.
        """
        self.assertEqual(parse_listen("tcp6:80").interface, "::")

    def test_unix(self) -> None:
        """
        ``unix:PATH`` with an octal mode and a lockfile flag.
        """
        self.assertEqual(
            parse_listen("unix:/tmp/j.sock:mode=600:lockfile=0"),
            ListenSpec("unix", path="/tmp/j.sock", mode=0o600, lockfile=False),
        )
        self.assertEqual(parse_listen("unix:address=/a").path, "/a")

    def test_sameAsTwisted(self) -> None:
        """
        Every description accepted here is accepted by Twisted's ``serverFromString``
        too, and means the same port and interface.
        """
        for description in [
            "tcp:1234",
            "tcp:0:interface=127.0.0.1",
            r"tcp6:99:interface=\:\:1",
            "tcp:1:127.0.0.1:9",
            r"tcp6:1:9:\:\:1",
        ]:
            endpoint = serverFromString(MemoryReactor(), with_backlog(description))
            spec = parse_listen(description)
            self.assertEqual(endpoint._port, spec.port)  # type: ignore[attr-defined]
            self.assertEqual(endpoint._interface, spec.interface)  # type: ignore[attr-defined]
            self.assertEqual(endpoint._backlog, spec.backlog)  # type: ignore[attr-defined]

    def test_unsupportedKindNamesTheSupported(self) -> None:
        """
        ``ssl:`` and friends get one sentence naming what is supported.
        """
        for description in ["ssl:443", "systemd:domain=INET:index=0", "haproxy:tcp:80", "1234"]:
            error = self.assertRaises(ListenError, parse_listen, description)
            self.assertIn("tcp:, tcp6:, unix:", str(error))
            self.assertIn(repr(description), str(error))

    def test_malformed(self) -> None:
        """
        Bad values, unknown and repeated fields are refused with a sentence naming the
        problem.
        """
        cases = {
            "tcp:http": "port 'http'",
            "tcp:70000": "port '70000'",
            "tcp:-1": "port '-1'",
            "tcp:1:backlog=0": "backlog '0'",
            "tcp:1:colour=red": "does not take 'colour'",
            "tcp:1:port=2": "port is given twice",
            "tcp:1:a:b:c": "too many fields",
            "tcp:": "names no port",
            "tcp::interface=x": "port ''",
            "tcp": "names no port",
            "unix:": "names no socket path",
            "unix:/a:mode=9": "mode '9'",
            "tcp:1\\": "lone backslash",
        }
        for description, expected in cases.items():
            error = self.assertRaises(ListenError, parse_listen, description)
            self.assertIn(expected, str(error), description)
            self.assertTrue(str(error).endswith("."), str(error))


class WithBacklogTests(SynchronousTestCase):
    """
    ``with_backlog`` gives a Twisted endpoint string the default backlog when it has none.
    """

    def test_added(self) -> None:
        """
        The endpoint types with a listen queue get ``backlog=``, also inside ``haproxy:``.
        """
        cases = {
            "tcp:1234": "tcp:1234:backlog=77",
            "tcp:1234:interface=127.0.0.1": "tcp:1234:interface=127.0.0.1:backlog=77",
            "tcp:1234:127.0.0.1": "tcp:1234:127.0.0.1:backlog=77",
            r"tcp6:1:interface=\:\:1": r"tcp6:1:interface=\:\:1:backlog=77",
            "unix:/run/j.sock:mode=600": "unix:/run/j.sock:mode=600:backlog=77",
            r"unix:/tmp/a\:": r"unix:/tmp/a\::backlog=77",
            "ssl:443:privateKey=k.pem": "ssl:443:privateKey=k.pem:backlog=77",
            "tls:/etc/certs": "tls:/etc/certs:backlog=77",
            "haproxy:tcp:80": "haproxy:tcp:80:backlog=77",
            "haproxy:ssl:443:privateKey=k.pem": "haproxy:ssl:443:privateKey=k.pem:backlog=77",
        }
        for description, expected in cases.items():
            self.assertEqual(with_backlog(description, 77), expected, description)

    def test_kept(self) -> None:
        """
        A backlog the user gave, by name or by position, is kept; types without a listen
        queue of their own (``systemd:``: the socket is listening already), unknown types
        and malformed strings are left for Twisted as they are.
        """
        for description in [
            "tcp:1234:backlog=5",
            "tcp:1234:127.0.0.1:5",
            "tcp6:1234:5",
            "unix:/a:600:5",
            "ssl:443:k.pem:c.pem:m:127.0.0.1:5",
            "tls:/etc/certs:443:5",
            "haproxy:tcp:80:backlog=5",
            "systemd:domain=INET:name=greet",
            "haproxy:systemd:domain=INET:index=0",
            "stdio:",
            "le:/certs:tcp:443",
            "tcp",
            "tcp:1\\",
        ]:
            self.assertEqual(with_backlog(description, 77), description)

    def test_twistedAcceptsTheResult(self) -> None:
        """
        What ``with_backlog`` makes, Twisted parses into an endpoint with that backlog.
        """
        for description in ["tcp:1234", "tcp:1234:127.0.0.1", "tcp6:1", "unix:/a"]:
            endpoint = serverFromString(MemoryReactor(), with_backlog(description, 77))
            self.assertEqual(endpoint._backlog, 77, description)  # type: ignore[attr-defined]


class BindTests(SynchronousTestCase):
    """
    ``bind`` turns a spec into a listening socket.
    """

    def test_tcp(self) -> None:
        """
        A TCP spec listens on loopback at the port asked for (0: a free one).
        """
        with bind(parse_listen("tcp:0:interface=127.0.0.1")) as sock:
            host, port = sock.getsockname()
            self.assertEqual(host, "127.0.0.1")
            with socket.create_connection(("127.0.0.1", port)):
                pass

    def test_portInUse(self) -> None:
        """
        A port another socket holds is a :class:`ListenError` naming the address.
        """
        with bind(parse_listen("tcp:0:interface=127.0.0.1")) as first:
            port = first.getsockname()[1]
            error = self.assertRaises(
                ListenError, bind, parse_listen(f"tcp:{port}:interface=127.0.0.1")
            )
            self.assertIn(f"tcp:{port}", str(error))
            self.assertIn("in use", str(error))

    def test_unixModeAndStaleSocket(self) -> None:
        """
        A unix socket gets the mode asked for; a stale socket file from a dead server is
        replaced, a live one is refused.
        """
        path = socketPath(self)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        with bind(parse_listen(f"unix:{path}:mode=600")) as sock:
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            error = self.assertRaises(ListenError, bind, parse_listen(f"unix:{path}"))
            self.assertIn("another server", str(error))
            self.assertEqual(sock.getsockname(), path)

    def test_backlog(self) -> None:
        """
        The socket listens with the spec's backlog, the default one unless given.
        """
        for description, backlog in [
            ("tcp:0:interface=127.0.0.1", DEFAULT_BACKLOG),
            ("tcp:0:interface=127.0.0.1:backlog=77", 77),
        ]:
            with bind(parse_listen(description)) as sock:
                self.assertEqual(listenQueue(sock.getsockname()[1]), backlog)

    def test_notASocketIsLeftAlone(self) -> None:
        """
        A regular file, a symbolic link (even to a stale socket), a FIFO or a directory at
        a ``unix:`` path is neither removed nor followed: one sentence says what is there.
        """
        directory = os.path.dirname(socketPath(self))
        stale = os.path.join(directory, "stale")
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(stale)
        dead.close()
        regular, link, fifo, folder = (
            os.path.join(directory, name) for name in ("file", "link", "fifo", "dir")
        )
        Path(regular).write_bytes(b"precious\n")
        os.symlink(stale, link)
        os.mkfifo(fifo)
        os.mkdir(folder)
        for path, kind in [
            (regular, "a regular file"),
            (link, "a symbolic link"),
            (fifo, "a FIFO"),
            (folder, "a directory"),
        ]:
            error = self.assertRaises(ListenError, bind, parse_listen(f"unix:{path}"))
            self.assertEqual(
                str(error),
                f"cannot listen on unix:{path}: {kind} is there, not a socket; "
                "remove it or choose another path.",
            )
        self.assertEqual(Path(regular).read_bytes(), b"precious\n")
        self.assertEqual(os.readlink(link), stale)
        self.assertTrue(os.path.exists(stale))
        self.assertTrue(os.path.isdir(folder))

    def test_removeSocketFiles(self) -> None:
        """
        ``remove_socket_files`` removes the files of the ``unix`` sockets it is given,
        skips TCP descriptions, and does not mind a file that is already gone.
        """
        path = socketPath(self)
        gone = socketPath(self)
        bind(parse_listen(f"unix:{path}")).close()
        self.assertTrue(os.path.exists(path))
        remove_socket_files(
            [parse_listen(f"unix:{path}"), parse_listen(f"unix:{gone}"), parse_listen("tcp:0")]
        )
        self.assertFalse(os.path.exists(path))


class BindAllTests(SynchronousTestCase):
    """
    ``bind_all`` binds every spec or none.
    """

    def test_allOrNone(self) -> None:
        """
        When a later spec cannot be bound, the sockets bound before it are closed and
        their unix socket files removed, so nothing is left half-listening.
        """
        path = socketPath(self)
        with bind(parse_listen("tcp:0:interface=127.0.0.1")) as taken:
            port = taken.getsockname()[1]
            specs = [parse_listen(f"unix:{path}"), parse_listen(f"tcp:{port}:interface=127.0.0.1")]
            self.assertRaises(ListenError, bind_all, specs)
        self.assertFalse(os.path.exists(path))

    def test_binds(self) -> None:
        """
        Every spec gets its listening socket, in order.
        """
        path = socketPath(self)
        sockets = bind_all(
            [parse_listen("tcp:0:interface=127.0.0.1"), parse_listen(f"unix:{path}")]
        )
        for sock in sockets:
            self.addCleanup(sock.close)
        self.assertEqual([s.family for s in sockets], [socket.AF_INET, socket.AF_UNIX])


class FormatPeerTests(SynchronousTestCase):
    """
    ``format_peer`` names a peer as records and events show it.
    """

    def test_forms(self) -> None:
        """
        IPv4 as ``host:port``, IPv6 bracketed, no host as ``unix``.
        """
        self.assertEqual(format_peer("127.0.0.1", 5), "127.0.0.1:5")
        self.assertEqual(format_peer("::1", 5), "[::1]:5")
        self.assertEqual(format_peer(None, None), "unix")


def listenQueue(port: int | None = None, path: str | None = None) -> int:
    """
    The listen backlog of the socket listening on loopback ``port`` (or at unix ``path``),
    as ``ss`` shows it (a listener's Send-Q column).
    """
    if shutil.which("ss") is None:
        raise SkipTest("ss (iproute2) is not installed")
    argv = ["ss", "-ltnH", f"sport = :{port}"] if path is None else ["ss", "-lxH", "src", path]
    lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    if len(lines) != 1:
        raise AssertionError(f"{argv} shows {lines!r}, not one listener")
    fields = lines[0].split()
    return int(fields[fields.index("LISTEN") + 2])  # State, Recv-Q, Send-Q


class MakeServiceBacklogTests(SynchronousTestCase):
    """
    The Twisted servers' ``makeService`` gives every endpoint the default backlog.
    """

    def test_defaultOptions(self) -> None:
        """
        With default options, journey-greet and journey-mux listen with the system's
        maximum backlog (not Twisted's 50).
        """
        from twisted_journey.tap import greet, mux

        for tap in (greet, mux):
            options = tap.Options()
            options.parseOptions([])
            reactor = MemoryReactorClock()
            service = tap.makeService(options, reactor)  # type: ignore[attr-defined]
            service.privilegedStartService()
            self.assertEqual(reactor.tcpServers[0][2], DEFAULT_BACKLOG, tap.__name__)

    def test_everyKind(self) -> None:
        """
        ``tcp6:``, ``unix:`` and wrapped ``haproxy:tcp:`` endpoints get it too; a
        ``backlog=`` given is kept.
        """
        from twisted_journey.tap import greet

        options = greet.Options()
        options.parseOptions(
            [
                "--listen", "tcp6:8001",
                "--listen", "unix:/tmp/never-made.sock",
                "--listen", "haproxy:tcp:8002",
                "--listen", "tcp:8003:backlog=9",
            ]
        )  # fmt: skip
        reactor = MemoryReactorClock()
        greet.makeService(options, reactor).privilegedStartService()
        self.assertEqual(
            [backlog for _, _, backlog, _ in reactor.tcpServers], [DEFAULT_BACKLOG] * 2 + [9]
        )
        self.assertEqual(reactor.unixServers[0][2], DEFAULT_BACKLOG)


class EngineCase:
    """
    A mixin for a ``SynchronousTestCase`` that starts one engine's server; subclasses set
    :attr:`tool` and :meth:`argv`.
    """

    tool = "greet"
    stoppedStatuses = (0, 1, -signal.SIGTERM)

    def argv(self, *options: str) -> list[str]:
        """
        The command line of this engine's server with ``options``.
        """
        raise NotImplementedError

    def serverOptions(self, listen: str) -> list[str]:
        """
        The options that make the server listen on ``listen`` (and, for journey-mux,
        write its data log into a temporary directory).
        """
        options = ["--quiet", "--listen", listen]
        if self.tool == "mux":
            options += ["--output", os.path.abspath(self.mktemp())]
        return options

    def start(self, listen: str, address: Any) -> ServerProcess:
        """
        Start the server listening on ``listen`` and wait until it answers at ``address``.
        """
        return startServer(self, self.argv(*self.serverOptions(listen)), address)


class ListenerContract(EngineCase):
    """
    What every journey server on either engine does with its listeners.
    """

    def test_defaultBacklog(self) -> None:
        """
        A ``tcp:`` or ``unix:`` description without ``backlog=`` listens with the system's
        maximum; one with ``backlog=`` keeps it.
        """
        port = freePort()
        self.start(f"tcp:{port}:interface=127.0.0.1", ("127.0.0.1", port))
        self.assertEqual(listenQueue(port), DEFAULT_BACKLOG)
        path = socketPath(self)
        self.start(f"unix:{path}", path)
        self.assertEqual(listenQueue(path=path), DEFAULT_BACKLOG)
        port = freePort()
        self.start(f"tcp:{port}:interface=127.0.0.1:backlog=77", ("127.0.0.1", port))
        self.assertEqual(listenQueue(port), 77)

    def test_burst(self) -> None:
        """
        A burst of 3,000 clients connecting at once, while the server is frozen and cannot
        accept any, completes every TCP handshake in the listen queue (with a backlog of
        50, only 51 could: the kernel drops the others' SYNs, and their retries too while
        the queue stays full, so waiting longer changes nothing); thawed, the server
        serves every one.
        """
        port = freePort()
        server = self.start(f"tcp:{port}:interface=127.0.0.1", ("127.0.0.1", port))
        clients = 3000
        selector = selectors.DefaultSelector()
        self.addCleanup(selector.close)
        os.kill(server.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, server.process.pid, signal.SIGCONT)
        sockets = []
        try:
            for _ in range(clients):
                sock = socket.socket()
                sockets.append(sock)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                selector.register(sock, selectors.EVENT_WRITE)
            # Loopback handshakes complete in microseconds.  The frozen server accepts
            # nothing, so a handshake can only complete into the listen queue, however
            # long this waits: the bound is for the failing case.
            connected = 0
            deadline = time.monotonic() + 10
            while connected < clients and time.monotonic() < deadline:
                for key, _ in selector.select(0.05):
                    selector.unregister(key.fileobj)
                    sock = key.fileobj  # type: ignore[assignment]
                    self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)
                    connected += 1
            self.assertEqual(connected, clients)
            os.kill(server.process.pid, signal.SIGCONT)
            served = self.served(sockets)
            self.assertEqual(served, clients, server.output())
        finally:
            for sock in sockets:
                sock.close()

    def served(self, sockets: list[socket.socket]) -> int:
        """
        How many of ``sockets`` the server served: for journey-greet, those that
        received the whole greeting; for journey-mux, those accepted (a line sent on each
        is recorded).
        """
        selector = selectors.DefaultSelector()
        self.addCleanup(selector.close)
        received = {sock: b"" for sock in sockets}
        if self.tool == "mux":
            for sock in sockets:
                sock.setblocking(True)
                sock.sendall(b"burst\n")
                sock.shutdown(socket.SHUT_WR)
                sock.setblocking(False)
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        closed = 0
        deadline = time.monotonic() + PATIENCE
        while closed < len(sockets) and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    received[sock] += data
                else:
                    selector.unregister(sock)
                    closed += 1
        if self.tool == "greet":
            return sum(data == b"Thank you for connecting\r\n" for data in received.values())
        return closed

    def test_refusesToReplaceAFile(self) -> None:
        """
        A regular file, or a symbolic link to a stale socket, at a ``unix:`` path is left
        alone: the server says so in one line and exits 1.
        """
        directory = os.path.dirname(socketPath(self))
        stale = os.path.join(directory, "stale")
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(stale)
        dead.close()
        regular, link = os.path.join(directory, "file"), os.path.join(directory, "link")
        Path(regular).write_bytes(b"precious\n")
        os.symlink(stale, link)
        for path in (regular, link):
            server = ServerProcess(self.argv(*self.serverOptions(f"unix:{path}")))
            self.addCleanup(server.stop)
            self.assertEqual(server.process.wait(PATIENCE), 1, server.output())
            # twistd -n logs what it prints on stderr to stdout.
            output = server.stdout + server.stderr
            self.assertNotIn(b"Traceback", output, server.output())
            self.assertIn(f"cannot listen on unix:{path}: ".encode(), output)
        self.assertEqual(Path(regular).read_bytes(), b"precious\n")
        self.assertEqual(os.readlink(link), stale)
        self.assertTrue(os.path.exists(stale))


class TwistedGreetListenerTests(ListenerContract, SynchronousTestCase):
    """
    ``twistd journey-greet``'s listeners.
    """

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-greet", *options)

    def test_wrappedAndTLSEndpoints(self) -> None:
        """
        ``haproxy:tcp:`` and ``ssl:`` listeners get the default backlog too.
        """
        port = freePort()
        self.start(f"haproxy:tcp:{port}:interface=127.0.0.1", ("127.0.0.1", port))
        self.assertEqual(listenQueue(port), DEFAULT_BACKLOG)
        key, certificate = selfSignedCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        self.start(
            f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
            ("127.0.0.1", port),
        )
        self.assertEqual(listenQueue(port), DEFAULT_BACKLOG)


class StdlibGreetListenerTests(ListenerContract, SynchronousTestCase):
    """
    The stdlib greeting server's listeners.
    """

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("greet", *options)


class TwistedMuxListenerTests(ListenerContract, SynchronousTestCase):
    """
    ``twistd journey-mux``'s listeners.
    """

    tool = "mux"

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-mux", *options)


class StdlibMuxListenerTests(ListenerContract, SynchronousTestCase):
    """
    The stdlib journey-mux server's listeners.
    """

    tool = "mux"

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("mux", *options)
