# -*- test-case-name: tests.test_client -*-
"""
The clients of the journey servers, on Twisted: ``journey greet`` and ``journey send``.

:func:`receiveGreeting` prints what a greeting server (:mod:`twisted_journey.greet`) sends
until it closes; :func:`sendStream` streams a file, a pipe or a terminal to a journey-mux
server (:mod:`twisted_journey.mux`) with back-pressure, half-closes at the end of the input
and prints what the server relays.  Their stdlib twins are in
:mod:`twisted_journey.fallback.client`; :mod:`twisted_journey.cli` picks one.

Both connect to a :class:`twisted_journey.errors.Target`: a host and port
(``HostnameEndpoint``) or a unix socket (``UNIXClientEndpoint``), optionally wrapped in TLS
(``wrapClientTLS`` with ``optionsForClientTLS``: the server's certificate is verified against
the system's authorities, ``platformTrust()``, or those of ``--cacert``, and must carry the
host name).  A refused certificate fails the Deferred with :class:`CertificateRefusedError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import fdesc
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IPullProducer,
    IReactorFDSet,
    IReactorTCP,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_journey import errors
from twisted_journey.syslogframe import OctetCounter

__all__ = [
    "CertificateRefusedError",
    "GreetingReceiver",
    "InputReader",
    "InputSender",
    "SendProtocol",
    "clientEndpoint",
    "describeFailure",
    "receiveGreeting",
    "sendStream",
]


# --- connecting --------------------------------------------------------------------------


class CertificateRefusedError(Exception):
    """
    The server's TLS certificate was refused.

    :ivar kind: :data:`~twisted_journey.errors.UNTRUSTED`, :data:`~twisted_journey.errors.MISMATCH`,
        :data:`~twisted_journey.errors.EXPIRED`, :data:`~twisted_journey.errors.NOT_YET_VALID`,
        or :data:`~twisted_journey.errors.HANDSHAKE` (any other TLS failure, with ``detail``).
    :ivar detail: the TLS library's reason.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


def _trustRoot(cacert: str | None) -> Any:
    """
    The authorities to verify a server's certificate against: the system's, or every
    certificate in the PEM file ``cacert``.
    """
    from twisted.internet import ssl

    if cacert is None:
        return ssl.platformTrust()
    with open(cacert, "rb") as f:
        pem = f.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    blocks = [marker + block for block in pem.split(marker)[1:]]
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(block) for block in blocks])


@implementer(IOpenSSLClientConnectionCreator)
class _VerifiedTLS:
    """
    ``optionsForClientTLS(hostname, trustRoot)``, keeping the connection it creates so
    that a failure can be explained from the certificate the server presented.
    """

    def __init__(self, hostname: str, cacert: str | None) -> None:
        from twisted.internet.ssl import optionsForClientTLS

        self.options = optionsForClientTLS(hostname, _trustRoot(cacert))
        self.cacert = cacert
        self.connection: Any = None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        """
        Create the connection, and remember it.
        """
        self.connection = self.options.clientConnectionForTLS(tlsProtocol)
        return self.connection

    def refusal(self, error: BaseException) -> CertificateRefusedError | None:
        """
        The :class:`CertificateRefusedError` that ``error`` amounts to, or ``None`` when it is
        not a TLS failure.
        """
        from OpenSSL import SSL
        from service_identity import VerificationError

        if isinstance(error, VerificationError):
            # Twisted checks the name even when the chain failed: say what the stdlib
            # client says, the chain's problem first.
            return CertificateRefusedError(self.chainProblem() or errors.MISMATCH)
        if not isinstance(error, SSL.Error):
            return None
        reasons = [str(part) for entry in error.args for part in _flatten(entry)]
        if not any("certificate verify failed" in reason for reason in reasons):
            detail = next((r for r in reversed(reasons) if r), "") or str(error)
            return CertificateRefusedError(errors.HANDSHAKE, detail)
        return CertificateRefusedError(self.chainProblem() or errors.UNTRUSTED)

    def chainProblem(self) -> str | None:
        """
        What is wrong with the certificate chain the server presented, checked again
        against the same authorities (the system's default paths, or ``cacert``) for
        OpenSSL's verification code, as the stdlib client reports it; ``None`` when the
        chain verifies (so only the name was wrong) or none was presented.
        """
        import ssl as stdlib

        from OpenSSL import crypto

        chain = self.connection.get_peer_cert_chain() if self.connection is not None else None
        if not chain:
            return None  # nothing presented to judge: the error alone says what failed
        store = crypto.X509Store()
        try:
            if self.cacert is not None:
                store.load_locations(self.cacert)
            else:
                paths = stdlib.get_default_verify_paths()
                if paths.cafile or paths.capath:
                    store.load_locations(paths.cafile, paths.capath)
            crypto.X509StoreContext(store, chain[0], chain[1:]).verify_certificate()
        except crypto.X509StoreContextError as e:
            return errors.certificate_problem(e.errors[0])
        except crypto.Error:
            leaf = chain[0].to_cryptography()
            return errors.certificate_problem(
                None, leaf.not_valid_before_utc, leaf.not_valid_after_utc
            )
        return None


