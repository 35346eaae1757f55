"""
Loopback HTTP servers for the fetcher's tests, run in the test's own reactor.

- :func:`webSite`: ``twisted.web`` resources (blobs with Range, ETag and Last-Modified,
  redirects, status codes with ``Retry-After``, a flaky resource, gzip, header echo).
- :class:`RawFactory`: a tiny raw server for what well-behaved servers never do (short,
  long and unframed bodies, a stall mid-body, redirect loops, gzip bombs, hostile names).
- :func:`certificate`: a self-signed certificate for ``localhost``.
- :class:`ConnectProxy`: a ``CONNECT`` proxy that also answers plain proxy requests
  itself, recording every request line it saw.
- :func:`listen`: listen on 127.0.0.1 and register the cleanup.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from tests.support import proxyFreeEnvironment


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


BODY = bytes(range(256)) * 40  # 10 KiB, every byte value
ETAG = b'"v1"'
LAST_MODIFIED = "Thu, 01 Jan 2026 00:00:00 GMT"


def childEnvironment(**extra: str) -> dict[str, str]:
    """
    A child's environment with every proxy variable removed (tests never leave loopback),
    plus ``extra``.
    """
    return proxyFreeEnvironment(**extra)


def listen(testCase: Any, factory: Any, tls: Any = None) -> int:
    """
    Listen on 127.0.0.1 (with TLS when ``tls`` context options are given), stop at
    cleanup, and return the port number.
    """
    if tls is None:
        port = _reactor().listenTCP(0, factory, interface="127.0.0.1")
    else:
        port = _reactor().listenSSL(0, factory, tls, interface="127.0.0.1")
    testCase.addCleanup(port.stopListening)
    return int(port.getHost().port)


# --- twisted.web resources ------------------------------------------------------------------


class Blob(Resource):
    """
    Serves ``data`` with ETag, Last-Modified, If-None-Match, ``Range: bytes=N-`` and
    If-Range (ignored, as some servers do, with ``ifRange=False``).

    :ivar requests: the request headers of every request, as ``{name: value}`` dicts.
    """

    isLeaf = True

    def __init__(
        self,
        data: bytes = BODY,
        etag: bytes | None = ETAG,
        ranges: bool = True,
        headers: dict[bytes, bytes] | None = None,
        ifRange: bool = True,
    ) -> None:
        super().__init__()
        self.data = data
        self.etag = etag
        self.ranges = ranges
        self.ifRange = ifRange
        self.headers = headers or {}
        self.requests: list[dict[str, str]] = []

    def render_GET(self, request: Request) -> bytes:
        self.requests.append(
            {
                k.decode().lower(): v[0].decode()
                for k, v in request.requestHeaders.getAllRawHeaders()
            }
        )
        for name, value in self.headers.items():
            request.setHeader(name, value)
        request.setHeader(b"last-modified", LAST_MODIFIED.encode())
        if self.etag is not None:
            request.setHeader(b"etag", self.etag)
            if request.getHeader(b"if-none-match") == self.etag:
                request.setResponseCode(304)
                return b""
        wanted = (request.getHeader(b"range") or b"").decode()
        condition = request.getHeader(b"if-range")
        if (
            self.ifRange
            and condition is not None
            and condition not in (self.etag, LAST_MODIFIED.encode())
        ):
            wanted = ""  # changed since: the whole new body, as RFC 9110 says
        if self.ranges and wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            size = len(self.data)
            if start >= size:
                request.setResponseCode(416)
                request.setHeader(b"content-range", f"bytes */{size}".encode())
                return b""
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {start}-{size - 1}/{size}".encode())
            return self.data[start:]
        return self.data


class Status(Resource):
    """
    ``/status/CODE``: answers CODE (with ``Retry-After: 0`` for 503).
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Code(int(path))


class _Code(Resource):
    isLeaf = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(self.code)
        if self.code == 503:
            request.setHeader(b"retry-after", b"0")
        return b"status body that must not be saved\n"


class Flaky(Resource):
    """
    Fails ``failures`` times with ``code`` (and ``Retry-After``), then serves ``data``.
    """

    isLeaf = True

    def __init__(self, failures: int, code: int = 503, retryAfter: bytes = b"0") -> None:
        super().__init__()
        self.failures = failures
        self.code = code
        self.retryAfter = retryAfter
        self.calls = 0

    def render_GET(self, request: Request) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            request.setResponseCode(self.code)
            request.setHeader(b"retry-after", self.retryAfter)
            return b"busy"
        return BODY


