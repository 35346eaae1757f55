"""
Testing code that uses twisted_journey: the same tests run under trial and pytest.

    python -m twisted.trial test_greeting
    python -m pytest test_greeting.py

The unit tests drive a protocol over an in-memory transport with a fake clock: no network,
no reactor, no waiting.  The last test talks to a real server on loopback; trial's
``TestCase`` runs the reactor for it, under either runner.  (For pytest's own style, with
pytest-twisted, see ``test_greeting_pytest.py``; run the two styles in separate pytest runs,
since pytest-twisted and trial's ``TestCase`` each want to drive the reactor.)
"""

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_journey.greet import GreetFactory


class GreetingUnitTests(SynchronousTestCase):
    """
    The greeting over a StringTransport, timed by a Clock.
    """

    def test_greetsAndCloses(self):
        """
        A client gets the greeting, then the server closes.
        """
        factory = GreetFactory(b"Hi\r\n", quiet=True, clock=Clock())
        protocol = factory.buildProtocol(("127.0.0.1", 5000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"Hi\r\n")
        self.assertTrue(transport.disconnecting)

    def test_limitRefuses(self):
        """
        Past ``maxConnections``, buildProtocol refuses (returns None).
        """
        factory = GreetFactory(b"Hi\r\n", quiet=True, maxConnections=1, clock=Clock())
        first = factory.buildProtocol(("127.0.0.1", 5000))
        first.makeConnection(StringTransport())
        self.assertIsNone(factory.buildProtocol(("127.0.0.1", 5001)))


class Collect(Protocol):
    """
    Everything the server sends, in ``done`` when it closes.
    """

    def __init__(self):
        self.received = b""
        self.done = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)


class GreetingLoopbackTests(TestCase):
    """
    A real server on 127.0.0.1, port chosen by the system; trial runs the reactor.
    """

    @inlineCallbacks
    def test_overLoopback(self):
        """
        A TCP client receives exactly the greeting.  (``inlineCallbacks`` rather than
        ``async def``: pytest's unittest support does not await coroutine test methods.)
        The reactor is imported here, not at the top: importing it while pytest collects
        would install the default reactor before pytest-twisted chooses its own.
        """
        from twisted.internet import reactor

        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            GreetFactory(b"Over loopback\r\n", quiet=True)
        )
        self.addCleanup(port.stopListening)
        client = yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(Collect)
        )
        received = yield client.done
        self.assertEqual(received, b"Over loopback\r\n")
