"""
Chapter 6: the same Twisted server, listening where a string says: an endpoint.

Run: python ch6_endpoints.py [ENDPOINT]     (default tcp:1234:interface=127.0.0.1;
     try unix:greet.sock, or tcp6:1234:interface=\\:\\:1 quoted for the shell)
"""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react


class Greeter(Protocol):
    def connectionMade(self):
        print("Got connection from", self.transport.getPeer(), flush=True)
        self.transport.write(b"Thank you for connecting\r\n")
        self.transport.loseConnection()


async def main(reactor, description):
    endpoint = serverFromString(reactor, description)
    port = await endpoint.listen(Factory.forProtocol(Greeter))
    print("Listening on", port.getHost(), flush=True)
    await Deferred()  # serve until the process is stopped


description = sys.argv[1] if len(sys.argv) > 1 else "tcp:1234:interface=127.0.0.1"
react(lambda reactor: Deferred.fromCoroutine(main(reactor, description)))