def _flatten(value: object) -> list[object]:
    """
    The leaves of pyOpenSSL's nested error lists (``[(library, function, reason)]``).
    """
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def clientEndpoint(
    reactor: IReactorTCP, target: errors.Target, timeout: float
) -> tuple[IStreamClientEndpoint, _VerifiedTLS | None]:
    """
    The endpoint that connects to ``target``, and its TLS connection creator (``None``
    without TLS), whose ``refusal`` explains a TLS failure.
    """
    endpoint: IStreamClientEndpoint
    if target.port is None:
        endpoint = UNIXClientEndpoint(reactor, target.host, timeout=timeout)
    else:
        endpoint = HostnameEndpoint(reactor, target.host, target.port, timeout=timeout)
    if not target.tls:
        return endpoint, None
    creator = _VerifiedTLS(target.host, target.cacert)
    return wrapClientTLS(creator, endpoint), creator


def _explained(creator: _VerifiedTLS | None, error: BaseException) -> BaseException:
    """
    ``error``, or the :class:`CertificateRefusedError` it amounts to.
    """
    if creator is not None:
        refusal = creator.refusal(error)
        if refusal is not None:
            return refusal
    return error


def _ended(reason: Failure | None) -> bool:
    """
    Whether ``reason`` is a connection ending (closed, reset, aborted) rather than a
    failure to report, such as a refused TLS certificate.
    """
    return reason is None or bool(reason.check(ConnectionDone, ConnectionLost))


