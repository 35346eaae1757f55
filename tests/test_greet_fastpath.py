"""
Tests for the greeting server's fast path (:mod:`twisted_journey.greet`): on a plain TCP or
UNIX transport the greeting goes straight to the socket and the connection closes at once,
with no deadline; every other case keeps the ordinary ``write`` + ``loseConnection`` path.
Also the lazily formatted peer name of :mod:`twisted_journey.policies`.

Unit tests drive Twisted's real ``tcp.Server``/``unix.Server`` transports over a fake socket
and a ``MemoryReactorClock``; integration tests use real loopback sockets on the reactor.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import tempfile
import weakref

from twisted.internet import defer, error, tcp, unix
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import readAll
from twisted_journey._twisted import DirectTCPPort, WatchLaterServer
from twisted_journey.greet import (
    CHUNK,
    DEFAULT_GREETING,
    DRAIN_LIMIT,
    GreetFactory,
    GreetingProducer,
    GreetProtocol,
)
from twisted_journey.policies import LimitedFactory, LimitedProtocol, ListeningReactor
from twisted_journey.settings import ProxySettings
from twisted_journey.sockets import unread_count


def _closeAll(sockets: tuple[socket.socket, ...]) -> None:
    """
    Close ``sockets``.
    """
    for sock in sockets:
        sock.close()


class FakeSocket:
    """
    Enough of a connected socket for Twisted's socket transports.

    :ivar accept: how many bytes each ``send`` takes at most, or an ``OSError`` to raise.
    :ivar sent: the bytes taken so far.
    :ivar incoming: what the client has sent, one ``recv`` result each; an empty bytes
        is its close, an empty list nothing waiting.
    :ivar calls: ``("send" | "recv" | "shutdown" | "close" | "setsockopt", ...)`` in call
        order.
    """

    family = socket.AF_INET

    def __init__(
        self, accept: int | OSError = 1 << 30, incoming: list[bytes] | None = None
    ) -> None:
        self.accept = accept
        self.sent = b""
        self.incoming = list(incoming or [])
        self.calls: list[tuple[object, ...]] = []
        # A real descriptor for ioctl(FIONREAD) to look at: as many bytes wait in it as
        # the client has sent.
        self._pair = socket.socketpair()
        self._pair[1].sendall(b"".join(self.incoming))
        weakref.finalize(self, _closeAll, self._pair)

    def recv(self, size: int, flags: int = 0) -> bytes:
        """
        Return what the client sent next, or raise ``EAGAIN`` when nothing is waiting.
        """
        self.calls.append(("recv", size, flags))
        if not self.incoming:
            raise BlockingIOError(errno.EAGAIN, "nothing waiting")
        return self.incoming.pop(0)

    def setblocking(self, flag: bool) -> None:
        """
        Accept the transport's switch to non-blocking mode.
        """

    def fileno(self) -> int:
        """
        The descriptor where the client's bytes wait (the memory reactor never uses it).
        """
        return self._pair[0].fileno()

    def send(self, data: bytes) -> int:
        """
        Take up to ``accept`` bytes, or raise ``accept``.
        """
        self.calls.append(("send", bytes(data)))
        if isinstance(self.accept, OSError):
            raise self.accept
        taken = bytes(data[: self.accept])
        self.sent += taken
        return len(taken)

    def shutdown(self, how: int) -> None:
        """
        Record the orderly shutdown.
        """
        self.calls.append(("shutdown", how))

    def setsockopt(self, *args: object) -> None:
        """
        Record an option set (``SO_LINGER`` is how an abort is made).
        """
        self.calls.append(("setsockopt", *args))

    def close(self) -> None:
        """
        Record the close.
        """
        self.calls.append(("close",))


class FakePort:
    """
    What a ``tcp.Server`` asks of the port that accepted it.
    """

    _realPortNumber = 1234


class Recorder(GreetProtocol):
    """
    A greeting protocol that records the reason its connection was lost.
    """

    reason: Failure | None = None

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.reason = reason
        super().connectionLost(reason)


def serve(
    factory: GreetFactory,
    sock: FakeSocket,
    reactor: MemoryReactorClock,
    transportType: type[tcp.Server] = tcp.Server,
) -> tuple[Recorder, tcp.Server]:
    """
    Do what a listening port does for an accepted ``sock``: build the protocol, wrap the
    socket in a ``transportType`` transport, and connect the two.
    """
    factory.protocol = Recorder
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = factory.buildProtocol(address)
    assert isinstance(protocol, Recorder)
    client: tuple[object, ...] = ("127.0.0.1", 40000)
    if transportType is unix.Server:
        transport = unix.Server(sock, protocol, "", FakePort(), 0, reactor)  # type: ignore[arg-type]
    else:
        transport = transportType(sock, protocol, client, FakePort(), 0, reactor)  # type: ignore[arg-type]
    protocol.makeConnection(transport)
    return protocol, transport


class FastPathTests(SynchronousTestCase):
    """
    A greeting the kernel takes whole closes the connection at once.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.factory = GreetFactory(quiet=True, clock=self.reactor, timeout=30.0)

    def assertClosedCleanly(self, sock: FakeSocket, protocol: Recorder) -> None:
        """
        ``sock`` was closed without ``SO_LINGER`` (a FIN, not a reset), the
        protocol heard ``ConnectionDone``, its place in the limits is free, the reactor
        no longer watches it, and no deadline is left behind.
        """
        self.assertEqual(sock.calls[-1], ("close",))
        self.assertNotIn("setsockopt", [call[0] for call in sock.calls])
        assert protocol.reason is not None
        self.assertTrue(protocol.reason.check(error.ConnectionDone))
        self.assertEqual(self.factory.limits.open, 0)
        self.assertEqual(self.reactor.getReaders(), [])
        self.assertEqual(self.reactor.getWriters(), [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_tcpSentWhole(self) -> None:
        """
        On a ``tcp.Server`` the greeting is one ``send`` and the connection is closed
        within ``connectionMade``: no write buffer, no reactor iteration, no timer.
        """
        sock = FakeSocket()
        protocol, transport = serve(self.factory, sock, self.reactor)
        self.assertEqual(sock.sent, DEFAULT_GREETING)
        self.assertEqual(sock.calls[0], ("send", DEFAULT_GREETING))
        self.assertClosedCleanly(sock, protocol)
        self.assertTrue(transport.disconnected)

    def test_unixSentWhole(self) -> None:
        """
        A ``unix.Server`` transport takes the fast path too.
        """
        sock = FakeSocket()
        sock.family = socket.AF_UNIX
        protocol, _ = serve(self.factory, sock, self.reactor, unix.Server)
        self.assertEqual(sock.sent, DEFAULT_GREETING)
        self.assertClosedCleanly(sock, protocol)

    def test_emptyGreeting(self) -> None:
        """
        An empty greeting (an empty ``--message-file``) closes at once, as
        ``loseConnection`` on an empty buffer would.
        """
        sock = FakeSocket()
        protocol, _ = serve(GreetFactory(b"", quiet=True, clock=self.reactor), sock, self.reactor)
        self.assertEqual(sock.sent, b"")
        self.assertEqual(protocol.factory.limits.open, 0)
        self.assertEqual(sock.calls[-1], ("close",))

    def test_drainsWhatTheClientSent(self) -> None:
        """
        Bytes a client sent before it was greeted are read and discarded before the
        close, so that the close is a FIN, not a reset for unread data.
        """
        sock = FakeSocket(incoming=[b"hello\r\n"])
        protocol, _ = serve(self.factory, sock, self.reactor)
        self.assertEqual(sock.sent, DEFAULT_GREETING)
        self.assertEqual(sock.incoming, [])
        self.assertEqual([call[0] for call in sock.calls], ["send", "recv", "recv", "close"])
        self.assertClosedCleanly(sock, protocol)

    def test_counted(self) -> None:
        """
        A fast-path connection is counted as served and released, and a limit of one
        connection admits the next client once it has closed.
        """
        factory = GreetFactory(quiet=True, clock=self.reactor, maxConnections=1)
        for _ in range(3):
            serve(factory, FakeSocket(), self.reactor)
        self.assertEqual((factory.served, factory.limits.open, factory.limits.refused), (3, 0, 0))


class SlowPathTests(SynchronousTestCase):
    """
    Whatever the kernel does not take at once goes through the transport's buffer, with
    the deadline armed, exactly as before the fast path existed.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.factory = GreetFactory(quiet=True, clock=self.reactor, timeout=30.0)

    def test_partialSend(self) -> None:
        """
        When the kernel takes part of the greeting, the rest is buffered in order and the
        deadline is set meanwhile; once it is flushed the socket is half-closed (a FIN
        after the last byte) and still read, and the connection closes when the client
        closes its side.
        """
        sock = FakeSocket(accept=10)
        _, transport = serve(self.factory, sock, self.reactor)
        self.assertEqual(sock.sent, DEFAULT_GREETING[:10])
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.assertIn(transport, self.reactor.getWriters())
        sock.accept = 1 << 30
        transport.doWrite()  # flushes the rest
        self.assertEqual(sock.sent, DEFAULT_GREETING)
        transport.doWrite()  # nothing left: the half-close
        self.assertEqual(sock.calls[-1], ("shutdown", socket.SHUT_WR))
        self.assertFalse(transport.disconnected)
        self.assertIn(transport, self.reactor.getReaders())
        transport.readConnectionLost(Failure(error.ConnectionDone()))
        self.assertTrue(transport.disconnected)
        self.assertEqual(sock.calls[-1], ("close",))
        self.assertNotIn("setsockopt", [call[0] for call in sock.calls])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.factory.limits.open, 0)

    def test_sendFails(self) -> None:
        """
        A ``send`` that fails (a full buffer, a client already gone) leaves the whole
        greeting to the ordinary write path, which finds out for itself.
        """
        for err in (BlockingIOError(errno.EAGAIN, "full"), ConnectionResetError()):
            sock = FakeSocket(accept=err)
            protocol, transport = serve(self.factory, sock, self.reactor)
            self.assertIn(transport, self.reactor.getWriters())
            self.assertFalse(transport.disconnected)
            self.assertEqual(transport._tempDataBuffer, [DEFAULT_GREETING])
            self.assertIsNotNone(protocol._deadline)

    def test_slowReaderTimesOut(self) -> None:
        """
        A client that never takes the rest of a large greeting is aborted (a reset) when
        the timeout passes, counted, and its place released.
        """
        sock = FakeSocket(accept=1000)
        factory = GreetFactory(b"x" * 100_000, quiet=True, clock=self.reactor, timeout=5.0)
        protocol, _ = serve(factory, sock, self.reactor)
        self.reactor.advance(5)
        self.assertEqual(factory.timedOut, 1)
        self.assertIn(("setsockopt",), [call[:1] for call in sock.calls])
        self.assertEqual(sock.calls[-1], ("close",))
        assert protocol.reason is not None
        self.assertTrue(protocol.reason.check(error.ConnectionAborted))
        self.assertEqual(factory.limits.open, 0)

    def test_bytesAlreadyQueued(self) -> None:
        """
        A subclass that writes before the greeting keeps its order: the greeting is not
        sent ahead of the bytes already queued.
        """

        class Banner(Recorder):
            def connectionMade(self) -> None:
                self.transport.write(b"banner\r\n")
                super().connectionMade()

        sock = FakeSocket()
        self.factory.protocol = Banner
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert protocol is not None
        transport = tcp.Server(sock, protocol, ("127.0.0.1", 1), FakePort(), 0, self.reactor)  # type: ignore[arg-type]
        protocol.makeConnection(transport)
        self.assertEqual(sock.sent, b"")
        transport.doWrite()
        self.assertEqual(sock.sent, b"banner\r\n" + DEFAULT_GREETING)

    def test_otherTransports(self) -> None:
        """
        A subclass of a socket transport (what a TLS or PROXY-protocol layer might be) and
        a non-socket transport both get the ordinary write path.
        """

        class Wrapped(tcp.Server):
            pass

        sock = FakeSocket()
        protocol, transport = serve(self.factory, sock, self.reactor, Wrapped)
        self.assertEqual(sock.sent, b"")
        self.assertTrue(transport.disconnecting)
        self.assertIsNotNone(protocol._deadline)

        memory = StringTransport()
        other = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
        assert other is not None
        other.makeConnection(memory)
        self.assertEqual(memory.value(), DEFAULT_GREETING)
        self.assertTrue(memory.disconnecting)


class WatchLaterTests(SynchronousTestCase):
    """
    A plain TCP port of a greeting server builds :class:`WatchLaterServer` transports: the
    reactor watches a connection only if the greeting did not close it in
    ``connectionMade``.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.factory = GreetFactory(quiet=True, clock=self.reactor, timeout=30.0)
        self.added: list[object] = []
        addReader = self.reactor.addReader

        def recordingAddReader(reader: object) -> None:
            self.added.append(reader)
            addReader(reader)  # type: ignore[arg-type]

        self.reactor.addReader = recordingAddReader  # type: ignore[method-assign]

    def test_fastPathNeverWatched(self) -> None:
        """
        A greeting the kernel takes whole closes the connection before the reactor ever
        watches it, and closes it as cleanly as on a ``tcp.Server``.
        """
        sock = FakeSocket(incoming=[b"hello\r\n"])
        protocol, transport = serve(self.factory, sock, self.reactor, WatchLaterServer)
        self.assertEqual(sock.sent, DEFAULT_GREETING)
        self.assertEqual([call[0] for call in sock.calls], ["send", "recv", "recv", "close"])
        self.assertEqual(self.added, [])
        self.assertTrue(transport.disconnected)
        assert protocol.reason is not None
        self.assertTrue(protocol.reason.check(error.ConnectionDone))
        self.assertEqual(self.factory.limits.open, 0)

    def test_slowPathWatched(self) -> None:
        """
        A greeting the kernel does not take whole leaves the connection watched for
        reading (to see the client close) as well as writing, once ``connectionMade`` is
        over.
        """
        sock = FakeSocket(accept=10)
        _, transport = serve(self.factory, sock, self.reactor, WatchLaterServer)
        self.assertEqual(self.added, [transport])
        self.assertIn(transport, self.reactor.getReaders())
        self.assertIn(transport, self.reactor.getWriters())

    def test_plainTCPPortsOnly(self) -> None:
        """
        Listening through a :class:`ListeningReactor`, a plain TCP port of a greeting
        server builds :class:`WatchLaterServer` transports; a TLS one (whose outermost
        factory is not the server's) and a PROXY one keep Twisted's.
        """
        plain = ListeningReactor(self.reactor, self.factory).listenTCP(0, self.factory)
        self.assertIs(plain.transport, WatchLaterServer)
        wrapped = ListeningReactor(self.reactor, self.factory).listenTCP(
            0, GreetFactory(quiet=True, clock=self.reactor)
        )
        self.assertNotIn("transport", vars(wrapped))
        proxy = ListeningReactor(self.reactor, self.factory, ProxySettings())
        self.assertNotIn("transport", vars(proxy.listenTCP(0, self.factory)))


def acceptedPair(testCase: SynchronousTestCase) -> tuple[int, socket.socket]:
    """
    A loopback TCP connection: the server end's bare descriptor, as a listening port's
    ``_accept()`` gives it (blocking), and the client's socket (closed at cleanup).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    testCase.addCleanup(client.close)
    server, _ = listener.accept()
    listener.close()
    server.setblocking(True)
    return server.detach(), client


def isOpen(fd: int) -> bool:
    """
    Whether ``fd`` is an open descriptor.
    """
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class DirectGreetingTests(SynchronousTestCase):
    """
    :meth:`GreetFactory.greetAccepted`: what a quiet server's plain TCP port asks before
    building anything for a connection.  It greets and closes the bare descriptor when
    nothing about the connection needs a protocol, and otherwise leaves it to the port
    (saying how much it sent) with the limits and counters untouched.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.factory = GreetFactory(quiet=True, clock=self.reactor, timeout=30.0)

    def assertDeclined(self, factory: GreetFactory) -> None:
        """
        ``factory`` leaves a fresh connection to the port: nothing sent, nothing counted,
        the descriptor open.
        """
        limits = factory.limits
        before = (factory.served, limits.open, limits.refused, dict(limits.perPeer))
        fd, client = acceptedPair(self)
        self.addCleanup(os.close, fd)
        self.assertEqual(factory.greetAccepted(fd, ("127.0.0.1", 40000)), 0)
        self.assertTrue(isOpen(fd))
        client.setblocking(False)
        self.assertRaises(BlockingIOError, client.recv, 100)
        after = (factory.served, limits.open, limits.refused, dict(limits.perPeer))
        self.assertEqual(after, before)

    def test_greetsAndCloses(self) -> None:
        """
        A quiet server with no limit reached greets from the descriptor and closes it:
        the client reads the greeting, then an orderly end of file; the connection is
        counted as served and holds no place in the limits.
        """
        fd, client = acceptedPair(self)
        self.assertIsNone(self.factory.greetAccepted(fd, ("127.0.0.1", 40000)))
        self.assertFalse(isOpen(fd))
        self.assertEqual(readAll(client), DEFAULT_GREETING)
        self.assertEqual((self.factory.served, self.factory.limits.open), (1, 0))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_drainsWhatTheClientSent(self) -> None:
        """
        What the client sent first is read and discarded (and counted as received)
        before the close, so that the client gets its greeting and a FIN, not a reset.
        """
        fd, client = acceptedPair(self)
        client.sendall(b"hello\r\n")
        for _ in range(1000):  # bounded: the bytes are on loopback
            if unread_count(fd):
                break
            select.select([], [], [], 0.01)
        self.assertIsNone(self.factory.greetAccepted(fd, ("127.0.0.1", 40000)))
        self.assertEqual(readAll(client), DEFAULT_GREETING)
        self.assertEqual(self.factory.bytesReceived, 7)

    def test_notQuiet(self) -> None:
        """
        A server that logs each connection leaves it to the protocol, which logs it.
        """
        self.assertDeclined(GreetFactory(clock=self.reactor))

    def test_otherProtocol(self) -> None:
        """
        A factory whose protocol is not :class:`GreetProtocol` itself (one that may
        greet differently) leaves every connection to it.
        """
        self.factory.protocol = Recorder
        self.assertDeclined(self.factory)

    def test_largeGreeting(self) -> None:
        """
        A greeting larger than :data:`CHUNK` goes through the protocol's producer.
        """
        self.assertDeclined(GreetFactory(b"x" * (CHUNK + 1), quiet=True, clock=self.reactor))

    def test_maxConnectionsReached(self) -> None:
        """
        At ``--max-connections``, the connection is left to the port, whose
        ``buildProtocol`` refuses and counts it; below, it is greeted.
        """
        factory = GreetFactory(quiet=True, clock=self.reactor, maxConnections=2)
        factory.limits.open = 2
        self.assertDeclined(factory)
        factory.limits.open = 1
        fd, client = acceptedPair(self)
        self.assertIsNone(factory.greetAccepted(fd, ("127.0.0.1", 40000)))
        self.assertEqual(readAll(client), DEFAULT_GREETING)
        self.assertEqual((factory.served, factory.limits.open), (1, 1))

    def test_maxPerPeerReached(self) -> None:
        """
        At ``--max-per-peer`` for the client's host, the connection is left to the port;
        another host's is greeted.
        """
        factory = GreetFactory(quiet=True, clock=self.reactor, maxPerPeer=1)
        factory.limits.admit("127.0.0.1")
        self.assertDeclined(factory)
        fd, client = acceptedPair(self)
        self.assertIsNone(factory.greetAccepted(fd, ("127.0.0.2", 40000)))
        self.assertEqual(readAll(client), DEFAULT_GREETING)
        self.assertEqual(factory.limits.perPeer, {"127.0.0.1": 1})

    def test_scopedIPv6(self) -> None:
        """
        Under a per-host limit, a scoped IPv6 address (whose host the port works out with
        its scope) is left to the port.
        """
        factory = GreetFactory(quiet=True, clock=self.reactor, maxPerPeer=1)
        fd, _ = acceptedPair(self)
        self.addCleanup(os.close, fd)
        self.assertEqual(factory.greetAccepted(fd, ("fe80::1", 40000, 0, 2)), 0)
        self.assertEqual(factory.served, 0)

    def test_partialWrite(self) -> None:
        """
        A greeting the kernel takes only part of is left to the port with the count of
        bytes sent, and the protocol built for the connection sends the rest.
        """
        greeting = os.urandom(CHUNK)
        factory = GreetFactory(greeting, quiet=True, clock=self.reactor, timeout=30.0)
        server, client = socket.socketpair()
        self.addCleanup(client.close)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        fd = server.detach()
        sent = factory.greetAccepted(fd, ("127.0.0.1", 40000))
        assert sent is not None
        self.assertGreater(sent, 0)
        self.assertLess(sent, len(greeting))
        self.assertEqual(factory.served, 0)
        os.close(fd)
        sock = FakeSocket()
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert protocol is not None
        protocol.sentEarly = sent
        protocol.makeConnection(
            tcp.Server(sock, protocol, ("127.0.0.1", 40000), FakePort(), 0, self.reactor)
        )  # type: ignore[arg-type]
        self.assertEqual(sock.sent, greeting[sent:])
        self.assertEqual((factory.served, factory.limits.open), (1, 0))


class LargeGreetingTests(SynchronousTestCase):
    """
    A greeting larger than :data:`CHUNK` that the kernel does not take at once is written
    from the shared greeting in pieces: the connection never buffers more than a piece.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.greeting = os.urandom(10 * CHUNK + 123)
        self.factory = GreetFactory(self.greeting, quiet=True, clock=self.reactor, timeout=30.0)

    def pending(self, transport: tcp.Server) -> int:
        """
        How many bytes ``transport`` holds unsent in its own buffers.
        """
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    def test_piecesFromTheSharedGreeting(self) -> None:
        """
        Each time the buffer drains, the producer writes the next piece; the connection
        holds at most one piece, and the client gets the greeting exactly.
        """
        sock = FakeSocket(accept=5000)
        protocol, transport = serve(self.factory, sock, self.reactor)
        self.assertIsInstance(transport.producer, GreetingProducer)
        self.assertLessEqual(self.pending(transport), CHUNK)
        for _ in range(1000):
            if len(sock.sent) == len(self.greeting):
                break
            transport.doWrite()
            self.assertLessEqual(self.pending(transport), CHUNK)
        self.assertEqual(sock.sent, self.greeting)
        self.assertIsNone(transport.producer)
        transport.doWrite()
        self.assertEqual(sock.calls[-1], ("shutdown", socket.SHUT_WR))
        self.assertIsNotNone(protocol._deadline)

    def test_sentWholeAtOnce(self) -> None:
        """
        A large greeting the kernel takes in one ``send`` is not closed at once: it may
        still be on its way, so the socket is half-closed and read until the client
        closes.
        """
        sock = FakeSocket()
        _, transport = serve(self.factory, sock, self.reactor)
        self.assertEqual(sock.sent, self.greeting)
        transport.doWrite()
        self.assertEqual(sock.calls[-1], ("shutdown", socket.SHUT_WR))
        self.assertFalse(transport.disconnected)
        transport.readConnectionLost(Failure(error.ConnectionDone()))
        self.assertTrue(transport.disconnected)

    def test_clientClosesFirst(self) -> None:
        """
        A client that closes its side while the greeting is still being written (``nc
        -N``) still gets all of it, and then the connection closes.
        """
        sock = FakeSocket(accept=5000)
        _, transport = serve(self.factory, sock, self.reactor)
        transport.readConnectionLost(Failure(error.ConnectionDone()))
        self.assertFalse(transport.disconnected)
        sock.accept = 1 << 30
        for _ in range(100):
            done = transport.doWrite()
            if done is not None:
                break
        self.assertIsInstance(done, error.ConnectionDone)  # the reactor closes it
        self.assertEqual(sock.sent, self.greeting)
        self.assertNotIn("setsockopt", [call[0] for call in sock.calls])

    def test_floodIsDropped(self) -> None:
        """
        A client that sends more than :data:`DRAIN_LIMIT` bytes is dropped (a reset).
        """
        sock = FakeSocket(accept=5000)
        protocol, transport = serve(self.factory, sock, self.reactor)
        protocol.dataReceived(b"x" * DRAIN_LIMIT)
        self.assertFalse(transport.disconnected)
        protocol.dataReceived(b"x")
        self.reactor.advance(0)
        self.assertTrue(transport.disconnected)
        self.assertIn("setsockopt", [call[0] for call in sock.calls])

    def test_timeoutStopsTheProducer(self) -> None:
        """
        A client that does not take the greeting in time is aborted, and the producer is
        stopped: it writes nothing more.
        """
        sock = FakeSocket(accept=5000)
        _, transport = serve(self.factory, sock, self.reactor)
        producer = transport.producer
        assert isinstance(producer, GreetingProducer)
        self.reactor.advance(30)
        self.reactor.advance(0)  # the abort's connectionLost
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.factory.timedOut, 1)
        self.assertIsNone(transport.producer)
        buffered = transport._tempDataLen
        producer.resumeProducing()
        self.assertEqual(transport._tempDataLen, buffered)

    def test_otherTransports(self) -> None:
        """
        A transport that is not a plain socket (TLS, ``haproxy:``) gets the same pieces
        through its producer API, then ``loseConnection``.
        """
        memory = StringTransport()
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
        assert protocol is not None
        protocol.makeConnection(memory)
        producer = memory.producer
        assert isinstance(producer, GreetingProducer)
        self.assertFalse(memory.streaming)
        self.assertEqual(len(memory.value()), 0)
        for _ in range(100):
            if memory.producer is None:
                break
            before = len(memory.value())
            producer.resumeProducing()
            self.assertLessEqual(len(memory.value()) - before, CHUNK)
        self.assertEqual(memory.value(), self.greeting)
        self.assertTrue(memory.disconnecting)


class PeerNameTests(SynchronousTestCase):
    """
    ``LimitedProtocol.peer`` is formatted on first use; ``peerHost`` is only looked up for
    a per-host limit.
    """

    def build(self, address: object, **kwargs: object) -> LimitedProtocol:
        """
        A protocol built by a quiet factory for a client at ``address``.
        """
        factory = LimitedFactory(quiet=True, **kwargs)  # type: ignore[arg-type]
        factory.protocol = LimitedProtocol
        protocol = factory.buildProtocol(address)  # type: ignore[arg-type]
        assert protocol is not None
        return protocol

    def test_lazy(self) -> None:
        """
        A quiet factory does not format the name; asking for it does, once.
        """
        protocol = self.build(IPv4Address("TCP", "127.0.0.1", 40000))
        self.assertIsNone(protocol._peer)
        self.assertEqual(protocol.peer, "127.0.0.1:40000")
        self.assertEqual(protocol._peer, "127.0.0.1:40000")

    def test_forms(self) -> None:
        """
        IPv6 hosts are bracketed, unix clients are ``unix``, no address is empty.
        """
        self.assertEqual(self.build(IPv6Address("TCP", "::1", 80)).peer, "[::1]:80")
        self.assertEqual(self.build(UNIXAddress(None)).peer, "unix")
        self.assertEqual(LimitedProtocol().peer, "")

    def test_peerHostOnlyForPerPeerLimit(self) -> None:
        """
        Without a per-host limit nothing is counted per host, so no host is recorded;
        with one, the host is recorded and released.
        """
        address = IPv4Address("TCP", "10.0.0.1", 1)
        self.assertIsNone(self.build(address).peerHost)
        protocol = self.build(address, maxPerPeer=2)
        self.assertEqual(protocol.peerHost, "10.0.0.1")
        self.assertEqual(protocol.factory.limits.perPeer, {"10.0.0.1": 1})
        protocol.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(protocol.factory.limits.perPeer, {})


class Watched(GreetProtocol):
    """
    A greeting protocol that notes whether ``connectionMade`` closed the connection
    itself (the fast path) rather than leaving a buffered write and a deadline.
    """

    closedAtOnce: list[bool] = []

    def connectionMade(self) -> None:
        super().connectionMade()
        disconnected = bool(self.transport.disconnected)  # type: ignore[attr-defined]
        self.closedAtOnce.append(self._deadline is None and disconnected)


class Collector(Protocol):
    """
    A client that collects what the server sends, and fires ``done`` with the reason the
    connection ended (an exception, not a failure) when it does.
    """

    def __init__(self) -> None:
        self.data = b""
        self.done: defer.Deferred[BaseException] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.done.callback(reason.value)


class LoopbackTests(TestCase):
    """
    The fast path on the running reactor with real sockets: exact bytes, an orderly close
    (the client sees ``ConnectionDone``, a FIN, not ``ConnectionLost``, a reset), the limit
    released, no timer left behind.
    """

    def listenTCP(self, factory: GreetFactory) -> int:
        """
        Listen on a loopback port for this test; return the port number.
        """
        from twisted.internet import reactor

        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def exchange(self, endpoint: object, factory: GreetFactory) -> None:
        """
        Connect, collect the greeting, and check what the contract promises.
        """
        Watched.closedAtOnce = []
        factory.protocol = Watched
        client = Collector()
        await connectProtocol(endpoint, client)  # type: ignore[arg-type]
        reason = await client.done
        self.assertEqual(client.data, factory.greeting)
        self.assertIsInstance(reason, error.ConnectionDone)
        self.assertEqual(factory.limits.open, 0)
        self.assertEqual(factory.served, 1)
        self.assertEqual(Watched.closedAtOnce, [True])

    def test_tcp(self) -> defer.Deferred[None]:
        """
        A real TCP client gets the greeting and an orderly close.
        """
        from twisted.internet import reactor

        factory = GreetFactory(quiet=True, maxConnections=1)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.listenTCP(factory))
        return defer.Deferred.fromCoroutine(self.exchange(endpoint, factory))

    def test_watchLater(self) -> defer.Deferred[None]:
        """
        Through a :class:`ListeningReactor` (as ``journey-greet`` listens), a small
        greeting closes at once and a large one is written whole and closed in order
        once the client has it: the reactor watches the connection when it must.
        """
        from twisted.internet import reactor

        async def run() -> None:
            for greeting in (DEFAULT_GREETING, b"x" * (4 << 20)):
                factory = GreetFactory(greeting, quiet=True)
                listening = ListeningReactor(reactor, factory)
                port = listening.listenTCP(0, factory, interface="127.0.0.1")
                self.addCleanup(port.stopListening)
                self.assertIs(port.transport, WatchLaterServer)
                number = port.getHost().port
                client = Collector()
                await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", number), client)
                reason = await client.done
                self.assertEqual(client.data, greeting)
                self.assertIsInstance(reason, error.ConnectionDone)
                for _ in range(500):  # bounded: 500 polls of 10 ms at most
                    if not factory.limits.open:
                        break
                    await deferLater(reactor, 0.01)
                self.assertEqual((factory.served, factory.limits.open), (1, 0))

        return defer.Deferred.fromCoroutine(run())

    def test_greetedByThePort(self) -> defer.Deferred[None]:
        """
        Through a :class:`ListeningReactor`, a quiet server's plain TCP port greets from
        the accepted descriptor: the client gets the greeting and an orderly close, the
        connection is counted as served, and no protocol is built for it.  At
        ``--max-connections`` the port builds the connection after all, and the factory
        refuses it (counted, closed unread).
        """
        from twisted.internet import reactor

        async def run() -> None:
            factory = GreetFactory(quiet=True, maxConnections=1)
            built: list[object] = []
            buildProtocol = factory.buildProtocol

            def counting(addr: IPv4Address) -> LimitedProtocol | None:
                built.append(addr)
                return buildProtocol(addr)

            factory.buildProtocol = counting  # type: ignore[method-assign]
            listening = ListeningReactor(reactor, factory)
            port = listening.listenTCP(0, factory, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            self.assertIs(type(port), DirectTCPPort)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
            client = Collector()
            await connectProtocol(endpoint, client)
            self.assertIsInstance(await client.done, error.ConnectionDone)
            self.assertEqual(client.data, DEFAULT_GREETING)
            self.assertEqual((factory.served, factory.limits.open, built), (1, 0, []))
            factory.limits.admit(None)  # a connection holds the only place
            client = Collector()
            await connectProtocol(endpoint, client)
            await client.done
            self.assertEqual(client.data, b"")
            self.assertEqual(len(built), 1)
            self.assertEqual((factory.served, factory.limits.refusedTotal), (1, 1))

        return defer.Deferred.fromCoroutine(run())

    def test_unix(self) -> defer.Deferred[None]:
        """
        A real UNIX-socket client gets the greeting and an orderly close.
        """
        from twisted.internet import reactor

        directory = tempfile.mkdtemp(prefix="j-", dir="/tmp")
        path = os.path.join(directory, "s")
        factory = GreetFactory(quiet=True)
        port = reactor.listenUNIX(path, factory)  # type: ignore[attr-defined]
        self.addCleanup(os.rmdir, directory)
        self.addCleanup(port.stopListening)
        endpoint = UNIXClientEndpoint(reactor, path)
        return defer.Deferred.fromCoroutine(self.exchange(endpoint, factory))

    def test_slowReaderTimesOut(self) -> defer.Deferred[None]:
        """
        A greeting larger than the socket buffers, to a client that never reads, is
        partly sent, and the rest is dropped when the deadline passes.
        """
        factory = GreetFactory(b"x" * (16 << 20), quiet=True, timeout=0.05)
        port = self.listenTCP(factory)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        self.addCleanup(sock.close)
        sock.connect_ex(("127.0.0.1", port))

        async def waitForTimeout() -> None:
            from twisted.internet import reactor

            for _ in range(2000):  # bounded: 2000 polls of 10 ms at most
                # The abort releases the limit one reactor iteration after the deadline.
                if factory.timedOut and not factory.limits.open:
                    break
                await deferLater(reactor, 0.01)
            self.assertEqual(factory.timedOut, 1)
            self.assertEqual(factory.limits.open, 0)

        return defer.Deferred.fromCoroutine(waitForTimeout())
