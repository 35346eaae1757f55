"""
The peers journey-mux is measured against in ``bench/mux.py``: the plainest logging server
each framework allows, writing every received line to a buffered file with one Python
call per line, no timestamp and no escaping (so they do less work than journey-mux).

    python bench/mux_peers.py selectors|asyncio|uvloop|linereceiver PORT OUTPUT

Each closes a connection when the client half-closes, flushing the file then, so a
client that sees the close knows its lines are on disk.
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
from typing import Any


def runSelectors(port: int, out: Any) -> None:
    """
    A ``selectors`` loop splitting each read on newlines.
    """
    selector = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    listener.setblocking(False)
    pending: dict[socket.socket, bytes] = {}
    write = out.write

    def line(data: bytes) -> None:
        write(data + b"\n")

    def accept(sock: socket.socket) -> None:
        client, _ = sock.accept()
        client.setblocking(False)
        pending[client] = b""
        selector.register(client, selectors.EVENT_READ, read)

    def read(client: socket.socket) -> None:
        data = client.recv(65536)
        if not data:
            selector.unregister(client)
            client.close()
            del pending[client]
            out.flush()
            return
        lines = (pending[client] + data).split(b"\n")
        pending[client] = lines.pop()
        for each in lines:
            line(each)

    selector.register(listener, selectors.EVENT_READ, accept)
    while True:
        for key, _ in selector.select():
            key.data(key.fileobj)


def runAsyncio(port: int, out: Any) -> None:
    """
    An asyncio ``Protocol`` splitting each chunk on newlines.
    """
    import asyncio

    write = out.write

    class LineProtocol(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.pending = b""

        def data_received(self, data: bytes) -> None:
            lines = (self.pending + data).split(b"\n")
            self.pending = lines.pop()
            for each in lines:
                self.line(each)

        def line(self, data: bytes) -> None:
            write(data + b"\n")

        def eof_received(self) -> bool:
            out.flush()
            return False

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(LineProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def runLineReceiver(port: int, out: Any) -> None:
    """
    Twisted's ``LineOnlyReceiver`` with a ``\\n`` delimiter, on the default reactor.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    write = out.write

    class Receiver(LineOnlyReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 65536

        def lineReceived(self, line: bytes) -> None:
            write(line + b"\n")

        def connectionLost(self, reason: Any = None) -> None:
            out.flush()

    reactor.listenTCP(port, Factory.forProtocol(Receiver), backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def main() -> None:
    kind, port, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = open(output, "wb", buffering=1 << 18)  # noqa: SIM115

    def stop(*ignored: object) -> None:
        out.flush()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if kind == "selectors":
        runSelectors(port, out)
    elif kind == "asyncio":
        runAsyncio(port, out)
    elif kind == "uvloop":
        import uvloop

        uvloop.install()
        runAsyncio(port, out)
    elif kind == "linereceiver":
        runLineReceiver(port, out)
    else:
        sys.exit(f"unknown peer {kind!r}")


if __name__ == "__main__":
    main()