# --- journey greet -----------------------------------------------------------------------


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
        The server closed the connection: the greeting is complete (unless TLS failed).
        """
        if _ended(reason):
            self.done.callback(self.received)
        else:
            self.done.errback(reason)


def receiveGreeting(
    reactor: IReactorTCP,
    target: errors.Target,
    write: Callable[[bytes], object],
    timeout: float = 10.0,
    framing: str = "lines",
) -> Deferred[int]:
    """
    Connect to a greeting server, pass what it sends to ``write``, and fire with the byte
    count when it closes the connection.

    :param target: the server, and whether to speak TLS to it.
    :param timeout: seconds for the whole exchange, connecting included; past it the
        Deferred fails with :class:`twisted.internet.defer.TimeoutError`.
    :return: fails with the connection error (``DNSLookupError``,
        ``ConnectionRefusedError``, :class:`CertificateRefusedError`...) when the server cannot
        be reached or its certificate is refused.
    """
    endpoint, creator = clientEndpoint(reactor, target, timeout)
    receiver = GreetingReceiver(write)
    connecting = endpoint.connect(Factory.forProtocol(lambda: receiver))

    async def exchange() -> int:
        await connecting
        try:
            return await receiver.done
        except BaseException as e:
            cast(ITCPTransport, receiver.transport).abortConnection()
            raise _explained(creator, e) from None

    result = Deferred.fromCoroutine(exchange())
    result.addTimeout(timeout, reactor)  # type: ignore[arg-type]
    return result


def describeFailure(failure: Failure, target: errors.Target, timeout: float) -> str:
    """
    One sentence for a person about why :func:`receiveGreeting` (or any client connection
    to ``target``) failed.
    """
    from twisted.internet import defer, error

    host, port = target.host, target.port
    value = failure.value
    if isinstance(value, CertificateRefusedError):
        return errors.tls_failure(value.kind, host, port, value.detail)
    detail = str(value)
    if isinstance(value, error.ConnectError) and value.args and value.args[0]:
        detail = str(value.args[0])  # the system's reason, as the stdlib client says it
    if failure.check(error.DNSLookupError):
        kind = errors.RESOLVE
    elif failure.check(error.ConnectionRefusedError):
        kind = errors.REFUSED
    elif failure.check(defer.TimeoutError, error.TimeoutError, defer.CancelledError):
        kind = errors.TIMEOUT
    else:
        kind = errors.UNREACHABLE
    return errors.connect_failure(kind, host, port, detail, timeout)


# --- journey send ------------------------------------------------------------------------


def _isWatchable(fd: int) -> bool:
    """
    Whether the reactor can wait for ``fd`` to be readable: a pipe, a socket or a
    terminal.  ``epoll`` refuses regular files, directories and devices such as
    ``/dev/null`` (they are always readable, and a read of them does not wait).  A
    descriptor that cannot be examined is not watchable: reading it reports the error.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class _Input:
    """
    What both ``journey send`` input producers do with their descriptor: read a chunk and
    tell the protocol of it, of the end of the input or of a read error.
    """

    chunkSize = 65536
    fd: int
    protocol: SendProtocol

    @property
    def sent(self) -> int:
        """
        The bytes sent so far (counted by the protocol).
        """
        return self.protocol.sent

    def readChunk(self) -> None:
        """
        Read the next chunk and pass it on; a non-blocking input with nothing to read
        yet passes nothing.
        """
        try:
            data = os.read(self.fd, self.chunkSize)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.protocol.inputFailed(e)
            return
        if data:
            self.protocol.inputReceived(data)
        else:
            self.protocol.inputEnded()


@implementer(IPullProducer)
class InputSender(_Input):
    """
    Feeds a regular file's bytes to a transport as fast as it takes them (a pull
    producer: the transport asks for more when its buffer has room).

    Reads block, which for a file (or ``/dev/null``) means only the disk: a file is
    always readable, and the reactor cannot watch one.  Input that can keep the reader
    waiting (a pipe, a terminal, a socket) goes through :class:`InputReader` instead.

    :param fd: the input, open for reading.
    :param protocol: told of each chunk, of the end of the input and of a read error.
    """

    def __init__(self, fd: int, protocol: SendProtocol) -> None:
        self.fd = fd
        self.protocol = protocol

    def start(self) -> None:
        """
        Register with the transport; it pulls the first chunk.
        """
        self.protocol.transport.registerProducer(self, False)

    def stop(self) -> None:
        """
        Nothing to release: the transport asks for no more once it is unregistered.
        """

    def resumeProducing(self) -> None:
        """
        Send the next chunk, or half-close at end of input.
        """
        self.readChunk()

    def stopProducing(self) -> None:
        """
        The connection is gone.
        """


