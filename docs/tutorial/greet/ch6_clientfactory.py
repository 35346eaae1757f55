"""
Chapter 6: the older way to connect, still everywhere in Twisted's code: connectTCP and a
ClientFactory, which is told when a connection fails or ends.

Run: python ch6_clientfactory.py [HOST] [PORT]     (against ch6_twisted.py's greeting)
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory, Protocol


class Printer(Protocol):
    def dataReceived(self, data):
        sys.stdout.buffer.write(data)


class PrinterFactory(ClientFactory):
    protocol = Printer
    status = 0

    def clientConnectionFailed(self, connector, reason):
        # No connection at all: refused, unreachable, timed out.
        print(f"cannot connect: {reason.getErrorMessage()}", file=sys.stderr)
        self.status = 1
        reactor.stop()

    def clientConnectionLost(self, connector, reason):
        # A connection was made and has ended (the greeting server closes it).
        reactor.stop()


host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 1234
factory = PrinterFactory()
reactor.connectTCP(host, port, factory, timeout=10)
reactor.run()
sys.exit(factory.status)
