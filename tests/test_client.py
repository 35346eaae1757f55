"""
Tests for :mod:`twisted_journey.client` and :mod:`twisted_journey.fallback.client`, the
``journey greet`` and ``journey send`` clients: their protocols on in-memory transports and
reactors, and the Twisted client against real loopback servers in-process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_journey import errors
from twisted_journey.client import (
    CertificateRefusedError,
    GreetingReceiver,
    InputReader,
    InputSender,
    SendProtocol,
    _VerifiedTLS,
    describeFailure,
    receiveGreeting,
)
from twisted_journey.errors import Target
from twisted_journey.greet import GreetFactory


class DescribeFailureTests(SynchronousTestCase):
    """
    ``describeFailure`` turns connection failures into one sentence.
    """

    def test_kinds(self) -> None:
        """
        Each failure class gets its own sentence, naming the host and port.
        """
        cases = [
            (error.DNSLookupError("x"), "cannot resolve host name 'nowhere'."),
            (
                error.ConnectionRefusedError(),
                "connection to nowhere port 7 refused: is the server running?",
            ),
            (defer.TimeoutError(), "no complete answer from nowhere port 7 within 2.5 seconds."),
            (error.NoRouteError(), "cannot reach nowhere port 7: "),
        ]
        for exception, sentence in cases:
            self.assertTrue(
                describeFailure(Failure(exception), Target("nowhere", 7), 2.5).startswith(sentence),
                describeFailure(Failure(exception), Target("nowhere", 7), 2.5),
            )

    def test_unixSocket(self) -> None:
        """
        A unix socket is named as one, with the system's reason as the stdlib client
        gives it.
        """
        target = Target("/run/j.sock")
        self.assertEqual(
            describeFailure(Failure(error.ConnectError(2, "No such file or directory")), target, 1),
            "cannot reach unix socket /run/j.sock: No such file or directory.",
        )
        self.assertEqual(
            describeFailure(Failure(error.ConnectionRefusedError()), target, 1),
            "connection to unix socket /run/j.sock refused: is the server running?",
        )

    def test_certificateRefused(self) -> None:
        """
        A refused certificate's sentence names the problem.
        """
        target = Target("h", 443, tls=True)
        self.assertEqual(
            describeFailure(Failure(CertificateRefusedError(errors.EXPIRED)), target, 1),
            "refused the TLS certificate of h port 443: it has expired.",
        )
        self.assertEqual(
            describeFailure(
                Failure(CertificateRefusedError(errors.HANDSHAKE, "no ciphers")), target, 1
            ),
            "TLS with h port 443 failed: no ciphers.",
        )


class VerifiedTLSTests(SynchronousTestCase):
    """
    ``_VerifiedTLS.refusal`` tells a refused certificate's problem from the error and the
    certificate the server presented.
    """

    def test_kinds(self) -> None:
        """
        A host name mismatch, a chain that does not verify (expired, or untrusted), and
        another TLS error each get their kind; anything else is not a refusal.
        """
        from OpenSSL import SSL
        from service_identity import VerificationError

        creator = _VerifiedTLS("localhost", None)
        refusal = creator.refusal(VerificationError(errors=[]))
        assert refusal is not None
        self.assertEqual(refusal.kind, errors.MISMATCH)
        verifyFailed = SSL.Error([("SSL routines", "", "certificate verify failed")])
        refusal = creator.refusal(verifyFailed)
        assert refusal is not None
        self.assertEqual(refusal.kind, errors.UNTRUSTED)  # no certificate seen
        refusal = creator.refusal(SSL.Error([("SSL routines", "", "no shared cipher")]))
        assert refusal is not None
        self.assertEqual((refusal.kind, refusal.detail), (errors.HANDSHAKE, "no shared cipher"))
        self.assertIsNone(creator.refusal(error.ConnectionLost()))


class ReceiveGreetingTests(TestCase):
    """
    ``receiveGreeting`` against real servers on loopback, in this process.
    """

    def listen(self, protocol: type[Protocol] | None = None, factory: Factory | None = None) -> int:
        """
        Listen on a free loopback port; stop listening after the test.
        """
        from twisted.internet import reactor

        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        factory = factory or Factory.forProtocol(protocol)  # type: ignore[arg-type]
        d = endpoint.listen(factory)

        def listening(p: object) -> int:
            self.addCleanup(p.stopListening)  # type: ignore[attr-defined]
            return p.getHost().port  # type: ignore[attr-defined,no-any-return]

        return d.addCallback(listening)  # type: ignore[return-value]

    @defer.inlineCallbacks
    def test_receivesUntilClose(self):  # type: ignore[no-untyped-def]
        """
        Everything the server sends is passed on, and the Deferred fires with the count
        when it closes.
        """
        from twisted.internet import reactor

        port = yield self.listen(factory=GreetFactory(b"x" * 100000, quiet=True))
        chunks: list[bytes] = []
        count = yield receiveGreeting(reactor, Target("127.0.0.1", port), chunks.append, timeout=10)
        self.assertEqual(b"".join(chunks), b"x" * 100000)
        self.assertEqual(count, 100000)

    @defer.inlineCallbacks
    def test_refused(self):  # type: ignore[no-untyped-def]
        """
        Nothing listening: the Deferred fails with ``ConnectionRefusedError``.
        """
        from twisted.internet import reactor

        from tests.support import freePort

        yield self.assertFailure(
            receiveGreeting(reactor, Target("127.0.0.1", freePort()), lambda _: None, 5),
            error.ConnectionRefusedError,
        )

    @defer.inlineCallbacks
    def test_timeout(self):  # type: ignore[no-untyped-def]
        """
        A server that never closes: the Deferred fails with ``TimeoutError`` after the
        timeout and the connection is dropped.
        """
        from twisted.internet import reactor

        connections: list[Protocol] = []

        class Silent(Protocol):
            def connectionMade(self) -> None:
                connections.append(self)

        port = yield self.listen(Silent)
        yield self.assertFailure(
            receiveGreeting(reactor, Target("127.0.0.1", port), lambda _: None, 0.2),
            defer.TimeoutError,
        )
        for protocol in connections:
            assert protocol.transport is not None
            protocol.transport.loseConnection()

    def test_receiverCountsBytes(self) -> None:
        """
        ``GreetingReceiver`` passes data on as it comes and fires ``done`` with the count.
        """
        chunks: list[bytes] = []
        receiver = GreetingReceiver(chunks.append)
        receiver.dataReceived(b"ab")
        receiver.dataReceived(b"c")
        receiver.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(chunks, [b"ab", b"c"])
        self.assertEqual(self.successResultOf(receiver.done), 3)

    def test_receiverFailsOnTLSError(self) -> None:
        """
        A connection that ends in an error other than a close or reset (a refused TLS
        certificate) fails ``done`` rather than passing for an empty greeting.
        """
        receiver = GreetingReceiver(lambda _: None)
        receiver.connectionLost(Failure(ValueError("certificate verify failed")))
        self.failureResultOf(receiver.done, ValueError)
        receiver = GreetingReceiver(lambda _: None)
        receiver.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(self.successResultOf(receiver.done), 0)


class HalfCloseableTransport(StringTransport):
    """
    A ``StringTransport`` that records ``loseWriteConnection``.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


