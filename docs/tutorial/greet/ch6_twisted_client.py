"""
Chapter 6: the socket client of chapter 1, on Twisted.

Run: python ch6_twisted_client.py [HOST] [PORT]
"""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react


class Printer(Protocol):
    def __init__(self):
        self.done = Deferred()

    def dataReceived(self, data):
        sys.stdout.buffer.write(data)

    def connectionLost(self, reason):
        self.done.callback(None)


async def main(reactor, host, port):
    endpoint = HostnameEndpoint(reactor, host, port)
    printer = await endpoint.connect(Factory.forProtocol(Printer))
    await printer.done  # fires when the server closes the connection


host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 1234
react(lambda reactor: Deferred.fromCoroutine(main(reactor, host, port)))
