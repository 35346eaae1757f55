"""
Tests for how :class:`twisted_journey.fetch.Fetcher` judges a server's answer, and which
failure class each kind of failure gets (issue 8, "Judge every answer right" and "Failure
classes are right"), against scripted raw servers on loopback in the test's reactor.

Each class tests a rule for several answers, not one example: close-delimited bodies,
``206 Partial Content``, content codings, bounded response headers, redirect targets,
URL credentials, TLS certificate problems, write errors, ``--max-time`` and proxies.
"""

from __future__ import annotations

import base64
import errno
import gzip
import os
import zlib
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import freePort
from tests.test_fetch_integration import FetcherTestsMixin
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import semantics, sinks

#: An answer: the bytes to send and whether to close the connection after them (``None``:
#: keep it open and silent, a stall).
Answer = tuple[bytes, "bool | None"]


def raw(
    status: bytes, headers: list[tuple[bytes, bytes]], body: bytes, version: bytes = b"HTTP/1.1"
) -> bytes:
    """
    A raw response, exactly as given.
    """
    head = version + b" " + status + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


def ok(body: bytes, *headers: tuple[bytes, bytes]) -> bytes:
    """
    A 200 with ``Content-Length`` and ``headers``.
    """
    return raw(b"200 OK", [(b"Content-Length", b"%d" % len(body)), *headers], body)


class ScriptedProtocol(Protocol):
    """
    Records each request's head and answers it from ``factory.answers`` by path.
    """

    factory: Scripted

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.connections.append(self)
        self.factory.connected += 1

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower().decode()] = value.strip().decode("latin-1")
            self.factory.requests.append((lines[0], fields))
            target = lines[0].split(b" ")[1] if len(lines[0].split(b" ")) > 1 else b"/"
            answer, close = self.factory.answers.get(
                target, (raw(b"404 Not Found", [(b"Content-Length", b"0")], b""), False)
            )
            self.transport.write(answer)  # type: ignore[union-attr]
            if close:
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
            if close is None:
                return

    def connectionLost(self, reason: object = None) -> None:
        if self in self.factory.connections:
            self.factory.connections.remove(self)


class Scripted(Factory):
    """
    A raw server answering by request target.

    :ivar answers: request target -> :data:`Answer`.
    :ivar requests: ``(request line, {lower-case name: value})`` for every request.
    :ivar connected: how many connections were accepted.
    """

    protocol = ScriptedProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, answers: dict[bytes, Answer]) -> None:
        self.answers = answers
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.connections: list[ScriptedProtocol] = []
        self.connected = 0

    def abortAll(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()  # type: ignore[union-attr]


class ScriptedMixin(FetcherTestsMixin):
    """
    :meth:`serve` starts a :class:`Scripted` server for the test.
    """

    def serve(self, answers: dict[bytes, Answer]) -> tuple[Scripted, str]:
        """
        Serve ``answers`` on loopback; return the server and its base URL.
        """
        factory = Scripted(answers)
        port = servers.listen(self, factory)
        self.addCleanup(factory.abortAll)  # type: ignore[attr-defined]
        return factory, f"http://127.0.0.1:{port}"

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.out, name), "rb") as f:
            return f.read()


