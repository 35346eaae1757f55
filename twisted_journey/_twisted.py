# -*- test-case-name: tests.test_twisted_internals -*-
"""
Every use of Twisted's private or undocumented API in twisted_journey, in one place.

Public Twisted API (interfaces, ``write``, ``registerProducer``, ``loseWriteConnection``...)
is used where it is needed; anything that leans on how a Twisted class works inside lives
here instead, one section per user, so that a Twisted upgrade has one module to check.
``tests/test_twisted_internals.py`` checks each assumption on real connections and fails
with a message naming it when Twisted changes.  The HTTP client's live in
:mod:`twisted_journey.fetch._twisted`, so that a server never loads ``twisted.web``.

Checked with Twisted 26.10.0 on CPython 3.11 (the greeting fast path also runs under the
epoll, poll, select and asyncio reactors in ``tests/test_greet_contract.py``).

What we rely on
---------------

Greeting fast path (:mod:`twisted_journey.greet`)
    * Exactly ``twisted.internet.tcp.Server`` and ``twisted.internet.unix.Server`` are the
      transports of plain stream sockets (``tcp:``, ``tcp6:``, ``unix:``, ``systemd:``);
      TLS and ``haproxy:`` wrap the protocol in another transport, so the exact type tells
      a plain socket apart.
    * Such a transport has its connected, non-blocking socket as ``.socket``; ``.TLS`` is
      true once ``startTLS`` ran; ``.disconnecting`` once a close was asked for; bytes
      written but not yet sent are counted in ``._tempDataLen`` (``write`` appends there)
      and held in ``.dataBuffer`` (``doWrite`` moves them there).  With all three empty
      and false, nothing is queued, so a direct ``send`` keeps the byte order.
    * Reading that socket (``getHandle()``) directly (``recv`` with ``MSG_DONTWAIT``,
      after an ``ioctl(FIONREAD)``: :func:`twisted_journey.sockets.drain_unread`) inside
      ``connectionMade`` takes nothing the transport expects to read itself: the bytes
      are the greeting protocol's to discard.
    * What the reactor does once ``loseConnection``'s buffer has drained
      (``transport.connectionLost(ConnectionDone)``) is: stop watching the socket
      (``stopReading``; a fresh transport is not writing), mark the transport
      ``disconnected`` and not ``connected``, delete its ``protocol``, ``socket`` and
      ``fileno`` (a later ``connectionLost`` then returns at once), close the socket
      and call the protocol's ``connectionLost``; :func:`closeNow` does the same.
    * ``tcp.Port`` builds each connection's transport by calling its ``transport``
      attribute with ``(socket, protocol, address, port, sessionno, reactor)``, then
      calls ``protocol.makeConnection(transport)``; ``tcp.Server.__init__`` starts
      watching the socket through ``self.startReading()``, which
      :class:`WatchLaterServer` puts off until :func:`watchNow`.
    * A listening ``tcp.Port`` keeps its listening ``socket.socket`` as ``.socket`` and
      accepts by calling its ``accept()`` (:func:`leanAccept` changes its class).
    * Greeting from the accepted descriptor (:func:`acceptDirectly`): the reactor reads
      a listening port by calling its ``doRead`` (looked up on the port, so a port whose
      class is changed in place to a subclass that only overrides methods reads through
      the new one); ``tcp.Port.doRead``, for each client, accepts up to
      ``numberAccepts`` times per call and rescales that attribute afterwards (``+ 20``
      when all were used, else to the number accepted, at least 1), turns an IPv6
      address's scope ID into its host with ``getnameinfo``, builds the address with
      ``_buildAddr``, closes the socket when ``buildProtocol`` returns ``None``, and
      otherwise numbers the connection from ``sessionno`` and builds its transport as
      above; called again after a failed accept, it accepts again and handles the
      failure itself.  And CPython's ``socket.socket._accept()`` (what ``accept()``
      calls) returns the accepted descriptor, blocking and close-on-exec, with the
      peer's address.

Listening services (:mod:`twisted_journey.service`)
    * ``StreamServerEndpointService`` raises a failure to listen from
      ``privilegedStartService`` (instead of only logging it) when its class attribute
      ``_raiseSynchronously`` is true: :class:`SynchronousEndpointService` sets it.
Accepting under descriptor exhaustion (:mod:`twisted_journey.tap.mux`)
    * ``twisted.internet.tcp._reservedFD`` is the module-wide reserve descriptor a
      listening port releases on ``EMFILE`` to accept every waiting client and close it
      unread (their data lost); replacing it with a
      ``tcp._NullFileDescriptorReservation()`` turns that recovery off, so an ``EMFILE``
      just ends that round of accepts and the clients wait in the backlog.
    * ``tcp.Port.doRead`` (also ``unix.Port``'s) accepts through the module function
      ``tcp._accept(logger, accepts, listener, reservedFD)``, a generator of
      ``(socket, address)`` that reports a failed accept with
      ``logger.info("Could not accept new connection ({acceptError})", acceptError=...)``
      and Twisted's ``EMFILE`` recovery with ``logger.info`` events whose format begins
      ``EMFILE``; ``listener`` is the port's ``.socket``.
    * The metrics endpoint's ports (:mod:`twisted_journey.metrics`) accept one connection
      per readable event (:func:`acceptFew`) by the ``numberAccepts`` property below.
Workers: adopted listening sockets (:mod:`twisted_journey.workers`)
    * ``tcp.Port._fromListeningDescriptor(reactor, fd, family, factory)`` and
      ``unix.Port._fromListeningDescriptor(reactor, fd, factory)`` are the constructors
      behind ``adoptStreamPort``; we call them for our own port subclasses.
    * A port accepts up to ``numberAccepts`` connections per readable event and rescales
      that attribute itself; a property that ignores the rescaling fixes it.
    * ``unix.Port`` shuts the socket down at close unless ``_shouldShutdown`` is false,
      and its ``connectionLost`` removes the socket file (``tcp.Port.connectionLost``
      does not).
    * Twisted reads and removes ``LISTEN_FDS``/``LISTEN_FDNAMES`` when it loads its
      endpoint parsers, keeping them on ``endpoints._SystemdParser._sddaemon``.
"""

