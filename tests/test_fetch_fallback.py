"""
``python -m twisted_journey.fallback.fetch`` held to ``journey fetch``'s behaviour, as
real processes against loopback servers.

:class:`FilesContractMixin` (where files go: planted links, ``-o`` onto a FIFO or
standard output, one name per URL, created directories) and
:class:`StrictnessContractMixin` (framing, interim answers, redirects, malformed URLs:
where ``urllib`` is lax) run against both engines; :class:`FallbackOnlyTests` covers what
only the twin needs (its signal handling, its ``urllib`` plumbing).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import fallbackArgv, journeyArgv, proxyFreeEnvironment
from tests.test_fetch_cli import ProcessMixin, _Child, sleep
from twisted_journey.fetch import errors as fetch_errors

PRECIOUS = b"precious"


class FilesContractMixin(ProcessMixin):
    """
    Nothing is written where the user did not ask, by either engine.
    """

    def plant(self, *names: str) -> str:
        """
        A precious file outside the output directory, and links to it at ``names``.
        """
        precious = self.out + ".precious"
        with open(precious, "wb") as f:
            f.write(PRECIOUS)
        for name in names:
            os.symlink(precious, os.path.join(self.out, name))
        return precious

    def assertPrecious(self, path: str) -> None:
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PRECIOUS)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_linkAtPart(self) -> Any:
        """
        A link planted at ``NAME.part``: exit 3 naming it, its target untouched.
        """
        precious = self.plant("blob.part")
        result = yield self.fetch(self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "symbolic link")
        self.assertPrecious(precious)

    @defer.inlineCallbacks
    def test_linkAtName(self) -> Any:
        """
        A link planted at the final name is replaced by the file, its target untouched.
        """
        precious = self.plant("blob")
        result = yield self.fetch(self.web + "/blob")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertFalse(os.path.islink(os.path.join(self.out, "blob")))  # type: ignore[attr-defined]
        self.assertPrecious(precious)

    @defer.inlineCallbacks
    def test_fifoAtName(self) -> Any:
        """
        A FIFO at a name taken from the URL is not written into nor replaced: exit 3.
        """
        os.mkfifo(os.path.join(self.out, "blob"))
        result = yield self.fetch(self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "FIFO")
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(self.out, "blob")).st_mode))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["blob"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_outputFIFO(self) -> Any:
        """
        ``-o FIFO`` writes the body into the FIFO as curl does: no ``.part``, no rename,
        still a FIFO.
        """
        path = os.path.join(self.out, "pipe")
        os.mkfifo(path)
        received: list[bytes] = []

        def read() -> None:
            with open(path, "rb") as f:
                received.append(f.read())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        result = yield self.fetch(self.web + "/blob", "-o", path)
        reader.join(30)
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(received, [servers.BODY])  # type: ignore[attr-defined]
        self.assertTrue(stat.S_ISFIFO(os.lstat(path).st_mode))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["pipe"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_outputStdout(self) -> Any:
        """
        ``-o -`` writes the body to standard output, and no file.
        """
        out, err, code = yield servers.runChild(
            self.argv(self.web + "/blob", "-o", "-"), self.env(), self.out
        )
        self.assertEqual((code, err), (0, b""))  # type: ignore[attr-defined]
        self.assertEqual(out, servers.BODY)  # type: ignore[attr-defined]
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_outputDirCreated(self) -> Any:
        """
        ``--output-dir`` is created with its parents (wget ``-P``); ``-o`` into a missing
        directory needs ``--create-dirs``.
        """
        result = yield self.fetch(self.web + "/blob", "--output-dir", os.path.join("a", "b"))
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files("a", "b"), ["blob"])  # type: ignore[attr-defined]
        target = os.path.join("c", "d", "x")
        result = yield self.fetch(self.web + "/blob", "-o", target, "--create-dirs")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files("c", "d"), ["x"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_sameNameTwice(self) -> Any:
        """
        Two URLs wanting one name: the first is saved, the later fails (exit 3) and is
        never requested; the file holds exactly the first body.
        """
        result = yield self.fetch(self.liar + "/ok", self.liar + "/ok?again")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "/ok?again", "also saved as 'ok'")
        self.assertEqual(self.files(), ["ok"])  # type: ignore[attr-defined]
        self.assertEqual(len(self.raw.requestLines), 1)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_nameIsOthersPart(self) -> Any:
        """
        ``/x`` and ``/x.part`` in one run: ``x.part`` is ``x``'s temporary file, so the
        later of the two fails instead of splicing into it.
        """
        root = self.root  # type: ignore[attr-defined]
        root.putChild(b"x", servers.Blob(b"first body"))
        root.putChild(b"x.part", servers.Blob(b"second body"))
        result = yield self.fetch(self.web + "/x", self.web + "/x.part")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "/x.part", "also saved as 'x'")
        self.assertEqual(self.files(), ["x"])  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "x"), "rb") as f:
            self.assertEqual(f.read(), b"first body")  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_sameDispositionName(self) -> Any:
        """
        Two URLs whose servers name one file: the first keeps it with its own body.
        """
        result = yield self.fetch(
            "--content-disposition", self.liar + "/same-a", self.liar + "/same-b"
        )
        self.assertFailed(result, fetch_errors.EXIT_FILE, "/same-b", "also saved as 'same'")
        self.assertEqual(self.files(), ["same"])  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "same"), "rb") as f:
            self.assertEqual(f.read(), b"AAAAA")  # type: ignore[attr-defined]

    async def _twoRunsOneName(self) -> None:
        from twisted.internet import reactor
        from twisted.web.resource import Resource

        body = b"A" * 2000000
        slow = servers.Trickle(body, 1000000)
        self.root.putChild(b"big", slow)  # type: ignore[attr-defined]
        other = Resource()
        other.putChild(b"big", servers.Blob(b"B" * 5000))
        self.root.putChild(b"other", other)  # type: ignore[attr-defined]
        argv = self.argv(self.web + "/big")
        first = _Child()
        reactor.spawnProcess(first, argv[0], argv, env=self.env(), path=self.out)  # type: ignore[attr-defined]
        part = os.path.join(self.out, "big.part")
        for _ in range(3000):  # until the first run is mid-body
            if os.path.exists(part) and os.path.getsize(part) > 0:
                break
            await sleep(0.01)
        result = await self.fetch(self.web + "/other/big")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "big.part", "another download")
        slow.release()
        status = await first.ended.addTimeout(60, reactor)  # type: ignore[arg-type]
        self.assertEqual((status, first.stderr), (0, b""))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "big"), "rb") as f:
            self.assertEqual(f.read(), body)  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["big"])  # type: ignore[attr-defined]

    def test_twoRunsOneName(self) -> Any:
        """
        A second run saving the same name into the same directory while the first is
        mid-body fails (exit 3, one sentence) without touching the first's ``.part``;
        the first completes with its own body, whole.
        """
        return Deferred.fromCoroutine(self._twoRunsOneName())

    @defer.inlineCallbacks
    def test_hardLinkAtPart(self) -> Any:
        """
        A hard link of another file at ``NAME.part``: exit 3 naming it; the other file
        is untouched and still linked there.
        """
        precious = self.plant()
        os.link(precious, os.path.join(self.out, "blob.part"))
        result = yield self.fetch(self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "blob.part", "hard links")
        self.assertPrecious(precious)
        self.assertEqual(self.files(), ["blob.part"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_serverNameNeverReplaces(self) -> Any:
        """
        A name the server chose (``--content-disposition``) never replaces an existing
        file: exit 3, one sentence, the file untouched, no ``.part`` left.  A name the
        user gave (``-o``) replaces it.
        """
        mine = os.path.join(self.out, "report.csv")
        with open(mine, "wb") as f:
            f.write(PRECIOUS)
        result = yield self.fetch("--content-disposition", self.web + "/named")
        self.assertFailed(
            result, fetch_errors.EXIT_FILE, "report.csv", "already exists", "server chose"
        )
        self.assertPrecious(mine)
        self.assertEqual(self.files(), ["report.csv"])  # type: ignore[attr-defined]
        result = yield self.fetch("-o", "report.csv", self.web + "/named")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(mine, "rb") as f:
            self.assertEqual(f.read(), servers.BODY)  # type: ignore[attr-defined]


class StrictnessContractMixin(ProcessMixin):
    """
    Where ``urllib`` is lax, both engines judge the answer the same way.
    """

    @defer.inlineCallbacks
    def test_interimAnswersSkipped(self) -> Any:
        """
        ``103`` and ``102`` before the ``200`` are skipped; the final body is saved.
        """
        result = yield self.fetch(self.liar + "/interim")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "interim"), "rb") as f:
            self.assertEqual(f.read(), b"final")  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_malformedFraming(self) -> Any:
        """
        ``Content-Length: 1_0``, ``+5``, two different lengths, chunk sizes ``0x5`` and
        ``+5``, a chunk longer than its size: each an error with no file, never a success.
        """
        for path in (
            "cl-underscore",
            "cl-plus",
            "cl-twice",
            "chunk-0x",
            "chunk-plus",
            "chunk-long",
        ):
            code, lines = yield self.fetch(self.liar + "/" + path)
            self.assertNotEqual(code, 0, (path, lines))  # type: ignore[attr-defined]
            self.assertEqual(len(lines), 1, (path, lines))  # type: ignore[attr-defined]
            self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_maxRedirsZero(self) -> Any:
        """
        ``--max-redirs 0`` follows no redirect at all (urllib followed one).
        """
        code, lines = yield self.fetch("--max-redirs", "0", self.liar + "/to-ok")
        self.assertNotEqual(code, 0, lines)  # type: ignore[attr-defined]
        self.assertEqual(self.raw.requestLines, [b"GET /to-ok HTTP/1.1"])  # type: ignore[attr-defined]
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_malformedURL(self) -> Any:
        """
        A malformed URL is a usage error in one sentence, no traceback.
        """
        code, lines = yield self.fetch("http://[::1/x")
        self.assertEqual(code, fetch_errors.EXIT_USAGE, lines)  # type: ignore[attr-defined]
        self.assertNotIn("Traceback", "\n".join(lines))  # type: ignore[attr-defined]
        self.assertEqual(len(lines), 1, lines)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_redirectSchemes(self) -> Any:
        """
        A redirect to ``ftp:``, ``file:`` or a malformed Location is refused in one
        sentence, without any further request, and without connecting to the ftp host.
        """
        ftp = socket.socket()
        self.addCleanup(ftp.close)  # type: ignore[attr-defined]
        ftp.bind(("127.0.0.1", 0))
        ftp.listen(5)
        ftp.setblocking(False)
        location = b"ftp://127.0.0.1:%d/x" % ftp.getsockname()[1]
        servers.RAW[b"/to-ftp"] = (
            servers.response(
                b"302 Found", [(b"Location", location), (b"Content-Length", b"0")], b""
            ),
            False,
        )
        for path in ("to-ftp", "to-file", "to-broken"):
            code, lines = yield self.fetch(self.liar + "/" + path)
            self.assertNotEqual(code, 0, (path, lines))  # type: ignore[attr-defined]
            self.assertEqual(len(lines), 1, (path, lines))  # type: ignore[attr-defined]
            self.assertNotIn("Traceback", lines[0])  # type: ignore[attr-defined]
            self.assertEqual(self.files(), [])  # type: ignore[attr-defined]
        self.assertEqual(len(self.raw.requestLines), 3)  # type: ignore[attr-defined]
        with self.assertRaises(BlockingIOError):  # type: ignore[attr-defined]
            ftp.accept()

    @defer.inlineCallbacks
    def test_closeDelimited(self) -> Any:
        """
        An HTTP/1.0 body ended by the connection closing is a complete body
        (RFC 9112 section 6.3).
        """
        result = yield self.fetch(self.liar + "/http10")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "http10"), "rb") as f:
            self.assertEqual(f.read(), b"h" * 50)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_basicAuthFromURL(self) -> Any:
        """
        ``http://user:pass@host/`` sends Basic credentials to that origin; a failure
        message never shows the password.
        """
        port = self.web.rsplit(":", 1)[1]
        result = yield self.fetch(f"http://user:s3cret@127.0.0.1:{port}/echo", "-o", "echo")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "echo")) as f:
            sent = json.load(f)
        expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
        self.assertEqual(sent["authorization"], expected)  # type: ignore[attr-defined]
        code, lines = yield self.fetch(f"http://user:s3cret@127.0.0.1:{port}/status/404")
        self.assertEqual(code, fetch_errors.EXIT_HTTP)  # type: ignore[attr-defined]
        self.assertNotIn("s3cret", "\n".join(lines))  # type: ignore[attr-defined]


def _stdlibEnvironment(**extra: str) -> dict[str, str]:
    return proxyFreeEnvironment(stdlibOnly=True, **extra)


class JourneyFilesContractTests(FilesContractMixin, unittest.TestCase):
    """
    The files contract, for ``journey fetch`` on Twisted.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)