class CloseDelimitedTests(ScriptedMixin, unittest.TestCase):
    """
    A body without length or chunking ends at close and is complete (RFC 9112 section
    6.3); truncation stays an error where the length is declared.
    """

    @defer.inlineCallbacks
    def test_closeDelimitedIsComplete(self) -> Any:
        """
        HTTP/1.0 without a length, HTTP/1.1 with ``Connection: close`` and HTTP/1.1
        without either all end at close: the file holds the whole body.
        """
        body = b"close-delimited " * 1000
        answers: dict[bytes, Answer] = {
            b"/ten": (raw(b"200 OK", [], body, b"HTTP/1.0"), True),
            b"/close": (raw(b"200 OK", [(b"Connection", b"close")], body), True),
            b"/bare": (raw(b"200 OK", [], body), True),
        }
        _, base = self.serve(answers)
        for path in ("ten", "close", "bare"):
            result = yield self.fetcher().retrieve(f"{base}/{path}", outputDir=self.out)
            self.assertEqual(result.size, len(body))
            self.assertEqual(self.read(path), body)
        self.assertEqual(self.files(), ["bare", "close", "ten"])

    @defer.inlineCallbacks
    def test_declaredLengthStillChecked(self) -> Any:
        """
        A short ``Content-Length`` body (HTTP/1.0 or 1.1) and a chunked body cut before
        its last chunk are :class:`TruncatedBody`, with no file.
        """
        answers: dict[bytes, Answer] = {
            b"/ten": (raw(b"200 OK", [(b"Content-Length", b"100")], b"x" * 10, b"HTTP/1.0"), True),
            b"/chunked": (
                raw(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"5\r\nhello\r\n"),
                True,
            ),
        }
        _, base = self.serve(answers)
        for path in ("ten", "chunked"):
            yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(f"{base}/{path}", outputDir=self.out),
                    fetch_errors.TruncatedBody,
                )
            )
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_maxTimeWhateverTheFraming(self) -> Any:
        """
        ``maxTime`` running out is :class:`Timeout` for a close-delimited body, a chunked
        one and one with a length, not a truncation or a success.
        """
        answers: dict[bytes, Answer] = {
            b"/bare": (raw(b"200 OK", [], b"a" * 100), None),
            b"/chunked": (
                raw(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"5\r\nhello\r\n"),
                None,
            ),
            b"/length": (raw(b"200 OK", [(b"Content-Length", b"1000")], b"a" * 100), None),
        }
        _, base = self.serve(answers)
        for path in ("bare", "chunked", "length"):
            error = yield defer.ensureDeferred(
                self.fails(
                    self.fetcher(maxTime=0.3).retrieve(f"{base}/{path}", outputDir=self.out),
                    fetch_errors.Timeout,
                )
            )
            self.assertIn("--max-time", str(error))
            self.assertEqual(error.exitCode, fetch_errors.EXIT_TIMEOUT)
        self.assertEqual(self.files(), [])


def partial(first: int, last: int, total: int | str, body: bytes) -> bytes:
    """
    A 206 with ``Content-Range: bytes FIRST-LAST/TOTAL`` and ``body``.
    """
    span = f"bytes {first}-{last}/{total}".encode()
    return raw(
        b"206 Partial Content",
        [(b"Content-Length", b"%d" % len(body)), (b"Content-Range", span)],
        body,
    )


