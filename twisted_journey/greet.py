# -*- test-case-name: tests.test_greet -*-
"""
The greeting server, on Twisted (its client, ``journey greet``, is in
:mod:`twisted_journey.client`).

Wire contract: when a client connects, the server writes the greeting (by default exactly
``Thank you for connecting\\r\\n``) and closes the connection.  It reads nothing; whatever
the client sends is discarded.

Use the server in your own application::

    from twisted.application import strports
    from twisted_journey.greet import GreetFactory

    strports.service("tcp:1234", GreetFactory(b"Hello\\r\\n", quiet=True))

``twistd -n journey-greet`` (:mod:`twisted_journey.tap.greet`) builds exactly that.
"""

from __future__ import annotations

import os
import socket
from array import array
from typing import Any, cast

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPullProducer,
    IReactorTime,
    ITCPTransport,
    ITransport,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_journey import _twisted
from twisted_journey.policies import LimitedFactory, LimitedProtocol
from twisted_journey.settings import DEFAULT_GREET_TIMEOUT, DEFAULT_GREETING, GREET_DRAIN_LIMIT
from twisted_journey.sockets import discard_unread, drain_unread, unread_count

__all__ = [
    "DEFAULT_GREETING",
    "GreetFactory",
    "GreetProtocol",
    "GreetingProducer",
]


#: The size of the pieces a large greeting is written in: the most of it that one
#: connection holds in its own buffers, whatever the greeting's size.
CHUNK = 64 * 1024

#: Seconds a TLS connection waits, once the greeting and the server's ``close_notify`` are
#: sent, for the client's ``close_notify`` before the server closes the TCP connection
#: itself (an ``ncat --ssl --recv-only`` never sends one).
CLOSE_GRACE = 2.0

#: Bytes a client may send before the server gives up reading them (and resets the
#: connection): see :data:`twisted_journey.settings.GREET_DRAIN_LIMIT`.
DRAIN_LIMIT = GREET_DRAIN_LIMIT


#: the ``FIONREAD`` result buffer (see :func:`~twisted_journey.sockets.unread_count`):
#: the reactor runs in one thread
_unread = array("i", [0])


@implementer(IPullProducer)
class GreetingProducer:
    """
    Writes the rest of a large greeting to a connection in :data:`CHUNK`-byte pieces, one
    each time the transport's buffer has drained, from the one greeting shared by every
    connection: a client that does not read holds at most one piece, never a copy.

    :param protocol: the connection; told by ``greetingWritten`` when the last piece
        has been handed to its transport.
    :param greeting: the whole greeting (not copied).
    :param offset: how much of it was already sent.
    """

    def __init__(self, protocol: GreetProtocol, greeting: bytes, offset: int) -> None:
        self._protocol: GreetProtocol | None = protocol
        self._view = memoryview(greeting)
        self._offset = offset

    def resumeProducing(self) -> None:
        """
        Write the next piece; after the last, unregister and tell the protocol.
        """
        protocol = self._protocol
        if protocol is None:
            return
        start = self._offset
        self._offset = end = start + CHUNK
        transport = protocol.transport
        transport.write(bytes(self._view[start:end]))
        if end >= len(self._view):
            self._protocol = None
            cast(IConsumer, transport).unregisterProducer()
            protocol.greetingWritten()

    def stopProducing(self) -> None:
        """
        The connection is gone: write nothing more.
        """
        self._protocol = None