class Redirect(Resource):
    """
    ``/redirect/N``: N redirects, then to ``/blob``.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Hop(int(path))


class _Hop(Resource):
    isLeaf = True

    def __init__(self, remaining: int) -> None:
        super().__init__()
        self.remaining = remaining

    def render_GET(self, request: Request) -> bytes:
        target = b"/blob" if self.remaining <= 1 else b"/redirect/%d" % (self.remaining - 1)
        request.setResponseCode(302)
        request.setHeader(b"location", target)
        return b""


class RedirectTo(Resource):
    """
    Redirects every request to ``location``.
    """

    isLeaf = True

    def __init__(self, location: bytes) -> None:
        super().__init__()
        self.location = location

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", self.location)
        return b""


class Echo(Resource):
    """
    Answers with the request's headers as JSON (lower-case names).
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        return json.dumps(headers).encode()


class Gzipped(Resource):
    """
    ``data`` gzip-compressed, with ``Content-Encoding: gzip``, whatever was asked.
    """

    isLeaf = True

    def __init__(self, data: bytes = BODY) -> None:
        super().__init__()
        self.encoded = gzip.compress(data)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-encoding", b"gzip")
        return self.encoded


class Hold(Resource):
    """
    Holds every request open until :meth:`release`; counts how many are open at once.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Request] = []
        self.most = 0

    def render_GET(self, request: Request) -> Any:
        self.waiting.append(request)
        self.most = max(self.most, len(self.waiting))
        return NOT_DONE_YET

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for request in waiting:
            request.write(BODY)
            request.finish()


class Trickle(Resource):
    """
    Serves ``data`` with its ``Content-Length``, sending the first ``first`` bytes at once
    and the rest only on :meth:`release`: a slow download that is mid-body for as long as
    the test needs.
    """

    isLeaf = True

    def __init__(self, data: bytes, first: int) -> None:
        super().__init__()
        self.data = data
        self.first = first
        self.waiting: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-length", b"%d" % len(self.data))
        request.write(self.data[: self.first])
        self.waiting.append(request)
        return NOT_DONE_YET

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for request in waiting:
            if not request.finished and not request._disconnected:
                request.write(self.data[self.first :])
                request.finish()


def webRoot() -> Resource:
    """
    The resources :func:`webSite` serves.
    """
    root = Resource()
    root.putChild(b"blob", Blob())
    root.putChild(b"blob.bin", Blob())
    root.putChild(b"", Blob(b"<html>root</html>"))
    root.putChild(b"status", Status())
    root.putChild(b"redirect", Redirect())
    root.putChild(b"loop", RedirectTo(b"/loop"))
    root.putChild(b"echo", Echo())
    root.putChild(b"gzip", Gzipped())
    root.putChild(b"norange", Blob(ranges=False))
    root.putChild(
        b"named", Blob(headers={b"content-disposition": b'attachment; filename="report.csv"'})
    )
    return root


def webSite(root: Resource | None = None) -> Site:
    """
    A quiet ``Site`` for ``root`` (default :func:`webRoot`).
    """
    site = Site(root if root is not None else webRoot())
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return site


# --- raw servers ------------------------------------------------------------------------------


_bombs: dict[int, bytes] = {}


def gzipBomb(size: int = 2 << 30) -> bytes:
    """
    A valid gzip stream of ``size`` zero bytes (a whole number of MiB): about 2 MB for
    the default 2 GiB.  Built in a fraction of a second: once deflate's window is all
    zeros, each fully flushed 1 MiB block of zeros compresses to the same bytes, so the
    block is repeated rather than compressed again.
    """
    if size not in _bombs:
        block = bytes(1 << 20)
        blocks = size >> 20
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        steady = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        crc = 0
        for _ in range(blocks):
            crc = zlib.crc32(block, crc)
        body = first + steady * (blocks - 1) + compressor.flush()
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        _bombs[size] = header + body + struct.pack("<II", crc, size & 0xFFFFFFFF)
    return _bombs[size]


def response(status: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """
    A raw HTTP/1.1 response, exactly as given (nothing added).
    """
    head = b"HTTP/1.1 " + status + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


#: Raw answers by path: (bytes to send, close afterwards?).
RAW: dict[bytes, tuple[bytes, bool]] = {
    b"/short": (response(b"200 OK", [(b"Content-Length", b"100")], b"x" * 40), True),
    b"/short-etag": (
        response(b"200 OK", [(b"Content-Length", b"100"), (b"ETag", b'"short-v1"')], b"x" * 40),
        True,
    ),
    b"/long": (
        response(b"200 OK", [(b"Content-Length", b"10"), (b"Connection", b"close")], b"y" * 30),
        True,
    ),
    b"/unframed": (response(b"200 OK", [(b"Connection", b"close")], b"z" * 50), True),
    b"/stall": (response(b"200 OK", [(b"Content-Length", b"1000")], b"s" * 100), False),
    b"/loop": (
        response(b"302 Found", [(b"Location", b"/loop"), (b"Content-Length", b"0")], b""),
        False,
    ),
    b"/ok": (response(b"200 OK", [(b"Content-Length", b"5")], b"hello"), False),
}

#: Hostile ``Content-Disposition`` file names, and the safe name each must become
#: (``None``: unusable, so the URL's own name is used).
HOSTILE_NAMES: list[tuple[bytes, str | None]] = [
    (b"../../x", "x"),
    (b"/etc/passwd", "passwd"),
    (b"a\\b", "b"),
    (b"..", None),
    (b"bad\x01\x1fname.txt", "badname.txt"),
    (b"A" * 300 + b".txt", "A" * 196 + ".txt"),
]


class RawProtocol(Protocol):
    """
    Answers each request from ``factory.answers`` by path (``/dispo/N``: hostile name N;
    ``/bomb``: a gzip bomb); unknown paths get a 404.
    """

    factory: RawFactory

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            line = head.split(b"\r\n", 1)[0]
            self.factory.requestLines.append(line)
            path = line.split(b" ")[1] if len(line.split(b" ")) > 1 else b"/"
            if path in STREAMS:
                self._stream(STREAMS[path])
                return
            answer, close = self.factory.answer(path)
            self.transport.write(answer)  # type: ignore[union-attr]
            if close:
                self.transport.loseConnection()  # type: ignore[union-attr]
                return

    def _stream(self, stream: tuple[bytes, bytes, float]) -> None:
        """
        Send ``first``, then ``each`` every ``interval`` seconds until the connection ends.
        """
        from twisted.internet.task import LoopingCall

        first, each, interval = stream
        self.transport.write(first)  # type: ignore[union-attr]
        self.loop = LoopingCall(self.transport.write, each)  # type: ignore[union-attr]
        self.loop.clock = _reactor()
        self.loop.start(interval, now=False)

    def connectionLost(self, reason: object = None) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None and loop.running:
            loop.stop()
        if self in self.factory.connections:
            self.factory.connections.remove(self)


#: Answers that never end, by path: (first bytes, bytes sent again and again, seconds
#: between them).
STREAMS: dict[bytes, tuple[bytes, bytes, float]] = {
    # An endless stream of interim answers, each without a header field.
    b"/interim-forever": (b"", b"HTTP/1.1 103 Early Hints\r\n\r\n", 0.01),
    # A header line that never ends, a byte at a time.
    b"/slow-header": (b"HTTP/1.1 200 OK\r\nX-Slow: ", b"s", 0.05),
}


class RawFactory(Factory):
    """
    Builds :class:`RawProtocol`; call :meth:`abortAll` at cleanup (stalled connections).
    """

    protocol = RawProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self) -> None:
        self.connections: list[RawProtocol] = []
        self.requestLines: list[bytes] = []

    def answer(self, path: bytes) -> tuple[bytes, bool]:
        if path in RAW:
            return RAW[path]
        if path.startswith(b"/dispo/"):
            name = HOSTILE_NAMES[int(path.rsplit(b"/", 1)[1])][0]
            headers = [
                (b"Content-Length", b"5"),
                (b"Content-Disposition", b'attachment; filename="' + name + b'"'),
            ]
            return response(b"200 OK", headers, b"dispo"), False
        if path == b"/bomb":
            bomb = gzipBomb()
            headers = [
                (b"Content-Length", str(len(bomb)).encode()),
                (b"Content-Encoding", b"gzip"),
            ]
            return response(b"200 OK", headers, bomb), False
        return response(b"404 Not Found", [(b"Content-Length", b"0")], b""), False

    def abortAll(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()  # type: ignore[union-attr]


def listenRaw(testCase: Any) -> tuple[RawFactory, int]:
    """
    Start a :class:`RawFactory` on loopback; stalled connections are aborted at cleanup.
    """
    factory = RawFactory()
    port = listen(testCase, factory)
    testCase.addCleanup(factory.abortAll)
    return factory, port


# --- TLS ----------------------------------------------------------------------------------------


def certificate(directory: str, expired: bool = False) -> tuple[str, Any]:
    """
    A self-signed certificate for ``localhost`` (made by the greeting tests' helper) in
    ``directory``; return the certificate's path (the CA to trust) and server context
    options.

    :param expired: one that expired yesterday.
    """
    from twisted.internet import ssl

    from tests.support import selfSignedCertificate

    keyPath, certPath = selfSignedCertificate(os.path.abspath(directory), expired)
    with open(keyPath, "rb") as f:
        keyPem = f.read()
    with open(certPath, "rb") as f:
        certPem = f.read()
    return certPath, ssl.PrivateCertificate.loadPEM(certPem + keyPem).options()


# --- a CONNECT proxy ------------------------------------------------------------------------------


class _Relay(Protocol):
    def __init__(self, peer: Protocol) -> None:
        self.peer = peer

    def dataReceived(self, data: bytes) -> None:
        self.peer.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        self.peer.transport.loseConnection()  # type: ignore[union-attr]


class ConnectProxyProtocol(Protocol):
    """
    ``CONNECT host:port``: tunnel; any other request: answer ``proxied: REQUEST LINE``.
    """

    factory: ConnectProxy

    def connectionMade(self) -> None:
        self.buffer = b""
        self.relay: _Relay | None = None
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.transport.write(data)  # type: ignore[union-attr]
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.factory.requests.append(lines)
        method, target = lines[0].split(b" ")[:2]
        if method != b"CONNECT":
            body = b"proxied: " + lines[0]
            self.transport.write(  # type: ignore[union-attr]
                response(
                    b"200 OK",
                    [(b"Content-Length", b"%d" % len(body)), (b"Connection", b"close")],
                    body,
                )
            )
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        host, port = target.rsplit(b":", 1)
        self.transport.pauseProducing()  # type: ignore[union-attr]
        endpoint = TCP4ClientEndpoint(_reactor(), host.decode(), int(port))

        def connected(relay: _Relay) -> None:
            self.relay = relay
            self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")  # type: ignore[union-attr]
            if rest:
                relay.transport.write(rest)  # type: ignore[union-attr]
            self.transport.resumeProducing()  # type: ignore[union-attr]

        def failed(_: object) -> None:
            self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]

        endpoint.connect(Factory.forProtocol(lambda: _Relay(self))).addCallbacks(connected, failed)

    def connectionLost(self, reason: object = None) -> None:
        if self.relay is not None:
            self.relay.transport.loseConnection()  # type: ignore[union-attr]
        if self in self.factory.connections:
            self.factory.connections.remove(self)


class ConnectProxy(Factory):
    """
    Builds :class:`ConnectProxyProtocol`; :attr:`requests` holds each request's header lines.
    """

    protocol = ConnectProxyProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self) -> None:
        self.requests: list[list[bytes]] = []
        self.connections: list[ConnectProxyProtocol] = []

    def abortAll(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()  # type: ignore[union-attr]


def listenProxy(testCase: Any) -> tuple[ConnectProxy, int]:
    """
    Start a :class:`ConnectProxy` on loopback, cleaned up with the test.
    """
    factory = ConnectProxy()
    port = listen(testCase, factory)
    testCase.addCleanup(factory.abortAll)
    return factory, port


def runChild(
    argv: list[str], env: dict[str, str], cwd: str, timeout: float = 60.0
) -> Deferred[tuple[bytes, bytes, int]]:
    """
    Run a child process without blocking the reactor (the servers above live in it);
    fire with ``(stdout, stderr, status)``.
    """
    from twisted.internet.utils import getProcessOutputAndValue

    d = getProcessOutputAndValue(argv[0], argv[1:], env=env, path=cwd)
    return d.addTimeout(timeout, _reactor())


def files(directory: str) -> list[str]:
    """
    The sorted names in ``directory`` (hidden ones included).
    """
    return sorted(os.listdir(directory))


# --- fetchfiles: framing the stdlib twin must read as strictly as Twisted -----------------------


def _raw10(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """
    A raw HTTP/1.0 response (its body ends when the connection closes).
    """
    head = b"HTTP/1.0 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    return head + b"\r\n" + body


RAW.update(
    {
        # Interim answers before the real one: every 1xx is skipped.
        b"/interim": (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            + response(b"200 OK", [(b"Content-Length", b"5")], b"final"),
            False,
        ),
        # Lengths and chunk sizes int() accepts but HTTP does not.
        b"/cl-underscore": (response(b"200 OK", [(b"Content-Length", b"1_0")], b"u" * 10), True),
        b"/cl-plus": (response(b"200 OK", [(b"Content-Length", b"+5")], b"p" * 5), True),
        b"/cl-twice": (
            response(b"200 OK", [(b"Content-Length", b"5"), (b"Content-Length", b"7")], b"t" * 7),
            True,
        ),
        b"/chunk-0x": (
            response(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"0x5\r\nhello\r\n0\r\n\r\n"),
            True,
        ),
        b"/chunk-plus": (
            response(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"+5\r\nhello\r\n0\r\n\r\n"),
            True,
        ),
        b"/chunk-long": (
            response(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"5\r\nhelloXX0\r\n\r\n"),
            True,
        ),
        # Close-delimited bodies are complete bodies (RFC 9112 section 6.3).
        b"/http10": (_raw10([], b"h" * 50), True),
        # Redirects nowhere an HTTP client may go, or nowhere at all.
        b"/to-ftp": (
            response(
                b"302 Found",
                [(b"Location", b"ftp://127.0.0.1:21/x"), (b"Content-Length", b"0")],
                b"",
            ),
            False,
        ),
        b"/to-file": (
            response(
                b"302 Found", [(b"Location", b"file:///etc/passwd"), (b"Content-Length", b"0")], b""
            ),
            False,
        ),
        b"/to-broken": (
            response(
                b"302 Found", [(b"Location", b"http://[::1/x"), (b"Content-Length", b"0")], b""
            ),
            False,
        ),
        b"/to-ok": (
            response(b"302 Found", [(b"Location", b"/ok"), (b"Content-Length", b"0")], b""),
            False,
        ),
        # Two URLs, one Content-Disposition name, different bodies.
        b"/same-a": (
            response(
                b"200 OK",
                [
                    (b"Content-Length", b"5"),
                    (b"Content-Disposition", b'attachment; filename="same"'),
                ],
                b"AAAAA",
            ),
            False,
        ),
        b"/same-b": (
            response(
                b"200 OK",
                [
                    (b"Content-Length", b"5"),
                    (b"Content-Disposition", b'attachment; filename="same"'),
                ],
                b"BBBBB",
            ),
            False,
        ),
    }
)


# --- messages and agreement of the two engines ---------------------------------------------

#: A reason phrase that would set a terminal's title, colour and clear it (C0 and C1
#: controls, a bidi override).
HOSTILE_REASON = b"\x1b]0;TITLE\x07\x1b[31mRED\x1b[2J Not\x9b31m Found \xe2\x80\xae"


def _fields(count: int) -> list[tuple[bytes, bytes]]:
    """
    ``count`` header fields, ``Content-Length: 5`` among them.
    """
    return [(b"Content-Length", b"5")] + [(b"X-F%d" % i, b"v") for i in range(count - 1)]


RAW.update(
    {
        b"/hostile-404": (
            response(b"404 " + HOSTILE_REASON, [(b"Content-Length", b"0")], b""),
            False,
        ),
        b"/hostile-399": (
            response(b"399 " + HOSTILE_REASON, [(b"Content-Length", b"0")], b""),
            False,
        ),
        b"/status-300": (
            response(
                b"300 Multiple Choices", [(b"Location", b"/ok"), (b"Content-Length", b"0")], b""
            ),
            False,
        ),
        b"/bare-304": (response(b"304 Not Modified", [], b""), False),
        b"/no-location": (response(b"302 Found", [(b"Content-Length", b"0")], b""), False),
        b"/fields-100": (response(b"200 OK", _fields(100), b"hello"), False),
        b"/fields-101": (response(b"200 OK", _fields(101), b"hello"), False),
        # 101 interim answers with one field each, then the answer: 101 fields in all.
        b"/interim-flood": (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" * 101
            + response(b"200 OK", [(b"Content-Length", b"5")], b"hello"),
            False,
        ),
        # A chunk extension far longer than any chunk size line needs.
        b"/chunk-extension": (
            response(
                b"200 OK",
                [(b"Transfer-Encoding", b"chunked")],
                b"5;" + b"e" * 100000 + b"\r\nhello\r\n0\r\n\r\n",
            ),
            True,
        ),
        b"/brotli": (
            response(
                b"200 OK", [(b"Content-Length", b"5"), (b"Content-Encoding", b"br")], b"hello"
            ),
            False,
        ),
    }
)