class PartialContentTests(ScriptedMixin, unittest.TestCase):
    """
    A 206 is accepted only in answer to our ``Range``, starting where we asked, as long as
    its range says; nothing is ever spliced onto a ``.part`` otherwise.
    """

    def stalePart(self, name: str, data: bytes = b"STALE") -> str:
        path = os.path.join(self.out, name + ".part")
        with open(path, "wb") as f:
            f.write(data)
        return path

    @defer.inlineCallbacks
    def test_unaskedPartialRefused(self) -> Any:
        """
        A 206 to a request without ``Range`` is a :class:`ProtocolError`, with or without
        a stale ``.part`` lying there, which is never appended to without ``resume``.
        """
        answers: dict[bytes, Answer] = {b"/f": (partial(5, 9, 10, b"world"), False)}
        server, base = self.serve(answers)
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(base + "/f", outputDir=self.out),
                fetch_errors.ProtocolError,
            )
        )
        self.assertEqual(self.files(), [])
        self.stalePart("f", b"hello")
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(base + "/f", outputDir=self.out),
                fetch_errors.ProtocolError,
            )
        )
        self.assertIn("without Range", str(error))
        self.assertNotIn("f", self.files())
        self.assertNotIn("range", server.requests[-1][1])

    @defer.inlineCallbacks
    def test_wrongRangesRefused(self) -> Any:
        """
        Resuming from byte 5: a range starting elsewhere, a body shorter or longer than
        the range, and a range past its total are all :class:`ProtocolError`; the final
        name is never written.
        """
        wrong = {
            b"/elsewhere": partial(0, 9, 10, b"helloworld"),
            b"/short": raw(
                b"206 Partial Content",
                [(b"Content-Length", b"2"), (b"Content-Range", b"bytes 5-9/10")],
                b"wo",
            ),
            b"/long": raw(
                b"206 Partial Content",
                [(b"Content-Length", b"8"), (b"Content-Range", b"bytes 5-9/10")],
                b"worldxyz",
            ),
            b"/past": partial(5, 12, 10, b"worldxyz"),
            b"/unreadable": raw(
                b"206 Partial Content",
                [(b"Content-Length", b"5"), (b"Content-Range", b"pages 5-9/10")],
                b"world",
            ),
        }
        server, base = self.serve({path: (answer, False) for path, answer in wrong.items()})
        for path in wrong:
            name = path.decode()[1:]
            self.stalePart(name, b"hello")
            yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(f"{base}/{name}", outputDir=self.out, resume=True),
                    fetch_errors.ProtocolError,
                )
            )
            self.assertEqual(server.requests[-1][1]["range"], "bytes=5-")
            self.assertNotIn(name, self.files())

    @defer.inlineCallbacks
    def test_rightRangeResumes(self) -> Any:
        """
        The range asked for, as long as it says, continues the ``.part``.
        """
        _, base = self.serve({b"/f": (partial(5, 9, 10, b"world"), False)})
        self.stalePart("f", b"hello")
        result = yield self.fetcher().retrieve(base + "/f", outputDir=self.out, resume=True)
        self.assertEqual(result.status, 206)
        self.assertEqual(self.read("f"), b"helloworld")

    @defer.inlineCallbacks
    def test_rangeShortOfTotal(self) -> Any:
        """
        A 206 that is right in itself but ends before the total it names (``bytes
        5-9/20``, or a range the server cut short) is appended, yet the file is not
        saved as complete: :class:`TruncatedBody` (retryable, exit 7), the ``.part``
        kept with what arrived, so a later ``resume`` asks for the rest.
        """
        server, base = self.serve({b"/f": (partial(5, 9, 20, b"world"), False)})
        self.stalePart("f", b"hello")
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(base + "/f", outputDir=self.out, resume=True),
                fetch_errors.TruncatedBody,
            )
        )
        self.assertIn("bytes 5-9 of 20", str(error))
        self.assertEqual(error.exitCode, fetch_errors.EXIT_TRUNCATED)
        self.assertEqual(self.files(), ["f.part"])
        self.assertEqual(self.read("f.part"), b"helloworld")
        server.answers[b"/f"] = (partial(10, 19, 20, b"0123456789"), False)
        result = yield self.fetcher().retrieve(base + "/f", outputDir=self.out, resume=True)
        self.assertEqual(server.requests[-1][1]["range"], "bytes=10-")
        self.assertEqual(result.size, 20)
        self.assertEqual(self.read("f"), b"helloworld0123456789")
        self.assertEqual(self.files(), ["f"])


