"""
Testing code that uses twisted_journey in pytest's own style, with pytest-twisted.

    python -m pytest test_greeting_pytest.py

pytest-twisted runs the reactor for the whole session; a test returns a Deferred (here
through ``pytest_twisted.inlineCallbacks``) and pytest waits for it.
"""

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from twisted_journey.greet import GreetFactory


def test_greetsOverStringTransport():
    """
    The synchronous parts need nothing from pytest-twisted.
    """
    transport = StringTransport()
    protocol = GreetFactory(b"Yo\r\n", quiet=True, clock=Clock()).buildProtocol(None)
    protocol.makeConnection(transport)
    assert transport.value() == b"Yo\r\n"
    assert transport.disconnecting


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


@pytest_twisted.inlineCallbacks
def test_overLoopback():
    """
    A real server on 127.0.0.1; the greeting arrives whole.
    """
    from twisted.internet import reactor

    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        GreetFactory(b"Over loopback\r\n", quiet=True)
    )
    try:
        client = yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(Collect)
        )
        received = yield client.done
        assert received == b"Over loopback\r\n"
    finally:
        yield port.stopListening()
