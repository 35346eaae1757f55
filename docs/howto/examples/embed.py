"""
Embedding the pieces in a Twisted program of your own: a greeting server and a web site
on loopback, a client that reads the greeting, and the fetch API downloading a file from
the site, all in one reactor.

Run: python embed.py   (prints what it did, exits 0)
"""

import os
import tempfile

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react
from twisted.web.server import Site
from twisted.web.static import File

from twisted_journey.fetch import retrieve
from twisted_journey.greet import GreetFactory


class Collect(Protocol):
    """
    Collect everything the server sends; fire ``done`` with it when it closes.
    """

    def __init__(self) -> None:
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.received)


async def main(reactor) -> None:
    # A greeting server on a port the system picks, 127.0.0.1 only.
    greeter = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        GreetFactory(b"Hello from an embedded server\r\n", quiet=True)
    )
    port = greeter.getHost().port
    client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
        Factory.forProtocol(Collect)
    )
    print("greeting:", (await client.done).decode().strip())

    # A web site serving a temporary directory, and the fetch API downloading from it.
    directory = tempfile.mkdtemp()
    with open(os.path.join(directory, "hello.txt"), "w") as f:
        f.write("hello, fetcher\n")
    site = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(File(directory)))
    url = f"http://127.0.0.1:{site.getHost().port}/hello.txt"
    filename, _headers = await retrieve(url, os.path.join(directory, "copy.txt"), reactor=reactor)
    with open(filename) as f:
        print("fetched:", f.read().strip())

    await greeter.stopListening()
    await site.stopListening()


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
