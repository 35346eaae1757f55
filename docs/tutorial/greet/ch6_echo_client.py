"""
Chapter 6: a client protocol, connected through an endpoint with connectProtocol.  It
sends its lines, waits until they have all come back, then closes.

Run: python ch6_echo_client.py [ENDPOINT] [LINE...]   (default tcp:127.0.0.1:1236)
"""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import react


class Talker(Protocol):
    def __init__(self, lines):
        self.expected = b"".join(line.encode() + b"\n" for line in lines)
        self.received = b""
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(self.expected)

    def dataReceived(self, data):
        self.received += data  # the echo may come back in any number of pieces
        if len(self.received) >= len(self.expected):
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.done.callback(self.received)


async def main(reactor, description, lines):
    endpoint = clientFromString(reactor, description)
    talker = await connectProtocol(endpoint, Talker(lines))  # fires once connected
    echoed = await talker.done  # fires on connectionLost
    sys.stdout.write(echoed.decode())


description = sys.argv[1] if len(sys.argv) > 1 else "tcp:127.0.0.1:1236"
lines = sys.argv[2:] or ["hello", "world"]
react(lambda reactor: Deferred.fromCoroutine(main(reactor, description, lines)))
