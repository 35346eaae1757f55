"""
Tests for :mod:`twisted_journey.listen`, the endpoint subset the stdlib engines read.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from tests.support import socketPath
from twisted_journey.listen import (
    ListenError,
    ListenSpec,
    bind,
    bind_all,
    format_peer,
    parse_listen,
    remove_socket_files,
)


class ParseListenTests(SynchronousTestCase):
    """
    ``parse_listen`` reads Twisted's syntax for ``tcp:``, ``tcp6:`` and ``unix:``.
    """

    def test_tcpDefaults(self) -> None:
        """
        ``tcp:PORT`` binds every IPv4 interface with Twisted's backlog of 50.
        """
        self.assertEqual(parse_listen("tcp:1234"), ListenSpec("tcp", port=1234, interface=""))

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
        for description in ["tcp:1234", "tcp:0:interface=127.0.0.1", r"tcp6:99:interface=\:\:1"]:
            endpoint = serverFromString(MemoryReactor(), description)
            spec = parse_listen(description)
            self.assertEqual(endpoint._port, spec.port)  # type: ignore[attr-defined]
            self.assertEqual(endpoint._interface, spec.interface)  # type: ignore[attr-defined]

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