@implementer(IHalfCloseableProtocol)
class GreetProtocol(LimitedProtocol):
    """
    Sends :meth:`getGreeting` to the client, then closes the connection.

    If the client has not taken the whole greeting (and closed) after the factory's
    ``timeout`` seconds (a large greeting and a client that does not read), the connection
    is aborted so that it cannot hold the server's descriptor.

    On a plain TCP or UNIX socket transport the greeting is first offered to the socket
    directly; when the kernel takes all of it at once and it is small (at most
    :data:`CHUNK` bytes), whatever the client has already sent is drained and the
    connection is closed at once, as ``loseConnection`` would close it after flushing
    (a FIN), without a trip through the reactor's write buffer, and with no deadline to
    set or cancel.  (A quiet server's plain TCP ports usually greet before any protocol
    is built: see :meth:`GreetFactory.greetAccepted`.)

    Otherwise the deadline is armed and the rest goes through the transport: at most
    :data:`CHUNK` bytes in one ``write``, a larger rest through a :class:`GreetingProducer`
    that writes it piece by piece from the shared greeting, so that a connection never
    holds a copy of a large greeting.  Once it is all written, a plain socket is
    half-closed (``loseWriteConnection``: a FIN after the last byte) and what the client
    sends is read and discarded (at most :data:`DRAIN_LIMIT` bytes) until it closes its
    side: closing a socket with the client's bytes unread would reset the connection and
    could discard the end of the greeting.  Other transports (TLS, ``haproxy:``) close
    with ``loseConnection``; TLS then sends its ``close_notify`` and waits for the
    client's, which a client that only reads may never send: :data:`CLOSE_GRACE` seconds
    after the server's ``close_notify`` went out, the TCP connection under it is closed
    (once what was written is flushed, with a FIN), and the greeting counts as delivered.
    """

    factory: GreetFactory
    transport: ITCPTransport
    _deadline: IDelayedCall | None = None
    #: a plain socket, half-closed once the greeting is written
    _halfClose = False
    #: the whole greeting is written; waiting for the client to close
    _written = False
    #: the client has closed its side
    _clientClosed = False
    #: bytes the client has sent
    _received = 0
    #: the wait for the client's close_notify, after the server's
    _grace: IDelayedCall | None = None
    #: bytes of the greeting the listening port sent before it built this protocol
    #: (:meth:`GreetFactory.greetAccepted` sent them and the kernel took no more)
    sentEarly = 0

    def getGreeting(self) -> bytes:
        """
        The bytes to send to this client; override for a greeting per connection.
        """
        return self.factory.greeting

    def makeConnection(self, transport: ITransport) -> None:
        """
        Connect as any protocol does (``connected``, ``transport``, ``connectionMade``);
        then let the reactor watch a transport built to be watched only after
        ``connectionMade`` (see :attr:`GreetFactory.tcpTransport`).
        """
        self.connected = 1
        self.transport = cast(ITCPTransport, transport)
        try:
            self.connectionMade()
        finally:
            _twisted.watchNow(transport)

    def connectionMade(self) -> None:
        """
        Send the greeting and close once it is written.
        """
        greeting = self.getGreeting()
        transport = self.transport
        sent = self.sentEarly
        if _twisted.isPlainSocket(transport):
            sent += _twisted.sendNow(transport, greeting[sent:] if sent else greeting) or 0
            if sent == len(greeting) and sent <= CHUNK:
                drained = drain_unread(transport.getHandle(), DRAIN_LIMIT, _unread)
                self.factory.bytesReceived += drained.discarded
                _twisted.closeNow(transport)
                return
            self._halfClose = True
        timeout = self.factory.timeout
        if timeout is not None:
            self._deadline = self.factory.clock.callLater(timeout, self._timedOut)
        if len(greeting) - sent > CHUNK:
            producer = GreetingProducer(self, greeting, sent)
            cast(IConsumer, transport).registerProducer(producer, False)
            return
        if sent < len(greeting):
            transport.write(greeting[sent:] if sent else greeting)
        self.greetingWritten()

    def greetingWritten(self) -> None:
        """
        The whole greeting is in the transport: close once it is flushed (half-close a
        plain socket and wait for the client to close its side).
        """
        self._written = True
        if self._halfClose and not self._clientClosed:
            self.transport.loseWriteConnection()
        else:
            self.transport.loseConnection()
            if not self._halfClose and _layers(self.transport)[1] is not None:
                self._grace = self.factory.clock.callLater(self._graceSeconds(), self._graceOver)

    def _graceSeconds(self) -> float:
        """
        :data:`CLOSE_GRACE`, or half the factory's ``timeout`` when that is shorter, so
        that a delivered greeting is never dropped as one not taken.
        """
        timeout = self.factory.timeout
        return CLOSE_GRACE if timeout is None else min(CLOSE_GRACE, timeout / 2)

    def _graceOver(self) -> None:
        """
        The client has not closed :data:`CLOSE_GRACE` seconds after the greeting: once the
        server's TLS ``close_notify`` has gone out (after the handshake, whenever that
        ends), close the socket under the wrappers, after flushing it.
        """
        self._grace = None
        socket, tls = _layers(self.transport)
        if tls is not None and not tls.getHandle().get_shutdown() & SSL.SENT_SHUTDOWN:
            self._grace = self.factory.clock.callLater(self._graceSeconds(), self._graceOver)
            return
        socket.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """
        Discard what the client sends: the greeting protocol reads nothing.  A client that
        sends more than :data:`DRAIN_LIMIT` bytes is dropped.
        """
        self._received += len(data)
        self.factory.bytesReceived += len(data)
        if self._received > DRAIN_LIMIT:
            self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        The client closed its side: close ours once the greeting is written.
        """
        self._clientClosed = True
        if self._written:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Our side is closed after the greeting; the client's close ends the connection.
        """

    def _timedOut(self) -> None:
        """
        The client did not take the greeting (and close) in time: drop it.
        """
        self._deadline = None
        if not self.quiet:
            self.factory.log.warn(
                "Dropped {peer}: greeting not taken within {timeout} seconds",
                peer=self.peer,
                timeout=self.factory.timeout,
            )
        self.factory.timedOut += 1
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        """
        Cancel the deadline and give back this connection's place in the limits.
        """
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        super().connectionLost(reason)


