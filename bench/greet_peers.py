"""
The greeting servers that journey-greet is measured against, each as small as it can be.

Usage: ``python bench/greet_peers.py KIND PORT`` serves ``Thank you for connecting\\r\\n``
on ``127.0.0.1:PORT`` until killed, with KIND one of :data:`KINDS`.  Every peer writes
the greeting and closes, and does nothing else: no logging, no limits, no timeout.
"""

from __future__ import annotations

import socket
import sys

GREETING = b"Thank you for connecting\r\n"
BACKLOG = 1024


def twisted(port: int) -> None:
    """
    A bare Twisted server: ``write`` then ``loseConnection`` in ``connectionMade``.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol

    class Greet(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(GREETING)
            self.transport.loseConnection()

    reactor.listenTCP(port, Factory.forProtocol(Greet), BACKLOG, "127.0.0.1")
    reactor.run()


def _asyncio(port: int, useUvloop: bool) -> None:
    """
    An asyncio ``Protocol`` server, on the default loop or on uvloop.
    """
    import asyncio

    class Greet(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(GREETING)  # type: ignore[attr-defined]
            transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Greet, "127.0.0.1", port, backlog=BACKLOG)
        await server.serve_forever()

    if useUvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def selectorsLoop(port: int) -> None:
    """
    A bare non-blocking ``selectors`` loop: accept, ``send``, ``close``.
    """
    import selectors

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for _ in selector.select():
            for _ in range(64):
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    break
                conn.send(GREETING)
                conn.close()


def _socketserver(port: int, mixin: type) -> None:
    """
    A ``socketserver`` server with a threading or forking mixin.
    """
    import socketserver

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(GREETING)

    class Server(mixin, socketserver.TCPServer):  # type: ignore[misc, valid-type]
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = BACKLOG

    Server(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str]) -> None:
    """
    Serve the peer named by ``argv[1]`` on port ``argv[2]``.
    """
    import socketserver

    kinds = {
        "twisted": twisted,
        "asyncio": lambda port: _asyncio(port, False),
        "uvloop": lambda port: _asyncio(port, True),
        "selectors": selectorsLoop,
        "threading": lambda port: _socketserver(port, socketserver.ThreadingMixIn),
        "forking": lambda port: _socketserver(port, socketserver.ForkingMixIn),
    }
    if len(argv) != 3 or argv[1] not in kinds:
        sys.exit(f"usage: greet_peers.py {{{'|'.join(kinds)}}} PORT")
    kinds[argv[1]](int(argv[2]))


KINDS = ("twisted", "asyncio", "uvloop", "selectors", "threading", "forking")

if __name__ == "__main__":
    main(sys.argv)
