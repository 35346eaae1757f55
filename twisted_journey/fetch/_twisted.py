# -*- test-case-name: tests.test_twisted_internals_fetch -*-
"""
Every use of Twisted's private or undocumented HTTP client API in the fetcher, in one
place (the servers' are in :mod:`twisted_journey._twisted`).

``tests/test_twisted_internals_fetch.py`` checks each assumption on real connections and
fails with a message naming it when Twisted changes.  Checked with Twisted 26.10.0 on
CPython 3.11.

What we rely on
---------------

HTTP client (:mod:`twisted_journey.fetch`)
    ``twisted.web``'s HTTP/1.1 client has no limit on the size or number of response
    headers, and silently drops bytes a server sends past a response's
    ``Content-Length``.  :func:`journeyPool` builds a connection pool whose connections
    bound the first and notice the second.  It relies on:

    * ``twisted.web.client._HTTP11ClientFactory``, which ``HTTPConnectionPool._factory``
      names and builds with ``(quiescentCallback, metadata)``, keeping the first as
      ``_quiescentCallback`` and building an ``HTTP11ClientProtocol(quiescentCallback)``;
    * ``HTTP11ClientProtocol.request()`` setting ``self._parser`` to a new
      ``HTTPClientParser``, a ``LineReceiver`` whose ``lineReceived`` sees every status
      and header line (``state`` is ``STATUS`` or ``HEADER`` meanwhile), whose
      ``MAX_LENGTH`` bounds one line and which calls ``lineLengthExceeded`` past it;
    * ``HTTP11ClientProtocol.dataReceived()`` turning an exception raised by the parser
      into a ``ResponseFailed`` whose ``reasons`` hold it, and handing every byte of a
      response to that response's parser, which ends the head at its first line that is
      empty once one trailing ``\r`` is stripped (what :func:`headWithin` looks for);
    * ``HTTP11ClientProtocol._finishResponse_WAITING(rest)`` receiving the bytes after the
      end of a response, while ``self._parser.response`` is still that response;
    * ``twisted.web._newclient._DataLoss`` being the reason a body with a declared length
      ends early (:data:`DataLoss`);
    * ``twisted.web.http._MalformedChunkedDataError`` being the reason a chunked body's
      framing is broken, and ``twisted.web.http.maxChunkSizeLineLength`` the longest chunk
      size line (extensions included) it reads (:data:`MalformedChunks`,
      :data:`MAX_CHUNK_LINE`);
    * a TCP transport reading up to its ``bufferSize`` bytes per ``recv`` (64 KiB by
      default), so that setting it on the connection sets the read size.

Splicing a body (:mod:`twisted_journey.fetch.splicing`)
    An identity body over plain TCP can be moved from the socket to the file by the
    kernel (``splice(2)``), never entering the process.  :func:`identityBody`,
    :func:`divertReads`, :func:`restoreReads` and :func:`consumeIdentity` rely on:

    * the body protocol's transport being ``_newclient.TransportProxyProducer``, whose
      ``_producer`` is the connection's own transport, a
      ``twisted.internet.tcp.Connection`` for plain TCP (TLS puts a
      ``TLSMemoryBIOProtocol`` there instead, so it is never spliced), with the socket as
      ``socket`` and the ``HTTP11ClientProtocol`` as ``protocol`` -- or, for a
      connection made by a client endpoint, as the ``_wrappedProtocol`` of the
      ``twisted.internet.endpoints._WrappingProtocol`` there;
    * the reactor reading a connection by calling ``doRead()`` looked up on the instance
      (an instance attribute shadows ``tcp.Connection.doRead``), treating a returned
      ``ConnectionDone``/``ConnectionLost`` as the end of the connection, as
      ``tcp.Connection.doRead`` itself returns;
    * ``HTTP11ClientProtocol._parser.bodyDecoder`` being, while a body with a
      ``Content-Length`` is received, a ``twisted.web.http._IdentityTransferDecoder``
      whose ``contentLength`` counts the bytes still to come, and which finishes the
      response (end of body, surplus bytes, connection reuse) when that many more arrive
      through ``dataReceived``: lowering it by the bytes moved past the parser keeps its
      framing exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.web._newclient import (
    HEADER,
    STATUS,
    HTTP11ClientProtocol,
    HTTPClientParser,
    _DataLoss,
)
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.http import (
    _IdentityTransferDecoder,
    _MalformedChunkedDataError,
    maxChunkSizeLineLength,
)

from twisted_journey.fetch.errors import (
    ProtocolError,
    headers_too_large,
    too_many_header_fields,
)

__all__ = [
    "MAX_CHUNK_LINE",
    "BoundedClientProtocol",
    "DataLoss",
    "MalformedChunks",
    "boundParser",
    "consumeIdentity",
    "divertReads",
    "headWithin",
    "identityBody",
    "journeyPool",
    "restoreReads",
]


#: What a response body ends with when its connection closed before the length it
#: declared (Content-Length or chunking) was received: a cut body.
DataLoss = _DataLoss

#: What a chunked body ends with when its framing is broken (a chunk size that is not
#: hexadecimal, a chunk size line longer than :data:`MAX_CHUNK_LINE`...): a framing error.
MalformedChunks = _MalformedChunkedDataError

#: The longest chunk size line (extensions included) Twisted reads.
MAX_CHUNK_LINE: int = maxChunkSizeLineLength


def boundParser(parser: HTTPClientParser, maxBytes: int, maxFields: int) -> None:
    """
    Make ``parser`` raise :class:`ProtocolError` once the status and header lines of its
    response (interim ``1xx`` responses included) pass ``maxBytes`` bytes or ``maxFields``
    header fields, buffering no more than about ``maxBytes`` while doing so.
    """
    received = 0
    fields = 0
    lineReceived = parser.lineReceived

    def tooLarge() -> ProtocolError:
        """
        The error for headers past ``maxBytes``.
        """
        return headers_too_large(maxBytes)

    def bounded(line: bytes) -> Any:
        """
        Count a status or header line, then let the parser have it.
        """
        nonlocal received, fields
        if parser.state in (STATUS, HEADER):
            received += len(line) + 1
            if received > maxBytes:
                raise tooLarge()
            if parser.state == HEADER and line.strip(b"\r") and line[:1] not in b" \t":
                fields += 1
                if fields > maxFields:
                    raise too_many_header_fields(maxFields)
        return lineReceived(line)

    def lineLengthExceeded(line: bytes) -> Any:
        """
        One line past ``MAX_LENGTH``: headers too large.
        """
        raise tooLarge()

    parser.MAX_LENGTH = maxBytes
    parser.lineReceived = bounded  # type: ignore[method-assign]
    parser.lineLengthExceeded = lineLengthExceeded  # type: ignore[method-assign]


def headWithin(data: bytes, maxBytes: int, maxFields: int) -> bool:
    """
    Whether ``data``, the first bytes of a response, hold its whole status line and
    header block, its status code is a final one written plainly (three digits, ``2``
    to ``5`` first: not ``1xx``, nor ``0100`` or ``+100``, which Twisted's ``int()``
    also reads as interim), and the block is within
    ``maxBytes`` bytes and ``maxFields`` header fields: then counting its lines one by one
    (:func:`boundParser`) cannot fail, and need not be done.

    The block ends at the first empty line (``\n`` or ``\r\n``), as Twisted's parser
    reads it; every line but the status line and that empty one is counted as a field, so
    the count is never below :func:`boundParser`'s.
    """
    if not data.startswith(b"HTTP/"):
        return False
    space = data.find(b" ", 5, 16)
    if space < 0:
        return False
    # Twisted reads the code with int(): "0100" or "+100" is an interim answer too.  Only
    # a plain final code (three digits, 2 to 5 first) is judged here; anything else is
    # counted line by line.
    code = data[space + 1 : space + 4]
    if not (
        len(code) == 3
        and code.isdigit()
        and code[:1] in b"2345"
        and data[space + 4 : space + 5] in (b" ", b"\r", b"\n")
    ):
        return False
    ends = [
        found + len(blank)
        for blank in (b"\n\n", b"\n\r\n")
        if (found := data.find(blank, 0, maxBytes)) >= 0
    ]
    if not ends:
        return False
    end = min(ends)
    return end <= maxBytes and data.count(b"\n", 0, end) - 2 <= maxFields


class BoundedClientProtocol(HTTP11ClientProtocol):
    """
    An HTTP/1.1 client connection that bounds response headers (:func:`boundParser`) and
    marks a response whose server sent bytes past its ``Content-Length`` with
    ``journeySurplus`` (their count), so a too-long body is an error, not silently cut,
    and one whose connection was reset with ``journeyReset``, so a body ended by its
    connection is not taken as complete.
    """

    maxHeaderBytes = 100 * 1024
    maxHeaders = 100
    #: Bytes asked of each ``recv`` on a plain TCP connection once a read has filled the
    #: first size (Twisted's default is 64 KiB).  256 KiB measured best on loopback for
    #: large bodies: 128 KiB similar, 1 MiB slower (each read then allocates and frees a
    #: large buffer).
    readSize = 256 * 1024
    #: Bytes asked of each ``recv`` until one read fills them: small answers (headers and
    #: a small body) stay below the C library's ``mmap`` threshold (128 KiB), so each
    #: read's buffer is not mapped, shrunk and unmapped again (three system calls and
    #: fresh pages per response).
    firstReadSize = 64 * 1024
    _readSize: int | None = None

    def connectionMade(self) -> None:
        """
        Read small pieces until a read fills one, then larger pieces than Twisted's
        default: fewer system calls and fewer trips through the parser per MiB of a
        large body, without a large buffer per small response.
        """
        super().connectionMade()
        if isinstance(getattr(self.transport, "bufferSize", None), int):
            self._readSize = self.firstReadSize
            self.transport.bufferSize = self.firstReadSize  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        """
        Take ``data`` as Twisted does; a read that filled the small size switches the
        connection to :attr:`readSize` (a large body is arriving).
        """
        size = self._readSize
        if size is not None and size < self.readSize and len(data) >= size:
            self._readSize = self.readSize
            self.transport.bufferSize = self.readSize  # type: ignore[union-attr]
        parser = self._unjudged
        if parser is not None:
            # The first bytes of a response: when they hold its whole head, within the
            # limits, its lines need no counting; otherwise they are counted from the
            # first (nothing has reached the parser yet).
            self._unjudged = None
            if parser is self._parser and not headWithin(
                data, self.maxHeaderBytes, self.maxHeaders
            ):
                boundParser(parser, self.maxHeaderBytes, self.maxHeaders)
        super().dataReceived(data)

    #: The parser of a response none of whose bytes arrived yet.
    _unjudged: HTTPClientParser | None = None

    def request(self, request: Any) -> Any:
        """
        Issue ``request`` as Twisted does, with the new response parser bounded: see
        :meth:`dataReceived` and :func:`headWithin`.
        """
        d = super().request(request)
        if self._parser is not None:
            self._parser.MAX_LENGTH = self.maxHeaderBytes
            self._unjudged = self._parser
        return d

    def connectionLost(self, reason: Any = None) -> None:
        """
        Mark the response being received with ``journeyReset`` when a plain TCP
        connection ended otherwise than by the server closing it (a reset), then lose the
        connection as Twisted does: a body that ends with its connection is complete only
        when the server closed it cleanly, and Twisted reports both ends alike
        (``PotentialDataLoss``).  A TLS connection closed without ``close_notify`` is
        left alone: curl and the stdlib take it as the end of such a body too.
        """
        if (
            reason is not None
            and not reason.check(ConnectionDone)
            and not ISSLTransport.providedBy(self.transport)
        ):
            response = getattr(self._parser, "response", None)
            if response is not None:
                response.journeyReset = True
        super().connectionLost(reason)

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        """
        Note surplus bytes on the response, then finish as Twisted does.
        """
        response = getattr(self._parser, "response", None)
        if rest and response is not None:
            response.journeySurplus = len(rest)
        super()._finishResponse_WAITING(rest)


def journeyPool(reactor: Any, maxHeaderBytes: int, maxHeaders: int) -> HTTPConnectionPool:
    """
    A persistent ``HTTPConnectionPool`` whose connections are
    :class:`BoundedClientProtocol` with these limits.
    """

    class Protocol(BoundedClientProtocol):
        """
        Connections with this pool's limits.
        """

        pass

    Protocol.maxHeaderBytes = maxHeaderBytes
    Protocol.maxHeaders = maxHeaders

    class ClientFactory(_HTTP11ClientFactory):
        """
        Builds :class:`Protocol` connections for the pool.
        """

        noisy = False

        def buildProtocol(self, addr: Any) -> Any:
            """
            A connection with this pool's limits.
            """
            return Protocol(self._quiescentCallback)

    class Pool(HTTPConnectionPool):
        """
        The pool, building connections with :class:`ClientFactory`.
        """

        _factory = ClientFactory

    return Pool(reactor)


def identityBody(bodyTransport: Any) -> Any:
    """
    The plain TCP connection (a ``tcp.Connection``) a response body is arriving on, when
    that body is framed by a ``Content-Length`` and more of it is still to come; else
    ``None`` (TLS, chunked, close-delimited, finished, or not Twisted's HTTP/1.1 client).

    :param bodyTransport: the transport the body protocol was connected to.
    """
    from twisted.internet.tcp import Connection

    connection = getattr(bodyTransport, "_producer", None)
    if not isinstance(connection, Connection):
        return None
    if identityLeft(connection) is None:
        return None
    return connection


def identityLeft(connection: Any) -> int | None:
    """
    The bytes of the current ``Content-Length`` body still to arrive on ``connection``,
    or ``None`` when it is not receiving one.
    """
    protocol = _httpProtocol(connection)
    if protocol is None:
        return None
    decoder = getattr(protocol._parser, "bodyDecoder", None)
    if type(decoder) is not _IdentityTransferDecoder or decoder.dataCallback is None:
        return None
    left = decoder.contentLength
    return left if isinstance(left, int) else None


def _httpProtocol(connection: Any) -> HTTP11ClientProtocol | None:
    """
    The HTTP/1.1 client protocol of a TCP connection (inside an endpoint's wrapper), or
    ``None``.
    """
    from twisted.internet.endpoints import _WrappingProtocol

    protocol = getattr(connection, "protocol", None)
    if isinstance(protocol, _WrappingProtocol):
        protocol = protocol._wrappedProtocol
    return protocol if isinstance(protocol, HTTP11ClientProtocol) else None


def consumeIdentity(connection: Any, size: int) -> None:
    """
    ``size`` bytes of the current body were moved past the parser (into the file): count
    them as received, so the parser still ends the body at its exact length.  At least
    one byte must be left for the parser, which finishes the response when it sees it.
    """
    protocol = _httpProtocol(connection)
    assert protocol is not None
    parser: Any = protocol._parser
    decoder = parser.bodyDecoder
    if not 0 <= size < decoder.contentLength:
        raise ValueError(f"cannot consume {size} of {decoder.contentLength} bytes")
    decoder.contentLength -= size


def divertReads(connection: Any, doRead: Callable[[], object]) -> None:
    """
    Have the reactor call ``doRead`` instead of ``connection.doRead`` when the socket is
    readable, until :func:`restoreReads`.
    """
    connection.doRead = doRead


def restoreReads(connection: Any) -> None:
    """
    Undo :func:`divertReads` (idempotent).
    """
    connection.__dict__.pop("doRead", None)
