"""
Unit tests for :mod:`twisted_journey.greet`: the protocol and factory on in-memory
transports and clocks.  (The client's tests are in :mod:`tests.test_client`.)
"""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.greet import (
    DEFAULT_GREETING,
    GreetFactory,
    GreetProtocol,
)


def connect(
    factory: GreetFactory, host: str = "127.0.0.1", port: int = 40000
) -> tuple[GreetProtocol | None, StringTransport]:
    """
    Build a protocol for a client at ``host``/``port`` and connect it to a
    ``StringTransport``, as a listening port would.
    """
    address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    if protocol is not None:
        protocol.makeConnection(transport)
    return protocol, transport


class GreetProtocolTests(SynchronousTestCase):
    """
    The wire contract: the greeting, then close; nothing read.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def factory(self, **kwargs: object) -> GreetFactory:
        """
        A quiet factory on this test's clock.
        """
        kwargs.setdefault("quiet", True)
        return GreetFactory(clock=self.clock, **kwargs)  # type: ignore[arg-type]

    def test_greetsAndCloses(self) -> None:
        """
        The client gets exactly ``Thank you for connecting\\r\\n`` and the connection is
        closed (after the write is flushed, not aborted).
        """
        _protocol, transport = connect(self.factory())
        self.assertEqual(transport.value(), b"Thank you for connecting\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)  # loseConnection, not abortConnection

    def test_customGreeting(self) -> None:
        """
        The factory's greeting bytes are sent unchanged.
        """
        greeting = bytes(range(256))
        _, transport = connect(self.factory(greeting=greeting))
        self.assertEqual(transport.value(), greeting)

    def test_getGreetingHook(self) -> None:
        """
        A subclass may choose the greeting per connection.
        """

        class Numbered(GreetProtocol):
            def getGreeting(self) -> bytes:
                return b"%d\r\n" % self.factory.served

        factory = self.factory()
        factory.protocol = Numbered
        self.assertEqual(connect(factory)[1].value(), b"1\r\n")
        self.assertEqual(connect(factory)[1].value(), b"2\r\n")

    def test_ignoresClientData(self) -> None:
        """
        Data from the client changes nothing.
        """
        protocol, transport = connect(self.factory())
        assert protocol is not None
        protocol.dataReceived(b"GET / HTTP/1.0\r\n\r\n{evil}\x1b[2J")
        self.assertEqual(transport.value(), DEFAULT_GREETING)

    def test_timeoutAbortsSlowReader(self) -> None:
        """
        A client still connected when the timeout passes is aborted and counted.
        """
        factory = self.factory(timeout=5.0)
        _protocol, transport = connect(factory)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnected)  # abortConnection
        self.assertEqual(factory.timedOut, 1)

    def test_closedInTimeCancelsDeadline(self) -> None:
        """
        A connection that closes before the timeout leaves no timer behind.
        """
        factory = self.factory(timeout=5.0)
        protocol, _transport = connect(factory)
        assert protocol is not None
        protocol.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(factory.limits.open, 0)
        self.assertEqual(factory.timedOut, 0)

    def test_noTimeout(self) -> None:
        """
        ``timeout=None`` sets no timer at all.
        """
        connect(self.factory(timeout=None))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class GreetFactoryLimitTests(SynchronousTestCase):
    """
    ``--max-connections`` and ``--max-per-peer`` as the factory enforces them.
    """

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_maxConnections(self) -> None:
        """
        Past the total limit ``buildProtocol`` refuses (the port then closes the socket at
        once); a place freed by a closed connection is taken again.
        """
        factory = GreetFactory(maxConnections=2, quiet=True, clock=Clock())
        first, _ = connect(factory, port=1)
        connect(factory, port=2)
        refused, _ = connect(factory, port=3)
        self.assertIsNone(refused)
        self.assertEqual(factory.limits.refused, 1)
        assert first is not None
        first.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNotNone(connect(factory, port=4)[0])

    def test_maxPerPeer(self) -> None:
        """
        One host at its limit is refused while other hosts are served; IPv6 hosts are
        keyed by their /64 (the default ``--per-peer-prefix``); unix clients have no host
        and are not limited per peer.
        """
        factory = GreetFactory(maxPerPeer=1, quiet=True, clock=Clock())
        self.assertIsNotNone(connect(factory, "10.0.0.1")[0])
        self.assertIsNone(connect(factory, "10.0.0.1")[0])
        self.assertIsNotNone(connect(factory, "10.0.0.2")[0])
        self.assertIsNotNone(connect(factory, "::1")[0])
        self.assertIsNone(connect(factory, "::1")[0])
        for _ in range(3):
            self.assertIsNotNone(factory.buildProtocol(UNIXAddress(None)))
        self.assertEqual(factory.limits.refused, 2)
        self.assertEqual(factory.limits.perPeer, {"10.0.0.1": 1, "10.0.0.2": 1, "::/64": 1})

    def test_eventsUnlessQuiet(self) -> None:
        """
        Each connection is a ``Got connection from PEER`` event and each refusal a warning
        naming the limit; ``quiet`` logs neither but still counts.
        """
        loud = GreetFactory(maxConnections=1, clock=Clock())
        connect(loud, "::1", 7)
        connect(loud, "127.0.0.1", 8)
        messages = [e["log_format"].format(**e) for e in self.events]
        self.assertIn("Got connection from [::1]:7", messages)
        self.assertTrue(
            any(m.startswith("Refused connection from 127.0.0.1:8") for m in messages), messages
        )
        self.assertTrue(any("--max-connections" in m for m in messages))
        before = len(self.events)
        quiet = GreetFactory(maxConnections=1, quiet=True, clock=Clock())
        connect(quiet)
        connect(quiet)
        self.assertEqual(len(self.events), before)
        self.assertEqual(quiet.limits.refused, 1)

    def test_hostileAddressIsData(self) -> None:
        """
        A peer host containing braces is logged as data, never used as a format string.
        """
        factory = GreetFactory(clock=Clock())
        factory.buildProtocol(IPv4Address("TCP", "{evil}", 1))
        event = self.events[-1]
        self.assertEqual(event["log_format"], "Got connection from {peer}")
        self.assertEqual(event["peer"], "{evil}:1")
