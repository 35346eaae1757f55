"""
Tests for the fetch section of :mod:`twisted_journey.fetch._twisted`: each Twisted internal it
leans on is checked by name, so a Twisted upgrade that changes one fails here, loudly and
saying which, rather than quietly changing how responses are judged.

Unit tests drive a :class:`~twisted_journey.fetch._twisted.BoundedClientProtocol` over a
``StringTransport``; no network.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest
from twisted.web import _newclient
from twisted.web._newclient import Request, ResponseFailed
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from twisted_journey.fetch import _twisted
from twisted_journey.fetch.errors import ProtocolError


def connected(maxBytes: int = 1024, maxFields: int = 5) -> tuple[Any, StringTransport]:
    """
    A :class:`BoundedClientProtocol` with these limits, on a ``StringTransport``.
    """
    pool = _twisted.journeyPool(MemoryReactorClock(), maxBytes, maxFields)
    factory = pool._factory(lambda protocol: None, "metadata")
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def get(protocol: Any) -> Any:
    """
    Issue a GET for ``/`` on ``protocol``; return its Deferred.
    """
    request = Request(b"GET", b"/", Headers({b"host": [b"example"]}), None)
    return protocol.request(request)


class InternalsPresentTests(unittest.SynchronousTestCase):
    """
    The private names and behaviours the fetch section relies on are still there.
    """

    def test_names(self) -> None:
        """
        ``_HTTP11ClientFactory`` (with ``_quiescentCallback``), ``HTTPConnectionPool._factory``,
        ``HTTP11ClientProtocol._parser``/``_finishResponse_WAITING``, and the parser's
        ``lineReceived``/``lineLengthExceeded``/``MAX_LENGTH``/``state`` all exist.
        """
        from twisted.web import _newclient, client

        missing = [
            what
            for what, present in [
                ("client._HTTP11ClientFactory", hasattr(client, "_HTTP11ClientFactory")),
                ("HTTPConnectionPool._factory", hasattr(client.HTTPConnectionPool, "_factory")),
                (
                    "HTTP11ClientProtocol._finishResponse_WAITING",
                    hasattr(_newclient.HTTP11ClientProtocol, "_finishResponse_WAITING"),
                ),
                (
                    "HTTP11ClientProtocol._parser",
                    hasattr(_newclient.HTTP11ClientProtocol, "_parser"),
                ),
                (
                    "HTTPClientParser.lineReceived",
                    hasattr(_newclient.HTTPClientParser, "lineReceived"),
                ),
                (
                    "HTTPClientParser.lineLengthExceeded",
                    hasattr(_newclient.HTTPClientParser, "lineLengthExceeded"),
                ),
                ("HTTPClientParser.MAX_LENGTH", hasattr(_newclient.HTTPClientParser, "MAX_LENGTH")),
                (
                    "_newclient.STATUS/HEADER",
                    hasattr(_newclient, "STATUS") and hasattr(_newclient, "HEADER"),
                ),
                ("_newclient._DataLoss", hasattr(_newclient, "_DataLoss")),
            ]
            if not present
        ]
        self.assertEqual(missing, [], "Twisted changed; see twisted_journey/fetch/_twisted.py")

    def test_malformedChunks(self) -> None:
        """
        Twisted's chunked decoder refuses a chunk size line longer than
        ``maxChunkSizeLineLength`` with ``_MalformedChunkedDataError`` saying it "exceeds
        maximum", and that limit is the one the stdlib twin applies too
        (``semantics.MAX_CHUNK_LINE``), so both engines draw the line at the same byte.
        """
        from twisted.web import http

        from twisted_journey.fetch import semantics

        self.assertEqual(_twisted.MAX_CHUNK_LINE, semantics.MAX_CHUNK_LINE)
        decoder = http._ChunkedTransferDecoder(lambda data: None, lambda rest: None)
        with self.assertRaises(_twisted.MalformedChunks) as caught:
            decoder.dataReceived(b"5;" + b"e" * (_twisted.MAX_CHUNK_LINE + 10))
        self.assertIn("exceeds maximum", str(caught.exception))

    def test_trailerLimit(self) -> None:
        """
        Twisted's chunked decoder refuses more than ``semantics.MAX_TRAILER_BYTES`` of
        trailer fields (each line with its CRLF) saying "trailer headers data is too
        long", the limit and the words the stdlib twin uses too.
        """
        from twisted.web import http

        from twisted_journey.fetch import errors, semantics

        limit = semantics.MAX_TRAILER_BYTES
        line = b"X: " + b"a" * (limit - 5) + b"\r\n"
        finished: list[bytes] = []
        decoder = http._ChunkedTransferDecoder(lambda data: None, finished.append)
        decoder.dataReceived(b"0\r\n" + line + b"\r\n")
        self.assertEqual(finished, [b""])
        decoder = http._ChunkedTransferDecoder(lambda data: None, finished.append)
        with self.assertRaises(_twisted.MalformedChunks) as caught:
            decoder.dataReceived(b"0\r\na" + line + b"\r\n")
        self.assertIn(str(caught.exception).rstrip(".").lower(), str(errors.trailer_too_long()))

    def test_factoryBuildsBoundedProtocol(self) -> None:
        """
        The pool's factory builds a :class:`BoundedClientProtocol` with the pool's limits
        and Twisted's quiescent callback.
        """
        protocol, _ = connected(2048, 7)
        self.assertIsInstance(protocol, _twisted.BoundedClientProtocol)
        self.assertEqual((protocol.maxHeaderBytes, protocol.maxHeaders), (2048, 7))
        self.assertIsNotNone(protocol._quiescentCallback)

    def test_requestCreatesBoundedParser(self) -> None:
        """
        ``request()`` leaves a parser in ``_parser`` whose line handling is bounded.
        """
        protocol, _ = connected(4096)
        get(protocol)
        self.assertIsNotNone(protocol._parser, "HTTP11ClientProtocol no longer sets _parser")
        self.assertEqual(protocol._parser.MAX_LENGTH, 4096)


class BoundsTests(unittest.SynchronousTestCase):
    """
    Header bounds end the response with a :class:`ProtocolError` and bounded buffering.
    """

    def failure(self, d: Any) -> ProtocolError:
        failure = self.failureResultOf(d, ResponseFailed)
        errors = [reason.value for reason in failure.value.reasons]
        self.assertEqual(len(errors), 1, errors)
        self.assertIsInstance(errors[0], ProtocolError)
        return errors[0]

    def test_withinBounds(self) -> None:
        """
        A response inside both limits is delivered.
        """
        protocol, _ = connected()
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.successResultOf(d).code, 200)

    def test_fieldCount(self) -> None:
        """
        One field past ``maxHeaders`` fails; continuation lines do not count as fields.
        """
        protocol, transport = connected(maxFields=2)
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nA: 1\r\n  continued\r\nB: 2\r\nC: 3\r\n")
        self.assertIn("--max-headers", str(self.failure(d)))
        self.assertTrue(transport.disconnecting)

    def test_byteCount(self) -> None:
        """
        Many short lines past ``maxHeaderBytes``, and interim ``1xx`` responses count.
        """
        protocol, _ = connected(maxBytes=300, maxFields=1000)
        d = get(protocol)
        interim = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        protocol.dataReceived(interim * 5 + b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100)
        self.assertIn("--max-header-bytes", str(self.failure(d)))

    def test_endlessLine(self) -> None:
        """
        One line longer than ``maxHeaderBytes`` fails without waiting for its end, and
        the parser holds no more than about the limit.
        """
        protocol, _ = connected(maxBytes=1024)
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nX: ")
        for _ in range(4):
            if d.called:
                break
            protocol.dataReceived(b"x" * 1000)
        self.assertIn("--max-header-bytes", str(self.failure(d)))

    def test_wholeHeadWithinNotCounted(self) -> None:
        """
        A response whose whole head arrives in its first bytes, within both limits, is
        parsed without counting its lines (:func:`headWithin` judged it at once).
        """
        protocol, _ = connected(maxFields=2)
        d = get(protocol)
        parser = protocol._parser
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertNotIn("lineReceived", vars(parser))

    def test_wholeHeadOverCounted(self) -> None:
        """
        A whole head in the first bytes but over the field limit is counted line by
        line, and fails as any other.
        """
        protocol, _ = connected(maxFields=2)
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        self.assertIn("--max-headers", str(self.failure(d)))

    def test_oddInterimCodeCounted(self) -> None:
        """
        An interim answer whose code Twisted's ``int()`` reads as ``100`` though it is not
        written so (``0100``, ``+100``) is counted too: the final head after it, over the
        field limit, fails.
        """
        for code in (b"0100", b"+100"):
            protocol, _ = connected(maxFields=2)
            d = get(protocol)
            protocol.dataReceived(
                b"HTTP/1.1 " + code + b" Continue\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n"
            )
            self.assertIn("--max-headers", str(self.failure(d)), code)

    def test_splitHeadCounted(self) -> None:
        """
        A head that arrives in pieces is counted from its first line: fields spread over
        two reads still fail past the limit.
        """
        protocol, _ = connected(maxFields=3)
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n")
        self.assertNoResult(d)
        protocol.dataReceived(b"C: 3\r\nD: 4\r\n\r\n")
        self.assertIn("--max-headers", str(self.failure(d)))

    def test_surplusNoticed(self) -> None:
        """
        Bytes after a response's declared end mark the response with ``journeySurplus``.
        """
        protocol, _ = connected()
        d = get(protocol)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        response = self.successResultOf(d)
        protocol.dataReceived(b"okEXTRA")
        self.assertEqual(getattr(response, "journeySurplus", None), 5)


class HeadWithinTests(unittest.SynchronousTestCase):
    """
    :func:`headWithin` says a response's first bytes need no line counting only when
    counting could not fail.
    """

    def test_completeHead(self) -> None:
        """
        A whole head within both limits, with CRLF or bare LF lines, a body after it.
        """
        head = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\nbody\n\nmore"
        self.assertTrue(_twisted.headWithin(head, 1024, 2))
        self.assertTrue(_twisted.headWithin(b"HTTP/1.0 404 X\nA: 1\n\n", 1024, 1))

    def test_notJudged(self) -> None:
        """
        An incomplete head, an interim ``1xx`` response, bytes that are not a status
        line, a head one byte or one field over a limit: all are counted line by line.
        """
        head = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"
        self.assertFalse(_twisted.headWithin(head[:-2], 1024, 2))
        self.assertFalse(_twisted.headWithin(b"HTTP/1.1 103 Early\r\nL: x\r\n\r\n", 1024, 2))
        # Codes Twisted's int() also reads as interim, or not as written: counted.
        for code in (b"0100", b"+100", b"00101", b" 200", b"2000", b"20", b"099"):
            self.assertFalse(
                _twisted.headWithin(b"HTTP/1.1 " + code + b" X\r\nA: 1\r\n\r\n", 1024, 2), code
            )
        self.assertFalse(_twisted.headWithin(b"\r\n" + head, 1024, 2))
        self.assertTrue(_twisted.headWithin(head, len(head), 2))
        self.assertFalse(_twisted.headWithin(head, len(head) - 1, 2))
        self.assertFalse(_twisted.headWithin(head, 1024, 1))
        continued = b"HTTP/1.1 200 OK\r\nA: 1\r\n  more\r\n\r\n"
        self.assertFalse(_twisted.headWithin(continued, 1024, 1))


class ReadSizeTests(unittest.SynchronousTestCase):
    """
    The connection asks its TCP transport for small reads until one fills, then for
    larger reads.
    """

    def connect(self) -> tuple[Any, StringTransport]:
        """
        A pool connection on a transport with a ``bufferSize``, as a TCP one has.
        """
        pool = _twisted.journeyPool(MemoryReactorClock(), 1024, 5)
        protocol = pool._factory(lambda protocol: None, "metadata").buildProtocol(None)
        transport = StringTransport()
        transport.bufferSize = 65536  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        return protocol, transport

    def test_tcpTransportReadSize(self) -> None:
        """
        Twisted's TCP transports still read ``bufferSize`` bytes per ``recv``, and a
        :class:`BoundedClientProtocol` sets it to its ``firstReadSize``.
        """
        import inspect

        from twisted.internet import tcp

        self.assertIn(
            "self.socket.recv(self.bufferSize)",
            inspect.getsource(tcp.Connection.doRead),
            "Twisted's TCP read size is no longer bufferSize; see twisted_journey/fetch/_twisted.py",
        )
        _, transport = self.connect()
        self.assertEqual(transport.bufferSize, _twisted.BoundedClientProtocol.firstReadSize)  # type: ignore[attr-defined]

    def test_smallAnswersKeepSmallReads(self) -> None:
        """
        A small response, read in one piece, leaves the read size small: no large
        buffer is allocated (and mapped, and unmapped) per small file.
        """
        protocol, transport = self.connect()
        protocol.request(Request(b"GET", b"/", Headers({b"host": [b"h"]}), None))
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10240\r\n\r\n" + b"x" * 10240)
        self.assertEqual(transport.bufferSize, _twisted.BoundedClientProtocol.firstReadSize)  # type: ignore[attr-defined]

    def test_fullReadGrowsReads(self) -> None:
        """
        A read that fills the small size (a large body is arriving) switches the
        connection to ``readSize`` for the rest.
        """
        protocol, transport = self.connect()
        protocol.request(Request(b"GET", b"/", Headers({b"host": [b"h"]}), None))
        first = _twisted.BoundedClientProtocol.firstReadSize
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
        protocol.dataReceived(head + b"x" * (first - len(head)))
        self.assertEqual(transport.bufferSize, _twisted.BoundedClientProtocol.readSize)  # type: ignore[attr-defined]


class _Connection:
    """
    Stands in for a ``tcp.Connection``: what the splicing shims read of one.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol


