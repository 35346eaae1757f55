"""
Tests for :mod:`twisted_journey._twisted`: what the project assumes about Twisted's insides,
checked on real loopback connections, so that a Twisted upgrade that changes any of it fails
here, loudly, naming the assumption, rather than somewhere downstream.

Each section matches a section of :mod:`twisted_journey._twisted`.
"""

from __future__ import annotations

import errno
import inspect
import os
import shutil
import socket
import tempfile
from typing import Any, cast

from twisted.internet import defer, error, tcp, unix
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from twisted_journey import _twisted
from twisted_journey.sockets import drain_unread

UPGRADE = "; Twisted changed what twisted_journey/_twisted.py relies on ({section}): review it"


class Accepted(Protocol):
    """
    A server protocol that hands its connection to the test and does nothing else.
    """

    def __init__(self, arrived: defer.Deferred[Accepted]) -> None:
        self.arrived = arrived
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        self.transport.stopReading()  # type: ignore[attr-defined]
        self.arrived.callback(self)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.lost = reason


class GreetingFastPathTests(TestCase):
    """
    The greeting fast path (:mod:`twisted_journey.greet`): exact transport types, the
    fresh-state attributes, a direct ``send`` and ``recv``, and closing as the reactor does.
    """

    section = "greeting fast path"

    def check(self, condition: object, what: str) -> None:
        """
        Fail with ``what`` and the upgrade note unless ``condition`` holds.
        """
        if not condition:
            self.fail(what + UPGRADE.format(section=self.section))

    async def accept(
        self, unixSocket: bool = False, wrap: Any = None
    ) -> tuple[Accepted, socket.socket]:
        """
        Listen on loopback (a UNIX socket when asked), connect a plain blocking client,
        and return the server's protocol and the client socket.

        :param wrap: a function that wraps the server factory (TLS), or ``None``.
        """
        from twisted.internet import reactor

        arrived: defer.Deferred[Accepted] = defer.Deferred()
        factory: Any = Factory.forProtocol(lambda: Accepted(arrived))
        if wrap is not None:
            factory = wrap(factory)
        if unixSocket:
            directory = tempfile.mkdtemp(prefix="j-", dir="/tmp")
            self.addCleanup(shutil.rmtree, directory, True)
            path = os.path.join(directory, "s")
            port = reactor.listenUNIX(path, factory)  # type: ignore[attr-defined]
            client = socket.socket(socket.AF_UNIX)
            address: Any = path
        else:
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
            client = socket.socket()
            address = ("127.0.0.1", port.getHost().port)
        self.addCleanup(port.stopListening)
        self.addCleanup(client.close)
        client.setblocking(False)
        client.connect_ex(address)
        protocol = await arrived
        self.addCleanup(self.closeServerSide, protocol.transport)
        client.setblocking(True)
        client.settimeout(10)
        return protocol, client

    def closeServerSide(self, transport: Any) -> defer.Deferred[None] | None:
        """
        Close the server's side of a connection the test left open: a plain socket
        transport at once, another (TLS) by an abort and a turn of the reactor.
        """
        if not _twisted.isPlainSocket(transport):
            from twisted.internet import reactor

            transport.abortConnection()
            return deferLater(reactor, 0.01)
        if not transport.disconnected:
            transport.connectionLost(Failure(error.ConnectionDone()))
        return None

    def test_plainTransportTypes(self) -> defer.Deferred[None]:
        """
        A TCP connection's transport is exactly ``tcp.Server``, a UNIX one's exactly
        ``unix.Server``; both are in ``PLAIN_TRANSPORTS``.
        """

        async def run() -> None:
            tcpProtocol, _ = await self.accept()
            self.check(
                type(tcpProtocol.transport) is tcp.Server,
                f"a TCP connection's transport is {type(tcpProtocol.transport)!r}, not tcp.Server",
            )
            unixProtocol, _ = await self.accept(unixSocket=True)
            self.check(
                type(unixProtocol.transport) is unix.Server,
                f"a UNIX connection's transport is {type(unixProtocol.transport)!r}, not unix.Server",
            )
            self.check(
                _twisted.isPlainSocket(tcpProtocol.transport)
                and _twisted.isPlainSocket(unixProtocol.transport),
                "isPlainSocket() does not recognise tcp.Server and unix.Server",
            )

        return defer.Deferred.fromCoroutine(run())

    def test_tlsIsNotPlain(self) -> defer.Deferred[None]:
        """
        Under TLS the protocol's transport is a wrapper, not a plain socket transport: the
        fast path must never write around the encryption.
        """
        from twisted.internet import ssl
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from tests.support import selfSignedCertificate

        keyPath, certPath = selfSignedCertificate(os.path.abspath(self.mktemp()))
        with open(keyPath, "rb") as k, open(certPath, "rb") as c:
            options = ssl.PrivateCertificate.loadPEM(k.read() + c.read()).options()

        async def run() -> None:
            protocol, _ = await self.accept(
                wrap=lambda factory: TLSMemoryBIOFactory(options, False, factory)
            )
            self.check(
                not _twisted.isPlainSocket(protocol.transport),
                f"a TLS connection's transport {type(protocol.transport)!r} looks plain",
            )

        return defer.Deferred.fromCoroutine(run())

    def test_freshStateAttributes(self) -> defer.Deferred[None]:
        """
        A new ``tcp.Server`` has its non-blocking socket as ``.socket``, ``TLS`` false,
        ``disconnecting`` false, ``_tempDataLen`` 0 and ``dataBuffer`` empty; ``write``
        counts into ``_tempDataLen``, ``loseConnection`` sets ``disconnecting``; and
        ``sendNow`` then refuses to write around the queued bytes.
        """

        async def run() -> None:
            protocol, _ = await self.accept()
            transport: Any = protocol.transport
            for name in ("socket", "TLS", "disconnecting", "_tempDataLen", "dataBuffer"):
                self.check(hasattr(transport, name), f"tcp.Server has no attribute {name!r}")
            self.check(
                isinstance(transport.socket, socket.socket),
                f"tcp.Server.socket is {type(transport.socket)!r}, not a socket",
            )
            self.check(transport.socket.gettimeout() == 0.0, "tcp.Server's socket is blocking")
            self.check(
                not transport.TLS
                and not transport.disconnecting
                and transport._tempDataLen == 0
                and transport.dataBuffer == b"",
                "a fresh tcp.Server is not in the state sendNow() expects: "
                f"TLS={transport.TLS!r} disconnecting={transport.disconnecting!r} "
                f"_tempDataLen={transport._tempDataLen!r} dataBuffer={transport.dataBuffer!r}",
            )
            transport.write(b"abc")
            self.check(
                transport._tempDataLen == 3,
                f"write() no longer counts into _tempDataLen ({transport._tempDataLen!r})",
            )
            self.check(
                _twisted.sendNow(transport, b"x") is None,
                "sendNow() wrote around bytes already queued",
            )
            transport.loseConnection()
            self.check(transport.disconnecting, "loseConnection() does not set disconnecting")

        return defer.Deferred.fromCoroutine(run())

    def test_sendDrainAndCloseNow(self) -> defer.Deferred[None]:
        """
        ``sendNow`` hands bytes to the socket, ``drain_unread`` on the transport's handle
        discards what the client sent, and ``closeNow`` closes at once as the reactor
        would after ``loseConnection``: the protocol hears ``ConnectionDone``, the reactor
        forgets the transport, and the client reads the bytes then an orderly end of file.
        """
        from twisted.internet import reactor

        async def run() -> None:
            protocol, client = await self.accept()
            transport: Any = protocol.transport
            client.sendall(b"hello\r\n")
            drained = 0
            for _ in range(500):  # bounded: 500 polls of 10 ms at most
                drained += drain_unread(transport.getHandle(), 1 << 16).discarded
                if drained >= 7:
                    break
                await deferLater(reactor, 0.01)
            self.check(drained == 7, f"drain_unread() discarded {drained} bytes, not 7")
            self.check(_twisted.sendNow(transport, b"hi\r\n") == 4, "sendNow() did not send")
            _twisted.closeNow(transport)
            self.check(
                protocol.lost is not None and protocol.lost.check(error.ConnectionDone),
                f"closeNow() told the protocol {protocol.lost!r}, not ConnectionDone",
            )
            self.check(transport.disconnected, "closeNow() left the transport connected")
            self.check(
                transport not in reactor.getReaders() + reactor.getWriters(),  # type: ignore[attr-defined]
                "closeNow() left the transport watched by the reactor",
            )
            received = b""
            while chunk := client.recv(1024):
                received += chunk
            self.check(received == b"hi\r\n", f"the client read {received!r}, then EOF")

        return defer.Deferred.fromCoroutine(run())