class ContentCodingTests(ScriptedMixin, unittest.TestCase):
    """
    Codings that can be undone are undone whole; any other is an error with no file.
    """

    @defer.inlineCallbacks
    def test_unknownCodingsRefused(self) -> Any:
        """
        ``compress``, ``foo``, ``br`` without the ``brotli`` package, and a stack holding
        one are a :class:`ProtocolError` and leave no file, with and without
        ``compressed`` (never saved still encoded).
        """
        codings = [b"compress", b"foo", b"gzip, compress", b"compress, gzip"]
        if "br" not in semantics.decodable():
            codings += [b"br", b"gzip, br", b"br, gzip"]
        answers: dict[bytes, Answer] = {
            b"/%d" % i: (ok(b"\x00encoded\xff", (b"Content-Encoding", coding)), False)
            for i, coding in enumerate(codings)
        }
        _, base = self.serve(answers)
        for compressed in (False, True):
            for i, coding in enumerate(codings):
                error = yield defer.ensureDeferred(
                    self.fails(
                        self.fetcher(compressed=compressed).retrieve(
                            f"{base}/{i}", outputDir=self.out
                        ),
                        fetch_errors.ProtocolError,
                    )
                )
                self.assertIn("cannot decode", str(error), coding)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_decodedWhole(self) -> Any:
        """
        Several gzip members, stacked codings (``gzip, gzip``, ``deflate, gzip``),
        ``x-gzip`` and trailing zero padding all decode to the whole body.
        """
        body = b"journey " * 2000
        half = len(body) // 2
        members = gzip.compress(body[:half]) + gzip.compress(body[half:])
        encoded = {
            b"/members": (members, b"gzip"),
            b"/stacked": (gzip.compress(gzip.compress(body)), b"gzip, gzip"),
            b"/mixed": (gzip.compress(zlib.compress(body)), b"deflate, gzip"),
            b"/xgzip": (gzip.compress(body), b"x-gzip"),
            b"/padded": (gzip.compress(body) + bytes(512), b"gzip"),
        }
        _, base = self.serve(
            {
                path: (ok(data, (b"Content-Encoding", coding)), False)
                for path, (data, coding) in encoded.items()
            }
        )
        for path in encoded:
            name = path.decode()[1:]
            yield self.fetcher(compressed=True).retrieve(f"{base}/{name}", outputDir=self.out)
            self.assertEqual(self.read(name), body, name)

    @defer.inlineCallbacks
    def test_trailingGarbageRefused(self) -> Any:
        """
        Bytes after the gzip (or deflate) stream that are neither another member nor zero
        padding are a :class:`ProtocolError`; a member cut short is a :class:`TruncatedBody`.
        """
        body = b"journey " * 100
        answers: dict[bytes, Answer] = {
            b"/garbage": (
                ok(gzip.compress(body) + b"garbage", (b"Content-Encoding", b"gzip")),
                False,
            ),
            b"/deflate": (ok(zlib.compress(body) + b"x", (b"Content-Encoding", b"deflate")), False),
            b"/cut": (ok(gzip.compress(body) + b"\x1f", (b"Content-Encoding", b"gzip")), False),
        }
        _, base = self.serve(answers)
        for name, kind in (
            ("garbage", fetch_errors.ProtocolError),
            ("deflate", fetch_errors.ProtocolError),
            ("cut", fetch_errors.TruncatedBody),
        ):
            yield defer.ensureDeferred(
                self.fails(
                    self.fetcher(compressed=True).retrieve(f"{base}/{name}", outputDir=self.out),
                    kind,
                )
            )
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_resumeAsksForIdentity(self) -> Any:
        """
        Resuming a ``compressed`` download asks for ``identity`` (the ``.part`` holds
        decoded bytes), and refuses an encoded range rather than splice it.
        """
        answers: dict[bytes, Answer] = {
            b"/plain": (partial(5, 9, 10, b"world"), False),
            b"/encoded": (
                raw(
                    b"206 Partial Content",
                    [
                        (b"Content-Length", b"5"),
                        (b"Content-Range", b"bytes 5-9/10"),
                        (b"Content-Encoding", b"gzip"),
                    ],
                    b"world",
                ),
                False,
            ),
        }
        server, base = self.serve(answers)
        for name in ("plain", "encoded"):
            with open(os.path.join(self.out, name + ".part"), "wb") as f:
                f.write(b"hello")
        fetcher = self.fetcher(compressed=True)
        yield fetcher.retrieve(base + "/plain", outputDir=self.out, resume=True)
        self.assertEqual(server.requests[-1][1]["accept-encoding"], "identity")
        self.assertEqual(self.read("plain"), b"helloworld")
        yield defer.ensureDeferred(
            self.fails(
                fetcher.retrieve(base + "/encoded", outputDir=self.out, resume=True),
                fetch_errors.ProtocolError,
            )
        )
        self.assertNotIn("encoded", self.files())


class HeaderLimitTests(ScriptedMixin, unittest.TestCase):
    """
    Response headers are bounded in size and count, configurably.
    """

    @defer.inlineCallbacks
    def test_tooManyFields(self) -> Any:
        """
        More than ``maxHeaders`` fields (default 100) is a :class:`ProtocolError`; a higher
        limit accepts them.
        """
        many = [(b"X-Field-%d" % i, b"v") for i in range(150)]
        _, base = self.serve({b"/many": (ok(b"body", *many), False)})
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(base + "/many", outputDir=self.out),
                fetch_errors.ProtocolError,
            )
        )
        self.assertIn("--max-headers", str(error))
        self.assertEqual(self.files(), [])
        yield self.fetcher(maxHeaders=200).retrieve(base + "/many", outputDir=self.out)
        self.assertEqual(self.read("many"), b"body")

    @defer.inlineCallbacks
    def test_tooManyBytes(self) -> Any:
        """
        More than ``maxHeaderBytes`` (default 100 KiB) of headers, in many lines or in one
        endless line, is a :class:`ProtocolError` with no file.
        """
        lines = [(b"X-Big-%d" % i, b"v" * 2000) for i in range(60)]
        answers: dict[bytes, Answer] = {
            b"/lines": (ok(b"body", *lines), False),
            b"/endless": (raw(b"200 OK", [(b"X-Endless", b"e" * (1 << 20))], b""), False),
        }
        _, base = self.serve(answers)
        for name in ("lines", "endless"):
            error = yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(f"{base}/{name}", outputDir=self.out),
                    fetch_errors.ProtocolError,
                )
            )
            self.assertIn("--max-header-bytes", str(error))
        self.assertEqual(self.files(), [])
        yield self.fetcher(maxHeaderBytes=1 << 20).retrieve(base + "/lines", outputDir=self.out)
        self.assertEqual(self.read("lines"), b"body")