class _Body(Protocol):
    """
    Collects a response body and how it ended.
    """

    def __init__(self) -> None:
        self.data = b""
        self.reason: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class SplicingInternalsTests(unittest.SynchronousTestCase):
    """
    The internals :mod:`twisted_journey.fetch.splicing` leans on: the identity decoder's
    counter, the endpoint wrapper, the transport proxy, and the reactor's ``doRead`` call.
    """

    def _receiving(self, head: bytes, wrap: bool = False) -> tuple[Any, Any, _Body]:
        """
        A protocol receiving a response with ``head``; its stand-in connection
        (``wrap``: inside an endpoint's wrapper) and the body's collector.
        """
        from twisted.internet.endpoints import _WrappingProtocol

        protocol, _ = connected()
        d = get(protocol)
        protocol.dataReceived(head)
        body = _Body()
        self.successResultOf(d).deliverBody(body)
        outer = _WrappingProtocol(Deferred(), protocol) if wrap else protocol
        return protocol, _Connection(outer), body

    def test_identityCounter(self) -> None:
        """
        A ``Content-Length`` body's decoder counts the bytes still to come in
        ``contentLength``; lowering it by bytes that went past the parser
        (:func:`consumeIdentity`) makes the parser end the body exactly at its length,
        with the surplus still noticed.  The connection may be an endpoint's wrapper.
        """
        for wrap in (False, True):
            protocol, connection, body = self._receiving(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wrap
            )
            self.assertEqual(_twisted.identityLeft(connection), 7)
            _twisted.consumeIdentity(connection, 5)
            self.assertEqual(_twisted.identityLeft(connection), 2)
            with self.assertRaises(ValueError):
                _twisted.consumeIdentity(connection, 2)  # the last byte is the parser's
            protocol.dataReceived(b"xyEXTRA")
            self.assertEqual(body.data, b"abcxy")
            self.assertIsInstance(body.reason.value, ResponseDone)
            self.assertIsNone(_twisted.identityLeft(connection))

    def test_notIdentity(self) -> None:
        """
        A chunked or close-delimited body has no identity counter, so it is never spliced.
        """
        for head in (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        ):
            _, connection, _ = self._receiving(head)
            self.assertIsNone(_twisted.identityLeft(connection))

    def test_transportProxy(self) -> None:
        """
        The body's transport is a ``TransportProxyProducer`` holding the connection's
        transport as ``_producer``; a transport that is not a TCP connection (TLS, memory)
        is never spliced.
        """
        protocol, _, body = self._receiving(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.assertIsInstance(body.transport, _newclient.TransportProxyProducer)
        self.assertIs(body.transport._producer, protocol.transport)
        self.assertIsNone(_twisted.identityBody(body.transport))

    def test_readsDiverted(self) -> None:
        """
        The poll-like reactors read a connection by calling ``doRead()`` on it, which an
        instance attribute (:func:`divertReads`) shadows and :func:`restoreReads` removes.
        """
        import inspect

        from twisted.internet import posixbase, tcp

        self.assertIn(
            "selectable.doRead()",
            inspect.getsource(posixbase._PollLikeMixin._doReadOrWrite),
            "Twisted's reactor no longer calls doRead(); see twisted_journey/fetch/_twisted.py",
        )
        connection = tcp.Connection.__new__(tcp.Connection)
        calls: list[str] = []
        _twisted.divertReads(connection, lambda: calls.append("diverted"))
        connection.doRead()
        _twisted.restoreReads(connection)
        _twisted.restoreReads(connection)
        self.assertEqual(calls, ["diverted"])
        self.assertEqual(connection.doRead.__func__, tcp.Connection.doRead)  # type: ignore[attr-defined]
