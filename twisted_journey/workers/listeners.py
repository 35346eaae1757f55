# -*- test-case-name: tests.test_workers -*-
"""
The listening sockets of ``--workers N``: bound by the supervisor, adopted by the workers.

The supervisor parses every ``--listen`` endpoint string against a
:class:`BindingReactor`, which binds and listens as the real reactor does but never
accepts, and notes each socket in a :class:`Listener`; a worker parses the same strings
against an :class:`AdoptingReactor`, which adopts the socket it inherited in place of
each listen call.  What an endpoint wraps around its socket (TLS, the PROXY header
reader, the connection limits) is built around the adopted port exactly as around a bound
one: :class:`twisted_journey.policies.ListeningReactor` sits above the adopting reactor
and turns ``listenSSL`` into ``listenTCP`` with TLS's factory.
"""

from __future__ import annotations

import os
import socket
from typing import Any, cast

from twisted.internet import tcp
from twisted.internet.abstract import isIPv6Address
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory

from twisted_journey import _twisted

__all__ = ["AdoptingReactor", "BindingReactor", "IdleFactory", "Listener", "Rebound"]


class Listener:
    """
    The listening socket(s) the supervisor holds for one endpoint.

    :ivar fds: their descriptors in the supervisor: one shared by every worker, or one
        per worker (``tcp:``/``tcp6:``, ``SO_REUSEPORT``).
    :ivar family: their address family.
    :ivar childFd: the descriptor number it must have in a worker: the one systemd gave
        for a ``systemd:`` listener (so the worker's ``LISTEN_FDS`` stay true), else
        ``None`` (any free number).
    :ivar mode: the permissions of a ``unix:`` socket file.
    :ivar ports: the supervisor's ports holding ``fds``, ``None`` where a worker's own
        socket is closed while its slot is down
        (:meth:`~twisted_journey.workers.supervisor.WorkerPool.closeSlot`).
    :ivar address: ``(interface, port, backlog)`` to bind a worker's own socket again.
    """

    def __init__(
        self,
        fds: list[int],
        family: int,
        childFd: int | None = None,
        mode: int | None = None,
        ports: list[Any] | None = None,
        address: tuple[str, int, int] | None = None,
    ) -> None:
        self.fds = fds
        self.family = family
        self.childFd = childFd
        self.mode = mode
        self.ports: list[Any | None] = list(ports or [])
        self.address = address
        #: the port the endpoint returned (its service closes that one)
        self.first = self.ports[0] if self.ports else None

    @property
    def shared(self) -> bool:
        """
        Whether every worker accepts from the same socket.
        """
        return len(self.fds) == 1

    def fdFor(self, index: int) -> int:
        """
        The supervisor's descriptor that worker ``index`` inherits.
        """
        return self.fds[0] if self.shared else self.fds[index]

    def asJSON(self, childFd: int) -> dict[str, Any]:
        """
        What a worker needs to know, with the descriptor it has there.
        """
        return {
            "fd": childFd,
            "family": int(self.family),
            "mode": self.mode,
            "shared": self.shared,
        }


class IdleFactory(Factory):
    """
    The factory of the supervisor's ports, which never accept.
    """

    noisy = False

    def logPrefix(self) -> str:
        """
        How the supervisor's ports name themselves in the log.
        """
        return "supervisor"


def _socketAddress(interface: str, port: int) -> tuple[int, Any]:
    """
    The family and socket address that Twisted's ``tcp.Port`` binds for ``interface``
    and ``port``: IPv6 for an IPv6 literal (a scoped one as Twisted resolves it), else
    IPv4, with a host name left to ``bind`` to resolve.

    :raises OSError: for an IPv6 literal that does not resolve.
    """
    if not isIPv6Address(interface):
        return socket.AF_INET, (interface, port)
    ((_, _, _, _, address),) = socket.getaddrinfo(
        interface, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
    )
    return socket.AF_INET6, address


def _unclaimed(interface: str, port: int) -> None:
    """
    Check that nothing listens on ``interface`` and ``port`` yet, as a plain bind would:
    ``SO_REUSEPORT`` lets any process of the same user join a listening group, so without
    this a second server started on the address would silently take a share of its
    connections instead of failing with "Address already in use".

    :raises twisted.internet.error.CannotListenError: when something holds the address.
    """
    from twisted.internet.error import CannotListenError

    try:
        family, address = _socketAddress(interface, port)
        with socket.socket(family) as probe:
            # As Twisted binds: a connection of an earlier server in TIME_WAIT is no obstacle.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        raise CannotListenError(interface, port, e) from None


class Rebound:
    """
    A worker's own ``SO_REUSEPORT`` socket bound again for its restart
    (:meth:`BindingReactor.bindAgain`), which takes connections only once :meth:`listen`
    is called, after the worker has been started: a start that fails (no descriptor left
    for its pipes) closes it having taken none, so no client is reset by it.
    """

    def __init__(self, interface: str, port: int, backlog: int) -> None:
        family, address = _socketAddress(interface, port)
        self.backlog = backlog
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.socket.setblocking(False)  # as a worker's adopted socket must be
            self.socket.bind(address)
        except BaseException:
            self.socket.close()
            raise

    def fileno(self) -> int:
        """
        The socket's descriptor.
        """
        return self.socket.fileno()

    def listen(self) -> None:
        """
        Start taking connections (its worker accepts them).
        """
        self.socket.listen(self.backlog)

    def stopListening(self) -> None:
        """
        Close the socket.
        """
        self.socket.close()