def redirect(location: bytes, status: bytes = b"302 Found") -> Answer:
    """
    A redirect to ``location``.
    """
    return raw(status, [(b"Location", location), (b"Content-Length", b"0")], b""), False


class RedirectTests(ScriptedMixin, unittest.TestCase):
    """
    Redirects go to http/https only, percent-encoded; credentials stay with their origin;
    messages name the host and port actually contacted.
    """

    @defer.inlineCallbacks
    def test_otherSchemesRefused(self) -> Any:
        """
        ``ftp:``, ``gopher:``, ``file:`` and ``data:`` Locations are
        :class:`UnsupportedURL` naming the target, and no connection is opened to the
        host and port they name.
        """
        other, _ = self.serve({})
        port = servers.listen(self, other) if False else None  # noqa: F841
        target = Scripted({})
        targetPort = servers.listen(self, target)
        locations = [
            b"ftp://127.0.0.1:%d/x" % targetPort,
            b"gopher://127.0.0.1:%d/x" % targetPort,
            b"file:///etc/passwd",
            b"data:text/plain,hello",
        ]
        _, base = self.serve({b"/%d" % i: redirect(loc) for i, loc in enumerate(locations)})
        for i, location in enumerate(locations):
            error = yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(f"{base}/{i}", outputDir=self.out),
                    fetch_errors.UnsupportedURL,
                )
            )
            self.assertIn(location.decode(), str(error))
            self.assertIn("only http:// and https://", str(error))
        self.assertEqual(target.connected, 0)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_locationPercentEncoded(self) -> Any:
        """
        Spaces and non-ASCII in a ``Location`` (absolute or relative) are sent
        percent-encoded as UTF-8; existing escapes are kept.
        """
        server, base = self.serve(
            {
                b"/a": redirect("/dir/a file é.txt?q=a b".encode()),
                b"/dir/a%20file%20%C3%A9.txt?q=a%20b": (ok(b"found"), False),
                b"/b": redirect(b"already%20escaped"),
                b"/already%20escaped": (ok(b"kept"), False),
            }
        )
        result = yield self.fetcher().retrieve(base + "/a", outputDir=self.out)
        self.assertEqual(result.status, 200)
        self.assertEqual(server.requests[-1][0], b"GET /dir/a%20file%20%C3%A9.txt?q=a%20b HTTP/1.1")
        yield self.fetcher().retrieve(base + "/b", os.path.join(self.out, "b"))
        self.assertEqual(self.read("b"), b"kept")

    @defer.inlineCallbacks
    def test_malformedLocation(self) -> Any:
        """
        A ``Location`` that is not a URL is an :class:`UnsupportedURL` sentence (never
        another exception).
        """
        _, base = self.serve(
            {b"/bad": redirect(b"http://[::1/x"), b"/port": redirect(b"http://h:99999999/")}
        )
        for path in ("bad", "port"):
            error = yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(f"{base}/{path}", outputDir=self.out),
                    fetch_errors.UnsupportedURL,
                )
            )
            self.assertIn("not a valid URL", str(error))

    @defer.inlineCallbacks
    def test_messageNamesRealPort(self) -> Any:
        """
        A redirect to a closed port fails naming that port, not the first URL's.
        """
        closed = freePort()
        _, base = self.serve({b"/away": redirect(b"http://127.0.0.1:%d/x" % closed)})
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(base + "/away", outputDir=self.out),
                fetch_errors.NetworkError,
            )
        )
        self.assertIn(f"port {closed} refused", str(error))
        self.assertEqual(error.url, base + "/away")

    @defer.inlineCallbacks
    def test_urlCredentials(self) -> Any:
        """
        ``user:password@`` in the URL is sent as Basic authentication to that origin
        (redirects within it included) and never to another origin; no message shows
        the password.
        """
        elsewhere = Scripted({b"/there": (ok(b"there"), False)})
        elsewherePort = servers.listen(self, elsewhere)
        server, base = self.serve(
            {
                b"/here": redirect(b"/here2"),
                b"/here2": redirect(b"http://127.0.0.1:%d/there" % elsewherePort),
                b"/secret": (raw(b"401 Unauthorized", [(b"Content-Length", b"0")], b""), False),
            }
        )
        url = base.replace("http://", "http://us%40er:p%20ss@") + "/here"
        result = yield self.fetcher().retrieve(url, os.path.join(self.out, "x"))
        self.assertEqual(result.status, 200)
        expected = "Basic " + base64.b64encode(b"us@er:p ss").decode()
        self.assertEqual(
            [fields.get("authorization") for _, fields in server.requests], [expected] * 2
        )
        self.assertNotIn("authorization", elsewhere.requests[0][1])
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(url.replace("/here", "/secret"), outputDir=self.out),
                fetch_errors.HTTPStatusError,
            )
        )
        line = fetch_errors.failure_line("journey fetch", error.url, error)
        self.assertNotIn("p ss", line)
        self.assertNotIn("p%20ss", line)
        self.assertIn("us%40er:***@", line)

    @defer.inlineCallbacks
    def test_settingsCredentials(self) -> Any:
        """
        ``credentials`` (``-u``) go to the first URL's origin only; the URL's own win.
        """
        elsewhere = Scripted({b"/there": (ok(b"there"), False)})
        elsewherePort = servers.listen(self, elsewhere)
        server, base = self.serve(
            {
                b"/here": redirect(b"http://127.0.0.1:%d/there" % elsewherePort),
                b"/ok": (ok(b"k"), False),
            }
        )
        fetcher = self.fetcher(credentials=("u", "p"))
        yield fetcher.retrieve(base + "/here", os.path.join(self.out, "x"))
        self.assertEqual(
            server.requests[0][1]["authorization"], "Basic " + base64.b64encode(b"u:p").decode()
        )
        self.assertNotIn("authorization", elsewhere.requests[0][1])
        yield fetcher.retrieve(
            base.replace("http://", "http://v:q@") + "/ok", os.path.join(self.out, "y")
        )
        self.assertEqual(
            server.requests[-1][1]["authorization"], "Basic " + base64.b64encode(b"v:q").decode()
        )


