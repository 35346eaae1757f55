# -*- test-case-name: tests.test_policies -*-
"""
Connection policies every journey server shares: limits on open connections, in total and
per client host (or network: ``--per-peer-prefix``), enforced before a protocol is built,
and the PROXY header of ``haproxy:`` listeners, read before that.

Twisted's ``LimitConnectionsByPeer`` is broken on Python 3 (it subscripts an address
object, twisted#12183), and ``WrappingFactory`` puts a second protocol object in front of
every connection, so :class:`LimitedFactory` does the counting in ``buildProtocol``
itself: a refused client costs one ``close()`` (``buildProtocol`` returning ``None`` makes
the listening port close the socket at once), and an admitted one costs a counter, plus
two dictionary operations when a per-host limit is set.  The peer's printable name is
only worked out when something logs it.

Behind a proxy (``haproxy:`` endpoints) the listening port sees the proxy, not the client.
:class:`ProxyHeaderFactory` takes the place of Twisted's ``HAProxyWrappingFactory``: it
reads and checks the PROXY header (:mod:`twisted_journey.proxyheader`; Twisted's parser
lets a forged address through) and only then asks the server's factory for a protocol,
with the client's address.  So the limits count clients, not the proxy, and every event
and record names the client, with or without ``--quiet``.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from twisted_journey import _twisted, proxyheader
from twisted_journey.errors import plural
from twisted_journey.listen import format_peer
from twisted_journey.settings import DEFAULT_PEER_PREFIX, ProxySettings, peer_network, trusted_proxy

__all__ = [
    "AdmittingFactory",
    "ConnectionLimits",
    "LimitedFactory",
    "LimitedProtocol",
    "ListeningReactor",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "peerOf",
    "proxied",
]


def peerOf(address: IAddress) -> tuple[str | None, str]:
    """
    The host a limit is keyed on, and the printable peer name, for a connection's address.

    :return: ``(host, name)``; ``host`` is ``None`` for addresses without one (``unix:``).
    """
    host = getattr(address, "host", None)
    return host, format_peer(host, getattr(address, "port", None))


class ConnectionLimits:
    """
    Counts open connections in total and per host (or per network, see ``prefixes``),
    and says whether one more may open.

    :ivar maxConnections: most connections open at once, or ``None`` for no limit.
    :ivar maxPerPeer: most connections open at once from one host, or ``None``.
    :ivar prefixes: ``(v4, v6)`` prefix lengths: ``maxPerPeer`` counts the connections of
        each IPv4 ``/v4`` and IPv6 ``/v6`` network (``--per-peer-prefix``; by default
        ``(32, 64)``: per IPv4 address, per IPv6 /64).
    :ivar open: connections open now.
    :ivar perPeer: open connections by key (:meth:`key`), for keys with any open.
    :ivar refused: connections refused since start, for any reason.
    :ivar refusedTotal: of those, refused at ``maxConnections``.
    :ivar refusedPerPeer: of those, refused at ``maxPerPeer``.
    :ivar refusedProxy: connections dropped before admission for a missing or invalid
        PROXY header (``haproxy:`` listeners; not counted in ``refused``).
    :ivar refusedUntrusted: connections refused at once for coming from outside the
        trusted proxy networks (``--proxy-from``; not counted in ``refused``).
    """

    def __init__(
        self,
        maxConnections: int | None = None,
        maxPerPeer: int | None = None,
        prefixes: tuple[int, int] = DEFAULT_PEER_PREFIX,
    ) -> None:
        self.maxConnections = maxConnections
        self.maxPerPeer = maxPerPeer
        self.prefixes = prefixes
        self.open = 0
        self.perPeer: dict[str, int] = {}
        self.refused = 0
        self.refusedProxy = 0
        self.refusedUntrusted = 0
        self.refusedTotal = 0
        self.refusedPerPeer = 0

    def key(self, host: str | None) -> str | None:
        """
        What a connection from ``host`` is counted under per peer: the host, or its
        network (``10.1.2.0/24``) under a shorter prefix; ``None`` when there is no
        per-peer limit or no host (``unix:``), so nothing is counted per peer.
        """
        if host is None or self.maxPerPeer is None:
            return None
        return peer_network(host, self.prefixes)

    def refusal(self, key: str | None) -> str | None:
        """
        Whether one more connection under ``key`` (from :meth:`key`) must be refused now;
        a refusal is counted, nothing else is.

        :return: ``None`` when it may open, else the reason for refusing, as a phrase.
        """
        if self.maxConnections is not None and self.open >= self.maxConnections:
            self.refused += 1
            self.refusedTotal += 1
            return f"{plural(self.open, 'connection')} open, the most allowed (--max-connections)"
        if key is not None and self.maxPerPeer is not None:
            count = self.perPeer.get(key, 0)
            if count >= self.maxPerPeer:
                self.refused += 1
                self.refusedPerPeer += 1
                where = f"network {key}" if "/" in key else "this host"
                return (
                    f"{plural(count, 'connection')} open from {where}, "
                    "the most allowed (--max-per-peer)"
                )
        return None

    def admit(self, key: str | None) -> str | None:
        """
        Count a new connection under ``key`` (from :meth:`key`) if the limits allow it.

        :return: ``None`` when admitted, else the reason for refusing, as a phrase.
        """
        reason = self.refusal(key)
        if reason is None:
            if key is not None and self.maxPerPeer is not None:
                self.perPeer[key] = self.perPeer.get(key, 0) + 1
            self.open += 1
        return reason

    def release(self, key: str | None) -> None:
        """
        Forget one connection counted under ``key`` by :meth:`admit`.
        """
        self.open -= 1
        if key is not None and self.maxPerPeer is not None:
            count = self.perPeer[key] - 1
            if count:
                self.perPeer[key] = count
            else:
                del self.perPeer[key]


class LimitedProtocol(Protocol):
    """
    A protocol built by a :class:`LimitedFactory`; it gives its place back when it closes.

    Subclasses that override ``connectionLost`` must call this one.

    :ivar address: the client's address, as the listening port (or, behind a proxy, the
        PROXY header) gave it.
    :ivar peerHost: the key (host or network) this connection was counted under: ``None``
        when no per-host limit is set (nothing is counted per host) or the address has
        no host.
    """

    factory: LimitedFactory
    address: IAddress | None = None
    peerHost: str | None = None
    #: log no events for this connection (``--quiet``, or a proxy's health check)
    quiet = False
    _peer: str | None = None

    @property
    def peer(self) -> str:
        """
        The printable peer name (``host:port``, ``[v6host]:port``, or ``unix``), worked
        out on first use: a quiet server never formats it.  Empty without an address.
        """
        if self._peer is None:
            if self.address is None:
                return ""
            self._peer = peerOf(self.address)[1]
        return self._peer

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        """
        Release this connection's place in the factory's limits.
        """
        self.factory.connectionClosed(self, reason)


class LimitedFactory(Factory):
    """
    A factory that refuses connections past its :class:`ConnectionLimits` and logs each
    connection as the chapter's servers print them (``Got connection from PEER``) unless
    ``quiet``.

    :param clock: the clock for timestamps and timers; the global reactor when ``None``.

    :ivar limits: the limits and counters (set ``limits.prefixes`` for
        ``--per-peer-prefix``).
    :ivar quiet: when true, no per-connection events are logged (refusals are still counted).
    :ivar served: connections admitted since start (health checks apart).
    :ivar healthChecks: a proxy's health checks (PROXY ``LOCAL`` connections) admitted
        since start; they are not logged and not counted in ``served``.
    :ivar healthCheck: set only while a PROXY header reader asks for the protocol of a
        health check (through TLS, when the listener has it), see :meth:`buildProtocol`.
    :ivar bytesReceived: bytes received from clients since start (for ``--metrics``).
    :ivar bytesSent: bytes written to clients since start, where the protocol counts them.
    """

    protocol: type[LimitedProtocol]  # type: ignore[assignment]
    log = Logger()
    #: The transport class a plain TCP listening port builds for this factory's
    #: connections (as ``tcp.Port.transport``), or ``None`` for Twisted's own.
    tcpTransport: type[Any] | None = None

    def __init__(
        self,
        maxConnections: int | None = None,
        maxPerPeer: int | None = None,
        quiet: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        self.limits = ConnectionLimits(maxConnections, maxPerPeer)
        self.quiet = quiet
        self.served = 0
        self.healthChecks = 0
        self.healthCheck = False
        self.bytesReceived = 0
        self.bytesSent = 0
        self._clock = clock

    @property
    def clock(self) -> IReactorTime:
        """
        The clock for this server's timestamps and timers: the one given, else the global
        reactor, looked up on first use (never at import, so ``--reactor`` still works).
        """
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast(IReactorTime, reactor)
        return self._clock

    def _key(self, addr: IAddress) -> str | None:
        """
        What a connection from ``addr`` is counted under per peer (see
        :meth:`ConnectionLimits.key`).
        """
        limits = self.limits
        # The host is looked up only for a per-host limit, and the printable name only
        # for an event: a quiet server without limits pays for neither.
        return limits.key(getattr(addr, "host", None)) if limits.maxPerPeer is not None else None

    def _refused(self, addr: IAddress, key: str | None) -> bool:
        """
        Whether a connection from ``addr`` (counted under ``key``) must be refused now;
        a refusal is counted and, unless quiet, logged.
        """
        reason = self.limits.refusal(key)
        if reason is None:
            return False
        if not self.quiet:
            peer = peerOf(addr)[1]
            self.log.warn("Refused connection from {peer}: {reason}", peer=peer, reason=reason)
        return True

    def refuses(self, addr: IAddress) -> bool:
        """
        Whether a connection from ``addr`` would be refused now (counted and logged as
        :meth:`buildProtocol` does).  A wrapping layer in front of this factory (TLS, a
        PROXY header reader) asks first, so that a refused connection is closed before
        anything is built for it; when this says no, :meth:`buildProtocol` for the same
        address, called at once, admits.
        """
        return self._refused(addr, self._key(addr))

    def buildProtocol(self, addr: IAddress) -> LimitedProtocol | None:  # type: ignore[override]
        """
        Build a protocol for a client at ``addr``, or refuse it (``None``: the port closes
        the socket at once) when a limit is reached.

        While ``healthCheck`` is set (by a PROXY header reader that has read a
        ``LOCAL`` header), the connection is the proxy's health check: counted in
        ``healthChecks``, not in ``served``, and its protocol logs no events.
        """
        limits = self.limits
        if limits.maxConnections is None and limits.maxPerPeer is None:
            # No limit to check: count it, and nothing per host.
            host = None
            limits.open += 1
        else:
            host = self._key(addr)
            if self._refused(addr, host):
                return None
            limits.admit(host)
        protocol = self.protocol()
        protocol.factory = self
        protocol.address = addr
        protocol.peerHost = host
        if self.healthCheck:
            self.healthChecks += 1
            protocol.quiet = True
            return protocol
        self.served += 1
        protocol.quiet = self.quiet
        if not self.quiet:
            self.log.info("Got connection from {peer}", peer=protocol.peer)
        return protocol

    def checkDescriptors(self, transport: Any) -> None:
        """
        A connection got a descriptor (``transport``'s, or that of a transport under it):
        a factory that watches the descriptor ceiling stops accepting near it.  This one
        does not.
        """

    def descriptorFreed(self) -> None:
        """
        A connection that :meth:`checkDescriptors` saw has closed.
        """

    def connectionClosed(self, protocol: LimitedProtocol, reason: Failure) -> None:
        """
        Called by each protocol this factory built when its connection closes.
        """
        self.limits.release(protocol.peerHost)

    def stopFactory(self) -> None:
        """
        Log what this factory served when its last listening port stops.
        """
        self.log.info(
            "Served {connections}, refused {refused}",
            connections=plural(self.served, "connection"),
            served=self.served,
            refused=self.limits.refused,
        )


def proxied(description: str) -> str | None:
    """
    The endpoint inside a ``haproxy:`` endpoint string (``tcp:1235`` for
    ``haproxy:tcp:1235``), or ``None`` for any other endpoint.

    Listen on it through a :class:`ListeningReactor` with ``proxy`` settings, instead of
    letting ``serverFromString`` wrap the factory in Twisted's ``HAProxyWrappingFactory``.
    """
    prefix, _, inner = description.partition(":")
    return inner if prefix.lower() == "haproxy" and inner else None


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    """
    A Twisted address for a client named by a PROXY header.
    """
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


def _hostAndPort(address: IAddress) -> tuple[str, int] | None:
    """
    ``(host, port)`` of an IP address, as a PROXY header names one; ``None`` for others.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return None
    return host, port


class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Reads the PROXY header a proxy sends first, in clear, then hands the connection to
    the protocol the factory's ``wrappedFactory`` builds for the client the header names
    (the server's protocol, or TLS around it) unless the server refuses that client, and
    is that protocol's transport: ``getPeer()`` is the client, ``getHost()`` the address
    it connected to.  A header that is not valid, or that does not come within the
    factory's ``headerTimeout``, drops the connection.

    While it waits for the header the connection holds one place in the server's
    ``--max-connections`` (counted under no host: the peer is the proxy), so a crowd of
    connections that send nothing is bounded like any other.

    :ivar proxyAddress: the address of the connection itself (the proxy).
    """

    factory: ProxyHeaderFactory
    transport: Any
    wrappedProtocol: IProtocol | None  # type: ignore[assignment]
    proxyAddress: IAddress
    _buffer = b""
    _source: IAddress | None = None
    _destination: IAddress | None = None
    _timer: IDelayedCall | None = None
    _pending = False

    def logPrefix(self) -> str:
        """
        How the reactor's log names this connection.
        """
        return self.factory.logPrefix()

    def makeConnection(self, transport: Any) -> None:
        """
        Wait for the header (the server's protocol is built once it has come).
        """
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timer = self.factory.clock.callLater(self.factory.headerTimeout, self._timedOut)
        server = self.factory.server
        if server is not None:
            server.checkDescriptors(transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Before the header: read it; after: pass the data on.
        """
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.disconnecting or self._timer is None:
            return
        buffer = self._buffer + data
        try:
            header = proxyheader.parse(buffer)
        except proxyheader.ProxyHeaderError as e:
            self._drop(f"invalid PROXY header: {e}")
            return
        if header is None:
            self._buffer = buffer
            return
        self._buffer = b""
        self._stopTimer()
        self._releasePending()
        healthCheck = header.source is None or header.destination is None
        if not healthCheck and header.source == _hostAndPort(self.proxyAddress):
            # The header names this very connection (HAProxy's version 1 health checks
            # do): it was not relayed, it is the proxy's own.
            healthCheck = True
        if not healthCheck:
            assert header.source is not None and header.destination is not None
            self._source = _address(*header.source)
            self._destination = _address(*header.destination)
        protocol = self._build(self.getPeer(), healthCheck)
        if protocol is None:
            # Refused (the server logged and counted it).
            self.disconnecting = 1
            self.transport.abortConnection()
            return
        self.wrappedProtocol = protocol
        protocol.makeConnection(cast(ITransport, self))
        rest = buffer[header.length :]
        if rest and self.wrappedProtocol is not None and not self.disconnecting:
            self.wrappedProtocol.dataReceived(rest)

    def _build(self, client: IAddress, healthCheck: bool) -> IProtocol | None:
        """
        The protocol for ``client``: the server decides its limits first, so that a
        wrapping factory (TLS) never sees a refusal.  A health check (the proxy's own
        connection: a ``LOCAL`` or ``UNKNOWN`` header, or one that names this connection
        itself) is built as the server's health check: not logged, not counted as a client.
        """
        server = self.factory.server
        wrapped = self.factory.wrappedFactory
        if server is None:
            return wrapped.buildProtocol(client)
        if server.refuses(client):
            return None
        server.healthCheck = healthCheck
        try:
            return wrapped.buildProtocol(client)
        finally:
            server.healthCheck = False

    def getPeer(self) -> IAddress:
        """
        The client the header named (the proxy itself, for a header that names none).
        """
        if self._source is not None:
            return self._source
        return self.transport.getPeer()

    def getHost(self) -> IAddress:
        """
        The address the client connected to, as the header says (else this end's).
        """
        if self._destination is not None:
            return self._destination
        return self.transport.getHost()

    def _releasePending(self) -> None:
        """
        Give back the place this connection held in the limits while it waited.
        """
        if self._pending:
            self._pending = False
            server = self.factory.server
            if server is not None:
                server.limits.release(None)

    def _drop(self, reason: str) -> None:
        """
        Drop a connection whose header is missing or invalid; say so unless quiet.
        """
        self._stopTimer()
        self._buffer = b""
        self.factory.invalidHeaders += 1
        server = self.factory.server
        if server is not None:
            server.limits.refusedProxy += 1
        if not self.factory.quiet:
            self.factory.log.warn(
                "Dropped connection from {peer}: {reason}",
                peer=peerOf(self.proxyAddress)[1],
                reason=reason,
            )
        self.disconnecting = 1
        self.transport.abortConnection()

    def _timedOut(self) -> None:
        """
        No complete header within the factory's ``headerTimeout``.
        """
        self._timer = None
        self._drop(f"no PROXY header within {self.factory.headerTimeout:g} seconds")

    def _stopTimer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        """
        Tell the server's protocol, if there is one yet; else give back the place held.
        """
        self._stopTimer()
        self.factory.unregisterProtocol(self)
        protocol, self.wrappedProtocol = self.wrappedProtocol, None
        if protocol is not None:
            protocol.connectionLost(reason)
            return
        self._releasePending()
        server = self.factory.server
        if server is not None:
            server.descriptorFreed()


class ProxyHeaderFactory(WrappingFactory[ProxyHeaderProtocol]):
    """
    Listens for a server behind a proxy that speaks the PROXY protocol (versions 1 and
    2, told apart by their first bytes): builds a :class:`ProxyHeaderProtocol` per
    connection, which asks ``wrappedFactory`` for the real protocol with the client's
    address once the header has been read and checked.  The header comes first, in
    clear, also on a TLS listener (``wrappedFactory`` is then TLS's factory around the
    server's): that is how HAProxy (``send-proxy``, ``send-proxy-v2``) and nginx
    (``proxy_protocol on``) send it.

    A connection from outside ``trusted`` is closed at once, unread; one waiting for its
    header holds a place in the server's ``--max-connections`` and is dropped after
    ``headerTimeout`` seconds.

    :param wrappedFactory: the factory that builds each client's protocol.
    :param server: the server's factory, whose limits, ``quiet`` and ``clock`` apply
        (``wrappedFactory`` itself when it is a :class:`LimitedFactory` and none is given).
    :param settings: the header timeout and the trusted networks.

    :ivar headerTimeout: seconds a connection has to send its whole header.
    :ivar invalidHeaders: connections dropped for a missing or invalid header.
    :ivar untrusted: connections refused for coming from outside the trusted networks.
    """

    protocol = ProxyHeaderProtocol
    log = Logger()
    noisy = False  # the server's factory says when it starts and stops

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        server: LimitedFactory | None = None,
        settings: ProxySettings | None = None,
    ) -> None:
        super().__init__(wrappedFactory)
        if settings is None:
            settings = ProxySettings()
        if server is None and isinstance(wrappedFactory, LimitedFactory):
            server = wrappedFactory
        self.server = server
        self.headerTimeout = settings.timeout
        self.trusted = settings.trusted
        self.invalidHeaders = 0
        self.untrusted = 0

    @property
    def quiet(self) -> bool:
        """
        Whether per-connection events are logged: as the server's factory says.
        """
        return bool(getattr(self.server or self.wrappedFactory, "quiet", False))

    @property
    def clock(self) -> IReactorTime:
        """
        The server factory's clock, else the global reactor (looked up on first use).
        """
        clock = getattr(self.server or self.wrappedFactory, "clock", None)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        return cast(IReactorTime, clock)

    def logPrefix(self) -> str:
        """
        The server factory's log prefix, marked as behind a proxy.
        """
        wrapped = self.server or self.wrappedFactory
        name = wrapped.logPrefix() if hasattr(wrapped, "logPrefix") else type(wrapped).__name__
        return f"{name} (PROXY)"

    def buildProtocol(self, addr: IAddress) -> ProxyHeaderProtocol | None:  # type: ignore[override]
        """
        A protocol that waits for the header of the connection from the proxy at
        ``addr``; ``None`` (the port closes the socket at once) for a peer outside the
        trusted networks, or when the server has no place left.
        """
        host = getattr(addr, "host", None)
        if self.trusted and host is not None and not trusted_proxy(host, self.trusted):
            self.untrusted += 1
            if self.server is not None:
                self.server.limits.refusedUntrusted += 1
            if not self.quiet:
                self.log.warn(
                    "Refused connection from {peer}: not a trusted proxy (--proxy-from)",
                    peer=peerOf(addr)[1],
                )
            return None
        server = self.server
        if server is not None and server._refused(addr, None):
            return None
        protocol = self.protocol(self, None)  # type: ignore[arg-type]
        protocol.proxyAddress = addr
        if server is not None:
            server.limits.admit(None)
            protocol._pending = True
        return protocol


class AdmittingFactory(WrappingFactory):
    """
    The outermost factory of a listener whose server factory is wrapped by another
    (TLS's): asks the server whether it takes a connection before the wrapping factory
    builds anything, so that a refused connection is closed at once (``None``: the port
    closes the socket), before any handshake, and counted; an admitted one gets the
    wrapping factory's protocol itself (no protocol object of its own).

    :param wrappedFactory: the wrapping factory (e.g. ``TLSMemoryBIOFactory``).
    :param server: the server's factory, which it wraps.
    """

    noisy = False  # the server's factory says when it starts and stops

    def __init__(self, wrappedFactory: IProtocolFactory, server: LimitedFactory) -> None:
        super().__init__(wrappedFactory)
        self.server = server

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """
        The wrapping factory's protocol for ``addr``, or ``None`` when the server refuses.
        """
        if addr is None or self.server.refuses(addr):
            return None
        return self.wrappedFactory.buildProtocol(addr)


class ListeningReactor:
    """
    The reactor a journey server's endpoint strings are parsed against: every listening
    call (``listenTCP``, ``listenSSL``, ``listenUNIX``, ``adoptStreamPort``) gets the
    factory that decides the server's limits outermost, whatever the endpoint wraps
    around the server's factory.

    - A plain endpoint listens with the server's factory itself.
    - ``ssl:`` and ``tls:`` (whose endpoints wrap the server's factory in TLS's) listen
      with an :class:`AdmittingFactory` around TLS: a refused connection is closed before
      its handshake.
    - With ``proxy`` settings (a ``haproxy:`` listener), a :class:`ProxyHeaderFactory` is
      outermost: the PROXY header is read in clear, before TLS when there is TLS, and
      the server's limits apply to the client it names.

    Everything else is the ``reactor``'s.

    :param reactor: the reactor (in a worker, the one that adopts inherited sockets).
    :param server: the server's factory.
    :param proxy: how PROXY headers are read, for a ``haproxy:`` listener; else ``None``.
    """

    def __init__(
        self, reactor: Any, server: LimitedFactory, proxy: ProxySettings | None = None
    ) -> None:
        self._reactor = reactor
        self._server = server
        self._proxy = proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _outermost(self, factory: IProtocolFactory) -> IProtocolFactory:
        """
        The factory a port listens with for ``factory`` (the server's, or one around it).
        """
        if self._proxy is not None:
            return ProxyHeaderFactory(factory, self._server, self._proxy)
        if factory is self._server:
            return factory
        return AdmittingFactory(factory, self._server)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """
        Listen on TCP ``port`` with the outermost factory for ``factory``.
        """
        outermost = self._outermost(factory)
        listening = self._reactor.listenTCP(port, outermost, backlog, interface)
        return self._plain(listening, outermost)

    def _plain(self, port: Any, outermost: IProtocolFactory) -> Any:
        """
        ``port``, building the server's own TCP transports when it listens with the
        server's factory itself (not TLS or a PROXY reader) and that asks for them, and
        offering each accepted descriptor to the factory first when it can greet from one
        (``greetAccepted``).
        """
        if outermost is self._server and self._server.tcpTransport is not None:
            port.transport = self._server.tcpTransport
            _twisted.leanAccept(port)
            _twisted.acceptDirectly(port)
        return port

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """
        Listen as the reactor's ``listenSSL`` does (TCP with TLS's factory around
        ``factory``), with the outermost factory around both.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        tls = TLSMemoryBIOFactory(contextFactory, False, factory)
        listening = self.listenTCP(port, tls, backlog, interface)
        listening._type = "TLS"
        return listening

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        """
        Listen on the unix socket ``address`` with the outermost factory for ``factory``.
        """
        return self._reactor.listenUNIX(address, self._outermost(factory), backlog, mode, wantPID)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        """
        Listen on an inherited socket (``systemd:``) with the outermost factory for
        ``factory``.
        """
        outermost = self._outermost(factory)
        port = self._reactor.adoptStreamPort(fileDescriptor, addressFamily, outermost)
        if addressFamily == socket.AF_UNIX:
            return port
        return self._plain(port, outermost)