class FallbackFilesContractTests(FilesContractMixin, unittest.TestCase):
    """
    The files contract, for the stdlib twin with Twisted unimportable.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)


class JourneyStrictnessContractTests(StrictnessContractMixin, unittest.TestCase):
    """
    The strictness contract, for ``journey fetch`` on Twisted.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)


class FallbackStrictnessContractTests(StrictnessContractMixin, unittest.TestCase):
    """
    The strictness contract, for the stdlib twin with Twisted unimportable.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)


class FallbackOnlyTests(ProcessMixin, unittest.TestCase):
    """
    What only the twin needs: its own signal handling and TLS sentences.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)

    async def _terminated(self) -> None:
        from twisted.internet import reactor

        argv = self.argv(self.liar + "/stall")
        child = _Child()
        process = reactor.spawnProcess(child, argv[0], argv, env=self.env(), path=self.out)  # type: ignore[attr-defined]
        for _ in range(1000):
            if os.path.exists(os.path.join(self.out, "stall.part")):
                break
            await sleep(0.01)
        await sleep(0.5)
        process.signalProcess("TERM")
        status = await child.ended.addTimeout(60, reactor)  # type: ignore[arg-type]
        self.assertEqual(status, 130, child.stderr)
        self.assertNotIn(b"Traceback", child.stderr)
        self.assertEqual(self.files(), [])

    def test_sigtermRemovesPart(self) -> Any:
        """
        SIGTERM mid-body: exit 130, one sentence, no ``.part`` left (the twin has no
        ``-C`` to keep it for).
        """
        return Deferred.fromCoroutine(self._terminated())

    @defer.inlineCallbacks
    def test_tlsHostnameMismatch(self) -> Any:
        """
        A trusted certificate for another name: exit 5, a sentence naming the mismatch.
        """
        cacert, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        result = yield self.fetch(
            f"https://127.0.0.1:{port}/blob", env=self.env(SSL_CERT_FILE=cacert)
        )
        self.assertFailed(result, fetch_errors.EXIT_TLS, "certificate", "127.0.0.1")
        self.assertIn("mismatch", result[1][0].lower())
        self.assertEqual(self.files(), [])


class FallbackTLSTests(ProcessMixin, unittest.TestCase):
    """
    The twin's TLS failures name the certificate problem, with exit 5.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)

    @defer.inlineCallbacks
    def test_expired(self) -> Any:
        """
        A trusted but expired certificate: exit 5, "expired" in the one sentence.
        """
        cacert, options = servers.certificate(self.mktemp(), expired=True)
        port = servers.listen(self, servers.webSite(), tls=options)
        result = yield self.fetch(
            f"https://localhost:{port}/blob", env=self.env(SSL_CERT_FILE=cacert)
        )
        self.assertFailed(result, fetch_errors.EXIT_TLS, "certificate", "expired")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_untrusted(self) -> Any:
        """
        A certificate nobody trusts: exit 5, the sentence says so (self-signed).
        """
        _, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        result = yield self.fetch(f"https://localhost:{port}/blob")
        self.assertFailed(result, fetch_errors.EXIT_TLS, "certificate", "self-signed")
