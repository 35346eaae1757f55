"""
Integration tests of :class:`twisted_journey.fetch.Fetcher` against real loopback servers
in this process: ``twisted.web`` resources, raw misbehaving servers, TLS with a
certificate made here, a ``CONNECT`` proxy, and httpbin in Twisted's WSGI container.

Each test checks the outcome (value or error class and message) and exactly which files
exist afterwards.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests import fetchservers as servers
from twisted_journey.fetch import Fetcher, FetchSettings, retrieve, validators
from twisted_journey.fetch import errors as fetch_errors


class FetcherTestsMixin:
    """
    Helpers: a fetcher closed at cleanup, an output directory, failure expectation.
    """

    def setUp(self) -> None:
        self.out = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        os.makedirs(self.out)

    def fetcher(self, **settings: Any) -> Fetcher:
        settings.setdefault("proxies", {})
        fetcher = Fetcher(settings=FetchSettings(**settings))
        self.addCleanup(fetcher.close)  # type: ignore[attr-defined]
        return fetcher

    async def fails(self, d: Any, kind: type[fetch_errors.FetchError]) -> fetch_errors.FetchError:
        try:
            result = await d
        except fetch_errors.FetchError as e:
            if not isinstance(e, kind):
                self.fail(f"expected {kind.__name__}, got {type(e).__name__}: {e}")  # type: ignore[attr-defined]
            return e
        self.fail(f"expected {kind.__name__}, got success {result!r}")  # type: ignore[attr-defined]
        raise AssertionError  # pragma: no cover

    def files(self) -> list[str]:
        return servers.files(self.out)


class WebTests(FetcherTestsMixin, unittest.TestCase):
    """
    Against ``twisted.web`` resources.
    """

    def setUp(self) -> None:
        super().setUp()
        self.root = servers.webRoot()
        self.port = servers.listen(self, servers.webSite(self.root))
        self.base = f"http://127.0.0.1:{self.port}"

    @defer.inlineCallbacks
    def test_retrieveNamesFromURL(self) -> Any:
        """
        The file is named from the URL path and holds the body; no ``.part`` remains;
        the result unpacks like ``urlretrieve``'s.
        """
        fetcher = self.fetcher()
        result = yield fetcher.retrieve(self.base + "/blob.bin", outputDir=self.out)
        filename, headers = result
        self.assertEqual(filename, os.path.join(self.out, "blob.bin"))
        self.assertEqual(headers.getRawHeaders(b"etag"), [servers.ETAG])
        self.assertEqual(self.files(), ["blob.bin"])
        with open(filename, "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_emptyPathIsIndexHtml(self) -> Any:
        """
        A URL with an empty path is saved as ``index.html``.
        """
        yield self.fetcher().retrieve(self.base + "/", outputDir=self.out)
        self.assertEqual(self.files(), ["index.html"])

    @defer.inlineCallbacks
    def test_moduleRetrieve(self) -> Any:
        """
        The module-level :func:`retrieve` takes a filename and a ``reporthook`` that is
        called with ``(0, 0, total)`` first and then per block, summing to the body size.
        """
        calls: list[tuple[int, int, int]] = []
        target = os.path.join(self.out, "chosen")
        filename, _ = yield retrieve(
            self.base + "/blob",
            target,
            lambda *a: calls.append(a),
            settings=FetchSettings(proxies={}),
        )
        self.assertEqual(filename, target)
        self.assertEqual(calls[0], (0, 0, len(servers.BODY)))
        self.assertEqual(sum(size for _, size, _ in calls), len(servers.BODY))
        self.assertEqual(self.files(), ["chosen"])

    @defer.inlineCallbacks
    def test_httpErrorLeavesNothing(self) -> Any:
        """
        A 404 is :class:`HTTPStatusError` with the status; no file, no ``.part``.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(self.base + "/status/404", outputDir=self.out),
                fetch_errors.HTTPStatusError,
            )
        )
        self.assertEqual(error.status, 404)
        self.assertIn("404", str(error))
        self.assertEqual(error.exitCode, fetch_errors.EXIT_HTTP)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_redirectsFollowed(self) -> Any:
        """
        Redirects are followed; the name comes from the original URL (like wget).
        """
        yield self.fetcher().retrieve(self.base + "/redirect/3", outputDir=self.out)
        self.assertEqual(self.files(), ["3"])

    @defer.inlineCallbacks
    def test_redirectLimit(self) -> Any:
        """
        More redirects than ``maxRedirects`` is :class:`TooManyRedirects`; a loop too.
        """
        fetcher = self.fetcher(maxRedirects=2)
        yield defer.ensureDeferred(
            self.fails(
                fetcher.retrieve(self.base + "/redirect/3", outputDir=self.out),
                fetch_errors.TooManyRedirects,
            )
        )
        yield defer.ensureDeferred(
            self.fails(
                fetcher.retrieve(self.base + "/loop", outputDir=self.out),
                fetch_errors.TooManyRedirects,
            )
        )
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_retryHonoursRetryAfter(self) -> Any:
        """
        503 twice, then 200: with ``retries=2`` the file arrives after three requests.
        """
        flaky = servers.Flaky(2)
        self.root.putChild(b"flaky", flaky)
        yield self.fetcher(retries=2, retryDelay=0.01).retrieve(
            self.base + "/flaky", outputDir=self.out
        )
        self.assertEqual(flaky.calls, 3)
        self.assertEqual(self.files(), ["flaky"])

    @defer.inlineCallbacks
    def test_retriesRunOut(self) -> Any:
        """
        When the retries run out, the last status error is raised; nothing is left.
        """
        flaky = servers.Flaky(5)
        self.root.putChild(b"flaky", flaky)
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher(retries=1, retryDelay=0.01).retrieve(
                    self.base + "/flaky", outputDir=self.out
                ),
                fetch_errors.HTTPStatusError,
            )
        )
        self.assertEqual(flaky.calls, 2)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_404NotRetried(self) -> Any:
        """
        A 404 is not worth retrying: one request only.
        """
        flaky = servers.Flaky(5, code=404)
        self.root.putChild(b"flaky", flaky)
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher(retries=3, retryDelay=0.01).retrieve(
                    self.base + "/flaky", outputDir=self.out
                ),
                fetch_errors.HTTPStatusError,
            )
        )
        self.assertEqual(flaky.calls, 1)

    @defer.inlineCallbacks
    def test_resumeWithRange(self) -> Any:
        """
        With ``resume``, an existing ``.part`` is continued with ``Range`` and completed.
        """
        blob = servers.Blob()
        self.root.putChild(b"resumable", blob)
        with open(os.path.join(self.out, "resumable.part"), "wb") as f:
            f.write(servers.BODY[:1000])
        yield self.fetcher().retrieve(self.base + "/resumable", outputDir=self.out, resume=True)
        self.assertEqual(blob.requests[0]["range"], "bytes=1000-")
        self.assertEqual(self.files(), ["resumable"])
        with open(os.path.join(self.out, "resumable"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_resumeAsksIfRange(self) -> Any:
        """
        A ``.part`` whose validators were remembered is continued with ``If-Range``; the
        server still has that version, so only the rest is sent.  The validators of the
        ``.part`` go once the file is complete.
        """
        blob = servers.Blob()
        self.root.putChild(b"same", blob)
        part = os.path.join(self.out, "same.part")
        with open(part, "wb") as f:
            f.write(servers.BODY[:1000])
        validators.save_validators(part, self.base + "/same", servers.ETAG.decode(), None)
        yield self.fetcher().retrieve(self.base + "/same", outputDir=self.out, resume=True)
        self.assertEqual(blob.requests[0]["if-range"], servers.ETAG.decode())
        self.assertEqual(blob.requests[0]["range"], "bytes=1000-")
        with open(os.path.join(self.out, "same"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        self.assertEqual(self.files(), ["same"])

    @defer.inlineCallbacks
    def test_resumeChangedFileRestarts(self) -> Any:
        """
        When the file changed on the server since the ``.part`` was started (its ETag no
        longer matches ``If-Range``), the new body replaces the old part instead of being
        spliced onto it.
        """
        new = bytes(reversed(servers.BODY))
        self.root.putChild(b"changed", servers.Blob(new, etag=b'"v2"'))
        part = os.path.join(self.out, "changed.part")
        with open(part, "wb") as f:
            f.write(servers.BODY[:1000])
        validators.save_validators(part, self.base + "/changed", '"v1"', None)
        yield self.fetcher().retrieve(self.base + "/changed", outputDir=self.out, resume=True)
        with open(os.path.join(self.out, "changed"), "rb") as f:
            self.assertEqual(f.read(), new)
        self.assertEqual(self.files(), ["changed"])

    @defer.inlineCallbacks
    def test_resumeServerIgnoresIfRange(self) -> Any:
        """
        A server that ignores ``If-Range`` answers 206 with another version's ETag (or,
        when the condition was a date, another Last-Modified): that range is not appended
        to the old start; the whole new body is fetched again instead.
        """
        new = bytes(reversed(servers.BODY))
        cases = [
            (b"etag", servers.Blob(new, etag=b'"v2"', ifRange=False), '"v1"', None),
            (
                b"date",
                servers.Blob(new, etag=None, ifRange=False),
                None,
                "Wed, 31 Dec 2025 00:00:00 GMT",
            ),
        ]
        for name, blob, etag, modified in cases:
            self.root.putChild(name, blob)
            part = os.path.join(self.out, name.decode() + ".part")
            with open(part, "wb") as f:
                f.write(servers.BODY[:1000])
            url = f"{self.base}/{name.decode()}"
            validators.save_validators(part, url, etag, modified)
            result = yield self.fetcher().retrieve(url, outputDir=self.out, resume=True)
            self.assertEqual(result.status, 200)
            self.assertEqual(blob.requests[0]["if-range"], etag or modified)
            self.assertEqual(blob.requests[0]["range"], "bytes=1000-")
            self.assertNotIn("range", blob.requests[1])
            with open(os.path.join(self.out, name.decode()), "rb") as f:
                self.assertEqual(f.read(), new)
        self.assertEqual(self.files(), ["date", "etag"])

    @defer.inlineCallbacks
    def test_resumeServerIgnoresRange(self) -> Any:
        """
        When the server answers 200 to a ``Range`` request, the download restarts from 0
        instead of appending the whole body to the partial one.
        """
        with open(os.path.join(self.out, "norange.part"), "wb") as f:
            f.write(b"garbage that must go")
        yield self.fetcher().retrieve(self.base + "/norange", outputDir=self.out, resume=True)
        with open(os.path.join(self.out, "norange"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        self.assertEqual(self.files(), ["norange"])

    @defer.inlineCallbacks
    def test_resumeAlreadyComplete(self) -> Any:
        """
        A complete ``.part`` gets 416 with ``bytes */SIZE``: it is committed as is.
        """
        with open(os.path.join(self.out, "blob.part"), "wb") as f:
            f.write(servers.BODY)
        result = yield self.fetcher().retrieve(self.base + "/blob", outputDir=self.out, resume=True)
        self.assertEqual(result.status, 416)
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_resumeChecksumMismatchDropsPart(self) -> Any:
        """
        A resumed body that fails ``sha256`` loses its ``.part`` too (it would fail the
        same way forever), even with ``resume``.
        """
        with open(os.path.join(self.out, "blob.part"), "wb") as f:
            f.write(b"\0" * 1000)
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(
                    self.base + "/blob", outputDir=self.out, resume=True, sha256="0" * 64
                ),
                fetch_errors.ChecksumMismatch,
            )
        )
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_onlyIfChanged(self) -> Any:
        """
        With ``onlyIfChanged``, a server without validators sending the same bytes
        again leaves the file alone (same inode, ``changed`` false, no ``.part``); new
        bytes replace it.
        """
        blob = servers.Blob(etag=None)
        self.root.putChild(b"plain", blob)
        fetcher = self.fetcher()
        url = self.base + "/plain"
        first = yield fetcher.retrieve(url, outputDir=self.out, onlyIfChanged=True)
        self.assertTrue(first.changed)
        inode = os.stat(first.filename).st_ino
        second = yield fetcher.retrieve(url, outputDir=self.out, onlyIfChanged=True)
        self.assertFalse(second.changed)
        self.assertEqual(os.stat(first.filename).st_ino, inode)
        self.assertEqual(self.files(), ["plain"])
        blob.data = b"new version"
        third = yield fetcher.retrieve(url, outputDir=self.out, onlyIfChanged=True)
        self.assertTrue(third.changed)
        with open(first.filename, "rb") as f:
            self.assertEqual(f.read(), b"new version")

    @defer.inlineCallbacks
    def test_nonASCIIPath(self) -> Any:
        """
        An IRI is sent percent-encoded, and the file is named with the decoded segment.
        """
        self.root.putChild("bl\u00f6b".encode(), servers.Blob())
        result = yield self.fetcher().retrieve(self.base + "/bl\u00f6b", outputDir=self.out)
        self.assertEqual(result.size, len(servers.BODY))
        self.assertEqual(self.files(), ["bl\u00f6b"])

    @defer.inlineCallbacks
    def test_newerRemembersETag(self) -> Any:
        """
        ``newer`` stores the ETag beside the file, sends it back as ``If-None-Match``, and
        a 304 leaves the file untouched (``changed`` is false).
        """
        blob = servers.Blob()
        self.root.putChild(b"cond", blob)
        fetcher = self.fetcher()
        first = yield fetcher.retrieve(self.base + "/cond", outputDir=self.out, newer=True)
        self.assertTrue(first.changed)
        self.assertEqual(self.files(), [".cond.http.json", "cond"])
        second = yield fetcher.retrieve(self.base + "/cond", outputDir=self.out, newer=True)
        self.assertFalse(second.changed)
        self.assertEqual(blob.requests[1]["if-none-match"], servers.ETAG.decode())
        self.assertEqual(self.files(), [".cond.http.json", "cond"])

    @defer.inlineCallbacks
    def test_noClobber(self) -> Any:
        """
        ``noClobber`` skips an existing file without a request and without touching it.
        """
        blob = servers.Blob()
        self.root.putChild(b"kept", blob)
        path = os.path.join(self.out, "kept")
        with open(path, "wb") as f:
            f.write(b"mine")
        result = yield self.fetcher().retrieve(
            self.base + "/kept", outputDir=self.out, noClobber=True
        )
        self.assertTrue(result.skipped)
        self.assertEqual(blob.requests, [])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"mine")

    @defer.inlineCallbacks
    def test_sha256(self) -> Any:
        """
        A matching ``sha256`` succeeds; a wrong one is :class:`ChecksumMismatch`, no file.
        """
        good = hashlib.sha256(servers.BODY).hexdigest()
        fetcher = self.fetcher()
        yield fetcher.retrieve(self.base + "/blob", outputDir=self.out, sha256=good)
        self.assertEqual(self.files(), ["blob"])
        error = yield defer.ensureDeferred(
            self.fails(
                fetcher.retrieve(self.base + "/blob.bin", outputDir=self.out, sha256="0" * 64),
                fetch_errors.ChecksumMismatch,
            )
        )
        self.assertIn("SHA-256 mismatch", str(error))
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_contentDisposition(self) -> Any:
        """
        ``contentDisposition`` uses the server's name.
        """
        yield self.fetcher().retrieve(
            self.base + "/named", outputDir=self.out, contentDisposition=True
        )
        self.assertEqual(self.files(), ["report.csv"])

    @defer.inlineCallbacks
    def test_compressedDecoded(self) -> Any:
        """
        With ``compressed``, ``Accept-Encoding`` is sent and a gzip body is stored decoded;
        without it, the bytes are stored as served.
        """
        yield self.fetcher(compressed=True).retrieve(self.base + "/gzip", outputDir=self.out)
        with open(os.path.join(self.out, "gzip"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        plain = os.path.join(self.out, "plain")
        yield self.fetcher().retrieve(self.base + "/gzip", plain)
        with open(plain, "rb") as f:
            self.assertEqual(f.read()[:2], b"\x1f\x8b")

    @defer.inlineCallbacks
    def test_headersSent(self) -> Any:
        """
        Extra headers and the User-Agent are sent; no Accept-Encoding unless compressed.
        """
        result = yield self.fetcher(headers=[("X-Token", "abc")]).fetchBytes(self.base + "/echo")
        import json

        seen = json.loads(result.content)
        self.assertEqual(seen["x-token"], "abc")
        self.assertTrue(seen["user-agent"].startswith("twisted_journey/"))
        self.assertNotIn("accept-encoding", seen)

    @defer.inlineCallbacks
    def test_fetchBytesMaxSize(self) -> Any:
        """
        :meth:`Fetcher.fetchBytes` returns the body, or :class:`TooLarge` past ``maxSize``.
        """
        fetcher = self.fetcher()
        result = yield fetcher.fetchBytes(self.base + "/blob")
        self.assertEqual(result.content, servers.BODY)
        yield defer.ensureDeferred(
            self.fails(fetcher.fetchBytes(self.base + "/blob", maxSize=100), fetch_errors.TooLarge)
        )

    @defer.inlineCallbacks
    def test_parallelIsCapped(self) -> Any:
        """
        With ``parallel=2`` and five URLs, the server never sees more than two requests
        at once, and all five finish.
        """
        hold = servers.Hold()
        self.root.putChild(b"hold", hold)
        fetcher = self.fetcher(parallel=2)
        results = [
            fetcher.retrieve(f"{self.base}/hold?{i}", os.path.join(self.out, str(i)))
            for i in range(5)
        ]
        for _ in range(200):
            if len(hold.waiting) == 2:
                break
            yield sleep(0.01)
        for _ in range(50):
            hold.release()
            if all(d.called for d in results):
                break
            yield sleep(0.02)
        yield defer.gatherResults(results)
        self.assertEqual(hold.most, 2)
        self.assertEqual(self.files(), ["0", "1", "2", "3", "4"])

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        A refused connection is :class:`NetworkError` with errors.py's sentence.
        """
        from tests.support import freePort

        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(f"http://127.0.0.1:{freePort()}/x", outputDir=self.out),
                fetch_errors.NetworkError,
            )
        )
        self.assertIn("refused", str(error))
        self.assertEqual(self.files(), [])

    def test_unsupportedURL(self) -> Any:
        """
        An ftp:// URL fails at once with :class:`UnsupportedURL`.
        """
        d = self.fetcher().retrieve("ftp://127.0.0.1/x", outputDir=self.out)
        self.failureResultOf(d, fetch_errors.UnsupportedURL)


def sleep(seconds: float) -> Any:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds)


class LiarTests(FetcherTestsMixin, unittest.TestCase):
    """
    Against a raw server that does what well-behaved servers never do.
    """

    def setUp(self) -> None:
        super().setUp()
        self.raw, port = servers.listenRaw(self)
        self.base = f"http://127.0.0.1:{port}"

    async def _truncated(self, path: str, message: str) -> None:
        error = await self.fails(
            self.fetcher().retrieve(self.base + path, outputDir=self.out),
            fetch_errors.TruncatedBody,
        )
        self.assertIn(message, str(error))
        self.assertEqual(error.exitCode, fetch_errors.EXIT_TRUNCATED)
        self.assertEqual(self.files(), [])

    def test_shortBody(self) -> Any:
        """
        Fewer bytes than Content-Length: :class:`TruncatedBody`, no file, no ``.part``.
        """
        return defer.ensureDeferred(self._truncated("/short", "cut short"))

    @defer.inlineCallbacks
    def test_resumableFailureRemembersValidators(self) -> Any:
        """
        A resumable transfer cut short keeps, beside its ``.part``, the validators that a
        later ``If-Range`` needs.
        """
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(self.base + "/short-etag", outputDir=self.out, resume=True),
                fetch_errors.TruncatedBody,
            )
        )
        self.assertEqual(self.files(), [".short-etag.part.http.json", "short-etag.part"])
        self.assertEqual(
            validators.range_condition(os.path.join(self.out, "short-etag.part")),
            {"If-Range": '"short-v1"'},
        )

    def test_longBody(self) -> Any:
        """
        More bytes than Content-Length (which Twisted drops silently): an error too.
        """
        return defer.ensureDeferred(self._truncated("/long", "longer than announced"))

    @defer.inlineCallbacks
    def test_unframedBody(self) -> Any:
        """
        A body ended only by the connection closing is complete (RFC 9112 section 6.3).
        """
        result = yield self.fetcher().retrieve(self.base + "/unframed", outputDir=self.out)
        self.assertEqual(result.size, 50)
        self.assertEqual(self.files(), ["unframed"])

    @defer.inlineCallbacks
    def test_stallMidBody(self) -> Any:
        """
        A server that stops sending mid-body trips the idle timeout: :class:`Timeout`.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher(idleTimeout=0.3).retrieve(self.base + "/stall", outputDir=self.out),
                fetch_errors.Timeout,
            )
        )
        self.assertIn("no data for 0.3 seconds", str(error))
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_maxTime(self) -> Any:
        """
        The total time limit stops a transfer that is still going.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher(maxTime=0.3).retrieve(self.base + "/stall", outputDir=self.out),
                fetch_errors.Timeout,
            )
        )
        self.assertIn("--max-time", str(error))
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_stallKeptForResume(self) -> Any:
        """
        With ``resume``, a failed transfer keeps its ``.part`` (and never the final name).
        """
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher(idleTimeout=0.3).retrieve(
                    self.base + "/stall", outputDir=self.out, resume=True
                ),
                fetch_errors.Timeout,
            )
        )
        self.assertEqual(self.files(), ["stall.part"])
        self.assertEqual(os.path.getsize(os.path.join(self.out, "stall.part")), 100)

    @defer.inlineCallbacks
    def test_redirectLoop(self) -> Any:
        """
        A server redirecting to itself: :class:`TooManyRedirects` after the limit.
        """
        yield defer.ensureDeferred(
            self.fails(
                self.fetcher(maxRedirects=5).retrieve(self.base + "/loop", outputDir=self.out),
                fetch_errors.TooManyRedirects,
            )
        )
        self.assertEqual(len(self.raw.requestLines), 6)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_gzipBomb(self) -> Any:
        """
        2 MB of gzip inflating to 2 GiB is stopped by the default ratio cap:
        :class:`TooLarge`, no file.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher(compressed=True).retrieve(self.base + "/bomb", outputDir=self.out),
                fetch_errors.TooLarge,
            )
        )
        self.assertIn("decompression bomb", str(error))
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_decodedSizeCap(self) -> Any:
        """
        ``maxDecodedSize`` caps the decoded size whatever the ratio.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher(compressed=True, maxDecodedSize=1000, maxRatio=1e9).retrieve(
                    self.base + "/bomb", outputDir=self.out
                ),
                fetch_errors.TooLarge,
            )
        )
        self.assertIn("more than 1000 bytes", str(error))
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_hostileDispositionNames(self) -> Any:
        """
        Every hostile ``Content-Disposition`` name ends up as a safe basename inside the
        output directory (or, when nothing usable is left, the URL's own name).
        """
        fetcher = self.fetcher()
        expected = []
        for index, (_, safe) in enumerate(servers.HOSTILE_NAMES):
            result = yield fetcher.retrieve(
                f"{self.base}/dispo/{index}", outputDir=self.out, contentDisposition=True
            )
            name = safe if safe is not None else str(index)
            self.assertEqual(result.filename, os.path.join(self.out, name))
            expected.append(name)
        self.assertEqual(self.files(), sorted(expected))
        self.assertEqual(os.listdir(os.path.dirname(self.out)), [os.path.basename(self.out)])


class TLSTests(FetcherTestsMixin, unittest.TestCase):
    """
    Against a TLS server whose self-signed certificate is made in the test.
    """

    def setUp(self) -> None:
        super().setUp()
        self.cacert, options = servers.certificate(self.mktemp())
        self.port = servers.listen(self, servers.webSite(), tls=options)

    @defer.inlineCallbacks
    def test_untrustedFails(self) -> Any:
        """
        Without ``cacert`` the certificate is not trusted: :class:`TLSError`, no file.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher().retrieve(f"https://localhost:{self.port}/blob", outputDir=self.out),
                fetch_errors.TLSError,
            )
        )
        self.assertIn("--cacert", str(error))
        self.assertEqual(error.exitCode, fetch_errors.EXIT_TLS)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_cacertTrusts(self) -> Any:
        """
        With ``cacert`` naming the certificate, the download succeeds.
        """
        yield self.fetcher(cacert=self.cacert).retrieve(
            f"https://localhost:{self.port}/blob", outputDir=self.out
        )
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_insecure(self) -> Any:
        """
        ``insecure`` skips verification.
        """
        yield self.fetcher(insecure=True).retrieve(
            f"https://localhost:{self.port}/blob", outputDir=self.out
        )
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_connectProxy(self) -> Any:
        """
        An https URL through a proxy goes through ``CONNECT`` (the proxy sees only the
        CONNECT line, never the request), and TLS is verified end to end.
        """
        proxy, proxyPort = servers.listenProxy(self)
        fetcher = self.fetcher(
            cacert=self.cacert, proxies={"https": f"http://127.0.0.1:{proxyPort}"}
        )
        yield fetcher.retrieve(f"https://localhost:{self.port}/blob", outputDir=self.out)
        self.assertEqual(
            [r[0] for r in proxy.requests], [f"CONNECT localhost:{self.port} HTTP/1.1".encode()]
        )
        self.assertEqual(self.files(), ["blob"])
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_connectProxyCredentials(self) -> Any:
        """
        ``user:password@`` in the proxy URL becomes ``Proxy-Authorization`` on CONNECT.
        """
        proxy, proxyPort = servers.listenProxy(self)
        fetcher = self.fetcher(
            cacert=self.cacert, proxies={"https": f"http://u%40x:p@127.0.0.1:{proxyPort}"}
        )
        yield fetcher.retrieve(f"https://localhost:{self.port}/blob", outputDir=self.out)
        import base64

        expected = b"Proxy-Authorization: Basic " + base64.b64encode(b"u@x:p")
        self.assertIn(expected, proxy.requests[0])

    @defer.inlineCallbacks
    def test_httpProxyAndNoProxy(self) -> Any:
        """
        A plain http URL goes to the proxy in absolute form; ``no`` bypasses it.
        """
        proxy, proxyPort = servers.listenProxy(self)
        web = servers.listen(self, servers.webSite())
        proxies = {"http": f"http://127.0.0.1:{proxyPort}"}
        viaProxy = yield self.fetcher(proxies=proxies).fetchBytes(f"http://127.0.0.1:{web}/blob")
        self.assertEqual(
            viaProxy.content, f"proxied: GET http://127.0.0.1:{web}/blob HTTP/1.1".encode()
        )
        direct = yield self.fetcher(proxies={**proxies, "no": "127.0.0.1"}).fetchBytes(
            f"http://127.0.0.1:{web}/blob"
        )
        self.assertEqual(direct.content, servers.BODY)
        self.assertEqual(len(proxy.requests), 1)


