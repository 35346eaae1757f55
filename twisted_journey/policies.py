# -*- test-case-name: tests.test_policies -*-
"""
Connection policies every journey server shares: limits on open connections, in total and
per client host, enforced before a protocol is built.

Twisted's ``LimitConnectionsByPeer`` is broken on Python 3 (it subscripts an address
object, twisted#12183), and ``WrappingFactory`` puts a second protocol object in front of
every connection, so :class:`LimitedFactory` does the counting in ``buildProtocol``
itself: a refused client costs one ``close()`` (``buildProtocol`` returning ``None`` makes
the listening port close the socket at once), and an admitted one costs a counter, plus
two dictionary operations when a per-host limit is set.  The peer's printable name is
only worked out when something logs it.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_journey.listen import format_peer

__all__ = ["ConnectionLimits", "LimitedFactory", "LimitedProtocol", "peerOf"]


def peerOf(address: IAddress) -> tuple[str | None, str]:
    """
    The host a limit is keyed on, and the printable peer name, for a connection's address.

    :return: ``(host, name)``; ``host`` is ``None`` for addresses without one (``unix:``).
    """
    host = getattr(address, "host", None)
    return host, format_peer(host, getattr(address, "port", None))


class ConnectionLimits:
    """
    Counts open connections in total and per host, and says whether one more may open.

    :ivar maxConnections: most connections open at once, or ``None`` for no limit.
    :ivar maxPerPeer: most connections open at once from one host, or ``None``.
    :ivar open: connections open now.
    :ivar perPeer: open connections by host, for hosts with any open.
    :ivar refused: connections refused since start.
    :ivar refusedTotal: of which by ``maxConnections``.
    :ivar refusedPerPeer: of which by ``maxPerPeer``.
    """

    def __init__(self, maxConnections: int | None = None, maxPerPeer: int | None = None) -> None:
        self.maxConnections = maxConnections
        self.maxPerPeer = maxPerPeer
        self.open = 0
        self.perPeer: dict[str, int] = {}
        self.refused = 0
        self.refusedTotal = 0
        self.refusedPerPeer = 0

    def admit(self, host: str | None) -> str | None:
        """
        Count a new connection from ``host`` if the limits allow it.

        :return: ``None`` when admitted, else the reason for refusing, as a phrase.
        """
        if self.maxConnections is not None and self.open >= self.maxConnections:
            self.refused += 1
            self.refusedTotal += 1
            return f"{self.open} connections open, the most allowed (--max-connections)"
        if host is not None and self.maxPerPeer is not None:
            count = self.perPeer.get(host, 0)
            if count >= self.maxPerPeer:
                self.refused += 1
                self.refusedPerPeer += 1
                return f"{count} connections open from this host, the most allowed (--max-per-peer)"
            self.perPeer[host] = count + 1
        self.open += 1
        return None

    def release(self, host: str | None) -> None:
        """
        Forget one connection from ``host`` that :meth:`admit` counted.
        """
        self.open -= 1
        if host is not None and self.maxPerPeer is not None:
            count = self.perPeer[host] - 1
            if count:
                self.perPeer[host] = count
            else:
                del self.perPeer[host]


class LimitedProtocol(Protocol):
    """
    A protocol built by a :class:`LimitedFactory`; it gives its place back when it closes.

    Subclasses that override ``connectionLost`` must call this one.

    :ivar address: the client's address, as the listening port gave it.
    :ivar peerHost: the host this connection was counted under: ``None`` when no
        per-host limit is set (nothing is counted per host) or the address has no host.
    """

    factory: LimitedFactory
    address: IAddress | None = None
    peerHost: str | None = None
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

    :ivar limits: the limits and counters.
    :ivar quiet: when true, no per-connection events are logged (refusals are still counted).
    :ivar served: connections admitted since start.
    :ivar bytesReceived: bytes received from clients since start (for ``--metrics``).
    :ivar bytesSent: bytes written to clients since start, where the protocol counts them.
    """

    protocol: type[LimitedProtocol]  # type: ignore[assignment]
    log = Logger()

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

    def buildProtocol(self, addr: IAddress) -> LimitedProtocol | None:  # type: ignore[override]
        """
        Build a protocol for a client at ``addr``, or refuse it (``None``: the port closes
        the socket at once) when a limit is reached.
        """
        limits = self.limits
        # The host is looked up only for a per-host limit, and the printable name only
        # for an event: a quiet server without limits pays for neither.
        host = getattr(addr, "host", None) if limits.maxPerPeer is not None else None
        reason = limits.admit(host)
        if reason is not None:
            if not self.quiet:
                peer = peerOf(addr)[1]
                self.log.warn("Refused connection from {peer}: {reason}", peer=peer, reason=reason)
            return None
        self.served += 1
        protocol = self.protocol()
        protocol.factory = self
        protocol.address = addr
        protocol.peerHost = host
        if not self.quiet:
            self.log.info("Got connection from {peer}", peer=protocol.peer)
        return protocol

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
            "Served {served} connections, refused {refused}",
            served=self.served,
            refused=self.limits.refused,
        )