class SendProtocolTests(SynchronousTestCase):
    """
    :class:`SendProtocol`, the ``journey send`` client: a regular file is pulled by an
    :class:`InputSender`, a pipe is read through the reactor by an :class:`InputReader`.
    """

    def pipe(self) -> tuple[int, int]:
        """
        A pipe whose ends are closed after the test (unless the test closed them).
        """
        read, write = os.pipe()
        for fd in (read, write):
            self.addCleanup(_closeQuietly, fd)
        return read, write

    def connected(self, fd: int) -> tuple[SendProtocol, HalfCloseableTransport, MemoryReactorClock]:
        """
        A protocol sending ``fd``, connected to a transport, on a fake reactor.
        """
        reactor = MemoryReactorClock()
        protocol = SendProtocol(fd, self.received.append, reactor)
        transport = HalfCloseableTransport()
        protocol.makeConnection(transport)
        return protocol, transport, reactor

    def setUp(self) -> None:
        self.received: list[bytes] = []

    def test_tlsWaitsForTheHandshake(self) -> None:
        """
        Over TLS nothing is read until the handshake is done, and the end of the input is
        TLS's close (``loseConnection`` sends ``close_notify``), not a TCP half-close.
        """
        read, write = self.pipe()
        reactor = MemoryReactorClock()
        protocol = SendProtocol(read, self.received.append, reactor, tls=True)
        transport = HalfCloseableTransport()
        protocol.makeConnection(transport)
        self.assertIsNone(transport.producer)
        self.assertEqual(reactor.getReaders(), [])
        protocol.handshakeCompleted()
        self.assertIs(transport.producer, protocol.sender)
        self.assertEqual(reactor.getReaders(), [protocol.sender])
        os.write(write, b"secret\n")
        os.close(write)
        protocol.sender.doRead()
        protocol.sender.doRead()
        self.assertEqual(transport.value(), b"secret\n")
        self.assertFalse(transport.writeClosed)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(protocol.done), 7)

    def test_tlsFailure(self) -> None:
        """
        A connection lost to a TLS failure fails ``done`` with it.
        """
        read, _ = self.pipe()
        protocol = SendProtocol(read, self.received.append, MemoryReactorClock(), tls=True)
        protocol.makeConnection(HalfCloseableTransport())
        protocol.connectionLost(Failure(ValueError("certificate verify failed")))
        self.failureResultOf(protocol.done, ValueError)

    def test_fileIsPulled(self) -> None:
        """
        A regular file is written chunk by chunk as the transport asks, then the write
        side is closed; ``done`` fires with the count when the server closes.
        """
        path = Path(self.mktemp())
        path.write_bytes(b"line one\nline two\n")
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        protocol, transport, reactor = self.connected(fd)
        self.assertIsInstance(protocol.sender, InputSender)
        self.assertIs(transport.producer, protocol.sender)
        self.assertFalse(transport.streaming)
        self.assertEqual(reactor.getReaders(), [])
        protocol.sender.resumeProducing()
        protocol.sender.resumeProducing()
        self.assertEqual(transport.value(), b"line one\nline two\n")
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.writeClosed)
        protocol.dataReceived(b"relayed\n")
        protocol.connectionLost(None)
        self.assertEqual(self.successResultOf(protocol.done), 18)
        self.assertEqual(protocol.sender.sent, 18)
        self.assertEqual(self.received, [b"relayed\n"])

    def test_devNullIsPulled(self) -> None:
        """
        ``/dev/null``, which ``epoll`` cannot watch, is pulled like a file.
        """
        fd = os.open(os.devnull, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        protocol, transport, reactor = self.connected(fd)
        self.assertIsInstance(protocol.sender, InputSender)
        self.assertEqual(reactor.getReaders(), [])
        protocol.sender.resumeProducing()
        self.assertTrue(transport.writeClosed)

    def test_pipeIsReadThroughTheReactor(self) -> None:
        """
        A pipe is watched by the reactor, non-blocking, and is the transport's push
        producer; what it holds is sent when it is readable, what the server relays is
        printed meanwhile, and at its end the write side is closed, the pipe is no longer
        watched and its flags are as they were.
        """
        read, write = self.pipe()
        flags = fcntl.fcntl(read, fcntl.F_GETFL)
        protocol, transport, reactor = self.connected(read)
        sender = protocol.sender
        assert isinstance(sender, InputReader)
        self.assertIs(transport.producer, sender)
        self.assertTrue(transport.streaming)
        self.assertEqual(reactor.getReaders(), [sender])
        self.assertEqual(sender.fileno(), read)
        self.assertTrue(fcntl.fcntl(read, fcntl.F_GETFL) & os.O_NONBLOCK)
        sender.doRead()  # nothing there yet: does not block
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"relayed while waiting\n")
        self.assertEqual(self.received, [b"relayed while waiting\n"])
        os.write(write, b"line one\n")
        sender.doRead()
        self.assertEqual(transport.value(), b"line one\n")
        os.close(write)
        sender.doRead()
        self.assertTrue(transport.writeClosed)
        self.assertIsNone(transport.producer)
        self.assertEqual(reactor.getReaders(), [])
        self.assertEqual(fcntl.fcntl(read, fcntl.F_GETFL), flags)
        protocol.connectionLost(None)
        self.assertEqual(self.successResultOf(protocol.done), 9)

    def test_pipeHangUp(self) -> None:
        """
        ``epoll`` reports a pipe whose writer has gone as hung up, dropping it with
        ``ConnectionDone`` rather than calling ``doRead``: that is the end of the input.
        """
        read, write = self.pipe()
        protocol, transport, reactor = self.connected(read)
        os.close(write)
        reactor.removeReader(protocol.sender)
        protocol.sender.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(transport.writeClosed)
        self.assertTrue(protocol.inputDone)

    def test_pauseStopsReading(self) -> None:
        """
        A full write buffer pauses the pipe's reader (back-pressure); draining resumes it.
        """
        read, _ = self.pipe()
        protocol, _, reactor = self.connected(read)
        protocol.sender.pauseProducing()
        self.assertEqual(reactor.getReaders(), [])
        protocol.sender.resumeProducing()
        self.assertEqual(reactor.getReaders(), [protocol.sender])

    def test_serverClosesEarly(self) -> None:
        """
        A server that closes while the input is still open is noticed at once: ``done``
        fails, the pipe is no longer watched and its flags are as they were.
        """
        read, _ = self.pipe()
        flags = fcntl.fcntl(read, fcntl.F_GETFL)
        protocol, _, reactor = self.connected(read)
        protocol.connectionLost(None)
        failure = self.failureResultOf(protocol.done, ConnectionError)
        self.assertIn("before all input was sent", str(failure.value))
        self.assertEqual(reactor.getReaders(), [])
        self.assertEqual(fcntl.fcntl(read, fcntl.F_GETFL), flags)

    def test_readError(self) -> None:
        """
        A pipe that cannot be read drops the connection, and ``done`` fails saying why.
        """
        read, _ = self.pipe()
        protocol, transport, reactor = self.connected(read)

        def failingRead(fd: int, size: int) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

        self.patch(os, "read", failingRead)
        protocol.sender.doRead()
        self.assertIsNone(transport.producer)
        self.assertEqual(reactor.getReaders(), [])
        protocol.connectionLost(None)
        failure = self.failureResultOf(protocol.done, ConnectionError)
        self.assertEqual(str(failure.value), "cannot read the input: Input/output error")

    def test_shutdownStopsReading(self) -> None:
        """
        At reactor shutdown (``ConnectionLost`` for every descriptor) the pipe's reader
        stops and restores the flags, and leaves the outcome to the connection.
        """
        read, _ = self.pipe()
        flags = fcntl.fcntl(read, fcntl.F_GETFL)
        protocol, transport, reactor = self.connected(read)
        reactor.removeReader(protocol.sender)
        protocol.sender.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(fcntl.fcntl(read, fcntl.F_GETFL), flags)
        self.assertFalse(transport.writeClosed)
        self.assertFalse(protocol.inputDone)
        self.assertEqual(protocol.inputError, "")
        self.assertNoResult(protocol.done)


def _closeQuietly(fd: int) -> None:
    """
    Close ``fd`` unless it is closed already.
    """
    with contextlib.suppress(OSError):
        os.close(fd)