class SynchronousEndpointServiceTests(TestCase):
    """
    :class:`~twisted_journey._twisted.SynchronousEndpointService`: a failure to listen is
    raised by ``privilegedStartService``, not only logged.
    """

    def test_failureToListenRaises(self) -> None:
        """
        A port already taken raises from ``privilegedStartService`` at once.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ServerEndpoint

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        service = _twisted.SynchronousEndpointService(
            TCP4ServerEndpoint(reactor, port, interface="127.0.0.1"), Factory.forProtocol(Protocol)
        )
        with self.assertRaises(
            error.CannotListenError,
            msg=UPGRADE.format(section="Listening services"),
        ):
            service.privilegedStartService()


class WatchLaterTests(TestCase):
    """
    The greeting fast path's transports built by the port (:class:`_twisted.WatchLaterServer`):
    a port builds its ``transport`` attribute, whose construction watches the socket
    through ``startReading``.
    """

    section = "greeting fast path"

    def test_builtByThePortWatchedLater(self) -> defer.Deferred[None]:
        """
        A TCP port whose ``transport`` is :class:`~_twisted.WatchLaterServer` builds one
        for each connection, not watched by the reactor during ``connectionMade``;
        :func:`~_twisted.watchNow` then has the reactor watch it, and it reads.
        """
        from twisted.internet import reactor

        seen: list[tuple[type, bool]] = []
        received: defer.Deferred[bytes] = defer.Deferred()

        class Probe(Protocol):
            def makeConnection(self, transport: Any) -> None:
                super().makeConnection(transport)
                _twisted.watchNow(transport)

            def connectionMade(self) -> None:
                readers = reactor.getReaders()  # type: ignore[attr-defined]
                seen.append((type(self.transport), self.transport in readers))

            def dataReceived(self, data: bytes) -> None:
                if not received.called:
                    received.callback(data)

        port = reactor.listenTCP(0, Factory.forProtocol(Probe), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        port.transport = _twisted.WatchLaterServer
        client = socket.socket()
        self.addCleanup(client.close)
        client.connect(("127.0.0.1", port.getHost().port))
        client.sendall(b"ping")

        async def run() -> None:
            data = await received
            self.assertEqual(seen, [(_twisted.WatchLaterServer, False)])
            self.assertEqual(data, b"ping")

        def check(failure: Failure) -> None:
            self.fail(
                f"a port with transport=WatchLaterServer built {seen!r}, "
                f"then: {failure.getErrorMessage()}" + UPGRADE.format(section=self.section)
            )

        d = defer.Deferred.fromCoroutine(run())
        d.addTimeout(10, reactor)
        d.addErrback(check)
        return d

    def test_sameStateAsTCPServer(self) -> None:
        """
        :class:`~_twisted.WatchLaterServer` sets the attributes ``tcp.Server.__init__``
        sets (the log prefix and representation on first use, with the same values), and
        is not watched until :func:`~_twisted.watchNow`.
        """
        from twisted.internet.testing import MemoryReactorClock

        class Port:
            _realPortNumber = 1234

        built = {}
        for cls in (tcp.Server, _twisted.WatchLaterServer):
            reactor = MemoryReactorClock()
            ours, theirs = socket.socketpair()
            self.addCleanup(ours.close)
            self.addCleanup(theirs.close)
            for client in (("127.0.0.1", 40000), ("::1", 40000, 0, 0)):
                transport = cls(ours, Protocol(), client, Port(), 7, reactor)  # type: ignore[arg-type]
                watched = transport in reactor.getReaders()
                logPrefix, text = transport.logPrefix(), repr(transport)
                built[cls, len(client)] = (transport, watched, logPrefix, text)
        for family in (2, 4):
            twisted, twistedWatched, twistedPrefix, twistedText = built[tcp.Server, family]
            ours_, oursWatched, oursPrefix, oursText = built[_twisted.WatchLaterServer, family]
            expected = set(vars(twisted))
            got = set(vars(ours_)) - {"_protocolClass"}
            self.assertEqual(
                got,
                expected,
                "tcp.Server.__init__ sets other attributes now"
                + UPGRADE.format(section=self.section),
            )
            self.assertEqual((oursPrefix, oursText), (twistedPrefix, twistedText))
            self.assertEqual(ours_._addressType, twisted._addressType)
            self.assertEqual((twistedWatched, oursWatched), (True, False))
        transport = built[_twisted.WatchLaterServer, 2][0]
        _twisted.watchNow(transport)
        self.assertIn(transport, transport.reactor.getReaders())


class LeanAcceptTests(TestCase):
    """
    :func:`_twisted.leanAccept`: a listening ``tcp.Port`` keeps its ``socket.socket`` as
    ``.socket`` and accepts with its ``accept()``, which the lean class replaces.
    """

    section = "greeting fast path"

    def test_acceptsAsTheStdlib(self) -> defer.Deferred[None]:
        """
        A port made lean still accepts TCP and TCP6 clients, whose sockets are plain
        ``socket.socket`` objects of the listening socket's family and type.
        """
        from twisted.internet import reactor

        accepted: list[tuple[type, int, int]] = []

        class Probe(Protocol):
            def connectionMade(self) -> None:
                skt = self.transport.socket  # type: ignore[attr-defined]
                accepted.append((type(skt), skt.family, skt.type))
                self.transport.loseConnection()  # type: ignore[union-attr]

        async def run() -> None:
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                if family == socket.AF_INET6 and not socket.has_ipv6:
                    continue
                port = reactor.listenTCP(0, Factory.forProtocol(Probe), interface=host)  # type: ignore[attr-defined]
                self.addCleanup(port.stopListening)
                self.assertIs(
                    type(port.socket),
                    socket.socket,
                    "a port's socket" + UPGRADE.format(section=self.section),
                )
                _twisted.leanAccept(port)
                self.assertIsNot(type(port.socket), socket.socket)
                client = socket.socket(family)
                self.addCleanup(client.close)
                client.settimeout(10)
                client.connect((host, port.getHost().port))
                for _ in range(500):  # bounded: 500 polls of 10 ms at most
                    if len(accepted) == (1 if family == socket.AF_INET else 2):
                        break
                    await deferLater(reactor, 0.01)
                self.assertEqual(accepted[-1], (socket.socket, family, socket.SOCK_STREAM))

        return defer.Deferred.fromCoroutine(run())

    def test_otherPortsUntouched(self) -> None:
        """
        Something without a ``socket.socket`` (a port not listening, a fake) is left as it is.
        """

        class Fake:
            socket = None

        fake = Fake()
        _twisted.leanAccept(fake)
        self.assertIsNone(fake.socket)


class Greeter(Factory):
    """
    A factory whose ``greetAccepted`` answers as told and notes what it was given: with
    ``answer`` ``None`` it writes ``b"hi"`` to the descriptor and closes it.

    :ivar offered: ``(blocking, inheritable, address)`` per connection offered.
    :ivar built: the addresses ``buildProtocol`` was called with.
    """

    def __init__(self, answer: int | None, protocol: Any = None) -> None:
        self.answer = answer
        self.offered: list[tuple[bool, bool, Any]] = []
        self.built: list[Any] = []
        self.protocols: list[Protocol] = []
        self.refuse = False
        self.protocolClass = protocol or Protocol

    def greetAccepted(self, fd: int, address: Any) -> int | None:
        self.offered.append((os.get_blocking(fd), os.get_inheritable(fd), address))
        if self.answer is None:
            os.write(fd, b"hi")
            os.close(fd)
        return self.answer

    def buildProtocol(self, addr: Any) -> Protocol | None:  # type: ignore[override]
        self.built.append(addr)
        if self.refuse:
            return None
        protocol = self.protocolClass()
        protocol.factory = self
        self.protocols.append(protocol)
        return protocol


class AcceptFewTests(TestCase):
    """
    :func:`_twisted.acceptFew`: a plain TCP port accepts one connection per readable
    event (the metrics endpoint), whatever ``tcp.Port.doRead`` sets ``numberAccepts`` to.
    """

    section = "accepting under descriptor exhaustion"

    def test_onePerWakeup(self) -> defer.Deferred[None]:
        """
        Exactly ``tcp.Port`` changes class; it keeps ``numberAccepts`` at one and still
        serves a connection; a UNIX port is left as it is.
        """
        from twisted.internet import reactor

        arrived: defer.Deferred[Accepted] = defer.Deferred()
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Factory.forProtocol(lambda: Accepted(arrived)), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        _twisted.acceptFew(port)
        self.assertIs(type(port), _twisted.FewAcceptsTCPPort)
        port.numberAccepts = 100
        self.assertEqual(
            port.numberAccepts, 1, "numberAccepts" + UPGRADE.format(section=self.section)
        )
        directory = tempfile.mkdtemp(prefix="j-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory)
        unixPort = reactor.listenUNIX(os.path.join(directory, "s"), Factory.forProtocol(Protocol))  # type: ignore[attr-defined]
        self.addCleanup(unixPort.stopListening)
        _twisted.acceptFew(unixPort)
        self.assertIs(type(unixPort), unix.Port)

        async def run() -> None:
            client = socket.create_connection(("127.0.0.1", port.getHost().port))
            self.addCleanup(client.close)
            protocol = await arrived
            protocol.transport.loseConnection()  # type: ignore[union-attr]

        return defer.Deferred.fromCoroutine(run())


class DirectAcceptTests(TestCase):
    """
    :func:`_twisted.acceptDirectly`: a listening port whose class is changed in place
    reads through the new class's ``doRead``, which offers each accepted descriptor to
    the factory and otherwise builds the connection as ``tcp.Port.doRead`` does.
    """

    section = "greeting fast path"

    def listen(self, factory: Factory, host: str = "127.0.0.1") -> tcp.Port:
        """
        A real listening port for ``factory``, made direct, closed at cleanup.
        """
        from twisted.internet import reactor

        port = reactor.listenTCP(0, factory, interface=host)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        _twisted.acceptDirectly(port)
        self.assertIs(type(port), _twisted.DirectTCPPort)
        return cast(tcp.Port, port)

    async def settle(self, done: Any) -> None:
        """
        Let the reactor run until ``done()`` is true (bounded: 10 seconds).
        """
        from twisted.internet import reactor

        for _ in range(1000):
            if done():
                return
            await deferLater(reactor, 0.01)
        self.fail("the port did not accept" + UPGRADE.format(section=self.section))

    def test_portClasses(self) -> None:
        """
        Exactly ``tcp.Port`` and :class:`~_twisted.SharedTCPPort` become direct (the
        shared one still accepting one connection per wakeup), and only with a factory
        that has ``greetAccepted``; other ports are left as they are.
        """
        from twisted.internet import reactor

        self.listen(Greeter(None))
        plain = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(plain.stopListening)
        _twisted.acceptDirectly(plain)
        self.assertIs(type(plain), tcp.Port)
        listening = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listening.close)
        shared = _twisted.adoptListeningPort(
            reactor, os.dup(listening.fileno()), socket.AF_INET, Greeter(None), shared=True
        )
        shared.startListening()
        self.addCleanup(shared.stopListening)
        _twisted.acceptDirectly(shared)
        self.assertIs(type(shared), _twisted.DirectSharedTCPPort)
        shared.numberAccepts = 100
        self.assertEqual(shared.numberAccepts, 1)
        directory = tempfile.mkdtemp(prefix="j-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory)
        unixPort = reactor.listenUNIX(os.path.join(directory, "s"), Greeter(None))  # type: ignore[attr-defined]
        self.addCleanup(unixPort.stopListening)
        _twisted.acceptDirectly(unixPort)
        self.assertIs(type(unixPort), unix.Port)

    def test_greetedFromTheDescriptor(self) -> defer.Deferred[None]:
        """
        The factory gets the accepted descriptor, blocking and close-on-exec, and the
        client's address as ``accept`` gives it; once it has closed the descriptor,
        nothing is built, and the client reads what it wrote, then end of file.
        """
        factory = Greeter(None)
        port = self.listen(factory)

        async def run() -> None:
            client = socket.create_connection(("127.0.0.1", port.getHost().port))
            self.addCleanup(client.close)
            await self.settle(lambda: factory.offered)
            self.assertEqual(factory.offered, [(True, False, client.getsockname())])
            self.assertEqual(factory.built, [])
            client.settimeout(10)
            self.assertEqual(client.recv(10), b"hi")
            self.assertEqual(client.recv(10), b"")

        return defer.Deferred.fromCoroutine(run())

    def test_declinedBuiltAsTCPPortDoes(self) -> defer.Deferred[None]:
        """
        A connection the factory declines is built as ``tcp.Port`` builds it: the
        address from ``_buildAddr`` (IPv4 and IPv6), the port's ``transport`` class with
        the next session number, ``makeConnection``; the protocol is told in
        ``sentEarly`` how much the factory sent, when it sent anything.  A refusal
        (``None`` from ``buildProtocol``) closes the socket.
        """
        from twisted.internet.address import IPv4Address, IPv6Address

        async def run() -> None:
            hosts = [("127.0.0.1", IPv4Address)]
            if socket.has_ipv6:
                hosts.append(("::1", IPv6Address))
            for host, addressType in hosts:
                for answer in (0, 3):
                    factory = Greeter(answer)
                    port = self.listen(factory, host)
                    sessionno = port.sessionno
                    client = socket.create_connection((host, port.getHost().port))
                    self.addCleanup(client.close)
                    await self.settle(factory.protocols.__len__)
                    clientHost, clientPort = client.getsockname()[:2]
                    self.assertEqual(factory.built, [addressType("TCP", clientHost, clientPort)])
                    protocol = factory.protocols[0]
                    transport: Any = protocol.transport
                    self.assertIs(type(transport), tcp.Server)
                    self.assertEqual(transport.sessionno, sessionno)
                    self.assertEqual(port.sessionno, sessionno + 1)
                    self.assertEqual(getattr(protocol, "sentEarly", 0), answer)
                    transport.loseConnection()
            factory = Greeter(0)
            factory.refuse = True
            port = self.listen(factory)
            client = socket.create_connection(("127.0.0.1", port.getHost().port))
            self.addCleanup(client.close)
            await self.settle(lambda: factory.built)
            client.settimeout(10)
            self.assertEqual(client.recv(10), b"")

        return defer.Deferred.fromCoroutine(run())

    def test_rescaledAsTCPPort(self) -> None:
        """
        A round of accepts uses at most ``numberAccepts`` and rescales it as
        ``tcp.Port.doRead`` does: 20 more when all were used, else the number accepted.
        """
        results = {}
        for make in (lambda f: self.listen(f), self.plainPort):
            port = make(Greeter(None))
            port.stopReading()
            clients = []
            for _ in range(3):
                client = socket.create_connection(("127.0.0.1", port.getHost().port))
                self.addCleanup(client.close)
                clients.append(client)
            port.numberAccepts = 2
            port.doRead()
            first = port.numberAccepts
            port.doRead()
            results[type(port)] = (first, port.numberAccepts)
        self.assertEqual(
            results[_twisted.DirectTCPPort],
            results[tcp.Port],
            "tcp.Port.doRead rescales numberAccepts otherwise"
            + UPGRADE.format(section=self.section),
        )
        self.assertEqual(results[tcp.Port], (22, 1))

    def plainPort(self, factory: Factory) -> tcp.Port:
        """
        A real listening ``tcp.Port`` for ``factory`` (building a plain ``Protocol``).
        """
        from twisted.internet import reactor

        factory.protocolClass = Protocol  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return cast(tcp.Port, port)

    def test_failedAcceptLeftToTwisted(self) -> None:
        """
        An accept that fails other than with "nothing waiting" hands the round to
        ``tcp.Port.doRead``, whose accept loop (``tcp._accept``) accepts again from the
        port's socket and handles the failure.
        """
        port = self.listen(Greeter(None))
        port.stopReading()
        calls: list[str] = []

        class Failing:
            def _accept(self) -> Any:
                calls.append("_accept")
                raise ConnectionAbortedError(errno.ECONNABORTED, "aborted")

            def accept(self) -> Any:
                calls.append("accept")
                raise BlockingIOError(errno.EAGAIN, "nothing waiting")

        listening = port.socket
        self.addCleanup(setattr, port, "socket", listening)
        port.socket = Failing()  # type: ignore[assignment]
        port.doRead()
        self.assertEqual(calls, ["_accept", "accept"], UPGRADE.format(section=self.section))


class AcceptSheddingTests(TestCase):
    """
    The accepting section: the reserve descriptor a listening port releases on ``EMFILE``,
    which :func:`twisted_journey._twisted.stopAcceptShedding` replaces.
    """

    section = "accepting under descriptor exhaustion"

    def test_reserveIsReplaceable(self) -> None:
        """
        ``tcp._reservedFD`` exists, ``tcp._NullFileDescriptorReservation`` builds a
        reservation that holds no descriptor, and ``stopAcceptShedding`` installs one.
        """
        self.addCleanup(setattr, tcp, "_reservedFD", getattr(tcp, "_reservedFD", None))
        for name in ("_reservedFD", "_NullFileDescriptorReservation"):
            if not hasattr(tcp, name):
                self.fail(
                    f"twisted.internet.tcp.{name} is gone" + UPGRADE.format(section=self.section)
                )
        _twisted.stopAcceptShedding()
        reserve = tcp._reservedFD  # type: ignore[attr-defined]
        if not isinstance(reserve, tcp._NullFileDescriptorReservation):  # type: ignore[attr-defined]
            self.fail(
                "stopAcceptShedding() left a real reserve" + UPGRADE.format(section=self.section)
            )
        for method in ("available", "reserve", "__enter__", "__exit__"):
            if not callable(getattr(reserve, method, None)):
                self.fail(
                    f"the null reservation has no {method}()" + UPGRADE.format(section=self.section)
                )
        self.assertFalse(reserve.available())


class AcceptFailureTests(TestCase):
    """
    The accepting section: Twisted's accept loop ``tcp._accept``, which
    :func:`twisted_journey._twisted.throttleAcceptFailures` wraps.
    """

    section = "accepting under descriptor exhaustion"

    def test_acceptLoopIsWrappable(self) -> None:
        """
        Ports accept through the module function ``tcp._accept(logger, accepts,
        listener, reservedFD)``, which reports a failed accept with
        ``logger.info("Could not accept new connection ({acceptError})", ...)``; wrapped,
        ten failures in a row make one event, from the sentence function.
        """
        if not callable(getattr(tcp, "_accept", None)):
            self.fail("twisted.internet.tcp._accept is gone" + UPGRADE.format(section=self.section))
        parameters = list(inspect.signature(tcp._accept).parameters)  # type: ignore[attr-defined]
        if parameters != ["logger", "accepts", "listener", "reservedFD"]:
            self.fail(f"tcp._accept takes {parameters}" + UPGRADE.format(section=self.section))
        if "_accept(" not in inspect.getsource(tcp.Port.doRead):
            self.fail(
                "tcp.Port.doRead no longer calls _accept" + UPGRADE.format(section=self.section)
            )
        self.addCleanup(setattr, tcp, "_accept", tcp._accept)  # type: ignore[attr-defined]
        self.addCleanup(setattr, _twisted, "_acceptFailed", _twisted._acceptFailed)
        sentences: list[str] = []

        def failed(reason: str) -> str | None:
            sentences.append(reason)
            return "said once" if len(sentences) == 1 else None

        _twisted.throttleAcceptFailures(failed)

        class Listener:
            def accept(self) -> None:
                raise OSError(errno.EMFILE, "Too many open files")

        events: list[dict[str, object]] = []
        logger = Logger(observer=events.append)
        for _ in range(10):
            accepted = list(
                tcp._accept(logger, range(5), Listener(), tcp._NullFileDescriptorReservation())  # type: ignore[attr-defined]
            )
            self.assertEqual(accepted, [])
        self.assertEqual(sentences, ["EMFILE"] * 10)
        if [event.get("sentence") for event in events] != ["said once"]:
            self.fail(f"the accept loop logged {events}" + UPGRADE.format(section=self.section))


class WorkerPortTests(TestCase):
    """
    The workers section: the adopting constructors, the accept-count and shutdown
    attributes our port classes override, and where Twisted keeps systemd's descriptors.
    """

    section = "workers: adopted listening sockets"

    def require(self, owner: object, name: str) -> None:
        """
        Fail, naming the assumption, unless ``owner`` has ``name``.
        """
        if not hasattr(owner, name):
            self.fail(f"{owner!r} has no {name}" + UPGRADE.format(section=self.section))

    def test_attributes(self) -> None:
        """
        What :mod:`twisted_journey._twisted`'s workers section names still exists.
        """
        from twisted.internet.endpoints import _SystemdParser

        self.require(tcp.Port, "_fromListeningDescriptor")
        self.require(unix.Port, "_fromListeningDescriptor")
        self.require(unix.Port, "_shouldShutdown")
        self.require(_SystemdParser, "_sddaemon")
        self.require(_SystemdParser._sddaemon, "inheritedNamedDescriptors")
        self.assertEqual(_twisted.systemdEnvironment(), {})

    def test_adoptedPortAcceptsOnePerWakeup(self) -> defer.Deferred[None]:
        """
        An adopted shared TCP port listens on the inherited socket, keeps
        ``numberAccepts`` at one whatever the port sets, and serves a connection.
        """
        from twisted.internet import reactor

        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        self.addCleanup(listening.close)
        arrived: defer.Deferred[Accepted] = defer.Deferred()
        factory = Factory.forProtocol(lambda: Accepted(arrived))
        port = _twisted.adoptListeningPort(
            reactor, os.dup(listening.fileno()), socket.AF_INET, factory, shared=True
        )
        port.startListening()
        self.addCleanup(port.stopListening)
        port.numberAccepts = 100
        self.assertEqual(
            port.numberAccepts, 1, "numberAccepts" + UPGRADE.format(section=self.section)
        )

        async def run() -> None:
            client = socket.create_connection(listening.getsockname())
            self.addCleanup(client.close)
            protocol = await arrived
            protocol.transport.loseConnection()  # type: ignore[union-attr]

        return defer.Deferred.fromCoroutine(run())