class HttpbinTests(FetcherTestsMixin, unittest.TestCase):
    """
    Against httpbin served by Twisted's WSGI container.
    """

    def setUp(self) -> None:
        super().setUp()
        try:
            import httpbin
        except ImportError:
            raise unittest.SkipTest("httpbin is not installed") from None
        from twisted.internet import reactor
        from twisted.python.threadpool import ThreadPool
        from twisted.web.wsgi import WSGIResource

        pool = ThreadPool(minthreads=1, maxthreads=4)
        pool.start()
        self.addCleanup(pool.stop)
        resource = WSGIResource(reactor, pool, httpbin.app)
        self.port = servers.listen(self, servers.webSite(resource))  # type: ignore[arg-type]
        self.otherPort = servers.listen(self, servers.webSite(resource))  # type: ignore[arg-type]
        self.base = f"http://127.0.0.1:{self.port}"

    @defer.inlineCallbacks
    def test_bytes(self) -> Any:
        """
        ``/bytes/N`` arrives whole.
        """
        result = yield self.fetcher().retrieve(self.base + "/bytes/5000", outputDir=self.out)
        self.assertEqual(result.size, 5000)
        self.assertEqual(self.files(), ["5000"])

    @defer.inlineCallbacks
    def test_streamBytesChunked(self) -> Any:
        """
        A chunked body (no Content-Length) is framed, so it is accepted.
        """
        result = yield self.fetcher().retrieve(
            self.base + "/stream-bytes/20000?chunk_size=1000", outputDir=self.out
        )
        self.assertEqual(result.size, 20000)

    @defer.inlineCallbacks
    def test_credentialsNotForwardedAcrossOrigins(self) -> Any:
        """
        ``Authorization`` is sent to the first origin but dropped on a redirect to another
        port, and kept on a redirect within the same origin.
        """
        import json
        import urllib.parse

        fetcher = self.fetcher(headers=[("Authorization", "Bearer secret")])
        other = urllib.parse.quote(f"http://127.0.0.1:{self.otherPort}/headers")
        cross = yield fetcher.fetchBytes(f"{self.base}/redirect-to?url={other}")
        self.assertNotIn("Authorization", json.loads(cross.content)["headers"])
        same = yield fetcher.fetchBytes(f"{self.base}/redirect-to?url=/headers")
        self.assertEqual(json.loads(same.content)["headers"]["Authorization"], "Bearer secret")

    @defer.inlineCallbacks
    def test_everyCredentialHeaderDropped(self) -> Any:
        """
        Every header that carries credentials (``Cookie2`` too, as the stdlib twin drops
        it) is dropped on a redirect to another origin and kept within the same origin.
        """
        import json
        import urllib.parse

        sent = [
            ("Authorization", "Bearer secret"),
            ("Cookie", "a=b"),
            ("Cookie2", '$Version="1"'),
            ("Proxy-Authorization", "Basic cDpx"),
        ]
        fetcher = self.fetcher(headers=sent)
        other = urllib.parse.quote(f"http://127.0.0.1:{self.otherPort}/headers")
        cross = yield fetcher.fetchBytes(f"{self.base}/redirect-to?url={other}")
        received = {name.lower() for name in json.loads(cross.content)["headers"]}
        self.assertEqual(received & {name.lower() for name, _ in sent}, set())
        same = yield fetcher.fetchBytes(f"{self.base}/redirect-to?url=/headers")
        received = {name.lower() for name in json.loads(same.content)["headers"]}
        self.assertLessEqual({name.lower() for name, _ in sent}, received)

    @defer.inlineCallbacks
    def test_status500Retried(self) -> Any:
        """
        A 500 is retried ``retries`` times, then reported with its status.
        """
        error = yield defer.ensureDeferred(
            self.fails(
                self.fetcher(retries=1, retryDelay=0.01).retrieve(
                    self.base + "/status/500", outputDir=self.out
                ),
                fetch_errors.HTTPStatusError,
            )
        )
        self.assertEqual(error.status, 500)
        self.assertEqual(self.files(), [])
