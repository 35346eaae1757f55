# -*- test-case-name: tests.test_greet_contract -*-
"""
The greeting server with the standard library only (its client is in
:mod:`twisted_journey.fallback.client`).

Speaks exactly the bytes :mod:`twisted_journey.greet` speaks: on connect, the server sends
the greeting and closes.  Four ways to serve, the chapter's steps:

``serial``
    ``socketserver.TCPServer``: one client at a time.  A client that does not read a large
    greeting holds everyone up until ``--timeout``.
``threading``
    ``ThreadingMixIn``: a thread per client (about 26 KB each, and ~5x the CPU of select).
``forking``
    ``ForkingMixIn``: a process per client; about 40x the CPU of select.
``select`` (the default)
    a non-blocking :mod:`selectors` loop: one thread sends every greeting as soon as the
    kernel takes it and only watches a client whose greeting did not fit in one ``send``.
    It is the cheapest per connection and no slow client can hold up another, which is
    why it is the default.

Run it::

    python -m twisted_journey.fallback.greet --listen tcp:1234 --mode select
"""

from __future__ import annotations

import argparse
import errno
import logging
import selectors
import signal
import socket
import socketserver
import struct
import sys
import time
from array import array
from collections.abc import Sequence
from typing import Any

from twisted_journey import __version__
from twisted_journey.eventlog import AcceptFailures, event_stream
from twisted_journey.listen import (
    ListenError,
    ListenSpec,
    bind_all,
    format_peer,
    parse_listen,
    remove_socket_files,
)
from twisted_journey.settings import (
    DEFAULT_GREET_TIMEOUT,
    GREET_DRAIN_LIMIT,
    SettingError,
    greeting,
    seconds,
)
from twisted_journey.sockets import discard_unread, drain_unread, unread_count

__all__ = [
    "MODES",
    "GreetHandler",
    "SelectGreetServer",
    "main",
    "make_server",
]

log = logging.getLogger("journey-greet")

Socket = socket.socket

#: accept() errors that mean "out of descriptors or memory": wait for clients to leave.
_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

#: A greeting at most this long that the kernel takes whole is on its way at once: the
#: server drains what the client already sent and closes.  A longer one may still be
#: queued, so the server half-closes and waits for the client to close (see
#: :func:`~twisted_journey.sockets.drain_unread`).
SMALL = 64 * 1024

#: Bytes a client may send before the server stops reading them and resets the connection
#: (see :data:`twisted_journey.settings.GREET_DRAIN_LIMIT`).
DRAIN_LIMIT = GREET_DRAIN_LIMIT


#: failed accepts, logged at most once a second with a count of the others
_accept_failures = AcceptFailures()


def _accept_failed(error: OSError) -> None:
    """
    Log a failed accept (out of descriptors or memory), unless one was logged less than
    a second ago.
    """
    sentence = _accept_failures.failed(errno.errorcode.get(error.errno or 0, str(error)))
    if sentence is not None:
        log.error("%s", sentence)


