# -*- test-case-name: tests.test_greet -*-
"""
The greeting server and its client, on Twisted.

Wire contract: when a client connects, the server writes the greeting (by default exactly
``Thank you for connecting\\r\\n``) and closes the connection.  It reads nothing; whatever
the client sends is discarded.  The client reads until the server closes.

Use the server in your own application::

    from twisted.application import strports
    from twisted_journey.greet import GreetFactory

    strports.service("tcp:1234", GreetFactory(b"Hello\\r\\n", quiet=True))

``twistd -n journey-greet`` (:mod:`twisted_journey.tap.greet`) builds exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from twisted_journey import errors
from twisted_journey.policies import LimitedFactory, LimitedProtocol
from twisted_journey.settings import DEFAULT_GREET_TIMEOUT, DEFAULT_GREETING

__all__ = [
    "DEFAULT_GREETING",
    "GreetFactory",
    "GreetProtocol",
    "GreetingReceiver",
    "describeFailure",
    "receiveGreeting",
]


#: The transports of plain stream sockets (``tcp:``, ``tcp6:``, ``unix:``, ``systemd:``),
#: which :meth:`GreetProtocol.connectionMade` may write to directly.  Exact types only: a
#: subclass, or a wrapper such as TLS or ``haproxy:``, goes through ``transport.write``.
_PLAIN_TRANSPORTS = frozenset({tcp.Server, unix.Server})


class GreetProtocol(LimitedProtocol):
    """
    Sends :meth:`getGreeting` to the client, then closes the connection.

    If the client has not taken the whole greeting after the factory's ``timeout``
    seconds (a large greeting and a client that does not read), the connection is
    aborted so that it cannot hold the server's memory and descriptor.

    On a plain TCP or UNIX socket transport the greeting is first offered to the socket
    directly; when the kernel takes all of it, the connection is closed at once, as
    ``loseConnection`` would close it after flushing (``shutdown``, then ``close``: a FIN),
    without a trip through the reactor's write buffer, and with no deadline to set or
    cancel.  Otherwise (part of it sent, TLS, a wrapped transport) the rest goes through
    ``transport.write`` and ``loseConnection``, and the deadline is armed.
    """

    factory: GreetFactory
    transport: ITCPTransport
    _deadline: IDelayedCall | None = None

    def getGreeting(self) -> bytes:
        """
        The bytes to send to this client; override for a greeting per connection.
        """
        return self.factory.greeting

    def connectionMade(self) -> None:
        """
        Send the greeting and close once it is written.
        """
        greeting = self.getGreeting()
        transport = self.transport
        if type(transport) in _PLAIN_TRANSPORTS:
            plain = cast(tcp.Server, transport)
            sent = _sendNow(plain, greeting)
            if sent == len(greeting):
                # What the reactor does once loseConnection's buffer has drained (with
                # Twisted's shared ConnectionDone failure, as the reactor shares its own).
                plain.connectionLost(connectionDone)
                return
            if sent:
                greeting = greeting[sent:]
        transport.write(greeting)
        transport.loseConnection()
        timeout = self.factory.timeout
        if timeout is not None:
            self._deadline = self.factory.clock.callLater(timeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        """
        Discard what the client sends: the greeting protocol reads nothing.
        """
        self.factory.bytesReceived += len(data)

    def _timedOut(self) -> None:
        """
        The client did not take the greeting in time: drop it.
        """
        self._deadline = None
        if not self.factory.quiet:
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
        super().connectionLost(reason)


def _sendNow(transport: tcp.Server, data: bytes) -> int | None:
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


class GreetingReceiver(Protocol):
    """
    The client side: hands every chunk it receives to ``write`` and fires ``done`` with
    the number of bytes received when the server closes the connection.
    """

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write
        self.received = 0
        self.done: Deferred[int] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """
        Pass the data on as it arrives.
        """
        self.received += len(data)
        self.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The server closed the connection: the greeting is complete.
        """
        self.done.callback(self.received)


def receiveGreeting(
    reactor: IReactorTCP,
    host: str,
    port: int,
    write: Callable[[bytes], object],
    timeout: float = 10.0,
) -> Deferred[int]:
    """
    Connect to a greeting server, pass what it sends to ``write``, and fire with the byte
    count when it closes the connection.

    :param timeout: seconds for the whole exchange, connecting included; past it the
        Deferred fails with :class:`twisted.internet.defer.TimeoutError`.
    :return: fails with the connection error (``DNSLookupError``,
        ``ConnectionRefusedError``, ...) when the server cannot be reached.
    """
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    receiver = GreetingReceiver(write)
    connecting = endpoint.connect(Factory.forProtocol(lambda: receiver))

    async def exchange() -> int:
        await connecting
        try:
            return await receiver.done
        except BaseException:
            cast(ITCPTransport, receiver.transport).abortConnection()
            raise

    result = Deferred.fromCoroutine(exchange())
    result.addTimeout(timeout, reactor)  # type: ignore[arg-type]
    return result


def describeFailure(failure: Failure, host: str, port: int, timeout: float) -> str:
    """
    One sentence for a person about why :func:`receiveGreeting` (or any client connection
    to ``host``/``port``) failed.
    """
    from twisted.internet import defer, error

    if failure.check(error.DNSLookupError):
        kind = errors.RESOLVE
    elif failure.check(error.ConnectionRefusedError):
        kind = errors.REFUSED
    elif failure.check(defer.TimeoutError, error.TimeoutError, defer.CancelledError):
        kind = errors.TIMEOUT
    else:
        kind = errors.UNREACHABLE
    return errors.connect_failure(kind, host, port, str(failure.value), timeout)