from __future__ import annotations

import _socket
import socket
from collections.abc import Callable
from typing import Any, TypeGuard, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import tcp, unix
from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import connectionDone
from twisted.python import log
from twisted.python.failure import Failure

__all__ = [
    "PLAIN_TRANSPORTS",
    "DirectSharedTCPPort",
    "DirectTCPPort",
    "FewAcceptsTCPPort",
    "SharedTCPPort",
    "SharedUNIXPort",
    "SynchronousEndpointService",
    "WatchLaterServer",
    "acceptDirectly",
    "acceptFew",
    "adoptListeningPort",
    "closeNow",
    "isPlainSocket",
    "leanAccept",
    "sendNow",
    "stopAcceptShedding",
    "systemdEnvironment",
    "throttleAcceptFailures",
    "watchNow",
]


# --- Greeting fast path (twisted_journey.greet) ------------------------------------------


class WatchLaterServer(tcp.Server):
    """
    A TCP server transport that the reactor starts watching only once its protocol's
    ``connectionMade`` has run (:func:`watchNow`), rather than as it is built: a
    connection its protocol closes within ``connectionMade`` (a greeting the kernel took
    whole) is then never added to the reactor and removed again, two system calls and a
    few steps fewer per connection.  A port builds these when its ``transport`` is set to
    this class.
    """

    _watchLater = True

    def __init__(
        self,
        sock: socket.socket,
        protocol: Any,
        client: tuple[Any, ...],
        server: tcp.Port,
        sessionno: int,
        reactor: Any,
    ) -> None:
        """
        Set what ``tcp.Server.__init__`` sets (checked against it by
        ``tests/test_twisted_internals.py``), but the log prefix and the representation,
        which are worked out when asked for: most connections are closed before anything
        logs them.
        """
        self.reactor = reactor
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0
        self.socket = sock
        sock.setblocking(False)
        self.fileno = sock.fileno
        self.protocol = protocol
        self._protocolClass = protocol.__class__
        if len(client) != 2:
            self._addressType = IPv6Address
        self.server = server
        self.client = client
        self.sessionno = sessionno
        self.hostname = client[0]
        self.connected = 1

    def logPrefix(self) -> str:
        """
        The connection's log prefix, as ``tcp.Server`` builds it (worked out on first
        use, from the protocol's class once the protocol is gone).
        """
        logstr = self.__dict__.get("logstr")
        if logstr is None:
            protocol = getattr(self, "protocol", None)
            prefix = self._protocolClass.__name__
            if protocol is not None:
                prefix = self._getLogPrefix(protocol)
            logstr = self.logstr = f"{prefix},{self.sessionno},{self.hostname}"
        return logstr

    def __repr__(self) -> str:
        """
        The connection's representation, as ``tcp.Server`` builds it.
        """
        repstr = self.__dict__.get("repstr")
        if repstr is None:
            port = self.server._realPortNumber if self.server is not None else None
            repstr = self.repstr = f"<{self._protocolClass.__name__} #{self.sessionno} on {port}>"
        return repstr

    def startReading(self) -> None:
        """
        Watch the socket for reading, unless this is the call made while the transport
        is built (:func:`watchNow` makes it later).
        """
        if not self._watchLater:
            super().startReading()