class CountingSite(servers.Site):
    """
    A quiet ``Site`` counting the connections it accepts.
    """

    noisy = False
    connected = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.connected += 1
        return super().buildProtocol(addr)


class TLSFailureTests(ScriptedMixin, unittest.TestCase):
    """
    Every certificate problem is a :class:`TLSError` naming it, and is not retried.
    """

    @defer.inlineCallbacks
    def test_certificateProblems(self) -> Any:
        """
        Untrusted, expired and issued for another host name: each a :class:`TLSError`
        (exit 5) whose sentence names the problem, tried once even with retries.
        """
        cacert, options = servers.certificate(self.mktemp())
        expired, expiredOptions = servers.certificate(self.mktemp(), expired=True)
        cases = [
            ("localhost", options, None, "self-signed and not trusted"),
            ("localhost", expiredOptions, expired, "has expired"),
            ("127.0.0.1", options, cacert, "is for localhost, not 127.0.0.1"),
        ]
        for host, tls, trust, phrase in cases:
            site = CountingSite(servers.webRoot())
            site.log = lambda request: None  # type: ignore[method-assign]
            port = servers.listen(self, site, tls=tls)
            fetcher = self.fetcher(cacert=trust, retries=3, retryDelay=0.01)
            error = yield defer.ensureDeferred(
                self.fails(
                    fetcher.retrieve(f"https://{host}:{port}/blob", outputDir=self.out),
                    fetch_errors.TLSError,
                )
            )
            self.assertIn(phrase, str(error))
            self.assertIn(f"port {port}", str(error))
            self.assertEqual(error.exitCode, fetch_errors.EXIT_TLS)
            self.assertFalse(error.retryable)
            self.assertEqual(site.connected, 1)
        self.assertEqual(self.files(), [])