class InputReader(_Input, FileDescriptor):
    """
    Feeds a pipe's, a terminal's or a socket's bytes to a transport as they arrive,
    read when the reactor says the input is readable, so that the reactor keeps running
    (printing what the server relays, noticing it close) while the input is quiet.

    It is the transport's push producer: a full write buffer pauses it
    (:meth:`pauseProducing` stops reading), and resumes it once drained.  While it reads,
    the descriptor is non-blocking; its flags are put back as they were when it stops, for
    a terminal's are shared with the shell that started ``journey send``.

    :param fd: the input, open for reading.
    :param protocol: told of each chunk, of the end of the input and of a read error.
    :param reactor: the reactor to watch ``fd`` with; the global one when ``None``.
    """

    _flags: int | None = None

    def __init__(
        self, fd: int, protocol: SendProtocol, reactor: IReactorFDSet | None = None
    ) -> None:
        FileDescriptor.__init__(self, reactor)
        self.fd = fd
        self.protocol = protocol

    def fileno(self) -> int:
        """
        The input descriptor, for the reactor to watch.
        """
        return self.fd

    def logPrefix(self) -> str:
        """
        What the reactor's log says this descriptor is.
        """
        return "journey send input"

    def start(self) -> None:
        """
        Make the input non-blocking (remembering its flags), register with the transport
        as a push producer and start reading.
        """
        self._flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fdesc.setNonBlocking(self.fd)
        self.connected = 1
        self.protocol.transport.registerProducer(self, True)
        self.startReading()

    def stop(self) -> None:
        """
        Read no more, and give the input back its original flags; safe to call twice.
        """
        self.connected = 0
        self.disconnected = 1
        self.stopReading()
        if self._flags is not None:
            flags, self._flags = self._flags, None
            # The descriptor is the caller's, and outlives us; if it was closed under us
            # there is nothing left to restore.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)

    def doRead(self) -> None:
        """
        The input is readable: send what it holds, or half-close at its end.
        """
        self.readChunk()

    def stopProducing(self) -> None:
        """
        The connection is gone: stop reading.
        """
        self.stop()

    def connectionLost(self, reason: Failure) -> None:
        """
        The reactor dropped the input: at its end (``epoll`` reports a pipe whose writer
        has gone as hung up, without calling :meth:`doRead`), when :meth:`doRead` failed,
        or at shutdown.  Stop reading; tell the protocol of the end or the failure.
        """
        reading = self._flags is not None
        self.stop()
        super().connectionLost(reason)
        if not reading:
            return
        if reason.check(ConnectionDone):
            self.protocol.inputEnded()
        elif not reason.check(ConnectionLost):
            # ConnectionLost is the reactor shutting down: the connection goes with it.
            assert reason.value is not None
            self.protocol.inputFailed(reason.value)