def watchNow(transport: object) -> None:
    """
    After its protocol's ``connectionMade``, have the reactor watch a
    :class:`WatchLaterServer` transport, as a ``tcp.Server`` is watched from the start
    (unless it was closed meanwhile); any other transport is left as it is.
    """
    if getattr(transport, "_watchLater", False):
        server = cast(WatchLaterServer, transport)
        server._watchLater = False
        if not server.disconnected:
            server.startReading()


class _LeanAcceptSocket(socket.socket):
    """
    A listening socket whose ``accept`` skips what the stdlib's costs per call beyond the
    system calls: turning the listening socket's family and type into enums, only to build
    the accepted socket from them.  Same layout as ``socket.socket`` (no ``__dict__``), so
    a listening socket's class can be changed to it in place (:func:`leanAccept`).
    """

    __slots__ = ()

    def accept(self) -> tuple[socket.socket, Any]:
        """
        Accept a connection, as ``socket.socket.accept`` does.
        """
        fd, address = self._accept()  # type: ignore[attr-defined]
        accepted = socket.socket(_rawFamily(self), _rawType(self), self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            accepted.setblocking(True)
        return accepted, address


_rawFamily = _socket.socket.family.__get__
_rawType = _socket.socket.type.__get__


def leanAccept(port: object) -> None:
    """
    Have a listening ``tcp.Port`` accept through :class:`_LeanAcceptSocket` (its
    ``socket``, a ``socket.socket`` once it listens, accepted from by ``accept()``);
    anything else is left as it is.
    """
    listening = getattr(port, "socket", None)
    if type(listening) is socket.socket:
        listening.__class__ = _LeanAcceptSocket


class _DirectAccept:
    """
    What a listening TCP port does differently when its factory greets from the bare
    descriptor (:func:`acceptDirectly`): each accepted connection is first offered, as a
    descriptor, to the factory's ``greetAccepted``; only when that declines does the port
    build a socket object, an address, a transport and a protocol, as ``tcp.Port``
    does.  No log buffering, no generator, no address object for a connection that the
    factory greets and closes at once.

    The factory's ``greetAccepted(fd, address)`` gets the connected socket's descriptor
    (blocking, close-on-exec) and the peer's address as ``accept`` returns it, and
    returns ``None`` once it has closed the descriptor itself (it must not raise: the
    descriptor is its to close); otherwise how many bytes
    of its greeting it has already written there (0 for none), and the port builds the
    connection as ``tcp.Port`` does, setting the protocol's ``sentEarly`` to that number
    before ``makeConnection`` when it is not 0.

    A failed accept other than "nothing more waiting" (``EMFILE``, ``ECONNABORTED``...)
    hands the rest of the round to ``tcp.Port.doRead``, which accepts again and deals
    with it as it always does (its ``EMFILE`` recovery, and
    :func:`throttleAcceptFailures`' pause and log).
    """

    factory: Any
    socket: Any
    numberAccepts: int
    sessionno: int
    reactor: Any
    transport: Any

    def doRead(self) -> None:
        """
        Accept up to ``numberAccepts`` connections (rescaled after the round as
        ``tcp.Port`` rescales it), greeting each from its descriptor when the factory can.
        """
        port = cast(tcp.Port, self)
        try:
            listener = self.socket
            greet = self.factory.greetAccepted
            accepted = 0
            limit = self.numberAccepts
            while accepted < limit:
                try:
                    fd, address = listener._accept()
                except BlockingIOError:
                    break
                except OSError:
                    tcp.Port.doRead(port)
                    return
                accepted += 1
                sent = greet(fd, address)
                if sent is not None:
                    self._connect(fd, address, sent)
            if accepted == self.numberAccepts:
                self.numberAccepts += 20
            else:
                self.numberAccepts = max(1, accepted)
        except BaseException:
            log.deferr()

    def _connect(self, fd: int, address: Any, sent: int) -> None:
        """
        Build the connection on ``fd`` as ``tcp.Port.doRead`` does, telling the protocol
        how much of its greeting is already sent.
        """
        port = cast(tcp.Port, self)
        listener = self.socket
        skt = socket.socket(_rawFamily(listener), _rawType(listener), listener.proto, fileno=fd)
        if len(address) == 4:
            # IPv6: the scope ID in the host, as tcp.Port gives it
            host = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            address = (host[0], *address[1:])
        protocol = self.factory.buildProtocol(port._buildAddr(address))
        if protocol is None:
            skt.close()
            return
        if sent:
            protocol.sentEarly = sent
        sessionno = self.sessionno
        self.sessionno = sessionno + 1
        transport = self.transport(skt, protocol, address, self, sessionno, self.reactor)
        protocol.makeConnection(transport)


class DirectTCPPort(_DirectAccept, tcp.Port):
    """
    A listening ``tcp:``/``tcp6:`` port whose factory greets from the bare descriptor
    (see :func:`acceptDirectly`).
    """


#: the class each port class becomes under :func:`acceptDirectly`
_DIRECT_PORTS: dict[type, type] = {}


def acceptDirectly(port: object) -> None:
    """
    Have a listening port of exactly ``tcp.Port`` or :class:`SharedTCPPort` (a worker's)
    offer each connection it accepts to its factory's ``greetAccepted`` before building
    anything for it (:class:`_DirectAccept`), by changing its class in place to
    :class:`DirectTCPPort` or :class:`DirectSharedTCPPort` (same layout, the same
    attributes, only ``doRead`` differs); any other port, or one whose factory has no
    ``greetAccepted``, is left as it is.
    """
    direct = _DIRECT_PORTS.get(type(port))
    if direct is not None and hasattr(getattr(port, "factory", None), "greetAccepted"):
        port.__class__ = direct


#: The transports of plain stream sockets, which :mod:`twisted_journey.greet` may write to
#: directly.  Exact types only: a subclass, or a wrapper such as TLS or ``haproxy:``, goes
#: through ``transport.write``.
PLAIN_TRANSPORTS = frozenset({tcp.Server, unix.Server, WatchLaterServer})


def isPlainSocket(transport: object) -> TypeGuard[tcp.Server]:
    """
    Whether ``transport`` is exactly the transport of a plain TCP or UNIX stream socket.
    """
    return type(transport) in PLAIN_TRANSPORTS


def sendNow(transport: tcp.Server, data: bytes) -> int | None:
    """
    Offer ``data`` to the socket of ``transport``, a plain socket transport, directly.

    :return: how many bytes the kernel took: all of them, some, or none (its buffer is
        full, or the send failed and the ordinary write path is left to find out why);
        ``None`` when the transport is not in its fresh state (TLS started, closing, or
        bytes already queued), so that only the ordinary write path keeps the order.
    """
    if transport.TLS or transport.disconnecting or transport._tempDataLen or transport.dataBuffer:
        return None
    try:
        return transport.socket.send(data)
    except OSError:
        return 0


def closeNow(transport: tcp.Server) -> None:
    """
    Close a fresh plain socket transport (nothing queued, no producer: :func:`sendNow`
    did not return ``None``) at once: what the reactor does once ``loseConnection``'s
    buffer has drained (it stops watching the socket, closes it and tells the protocol,
    with Twisted's shared ``ConnectionDone`` failure, as the reactor shares its own),
    in fewer steps.

    The socket is closed without the ``shutdown`` Twisted calls first: an accepted
    socket is close-on-exec and held by this process alone, so ``close`` alone ends the
    connection the same way (a FIN; a reset only if bytes the client sent are unread,
    with or without ``shutdown``), one system call fewer.
    """
    if not getattr(transport, "_watchLater", False):
        transport.stopReading()
    transport.disconnected = 1
    transport.connected = 0
    protocol = transport.protocol
    skt = transport.socket
    # As Twisted's own connectionLost does: without a socket, a second close is a no-op.
    del transport.protocol, transport.socket, transport.fileno
    skt.close()
    protocol.connectionLost(connectionDone)


# --- Listening services (twisted_journey.service) ---------------------------------------------


class SynchronousEndpointService(StreamServerEndpointService):
    """
    A ``StreamServerEndpointService`` whose ``privilegedStartService`` raises when its
    endpoint cannot listen, so the failure can be reported before twistd goes on.
    """

    _raiseSynchronously = True


# --- Accepting under descriptor exhaustion (twisted_journey.tap.mux) -------------------------


#: Twisted's accept loop, which :func:`throttleAcceptFailures` wraps.
_twistedAccept = tcp._accept

#: Seconds a port that could not accept stops watching its socket, which stays readable
#: (one attempt per turn of the reactor would spin a core).
ACCEPT_PAUSE = 0.1


def _unsaid(reason: str) -> str | None:
    """
    Log nothing about a failed accept (until :func:`throttleAcceptFailures`).
    """
    return None


#: Says what to log for a failed accept, or ``None`` for nothing now (set by
#: :func:`throttleAcceptFailures`).
_acceptFailed: Callable[[str], str | None] = _unsaid


class _AcceptLogger:
    """
    The logger handed to Twisted's accept loop: failed accepts are logged as
    ``_acceptFailed`` says (at most one event per second, with a count of the others);
    the per-client events of the ``EMFILE`` recovery are not logged.

    :ivar failed: whether an accept failed (and the port should pause).
    """

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.failed = False

    def info(self, format: str, **kwargs: Any) -> None:
        """
        Pass on an event of the accept loop, or fold it into the accept failure events.
        """
        if format.startswith("Could not accept"):
            self.failed = True
            self._report(str(kwargs.get("acceptError", "?")))
        elif format.startswith("EMFILE encountered"):
            self._report("EMFILE")
        elif not format.startswith(("EMFILE", "Re-reserving EMFILE")):
            self.logger.info(format, **kwargs)

    def _report(self, reason: str) -> None:
        """
        Log a failed accept, if it is time to.
        """
        sentence = _acceptFailed(reason)
        if sentence is not None:
            self.logger.warn("{sentence}", sentence=sentence)


def _accept(logger: Any, accepts: Any, listener: Any, reservedFD: Any) -> Any:
    """
    Twisted's accept loop with :class:`_AcceptLogger`; after a failed accept, the port
    stops watching ``listener`` for :data:`ACCEPT_PAUSE` seconds.
    """
    noticing = _AcceptLogger(logger)
    yield from _twistedAccept(noticing, accepts, listener, reservedFD)
    if noticing.failed:
        _pause(listener)


def _pause(listener: Any) -> None:
    """
    Stop the port listening on ``listener`` reading for :data:`ACCEPT_PAUSE` seconds.
    """
    from twisted.internet import reactor

    readers: list[Any] = reactor.getReaders()
    for reader in readers:
        if getattr(reader, "socket", None) is listener:
            reader.stopReading()
            reactor.callLater(ACCEPT_PAUSE, _resume, reader)


def _resume(port: Any) -> None:
    """
    Watch ``port`` again, unless it has stopped listening meanwhile.
    """
    if getattr(port, "connected", False) and not getattr(port, "disconnecting", False):
        port.startReading()


def throttleAcceptFailures(failed: Callable[[str], str | None]) -> None:
    """
    In this process, a failed accept (out of descriptors or memory) is logged as
    ``failed(reason)`` says (a sentence, or ``None`` for no event now), and a port that
    could not accept rests :data:`ACCEPT_PAUSE` seconds rather than retry at once:
    without this, a listening socket that stays readable spins the reactor and floods
    the log.
    """
    global _acceptFailed
    _acceptFailed = failed
    tcp._accept = _accept


def stopAcceptShedding() -> None:
    """
    Turn off Twisted's ``EMFILE`` recovery in this process: on ``EMFILE`` a listening port
    releases a reserved descriptor and accepts every waiting client only to close it
    unread.  :class:`~twisted_journey.mux.MuxFactory` stops accepting short of the limit
    instead, so with no reserve an ``EMFILE`` (another descriptor taken meanwhile) just
    ends that round of accepts and the clients wait in the backlog.
    """
    tcp._reservedFD = tcp._NullFileDescriptorReservation()


# --- Workers: adopted listening sockets (twisted_journey.workers) ------------------------------


class _FewAccepts:
    """
    Accept at most :attr:`acceptsPerWakeup` connections each time the shared socket is
    readable (Twisted's ports accept up to 100 and more), as nginx does by default
    (``multi_accept off``): every idle worker is woken for a new connection, and one that
    took the whole queue of a burst would leave the others idle, which matters for
    long-lived connections (journey-mux).
    """

    acceptsPerWakeup = 1

    @property
    def numberAccepts(self) -> int:
        """
        How many connections one readable event accepts.
        """
        return self.acceptsPerWakeup

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        """
        Ignore the port's own scaling of its accept loop.
        """


class SharedTCPPort(_FewAccepts, tcp.Port):
    """
    A worker's adopted ``tcp:``/``tcp6:`` port shared with other workers (Twisted already
    leaves an adopted socket un-``shutdown()`` at close).
    """


class SharedUNIXPort(_FewAccepts, unix.Port):
    """
    A worker's adopted ``unix:`` port: closing it leaves the socket file (the supervisor
    owns it, and the next worker adopts the same socket) and does not ``shutdown()`` the
    socket every worker shares.
    """

    _shouldShutdown = False

    def connectionLost(self, reason: Failure) -> None:
        """
        Close the descriptor; leave the file.
        """
        tcp.Port.connectionLost(self, reason)


class FewAcceptsTCPPort(_FewAccepts, tcp.Port):
    """
    A ``tcp:`` port that accepts one connection per readable event (see
    :func:`acceptFew`).
    """


def acceptFew(port: object) -> None:
    """
    Have a listening port of exactly ``tcp.Port`` accept one connection each time its
    socket is readable (:class:`FewAcceptsTCPPort`, same layout), instead of up to a
    hundred and more in one go: connections its factory closes at once (``abortConnection``
    closes the socket on the reactor's next turn) then never pile up into a burst of
    descriptors that another port of the process needs.  Any other port is left as it is.
    """
    if type(port) is tcp.Port:
        port.__class__ = FewAcceptsTCPPort


class DirectSharedTCPPort(_DirectAccept, SharedTCPPort):
    """
    A worker's shared port whose factory greets from the bare descriptor (see
    :func:`acceptDirectly`), one connection per readable event as any
    :class:`SharedTCPPort`.
    """


_DIRECT_PORTS.update({tcp.Port: DirectTCPPort, SharedTCPPort: DirectSharedTCPPort})


def adoptListeningPort(
    reactor: Any, fd: int, family: int, factory: IProtocolFactory, shared: bool = True
) -> tcp.Port:
    """
    A port (not yet listening) on the inherited listening socket ``fd``, as
    ``adoptStreamPort`` builds one, but of our classes: a ``unix:`` socket is always
    shared; a TCP socket is shared (:class:`SharedTCPPort`) unless it is this worker's
    own ``SO_REUSEPORT`` socket, which accepts as greedily as Twisted likes.
    """
    if family == socket.AF_UNIX:
        return SharedUNIXPort._fromListeningDescriptor(reactor, fd, factory)
    cls = SharedTCPPort if shared else tcp.Port
    return cls._fromListeningDescriptor(reactor, fd, family, factory)


def systemdEnvironment() -> dict[str, str]:
    """
    ``LISTEN_FDS`` and ``LISTEN_FDNAMES`` as systemd gave them to this process, for a
    worker (which sets ``LISTEN_PID`` itself): the workers get the same descriptors at the
    same numbers, so that their ``systemd:`` endpoint strings parse as ours did.  Empty
    when this process inherited none, or when Twisted no longer keeps them where we look
    (then a worker's ``systemd:`` endpoint fails, loudly).
    """
    try:
        from twisted.internet.endpoints import _SystemdParser

        inherited = _SystemdParser._sddaemon
        descriptors = inherited.inheritedDescriptors()
        names = {fd: name for name, fd in inherited.inheritedNamedDescriptors().items()}
    except (ImportError, AttributeError):  # pragma: no cover - another Twisted
        return {}
    if not descriptors:
        return {}
    return {
        "LISTEN_FDS": str(len(descriptors)),
        "LISTEN_FDNAMES": ":".join(names.get(fd, "unknown") for fd in descriptors),
    }