class WriteErrorTests(ScriptedMixin, unittest.TestCase):
    """
    A full disk (or any write error) is a :class:`FileError`, not a cut body, not retried.
    """

    @defer.inlineCallbacks
    def test_fullDisk(self) -> Any:
        """
        Writes failing mid-body (a large body, written on the disk thread) or at the end
        (a small one) with ``ENOSPC`` or ``EIO``: :class:`FileError` naming the error,
        one request despite retries, no file.
        """
        big = os.urandom(4 << 20)
        server, base = self.serve({b"/big": (ok(big), False), b"/small": (ok(b"small"), False)})
        for code in (errno.ENOSPC, errno.EIO):

            def failing(self: Any, chunks: list[bytes], code: int = code) -> None:
                raise OSError(code, os.strerror(code))

            self.patch(sinks.PartFile, "write_many", failing)
            for name in ("big", "small"):
                before = len(server.requests)
                error = yield defer.ensureDeferred(
                    self.fails(
                        self.fetcher(retries=2, retryDelay=0.01).retrieve(
                            f"{base}/{name}", outputDir=self.out
                        ),
                        fetch_errors.FileError,
                    )
                )
                self.assertIn(os.strerror(code), str(error))
                self.assertEqual(len(server.requests) - before, 1)
        self.assertEqual(self.files(), [])


class ProxyFailureTests(ScriptedMixin, unittest.TestCase):
    """
    A proxy that cannot be reached is reported as the proxy, not the target.
    """

    @defer.inlineCallbacks
    def test_refusedProxy(self) -> Any:
        """
        http (through ``ProxyAgent``) and https (through a ``CONNECT`` tunnel): the
        message names the proxy's port, and not the target's.
        """
        proxyPort = freePort()
        proxy = f"http://127.0.0.1:{proxyPort}"
        for url in ("http://127.0.0.1:1/x", "https://localhost:2/x"):
            fetcher = self.fetcher(proxies={"http": proxy, "https": proxy, "no": ""})
            error = yield defer.ensureDeferred(
                self.fails(fetcher.retrieve(url, outputDir=self.out), fetch_errors.NetworkError)
            )
            self.assertIn(f"the proxy 127.0.0.1 port {proxyPort} refused", str(error))


class MalformedURLTests(ScriptedMixin, unittest.TestCase):
    """
    A URL that is not one is an :class:`UnsupportedURL` sentence without the password.
    """

    @defer.inlineCallbacks
    def test_malformed(self) -> Any:
        """
        An unclosed IPv6 bracket, a bad port, control characters: each an
        :class:`UnsupportedURL` whose message hides the password.
        """
        for url in (
            "http://[::1/x",
            "http://u:secret@[::1/x",
            "http://u:secret@127.0.0.1:99999999/",
            "http://127.0.0.1/a\r\nInjected: yes",
        ):
            error = yield defer.ensureDeferred(
                self.fails(
                    self.fetcher().retrieve(url, outputDir=self.out), fetch_errors.UnsupportedURL
                )
            )
            self.assertNotIn("secret", str(error))
            self.assertNotIn("secret", fetch_errors.failure_line("journey fetch", url, error))


class _Exploding:
    """
    An ``IAgent`` whose requests fail with an exception no fetcher expects.
    """

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None
    ) -> Any:
        raise RuntimeError("boom")


class OnlyFetchErrorsTests(unittest.SynchronousTestCase):
    """
    The API fails with :class:`FetchError` subclasses only.
    """

    def test_retrieveAndFetchBytes(self) -> None:
        """
        A malformed URL and an agent raising an unexpected exception: both
        :meth:`Fetcher.retrieve` and :meth:`Fetcher.fetchBytes` fail with a
        :class:`FetchError` (never ``ValueError`` or ``RuntimeError``).
        """
        from twisted.internet.testing import MemoryReactorClock

        from twisted_journey.fetch import Fetcher

        fetcher = Fetcher(MemoryReactorClock(), agent=_Exploding())  # type: ignore[arg-type]
        for call in (fetcher.retrieve, fetcher.fetchBytes):
            failure = self.failureResultOf(call("http://[::1/x"))
            self.assertIsInstance(failure.value, fetch_errors.UnsupportedURL)
            failure = self.failureResultOf(call("http://127.0.0.1/x"))
            self.assertIsInstance(failure.value, fetch_errors.FetchError)
            self.assertIn("boom", str(failure.value))