@implementer(IHandshakeListener)
class SendProtocol(Protocol):
    """
    The client side of ``journey send``: streams input, prints what the server sends,
    fires ``done`` when the server closes (with the number of bytes sent) or fails if it
    closed before all the input was sent.

    A regular file (or a device such as ``/dev/null``) is read by an :class:`InputSender`;
    a pipe, a terminal or a socket by an :class:`InputReader`, through the reactor.

    :param fd: the input, open for reading; left open, with its flags as they were.
    :param write: called with each chunk the server sends.
    :param reactor: the reactor that watches a pipe, terminal or socket input; the global
        one when ``None``.
    :param tls: the connection is TLS: read no input until the handshake is done (and the
        server's certificate verified), and end it with TLS's ``close_notify`` alert,
        TLS's half-close, rather than a TCP half-close.
    :param framing: ``"lines"``: the input is sent as it is; ``"syslog"``: each line as
        an octet-counted syslog frame (see :class:`twisted_journey.syslogframe.OctetCounter`).

    :ivar sender: the producer reading the input.
    :ivar sent: the bytes of input written to the connection so far.
    """

    transport: Any
    inputDone = False
    inputError = ""
    sent = 0

    def __init__(
        self,
        fd: int,
        write: Callable[[bytes], object],
        reactor: IReactorFDSet | None = None,
        tls: bool = False,
        framing: str = "lines",
    ) -> None:
        self.fd = fd
        self.write = write
        self.tls = tls
        self.counter = OctetCounter() if framing == "syslog" else None
        self.done: Deferred[int] = Deferred()
        #: fires once the input may be sent: connected, and over TLS, handshake done
        self.ready: Deferred[None] = Deferred()
        self.sender: InputSender | InputReader
        if _isWatchable(fd):
            self.sender = InputReader(fd, self, reactor)
        else:
            self.sender = InputSender(fd, self)

    def connectionMade(self) -> None:
        """
        Start streaming the input (over TLS, once the handshake is done).
        """
        if not self.tls:
            self._start()

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done and the server's certificate verified: start streaming.
        """
        if self.tls:
            self._start()

    def _start(self) -> None:
        """
        Start streaming the input, and say so (``ready``).
        """
        self.sender.start()
        self.ready.callback(None)

    def inputReceived(self, data: bytes) -> None:
        """
        Send a chunk of input (framed, with ``--framing syslog``).
        """
        if self.counter is not None:
            try:
                data = self.counter.frames(data)
            except ValueError as e:
                self.inputFailed(e)
                return
        self.sent += len(data)
        self.transport.write(data)

    def inputEnded(self) -> None:
        """
        The input is finished: half-close, and wait for the server to close.
        """
        self.sender.stop()
        self.transport.unregisterProducer()
        if self.counter is not None:
            last = self.counter.finish()
            self.sent += len(last)
            self.transport.write(last)
        self.inputDone = True
        if self.tls:
            # TLS has no half-close of its own in Twisted: loseConnection sends
            # close_notify and still delivers what the server sends until it answers.
            self.transport.loseConnection()
        else:
            self.transport.loseWriteConnection()

    def inputFailed(self, error: BaseException) -> None:
        """
        The input cannot be read: drop the connection (``done`` fails saying why).
        """
        self.sender.stop()
        self.inputError = getattr(error, "strerror", None) or str(error)
        self.transport.unregisterProducer()
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        """
        Print what the server relays.
        """
        self.write(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The server closed: done, if all the input went out.
        """
        self.sender.stop()
        if not self.ready.called:
            self.ready.callback(None)  # what went wrong is done's to say
        if not _ended(reason):
            assert reason is not None
            self.done.errback(reason)
        elif self.inputError:
            self.done.errback(ConnectionError(f"cannot read the input: {self.inputError}"))
        elif self.inputDone:
            self.done.callback(self.sent)
        else:
            self.done.errback(
                ConnectionError("the server closed the connection before all input was sent")
            )


def sendStream(
    reactor: IReactorTCP,
    target: errors.Target,
    fd: int,
    write: Callable[[bytes], object],
    timeout: float = 10.0,
    framing: str = "lines",
) -> Deferred[int]:
    """
    Connect to a journey-mux server, send everything readable from ``fd`` with
    back-pressure, half-close, pass what the server sends to ``write``, and fire with the
    number of bytes sent when the server closes the connection.

    A pipe, terminal or socket input is read through ``reactor`` (which must also provide
    ``IReactorFDSet``, as every POSIX reactor does), so what the server relays is printed
    while the input is quiet; a regular file is read as fast as the connection takes it.

    :param reactor: connects, and watches the input.
    :param target: the server, and whether to speak TLS to it.
    :param fd: the input, open for reading.
    :param write: called with each chunk the server sends.
    :param timeout: seconds to connect (and over TLS, to finish the handshake).
    :param framing: ``"syslog"`` sends each line as an octet-counted syslog frame.
    :return: fails as :func:`receiveGreeting`'s does, or with ``ConnectionError`` when
        the server closed before all the input was sent or the input could not be read.
    """
    endpoint, creator = clientEndpoint(reactor, target, timeout)
    protocol = SendProtocol(
        fd, write, cast(IReactorFDSet, reactor), tls=target.tls, framing=framing
    )

    async def exchange() -> int:
        await endpoint.connect(Factory.forProtocol(lambda: protocol))
        try:
            # The TLS endpoint has connected once TCP has: the handshake has a deadline too.
            await protocol.ready.addTimeout(timeout, reactor)  # type: ignore[arg-type]
        except BaseException:
            protocol.transport.abortConnection()
            raise
        try:
            return await protocol.done
        except BaseException as e:
            raise _explained(creator, e) from None

    return Deferred.fromCoroutine(exchange())