def _layers(transport: object) -> tuple[ITCPTransport, TLSMemoryBIOProtocol | None]:
    """
    The transport at the bottom of ``transport``'s wrappers (each wrapping protocol --
    TLS, a PROXY header reader -- is the transport of the one above and has the one below
    as its ``transport``), and the TLS layer among them, if any.
    """
    tls = None
    while True:
        if isinstance(transport, TLSMemoryBIOProtocol):
            tls = transport
        lower = getattr(transport, "transport", None)
        if lower is None:
            return cast(ITCPTransport, transport), tls
        transport = lower


class GreetFactory(LimitedFactory):
    """
    Builds a :class:`GreetProtocol` for each client.

    :param greeting: the exact bytes every client receives.
    :param timeout: seconds a client has to take the whole greeting, or ``None``.
    :param maxConnections: refuse clients while this many connections are open.
    :param maxPerPeer: refuse a host's clients while it has this many open.
    :param quiet: log no per-connection events.
    :param clock: the clock for timeouts; the global reactor when ``None``.

    :ivar timedOut: clients dropped because they did not take the greeting in time.
    """

    protocol = GreetProtocol
    #: plain TCP connections are watched by the reactor only if the greeting does not
    #: close them within ``connectionMade``
    tcpTransport = _twisted.WatchLaterServer

    def __init__(
        self,
        greeting: bytes = DEFAULT_GREETING,
        *,
        timeout: float | None = DEFAULT_GREET_TIMEOUT,
        maxConnections: int | None = None,
        maxPerPeer: int | None = None,
        quiet: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(maxConnections, maxPerPeer, quiet, clock)
        self.greeting = greeting
        self.timeout = timeout
        self.timedOut = 0

    def greetAccepted(self, fd: int, address: tuple[Any, ...]) -> int | None:
        """
        Greet a client the listening port has just accepted, before anything is built for
        it (plain TCP ports: see ``twisted_journey._twisted.acceptDirectly``), when
        nothing about it needs a protocol: the server is quiet (no event to log), its
        protocol is :class:`GreetProtocol` itself, the greeting is at most :data:`CHUNK`
        bytes, and the limits admit the client.  Then the greeting is written to the
        descriptor (made non-blocking), what the client has already sent is drained, and
        the descriptor closed, with the connection counted as served, as
        :meth:`GreetProtocol.connectionMade` would do on the protocol's fast path.
        Never raises: a failed write leaves the connection to the port, whose transport
        finds out why.

        :param fd: the accepted socket's descriptor, blocking.
        :param address: the client's address, as ``accept`` returns it.

        :return: ``None`` once the client is greeted and the descriptor closed;
            otherwise how much of the greeting was written (0 when nothing was, e.g. the
            connection must be refused or logged), for the port to build the connection
            as usual, whose protocol then sends the rest.
        """
        if not self.quiet or self.protocol is not GreetProtocol:
            return 0
        limits = self.limits
        if limits.maxConnections is not None and limits.open >= limits.maxConnections:
            return 0
        if limits.maxPerPeer is not None:
            if len(address) != 2 and address[3]:
                return 0  # a scoped IPv6 address: the port works out its host
            key = limits.key(address[0])
            if key is not None and limits.perPeer.get(key, 0) >= limits.maxPerPeer:
                return 0
        greeting = self.greeting
        if len(greeting) > CHUNK:
            return 0
        try:
            os.set_blocking(fd, False)
            sent = os.write(fd, greeting)
        except OSError:
            return 0  # nothing taken (EAGAIN), or failed: the transport finds out why
        if sent < len(greeting):
            return sent
        if unread_count(fd, _unread):
            sock = socket.socket(fileno=fd)
            self.bytesReceived += discard_unread(sock, DRAIN_LIMIT).discarded
            sock.close()
        else:
            os.close(fd)
        self.served += 1
        return None
