"""
Tests for :mod:`twisted_journey.policies`: connection limits per host and per network
(``--per-peer-prefix``), and ``haproxy:`` listeners, whose limits, events and records see
the client named by a checked PROXY header.  Nothing here touches the network: factories
listen on a ``MemoryReactorClock`` and connections are ``StringTransport`` objects.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.datalog import DataLog
from twisted_journey.mux import MuxFactory
from twisted_journey.policies import ConnectionLimits, ProxyHeaderFactory, proxied
from twisted_journey.proxyheader import V2_SIGNATURE
from twisted_journey.settings import DEFAULT_PROXY_TIMEOUT
from twisted_journey.tap.common import listeningService
from twisted_journey.tap.mux import Options

#: 2026-11-27T02:17:39.123456Z
NOW = 1795745859.123456

#: The proxy every connection comes from.
PROXY = IPv4Address("TCP", "10.9.9.9", 40000)


def v2Header(source: tuple[str, int], destination: tuple[str, int], command: int = 1) -> bytes:
    """
    A PROXY version 2 header for a TCP connection from ``source`` to ``destination``.
    """
    import ipaddress

    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


class ConnectionLimitsTests(SynchronousTestCase):
    """
    :class:`ConnectionLimits`, with the prefixes of ``--per-peer-prefix``.
    """

    def test_perAddressAndPerNetwork(self) -> None:
        """
        By default (``32,64``) each IPv4 address is a host, and an IPv6 /64 is one host
        however many addresses it uses; with ``24,128`` an IPv4 /24 is one host and each
        IPv6 address another.
        """
        limits = ConnectionLimits(maxPerPeer=1)
        keys = [limits.key(h) for h in ("127.0.0.2", "127.0.0.3", "2001:db8::1", "2001:db8::2")]
        self.assertEqual(keys, ["127.0.0.2", "127.0.0.3", "2001:db8::/64", "2001:db8::/64"])
        self.assertEqual([limits.admit(k) for k in keys[:3]], [None, None, None])
        reason = limits.admit(keys[3])
        self.assertEqual(
            reason,
            "1 connection open from network 2001:db8::/64, the most allowed (--max-per-peer)",
        )
        limits.prefixes = (24, 128)
        self.assertEqual(limits.key("127.0.0.3"), "127.0.0.0/24")
        self.assertEqual(limits.key("2001:db8::2"), "2001:db8::2")
        self.assertEqual(limits.key("::ffff:127.0.0.9"), "127.0.0.0/24")

    def test_refusalsCountedByReason(self) -> None:
        """
        ``refusedTotal`` and ``refusedPerPeer`` count refusals by limit; ``refused`` all.
        """
        limits = ConnectionLimits(maxConnections=2, maxPerPeer=1)
        self.assertIsNone(limits.admit("a"))
        self.assertIsNotNone(limits.admit("a"))
        self.assertIsNone(limits.admit("b"))
        self.assertIsNotNone(limits.admit("c"))
        self.assertEqual((limits.refused, limits.refusedTotal, limits.refusedPerPeer), (2, 1, 1))
        limits.release("a")
        limits.release("b")
        self.assertEqual((limits.open, limits.perPeer), (0, {}))

    def test_noKeyWithoutPerPeerLimit(self) -> None:
        """
        Without ``--max-per-peer`` nothing is counted per host, and no address is parsed.
        """
        limits = ConnectionLimits(maxConnections=5)
        self.assertIsNone(limits.key("127.0.0.1"))
        self.assertIsNone(ConnectionLimits(maxPerPeer=1).key(None))


class HAProxyListenerTests(SynchronousTestCase):
    """
    ``--listen haproxy:...`` through :func:`listeningService`, as twistd builds it.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.path = Path(self.mktemp()).absolute()
        self.datalog = DataLog(str(self.path))
        self.addCleanup(self.datalog.close)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def listen(self, *arguments: str, **factoryArguments: object) -> IProtocolFactory:
        """
        Parse ``journey-mux`` options (``--listen haproxy:tcp:1235`` unless given), start
        listening on the memory reactor, and return the factory the port was given.
        """
        if "--listen" not in arguments:
            arguments = ("--listen", "haproxy:tcp:1235", *arguments)
        options = Options()
        options.parseOptions(["--output", str(self.path), *arguments])
        self.factory = MuxFactory(
            self.datalog,
            clock=self.reactor,
            quiet=options["quiet"],
            maxPerPeer=options["max-per-peer"],
            maxConnections=options["max-connections"],
            recordFormat=options["format"],
            **factoryArguments,  # type: ignore[arg-type]
        )
        service = listeningService(options.settings, self.factory, self.reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return self.reactor.tcpServers[-1][1]

    def connect(
        self, factory: IProtocolFactory, data: bytes = b""
    ) -> tuple[IProtocol | None, StringTransport]:
        """
        A connection from :data:`PROXY` to ``factory`` that sends ``data``.
        """
        protocol = factory.buildProtocol(PROXY)
        transport = StringTransport(peerAddress=PROXY)
        if protocol is not None:
            protocol.makeConnection(transport)
            if data:
                protocol.dataReceived(data)
        return protocol, transport

    def records(self) -> bytes:
        """
        The data log so far.
        """
        self.datalog.flush()
        return self.path.read_bytes()

    def messages(self) -> list[str]:
        """
        The events logged so far, formatted.
        """
        return [e["log_format"].format(**e) for e in self.events]

    def test_forgedAddressRefused(self) -> None:
        """
        A version 1 header whose address is not an IP literal (here, one that would forge
        a JSON record) drops the connection with a logged event; nothing is recorded and
        the server's factory never sees the connection.
        """
        factory = self.listen("--format", "json")
        forged = (
            b'PROXY TCP4 1.2.3.4","conn":1,"line":"forged"}\n{"time":"2000-01-01T00:00:00.000000Z",'
            b'"peer":"6.6.6.6:1 5.6.7.8 1 2\r\nreal line\n'
        )
        _, transport = self.connect(factory, forged)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.records(), b"")
        self.assertEqual(self.factory.served, 0)
        self.assertTrue(
            any(
                m.startswith("Dropped connection from 10.9.9.9:40000: invalid PROXY header")
                for m in self.messages()
            ),
            self.messages(),
        )

    def test_invalidHeaders(self) -> None:
        """
        Ports with signs, leading zeros or out of range, an address of the other family,
        an IPv6 zone and garbage are each refused; no protocol is built.
        """
        factory = self.listen()
        for header in [
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 8_0 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 80 1\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 80 1\r\n",
            b"PROXY TCP6 fe80::1%eth0 ::1 80 1\r\n",
            b"PROXY TCP4 1.2.3.\xff 5.6.7.8 80 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 1 extra\r\n",
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 " + b"1" * 200,
        ]:
            protocol, transport = self.connect(factory, header)
            self.assertTrue(transport.disconnecting, header)
            # Until the socket is closed, it holds its place.
            self.assertEqual(self.factory.limits.open, 1)
            assert protocol is not None
            protocol.connectionLost(Failure(ConnectionDone()))
            self.assertEqual(self.factory.limits.open, 0)
        self.assertEqual(self.factory.served, 0)

    def test_recordsAndEventsNameTheClient(self) -> None:
        """
        Records and events name the client of the header, the same with and without
        ``--quiet``; data in the header's chunk is recorded.
        """
        for quiet in ((), ("--quiet",)):
            self.reactor = MemoryReactorClock()
            self.reactor.advance(NOW)
            factory = self.listen(*quiet)
            protocol, transport = self.connect(
                factory, b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 1235\r\nhello\n"
            )
            assert protocol is not None
            self.assertEqual(transport.getPeer(), PROXY)
            self.assertFalse(transport.disconnecting)
            protocol.connectionLost(Failure(ConnectionDone()))
        records = self.records().splitlines()
        self.assertEqual(
            records,
            [b"2026-11-27T02:17:39.123456Z 192.0.2.7:5555 1 hello"] * 2,
        )
        self.assertIn("Got connection from 192.0.2.7:5555", self.messages())
        self.assertIn(
            "Connection 1 from 192.0.2.7:5555 closed: 6 bytes, 1 records", self.messages()
        )
        self.assertFalse(any("10.9.9.9" in m for m in self.messages()), self.messages())

    def test_version2AndPieces(self) -> None:
        """
        A version 2 header (IPv6 here) works, also when it arrives a byte at a time.
        """
        factory = self.listen("--format", "json")
        header = v2Header(("2001:db8::7", 4242), ("2001:db8::1", 1235))
        protocol, _ = self.connect(factory)
        assert protocol is not None
        for byte in header + b"line\n":
            protocol.dataReceived(bytes([byte]))
        fields = json.loads(self.records())
        self.assertEqual((fields["peer"], fields["line"]), ("[2001:db8::7]:4242", "line"))

    def test_localHeaderIsTheProxy(self) -> None:
        """
        A version 2 ``LOCAL`` header (a health check) and version 1 ``UNKNOWN`` are the
        proxy's own connections.
        """
        factory = self.listen()
        local = v2Header(("127.0.0.1", 1), ("127.0.0.1", 2), command=0)
        self.connect(factory, local + b"a\n")
        self.connect(factory, b"PROXY UNKNOWN whatever\r\nb\n")
        records = [r.split(b" ")[1:4:2] for r in self.records().splitlines()]
        self.assertEqual(records, [[b"10.9.9.9:40000", b"a"], [b"10.9.9.9:40000", b"b"]])

    def test_perPeerLimitCountsClients(self) -> None:
        """
        ``--max-per-peer`` counts the clients the headers name, not the proxy: with a
        limit of 2, a third connection from 127.0.0.2 is refused (closed at once, after
        its header) while 127.0.0.3 still gets in; a place freed is taken again.
        """
        factory = self.listen("--max-per-peer", "2")

        def fromClient(host: str, port: int) -> tuple[IProtocol | None, StringTransport]:
            return self.connect(
                factory, b"PROXY TCP4 %s 127.0.0.1 %d 1235\r\n" % (host.encode(), port)
            )

        first, _ = fromClient("127.0.0.2", 1001)
        fromClient("127.0.0.2", 1002)
        _, refused = fromClient("127.0.0.2", 1003)
        _, other = fromClient("127.0.0.3", 1001)
        self.assertTrue(refused.disconnecting)
        self.assertFalse(other.disconnecting)
        self.assertEqual(self.factory.limits.perPeer, {"127.0.0.2": 2, "127.0.0.3": 1})
        self.assertTrue(
            any(
                m.startswith("Refused connection from 127.0.0.2:1003: 2 connections open")
                for m in self.messages()
            ),
            self.messages(),
        )
        assert first is not None
        first.connectionLost(Failure(ConnectionDone()))
        _, again = fromClient("127.0.0.2", 1004)
        self.assertFalse(again.disconnecting)
        self.assertEqual(self.factory.limits.refusedPerPeer, 1)

    def test_headerTimeout(self) -> None:
        """
        A connection that sends no complete header within ``--proxy-timeout`` seconds
        (:data:`DEFAULT_PROXY_TIMEOUT` unless given) is dropped, and the event says so.
        """
        for arguments, timeout in [((), DEFAULT_PROXY_TIMEOUT), (("--proxy-timeout", "7.5"), 7.5)]:
            factory = self.listen(*arguments)
            assert isinstance(factory, ProxyHeaderFactory)
            self.assertEqual(factory.headerTimeout, timeout)
            _, transport = self.connect(factory, b"PROXY TCP4 1.2")
            self.reactor.advance(timeout - 0.1)
            self.assertFalse(transport.disconnecting)
            self.reactor.advance(0.2)
            self.assertTrue(transport.disconnecting)
            self.assertIn(
                f"Dropped connection from 10.9.9.9:40000: no PROXY header within {timeout:g} "
                "seconds",
                self.messages(),
            )
            self.assertEqual(factory.invalidHeaders, 1)
            self.assertEqual(self.factory.limits.refusedProxy, 1)

    def test_plainEndpointsUnwrapped(self) -> None:
        """
        Other endpoints listen with the server's factory itself; only ``haproxy:`` (in
        any case) is recognised.
        """
        self.assertIs(self.listen("--listen", "tcp:1235"), self.factory)
        self.assertEqual(proxied("HAProxy:tcp:80:interface=::1"), "tcp:80:interface=::1")
        self.assertIsNone(proxied("tcp:80"))
        self.assertIsNone(proxied("haproxy:"))

    def test_ipv6Address(self) -> None:
        """
        The header's client is an ``IPv6Address`` for an IPv6 source.
        """
        factory = self.listen()
        protocol, _ = self.connect(factory, b"PROXY TCP6 2001:db8::9 ::1 7 1235\r\n")
        self.assertEqual(
            protocol.getPeer(),  # type: ignore[union-attr]
            IPv6Address("TCP", "2001:db8::9", 7),
        )

    def test_pendingHoldPlaces(self) -> None:
        """
        A connection waiting for its header holds a place in ``--max-connections``: with
        a limit of 2, two silent connections make a third be refused at accept (no
        protocol, counted); a header gives the place to the client it names, and a
        connection that goes away before its header gives its place back.
        """
        factory = self.listen("--max-connections", "2")
        first, _ = self.connect(factory)
        second, _ = self.connect(factory)
        self.assertEqual(self.factory.limits.open, 2)
        self.assertIsNone(factory.buildProtocol(PROXY))
        self.assertEqual((self.factory.limits.refused, self.factory.limits.refusedTotal), (1, 1))
        assert first is not None and second is not None
        first.dataReceived(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 1235\r\n")
        self.assertEqual((self.factory.limits.open, self.factory.served), (2, 1))
        second.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.factory.limits.open, 1)
        third, transport = self.connect(factory)
        self.assertIsNotNone(third)
        self.assertFalse(transport.disconnecting)

    def test_pendingWatchDescriptors(self) -> None:
        """
        A connection waiting for its header is shown to the server's descriptor watch
        (journey-mux stops accepting near ``ulimit -n``), and freed from it when it goes.
        """
        factory = self.listen()
        seen: list[object] = []
        freed: list[None] = []
        self.factory.checkDescriptors = seen.append  # type: ignore[method-assign]
        self.factory.descriptorFreed = lambda: freed.append(None)  # type: ignore[method-assign]
        protocol, transport = self.connect(factory)
        self.assertEqual(seen, [transport])
        assert protocol is not None
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(freed, [None])

    def test_trustedProxies(self) -> None:
        """
        With ``--proxy-from``, a connection from outside those networks is refused at
        accept, unread, with one event and a count; one from inside is read as before.
        Without it, any peer may send a header.
        """
        factory = self.listen("--proxy-from", "127.0.0.0/8", "--proxy-from", "::1")
        self.assertIsNone(factory.buildProtocol(PROXY))
        self.assertEqual(self.factory.limits.refusedUntrusted, 1)
        self.assertEqual(self.factory.limits.open, 0)
        self.assertIn(
            "Refused connection from 10.9.9.9:40000: not a trusted proxy (--proxy-from)",
            self.messages(),
        )
        for proxy in (
            IPv4Address("TCP", "127.0.0.5", 1),
            IPv6Address("TCP", "::1", 1),
            IPv6Address("TCP", "::ffff:127.0.0.1", 1),
        ):
            self.assertIsNotNone(factory.buildProtocol(proxy), proxy)
        factory = self.listen("--proxy-from", "10.9.0.0/16")
        self.assertIsNotNone(factory.buildProtocol(PROXY))
        self.assertIsNotNone(self.listen().buildProtocol(PROXY))
        with self.assertRaises(UsageError) as caught:
            Options().parseOptions(["--output", str(self.path), "--proxy-from", "10.0.0.0/33"])
        self.assertEqual(
            str(caught.exception),
            "--proxy-from must be an IP address or network (e.g. 10.0.0.0/8, ::1), not "
            "'10.0.0.0/33'.",
        )

    def test_healthCheckNotAClient(self) -> None:
        """
        A version 2 ``LOCAL`` connection (HAProxy's ``check-send-proxy``), or a header
        naming the connection's own address and port (HAProxy's version 1 checks), is a
        health check: served, but not logged and not counted as an accepted client; it
        has its own count.
        """
        factory = self.listen()
        local = v2Header(("127.0.0.1", 1), ("127.0.0.1", 2), command=0)
        protocol, transport = self.connect(factory, local)
        assert protocol is not None
        self.assertFalse(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((self.factory.served, self.factory.healthChecks), (0, 1))
        self.assertEqual(self.factory.limits.open, 0)
        self.assertEqual([m for m in self.messages() if "10.9.9.9" in m or "Connection" in m], [])
        # HAProxy's version 1 checks name the connection's own ends: not relayed either.
        self.connect(factory, b"PROXY TCP4 10.9.9.9 10.0.0.1 40000 1235\r\n")
        self.assertEqual((self.factory.served, self.factory.healthChecks), (0, 2))
        self.connect(factory, b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 1235\r\n")
        self.connect(factory, b"PROXY TCP4 10.9.9.9 10.0.0.1 40001 1235\r\n")
        self.assertEqual((self.factory.served, self.factory.healthChecks), (2, 2))
        self.assertIn("Got connection from 192.0.2.7:5555", self.messages())
        self.assertIn("Got connection from 10.9.9.9:40001", self.messages())

    def test_tlsRefusedBeforeHandshake(self) -> None:
        """
        On ``ssl:``, the limits are decided before TLS builds anything: a refused
        connection gets no protocol (the port closes it at once) and is counted; on
        ``haproxy:ssl:`` the PROXY header is read first, in clear, and TLS comes after.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from tests.support import selfSignedCertificate
        from twisted_journey.policies import AdmittingFactory

        key, cert = selfSignedCertificate(self.mktemp())
        ssl = f"ssl:1236:privateKey={key}:certKey={cert}"
        factory = self.listen("--listen", ssl, "--max-connections", "1")
        assert isinstance(factory, AdmittingFactory)
        self.assertIsInstance(factory.wrappedFactory, TLSMemoryBIOFactory)
        self.assertIsNotNone(factory.buildProtocol(PROXY))
        self.assertIsNone(factory.buildProtocol(PROXY))
        self.assertEqual(self.factory.limits.refusedTotal, 1)

        factory = self.listen("--listen", "haproxy:" + ssl)
        assert isinstance(factory, ProxyHeaderFactory)
        self.assertIsInstance(factory.wrappedFactory, TLSMemoryBIOFactory)
        protocol, transport = self.connect(factory, b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 1235\r\n")
        self.assertFalse(transport.disconnecting)
        # TLS has begun: the client's handshake is awaited, and the server knows the client.
        self.assertIn("Got connection from 192.0.2.7:5555", self.messages())
        assert protocol is not None
        protocol.dataReceived(b"not a TLS record")
        self.assertTrue(transport.disconnecting)


class PerPeerPrefixOptionTests(SynchronousTestCase):
    """
    ``--per-peer-prefix`` on the twistd plugins.
    """

    def test_option(self) -> None:
        """
        The default is ``32,64``; a value is parsed, set on the factory's limits by
        :func:`listeningService`, and a bad one is a usage error in the shared sentence.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["per-peer-prefix"], (32, 64))
        options = Options()
        options.parseOptions(["--per-peer-prefix", "24,48", "--max-per-peer", "3"])
        factory = MuxFactory(DataLog(str(Path(self.mktemp()).absolute())), maxPerPeer=3)
        self.addCleanup(factory.datalog.close)
        listeningService(options.settings, factory, MemoryReactorClock())
        self.assertEqual(factory.limits.prefixes, (24, 48))
        self.assertEqual(factory.limits.key("192.0.2.9"), "192.0.2.0/24")
        with self.assertRaises(UsageError) as caught:
            Options().parseOptions(["--per-peer-prefix", "64"])
        self.assertEqual(
            str(caught.exception),
            "--per-peer-prefix must be two prefix lengths, V4,V6 (IPv4 from 1 to 32, IPv6 from 1 "
            "to 128, e.g. 32,64), not '64'.",
        )
        self.assertIn("--per-peer-prefix", str(Options()))


class ServedTotalTests(SynchronousTestCase):
    """
    The line a :class:`twisted_journey.policies.LimitedFactory` logs when it stops.
    """

    def test_oneConnection(self) -> None:
        """
        One connection served is "Served 1 connection", not "1 connections".
        """
        from twisted.logger import formatEvent

        from twisted_journey.greet import GreetFactory

        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        factory = GreetFactory(quiet=True, clock=MemoryReactorClock())
        factory.doStart()
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        protocol.connectionLost(Failure(ConnectionDone()))
        factory.doStop()
        self.assertIn("Served 1 connection, refused 0", [formatEvent(e) for e in events])
