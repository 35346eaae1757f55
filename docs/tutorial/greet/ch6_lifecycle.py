"""
Chapter 6: a protocol's life, printed.  An echo server whose factory builds one protocol
per connection (and refuses a third at once), and whose protocol says when each event
arrives: connectionMade, dataReceived (as many times as the network likes), connectionLost.

Run: python ch6_lifecycle.py [ENDPOINT]     (default tcp:1236:interface=127.0.0.1)
"""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol


class Echo(Protocol):
    def connectionMade(self):
        # self.factory was set by buildProtocol; self.transport by the reactor.
        self.factory.open += 1
        self.number = self.factory.served = self.factory.served + 1
        peer = self.transport.getPeer()
        print(f"connectionMade: client {self.number} ({peer.host}), {self.factory.open} open")

    def dataReceived(self, data):
        print(f"dataReceived: client {self.number}, {len(data)} bytes")
        self.transport.write(data)

    def connectionLost(self, reason):
        self.factory.open -= 1
        print(f"connectionLost: client {self.number}: {reason.getErrorMessage()}")


class EchoFactory(Factory):
    protocol = Echo
    limit = 2

    def __init__(self):
        self.open = 0  # what all connections share lives on the factory
        self.served = 0

    def buildProtocol(self, addr):
        if self.open >= self.limit:
            print(f"buildProtocol: refusing {addr.host}, {self.open} already open")
            return None  # the reactor closes the connection at once
        return super().buildProtocol(addr)  # an Echo() with .factory = self


endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp:1236:interface=127.0.0.1"
serverFromString(reactor, endpoint).listen(EchoFactory())
print(f"listening on {endpoint}", flush=True)
reactor.run()