class BindingReactor:
    """
    The supervisor's reactor for endpoint strings: it binds and listens like the real
    reactor, then stops reading the port (the workers accept), and notes the socket.
    A TCP listen call binds one ``SO_REUSEPORT`` socket per worker (the kernel spreads
    the connections over them).  Everything else is the real reactor's.

    A port the pool closes while a slot is down is bound again by :meth:`bindAgain`.
    """

    def __init__(self, reactor: Any, count: int = 1) -> None:
        self._reactor = reactor
        self.count = count
        self.listeners: list[Listener] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _hold(self, port: Any, childFd: int | None = None, mode: int | None = None) -> Any:
        port.stopReading()
        self.listeners.append(Listener([port.fileno()], port.socket.family, childFd, mode))
        return port

    def bindOne(self, interface: str, port: int, backlog: int) -> Any:
        """
        Bind and listen on one ``SO_REUSEPORT`` socket, never accepting on it.
        """
        binding = tcp.makeBinding(interface, port, reuseAddress=True, reusePort=True)
        listening = self._reactor.listenTCP(binding, IdleFactory(), backlog, interface)
        listening.stopReading()
        return listening

    def bindAgain(self, interface: str, port: int, backlog: int) -> Rebound:
        """
        Bind one ``SO_REUSEPORT`` socket again for a worker's restart, not listening yet.
        """
        return Rebound(interface, port, backlog)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """
        Bind ``count`` ``SO_REUSEPORT`` sockets to ``interface`` and ``port`` (for
        port 0, the one the first gets), one per worker, and note them.

        :return: the first port (the one the endpoint's service closes).
        """
        ports: list[Any] = []
        number = port
        if port:
            _unclaimed(interface, port)
        try:
            for _ in range(self.count):
                listening = self.bindOne(interface, number, backlog)
                ports.append(listening)
                # tcp:0 picks a port for the first socket; the others join it.
                number = listening.getHost().port
        except BaseException:
            for listening in ports:
                listening.stopListening()
            raise
        self.listeners.append(
            Listener(
                [p.fileno() for p in ports],
                ports[0].socket.family,
                ports=ports,
                address=(interface, number, backlog),
            )
        )
        return ports[0]

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """
        As :meth:`listenTCP`: TLS is the workers' business, built around the sockets
        they adopt.
        """
        return self.listenTCP(port, factory, backlog, interface)

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        """
        Listen on the unix socket ``address`` (one socket every worker shares), and note it.
        """
        listening = self._reactor.listenUNIX(address, IdleFactory(), backlog, mode, wantPID)
        return self._hold(listening, mode=mode)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        """
        Adopt a socket systemd handed over (one socket every worker shares), and note it
        with its descriptor number, which it keeps in the workers.
        """
        port = self._reactor.adoptStreamPort(fileDescriptor, addressFamily, IdleFactory())
        return self._hold(port, childFd=fileDescriptor)


class AdoptingReactor:
    """
    A worker's reactor for endpoint strings: each listen call, in the order of the
    ``--listen`` options, adopts the next inherited socket instead of binding one.

    It has no ``listenSSL``: a worker's server factory is always a
    :class:`~twisted_journey.policies.LimitedFactory`, so its endpoints are parsed against
    a :class:`~twisted_journey.policies.ListeningReactor` above this one, which listens
    for ``ssl:`` with ``listenTCP`` and TLS's factory around the server's.
    """

    def __init__(self, reactor: Any, listeners: list[dict[str, Any]]) -> None:
        self._reactor = reactor
        self._pending = list(listeners)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _adopt(self, factory: IProtocolFactory, keepFd: bool = False) -> IListeningPort:
        listener = self._pending.pop(0)
        fd, family = listener["fd"], listener["family"]
        # unix: one socket every worker shares; tcp: this worker's own SO_REUSEPORT socket
        # unless the endpoint could not have one per worker.
        port: tcp.Port = _twisted.adoptListeningPort(
            self._reactor, fd, family, factory, shared=listener.get("shared", True)
        )
        if family == socket.AF_UNIX and listener["mode"] is not None:
            port.mode = listener["mode"]  # type: ignore[attr-defined]
        port.startListening()
        if not keepFd:
            # The port holds a duplicate; ``adoptStreamPort``'s own callers close theirs.
            os.close(fd)
        return cast(IListeningPort, port)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """
        Adopt the next inherited socket (this worker's own ``SO_REUSEPORT`` one) for
        ``factory``, ignoring the address.
        """
        return self._adopt(factory)

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        """
        Adopt the next inherited socket (the one every worker shares) for ``factory``.
        """
        return self._adopt(factory)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        """
        Adopt the next inherited socket (a ``systemd:`` one) for ``factory``; its
        descriptor stays open, as ``adoptStreamPort``'s callers expect.
        """
        return self._adopt(factory, keepFd=True)