def _abort(sock: socket.socket) -> None:
    """
    Close ``sock`` with a reset: the client is not reading, so an orderly close would only
    leave the unsent greeting queued in the kernel.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class GreetHandler(socketserver.BaseRequestHandler):
    """
    Sends the server's greeting and half-closes; ``socketserver`` then closes the socket.

    Before the close, what the client sent is drained (see
    :func:`~twisted_journey.sockets.drain_unread`); after a greeting larger than
    :data:`SMALL`, the handler reads until the client closes its side, so that the end of
    the greeting is not lost to a reset.
    """

    server: Any

    def handle(self) -> None:
        """
        Send the whole greeting, or give up on the client after the server's timeout.
        """
        sock = self.request
        timeout = self.server.greet_timeout
        start = time.monotonic()
        sock.settimeout(timeout)
        try:
            sock.sendall(self.server.greeting)
            if len(self.server.greeting) <= SMALL:
                # socketserver's shutdown_request half-closes, then closes
                if unread_count(sock.fileno()):
                    # non-blocking: with a timeout set, recv would wait for data first
                    sock.setblocking(False)
                    discard_unread(sock, DRAIN_LIMIT)
            else:
                sock.shutdown(socket.SHUT_WR)
                self.linger(start + timeout if timeout else None)
        except TimeoutError:
            self.server.log_event(
                logging.WARNING,
                "Dropped %s: greeting not taken within %g seconds",
                self.client_address,
                self.server.greet_timeout,
            )
            _abort(self.request)
        except OSError:
            pass  # the client went away first; nothing to tell it

    def linger(self, deadline: float | None) -> None:
        """
        Read and discard until the client closes its side, at most :data:`DRAIN_LIMIT`
        bytes (then reset the connection).

        :raises TimeoutError: when ``deadline`` passes first.
        """
        sock = self.request
        received = 0
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                return
            received += len(data)
            if received > DRAIN_LIMIT:
                _abort(sock)
                return


class _GreetServerMixin:
    """
    What the ``socketserver`` modes share: the greeting, timeout, logging and adopting a
    socket bound by :func:`twisted_journey.listen.bind`.
    """

    greeting: bytes
    greet_timeout: float | None
    quiet: bool
    socket: Socket
    address_family: int
    server_address: Any
    daemon_threads = True
    block_on_close = False

    def adopt(self, sock: Socket) -> None:
        """
        Serve on ``sock`` (already bound and listening) instead of a socket of our own.
        """
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family
        self.server_address = sock.getsockname()

    def get_request(self) -> tuple[Socket, Any]:
        """
        Accept a client; when descriptors run out, pause a moment instead of spinning on a
        listening socket that stays readable.
        """
        try:
            return self.socket.accept()
        except OSError as e:
            if e.errno in _SHORTAGE:
                _accept_failed(e)
                time.sleep(0.1)
            raise

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """
        Log ``Got connection from PEER`` unless quiet; every client is served.
        """
        self.log_event(logging.INFO, "Got connection from %s", client_address)
        return True

    def log_event(self, level: int, message: str, client_address: Any, *args: object) -> None:
        """
        Log a per-connection event about ``client_address`` unless quiet.
        """
        if not self.quiet:
            log.log(level, message, _peer(client_address), *args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """
        Log an unexpected handler error in one line and keep serving.
        """
        log.error("Error serving %s: %s", _peer(client_address), sys.exc_info()[1])


def _peer(client_address: Any) -> str:
    """
    ``host:port`` for a socket address (``unix`` for a unix socket client).
    """
    if isinstance(client_address, tuple):
        return format_peer(client_address[0], client_address[1])
    return "unix"


class SerialGreetServer(_GreetServerMixin, socketserver.TCPServer):
    """
    One client at a time, as the chapter's first ``socketserver`` example.
    """


class ThreadingGreetServer(_GreetServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    """
    A thread per client.
    """


class _Stop:
    """
    Whether ``SIGTERM`` or ``SIGINT`` asked the server to stop: the handlers :func:`main`
    installs only set :attr:`requested`, and every serving loop looks at it at least
    every :data:`STOP_CHECK` seconds.  (Raising ``KeyboardInterrupt`` from the handler
    instead could land anywhere: inside ``fork``'s own handlers it is swallowed, and the
    server went on running with logging's lock held.)
    """

    requested = False


#: The longest a serving loop waits before it looks at :attr:`_Stop.requested` again.
STOP_CHECK = 0.5


def _requestStop(signum: int, frame: object) -> None:
    """
    The ``SIGTERM`` and ``SIGINT`` handler: ask the serving loop to stop.
    """
    _Stop.requested = True


class ForkingGreetServer(_GreetServerMixin, socketserver.ForkingMixIn, socketserver.TCPServer):
    """
    A process per client.
    """

    def finish_request(self, request: Any, client_address: Any) -> None:
        """
        In the child: take the stopping signals' default actions back (a child asked to
        stop just ends), then serve the client.
        """
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        super().finish_request(request, client_address)


class _Pending:
    """
    A client the select loop still watches: the unsent rest of its greeting (a view of
    the one greeting every client shares, never a copy), or ``None`` once it is all sent
    and the loop waits for the client to close; its deadline; and the bytes it has sent.
    """

    __slots__ = ("deadline", "received", "rest")

    def __init__(self, rest: memoryview | None, deadline: float) -> None:
        self.rest = rest
        self.deadline = deadline
        self.received = 0


class SelectGreetServer:
    """
    A non-blocking :mod:`selectors` loop over any number of listening sockets.

    Each accepted client gets one ``send``.  If the kernel took the whole greeting and it
    is at most :data:`SMALL` bytes, the socket is half-closed, what the client already
    sent is drained, and the socket is closed at once.  Otherwise the client is watched
    for writability with the rest of the greeting (a view of the shared greeting) until
    it is sent, then half-closed and read until the client closes its side (at most
    :data:`DRAIN_LIMIT` bytes), all within ``timeout`` seconds of connecting.
    """

    def __init__(
        self, sockets: Sequence[socket.socket], data: bytes, timeout: float | None, quiet: bool
    ) -> None:
        self.greeting = data
        self.timeout = timeout
        self.quiet = quiet
        self.selector = selectors.DefaultSelector()
        self.sockets = list(sockets)
        # listening sockets set aside while descriptors are short, and when to retry them
        self.paused: list[socket.socket] = []
        self.resume_at = 0.0
        self.pending: dict[socket.socket, _Pending] = {}
        # the FIONREAD result buffer (see unread_count)
        self.unread = array("i", [0])
        for sock in self.sockets:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, self._accept)

    def _accept(self, listener: socket.socket) -> None:
        """
        Accept every waiting client and greet each.
        """
        data = self.greeting
        quiet = self.quiet
        unread = self.unread
        for _ in range(100):
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _SHORTAGE:
                    _accept_failed(e)
                    self.selector.unregister(listener)
                    self.resume_at = time.monotonic() + 0.1
                    self.paused.append(listener)
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if not quiet:
                log.info("Got connection from %s", _peer(address))
            try:
                # MSG_DONTWAIT: non-blocking for this call, without an fcntl on every
                # connection; only a client whose greeting does not fit is made
                # non-blocking and watched.
                sent = conn.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                conn.close()
                continue
            if sent == len(data) and sent <= SMALL:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                drain_unread(conn, DRAIN_LIMIT, unread)
                conn.close()
                continue
            conn.setblocking(False)
            deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
            client = self.pending[conn] = _Pending(memoryview(data)[sent:], deadline)
            if sent == len(data):
                self._written(conn, client)
            else:
                self.selector.register(conn, selectors.EVENT_WRITE, self._write)

    def _write(self, conn: socket.socket) -> None:
        """
        Send more of a greeting the kernel could not take at once.
        """
        client = self.pending[conn]
        rest = client.rest
        assert rest is not None
        try:
            sent = conn.send(rest)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._forget(conn)
            return
        if sent == len(rest):
            self.selector.unregister(conn)
            self._written(conn, client)
        else:
            client.rest = rest[sent:]

    def _written(self, conn: socket.socket, client: _Pending) -> None:
        """
        The whole greeting is with the kernel: half-close, and read until the client
        closes its side, so that closing cannot reset a greeting still on its way.
        """
        client.rest = None
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            del self.pending[conn]
            conn.close()
            return
        self.selector.register(conn, selectors.EVENT_READ, self._drain)

    def _drain(self, conn: socket.socket) -> None:
        """
        Discard what a client sends after its greeting; close when it closes its side,
        reset it when it sends more than :data:`DRAIN_LIMIT` bytes.
        """
        client = self.pending[conn]
        drained, still_open = discard_unread(conn, DRAIN_LIMIT)
        if not still_open:
            self._forget(conn)
            return
        client.received += drained
        if client.received > DRAIN_LIMIT:
            del self.pending[conn]
            self.selector.unregister(conn)
            _abort(conn)

    def _forget(self, conn: socket.socket) -> None:
        """
        Stop watching ``conn`` and close it.
        """
        del self.pending[conn]
        self.selector.unregister(conn)
        conn.close()

    def _expire(self, now: float) -> None:
        """
        Drop every client whose deadline has passed.
        """
        for conn, client in list(self.pending.items()):
            if client.deadline <= now:
                if not self.quiet:
                    try:
                        peer = _peer(conn.getpeername())
                    except OSError:
                        peer = "a client"
                    log.warning(
                        "Dropped %s: greeting not taken within %g seconds", peer, self.timeout
                    )
                del self.pending[conn]
                self.selector.unregister(conn)
                _abort(conn)

    def serve_forever(self) -> None:
        """
        Run the loop until a stop is requested (:class:`_Stop`).
        """
        select = self.selector.select
        while not _Stop.requested:
            wait = STOP_CHECK
            if self.pending:
                wait = max(0.0, min(c.deadline for c in self.pending.values()) - time.monotonic())
                wait = min(wait, STOP_CHECK)
            if self.paused:
                wait = min(wait, 0.1)
            for key, _ in select(wait):
                key.data(key.fileobj)
            if self.pending:
                self._expire(time.monotonic())
            if self.paused and time.monotonic() >= self.resume_at:
                for listener in self.paused:
                    self.selector.register(listener, selectors.EVENT_READ, self._accept)
                self.paused = []

    def server_close(self) -> None:
        """
        Close every listening and pending socket.
        """
        for conn in list(self.pending):
            self._forget(conn)
        for sock in self.sockets:
            sock.close()
        self.selector.close()


MODES: dict[str, type[_GreetServerMixin] | None] = {
    "serial": SerialGreetServer,
    "threading": ThreadingGreetServer,
    "forking": ForkingGreetServer,
    "select": None,
}


def make_server(
    mode: str, specs: Sequence[ListenSpec], data: bytes, timeout: float | None, quiet: bool
) -> list[Any]:
    """
    Bind every listen description and build the servers for ``mode``.

    :return: one ``SelectGreetServer`` for all sockets in ``select`` mode, otherwise one
        ``socketserver`` server per socket.
    :raises ListenError: when a socket cannot be bound.
    """
    sockets = bind_all(specs)
    if mode == "select":
        return [SelectGreetServer(sockets, data, timeout, quiet)]
    servers = []
    server_class = MODES[mode]
    assert server_class is not None
    for sock in sockets:
        server: Any = server_class(("127.0.0.1", 0), GreetHandler, bind_and_activate=False)  # type: ignore[call-arg]
        server.adopt(sock)
        server.greeting, server.greet_timeout, server.quiet = data, timeout, quiet
        servers.append(server)
    return servers


def serve(servers: Sequence[Any]) -> None:
    """
    Serve until a stop is requested (:class:`_Stop`): the select server runs its own
    loop; ``socketserver`` servers are multiplexed on one selector, each handling a
    request when its socket is readable (what ``serve_forever`` does for one).
    """
    if isinstance(servers[0], SelectGreetServer):
        servers[0].serve_forever()
        return
    with selectors.DefaultSelector() as selector:
        for server in servers:
            selector.register(server, selectors.EVENT_READ)
        while not _Stop.requested:
            for key, _ in selector.select(STOP_CHECK):
                key.fileobj._handle_request_noblock()  # type: ignore[union-attr]
            for server in servers:
                server.service_actions()


# --- the command -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twisted_journey.fallback.greet",
        description="Send every client a greeting, then close (stdlib engine).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--listen",
        "-l",
        action="append",
        metavar="ENDPOINT",
        help="tcp:PORT, tcp6:PORT or unix:PATH, with interface= etc.; repeatable [tcp:1234]",
    )
    parser.add_argument(
        "--mode", choices=list(MODES), default="select", help="how to serve [select]"
    )
    parser.add_argument(
        "--message", "-m", help="greeting text; sent UTF-8 encoded with CRLF appended"
    )
    parser.add_argument("--message-file", help="send this file's bytes exactly as the greeting")
    parser.add_argument(
        "--timeout",
        default=str(DEFAULT_GREET_TIMEOUT),
        metavar="SECONDS",
        help="drop a client that has not taken the whole greeting in this many seconds [30]",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="log no per-connection events")
    return parser


#: How an event is written on stderr.
_LOG_FORMAT = "%(asctime)s [%(name)s] %(message)s"


def _event_line(sentence: str) -> str:
    """
    ``sentence`` as a line of the event log.
    """
    return (
        logging.Formatter(_LOG_FORMAT).format(
            log.makeRecord(log.name, logging.WARNING, "", 0, sentence, (), None)
        )
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the fallback greeting server; return the exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        data = greeting(args.message, args.message_file)
        timeout = seconds("--timeout", args.timeout)
        specs = [parse_listen(d) for d in args.listen or ["tcp:1234"]]
    except (SettingError, ListenError) as e:
        parser.error(str(e))
    # Events never block serving: those a stalled reader cannot take are dropped, counted.
    logging.basicConfig(
        level=logging.INFO,
        format=_LOG_FORMAT,
        stream=event_stream(sys.stderr, _event_line),
    )
    # SIGTERM stops the server as Ctrl-C does: sockets closed, unix socket files removed.
    # Caught before the sockets listen: a client may connect, and a stop arrive, at once.
    signal.signal(signal.SIGTERM, _requestStop)
    signal.signal(signal.SIGINT, _requestStop)
    try:
        servers = make_server(args.mode, specs, data, timeout, args.quiet)
    except ListenError as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 1
    log.info("Greeting on %s (%s mode)", ", ".join(map(str, specs)), args.mode)
    try:
        serve(servers)
    finally:
        for server in servers:
            server.server_close()
        remove_socket_files(specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
