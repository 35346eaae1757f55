"""
Chapter 6: the server of chapter 1 on Twisted.  No threads, no blocking: the reactor
calls connectionMade for each client.

Run: python ch6_twisted.py [PORT]
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol


class Greeter(Protocol):
    def connectionMade(self):
        print("Got connection from", self.transport.getPeer())
        self.transport.write(b"Thank you for connecting\r\n")
        self.transport.loseConnection()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
reactor.listenTCP(port, Factory.forProtocol(Greeter), interface="127.0.0.1")
reactor.run()
