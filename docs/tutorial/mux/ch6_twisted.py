"""
Chapter 6: the poll() server of chapter 5 on Twisted: the reactor does the polling (epoll
on Linux), and a protocol instance per connection holds that connection's state.

    python ch6_twisted.py PORT
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol


class Printer(Protocol):
    def connectionMade(self):
        self.peer = f"{self.transport.getPeer().host}:{self.transport.getPeer().port}"
        self.pending = b""
        print(f"Got connection from {self.peer}", flush=True)

    def dataReceived(self, data):
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            print(f"{self.peer} {line!r}", flush=True)

    def connectionLost(self, reason):
        if self.pending:
            print(f"{self.peer} {self.pending!r} (partial)", flush=True)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 1235
reactor.listenTCP(port, Factory.forProtocol(Printer), interface="127.0.0.1")
reactor.run()
