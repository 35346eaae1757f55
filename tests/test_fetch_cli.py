"""
``journey fetch`` and ``python -m twisted_journey.fallback.fetch`` as real processes,
against loopback servers in the test's reactor.

:class:`FetchContractMixin` holds what both engines promise (names, ``.part`` safety,
truncation checks, exit codes, one stderr line per failed URL); it runs once for
``journey fetch`` on Twisted and once for the stdlib twin with Twisted made unimportable.
Further classes test the options only the Twisted engine has.  Every test checks the exit
status, the message and exactly which files exist afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import environment, fallbackArgv, freePort, journeyArgv, proxyFreeEnvironment
from twisted_journey.fetch import errors as fetch_errors


class ProcessMixin:
    """
    Run the command under test in ``self.out`` with proxies cleared.
    """

    def setUp(self) -> None:
        self.out = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        os.makedirs(self.out)
        self.root = servers.webRoot()
        self.web = f"http://127.0.0.1:{servers.listen(self, servers.webSite(self.root))}"
        self.raw, rawPort = servers.listenRaw(self)
        self.liar = f"http://127.0.0.1:{rawPort}"

    def argv(self, *arguments: str) -> list[str]:
        raise NotImplementedError

    def env(self, **extra: str) -> dict[str, str]:
        return servers.childEnvironment(**extra)

    @defer.inlineCallbacks
    def fetch(self, *arguments: str, env: dict[str, str] | None = None) -> Any:
        """
        Fire with ``(status, stderr lines)``.
        """
        _, err, status = yield servers.runChild(
            self.argv(*arguments), self.env() if env is None else env, self.out
        )
        return status, err.decode("utf-8", "replace").splitlines()

    def files(self, *sub: str) -> list[str]:
        return servers.files(os.path.join(self.out, *sub))

    def assertFailed(self, result: tuple[int, list[str]], status: int, *phrases: str) -> None:
        """
        The run ended with ``status`` and one stderr line holding every phrase.
        """
        code, lines = result
        self.assertEqual(code, status, lines)  # type: ignore[attr-defined]
        self.assertEqual(len(lines), 1, lines)  # type: ignore[attr-defined]
        for phrase in phrases:
            self.assertIn(phrase, lines[0])  # type: ignore[attr-defined]


class FetchContractMixin(ProcessMixin):
    """
    What both engines promise.
    """

    @defer.inlineCallbacks
    def test_nameFromURL(self) -> Any:
        """
        The file is named from the URL; exit 0; nothing on stderr.
        """
        result = yield self.fetch(self.web + "/blob.bin")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["blob.bin"])  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "blob.bin"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_emptyPath(self) -> Any:
        """
        An empty path is saved as ``index.html``.
        """
        result = yield self.fetch(self.web + "/")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["index.html"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_outputAndOutputDir(self) -> Any:
        """
        ``-o FILE`` inside ``--output-dir DIR``.
        """
        os.makedirs(os.path.join(self.out, "d"))
        result = yield self.fetch(self.web + "/blob", "-o", "chosen", "--output-dir", "d")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files("d"), ["chosen"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_httpError(self) -> Any:
        """
        404: exit 8, one line naming the URL and status, no file.
        """
        url = self.web + "/status/404"
        result = yield self.fetch(url)
        self.assertFailed(result, fetch_errors.EXIT_HTTP, url, "404")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_shortBody(self) -> Any:
        """
        A body shorter than Content-Length: exit 7, no file, no ``.part``.
        """
        result = yield self.fetch(self.liar + "/short")
        self.assertFailed(result, fetch_errors.EXIT_TRUNCATED, "/short")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_longBody(self) -> Any:
        """
        A body longer than Content-Length: exit 7, no file.
        """
        result = yield self.fetch(self.liar + "/long")
        self.assertFailed(result, fetch_errors.EXIT_TRUNCATED, "longer than announced")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_unframedBody(self) -> Any:
        """
        A body ended only by the connection closing is complete (RFC 9112 section 6.3):
        exit 0, the file holds it.
        """
        result = yield self.fetch(self.liar + "/unframed")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["unframed"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_redirectLimit(self) -> Any:
        """
        Three redirects with ``--max-redirs 2``: exit 9, no file; with the default, fine.
        """
        result = yield self.fetch(self.web + "/redirect/3", "--max-redirs", "2")
        self.assertFailed(result, fetch_errors.EXIT_REDIRECTS, "too many redirects")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]
        result = yield self.fetch(self.web + "/redirect/3")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["3"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_redirectLoop(self) -> Any:
        """
        A server redirecting to itself forever: exit 9, no file.
        """
        result = yield self.fetch(self.liar + "/loop")
        self.assertFailed(result, fetch_errors.EXIT_REDIRECTS, "/loop")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_hostileDispositionNames(self) -> Any:
        """
        ``--content-disposition`` reduces every hostile name to a safe basename in the
        output directory, or falls back to the URL's name.
        """
        urls = [f"{self.liar}/dispo/{i}" for i in range(len(servers.HOSTILE_NAMES))]
        result = yield self.fetch("--content-disposition", *urls)
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        expected = [safe if safe else str(i) for i, (_, safe) in enumerate(servers.HOSTILE_NAMES)]
        self.assertEqual(self.files(), sorted(expected))  # type: ignore[attr-defined]
        self.assertEqual(os.listdir(os.path.dirname(self.out)), [os.path.basename(self.out)])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        Nothing listening: exit 4 with errors.py's sentence.
        """
        result = yield self.fetch(f"http://127.0.0.1:{freePort()}/x")
        self.assertFailed(result, fetch_errors.EXIT_NETWORK, "refused")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_oneOfSeveralFails(self) -> Any:
        """
        Two URLs, one 404: exit 8, exactly one stderr line, the good file is there.
        """
        result = yield self.fetch(self.web + "/blob", self.web + "/status/500")
        self.assertFailed(result, fetch_errors.EXIT_HTTP, "/status/500")
        self.assertEqual(self.files(), ["blob"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_usageError(self) -> Any:
        """
        ``-o`` with two URLs is a usage error: exit 2, no request made.
        """
        code, lines = yield self.fetch("-o", "x", self.web + "/a", self.web + "/b")
        self.assertEqual(code, fetch_errors.EXIT_USAGE)  # type: ignore[attr-defined]
        self.assertIn("one URL", "\n".join(lines))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_unwritable(self) -> Any:
        """
        ``-o`` into a directory that does not exist (without ``--create-dirs``): exit 3
        with the reason, nothing left; an ``--output-dir`` that is a file: exit 3.
        """
        result = yield self.fetch(self.web + "/blob", "-o", os.path.join("missing", "x"))
        self.assertFailed(result, fetch_errors.EXIT_FILE, "cannot write", "No such file")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "file"), "wb"):
            pass
        result = yield self.fetch(self.web + "/blob", "--output-dir", "file")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "not a directory")

    @defer.inlineCallbacks
    def test_untrustedTLS(self) -> Any:
        """
        A certificate nobody trusts: exit 5, no file.
        """
        _, options = servers.certificate(self.mktemp())  # type: ignore[attr-defined]
        port = servers.listen(self, servers.webSite(), tls=options)
        result = yield self.fetch(f"https://localhost:{port}/blob")
        self.assertFailed(result, fetch_errors.EXIT_TLS, "TLS")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]


class JourneyFetchContractTests(FetchContractMixin, unittest.TestCase):
    """
    The contract, for ``journey fetch`` on Twisted (without ``--quiet``: piped, it
    shows no progress bar, so stderr holds only the failure lines).
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)


class FallbackFetchContractTests(FetchContractMixin, unittest.TestCase):
    """
    The contract, for the stdlib twin in a process where ``import twisted`` fails.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return proxyFreeEnvironment(stdlibOnly=True, **extra)


class FallbackOnlyTests(ProcessMixin, unittest.TestCase):
    """
    What only the stdlib twin has: ``--timeout``.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    @defer.inlineCallbacks
    def test_timeoutOnStall(self) -> Any:
        """
        A body that stalls trips ``--timeout``: exit 6, no file, no ``.part``.
        """
        result = yield self.fetch("--timeout", "0.5", self.liar + "/stall")
        self.assertFailed(result, fetch_errors.EXIT_TIMEOUT, "/stall")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_badTimeout(self) -> Any:
        """
        ``--timeout 0`` is a usage error.
        """
        code, lines = yield self.fetch("--timeout", "0", self.web + "/blob")
        self.assertEqual(code, fetch_errors.EXIT_USAGE)
        self.assertIn("--timeout must be", lines[-1])


class StdlibJourneyFetchTests(ProcessMixin, unittest.TestCase):
    """
    ``journey fetch`` where Twisted cannot be imported runs the twin.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return {**environment(stdlibOnly=True), **extra}

    @defer.inlineCallbacks
    def test_runsTwin(self) -> Any:
        """
        It fetches with the basic options ...
        """
        result = yield self.fetch(self.web + "/blob")
        self.assertEqual(result, (0, []))
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_refusesTwistedOnlyOptions(self) -> Any:
        """
        ... and refuses the others with a sentence and exit 2.
        """
        code, lines = yield self.fetch("--retry", "2", "--compressed", self.web + "/blob")
        self.assertEqual(code, fetch_errors.EXIT_USAGE)
        self.assertIn("--retry, --compressed need(s) Twisted", lines[0])
        self.assertEqual(self.files(), [])


class JourneyFetchOptionTests(ProcessMixin, unittest.TestCase):
    """
    The options only ``journey fetch`` on Twisted has.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", "--quiet", *arguments)

    @defer.inlineCallbacks
    def test_noClobber(self) -> Any:
        """
        ``--no-clobber`` leaves an existing file alone (exit 0, no request).
        """
        blob = servers.Blob()
        self.root.putChild(b"mine", blob)
        with open(os.path.join(self.out, "mine"), "wb") as f:
            f.write(b"keep me")
        result = yield self.fetch("--no-clobber", self.web + "/mine")
        self.assertEqual(result, (0, []))
        self.assertEqual(blob.requests, [])
        with open(os.path.join(self.out, "mine"), "rb") as f:
            self.assertEqual(f.read(), b"keep me")

    @defer.inlineCallbacks
    def test_parallel(self) -> Any:
        """
        ``--parallel 3`` with six URLs: all six files, exit 0.
        """
        result = yield self.fetch(
            "--parallel", "3", *[f"{self.web}/blob?{i}" for i in range(6)], "-o", "x"
        )
        self.assertEqual(result[0], fetch_errors.EXIT_USAGE)
        os.makedirs(os.path.join(self.out, "d"))
        urls = [f"{self.web}/redirect/{i}" for i in range(1, 7)]
        result = yield self.fetch("--parallel", "3", "--output-dir", "d", *urls)
        self.assertEqual(result, (0, []))
        self.assertEqual(self.files("d"), ["1", "2", "3", "4", "5", "6"])

    @defer.inlineCallbacks
    def test_sameNameTwice(self) -> Any:
        """
        Two URLs that would be saved under one name: the first is fetched, the second
        fails (exit 3) without a request, rather than both writing one ``.part``.
        """
        blob = servers.Blob()
        self.root.putChild(b"same", blob)
        result = yield self.fetch("--parallel", "2", self.web + "/same", self.web + "/same?again")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "/same?again", "also saved as 'same'")
        self.assertEqual(len(blob.requests), 1)
        self.assertEqual(self.files(), ["same"])

    @defer.inlineCallbacks
    def test_continue(self) -> Any:
        """
        ``-C`` keeps the ``.part`` of a stalled transfer (exit 6), and a later ``-C``
        completes a partial file with ``Range``.
        """
        result = yield self.fetch("-C", "--idle-timeout", "0.5", self.liar + "/stall")
        self.assertFailed(result, fetch_errors.EXIT_TIMEOUT, "no data for 0.5 seconds")
        self.assertEqual(self.files(), ["stall.part"])
        blob = servers.Blob()
        self.root.putChild(b"resume", blob)
        with open(os.path.join(self.out, "resume.part"), "wb") as f:
            f.write(servers.BODY[:4000])
        result = yield self.fetch("-C", self.web + "/resume")
        self.assertEqual(result, (0, []))
        self.assertEqual(blob.requests[0]["range"], "bytes=4000-")
        with open(os.path.join(self.out, "resume"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        self.assertEqual(self.files(), ["resume", "stall.part"])

    @defer.inlineCallbacks
    def test_continueIntoHardLink(self) -> Any:
        """
        ``-C`` onto a ``.part`` that is a hard link of another file: exit 3, one
        sentence, and nothing appended to the other file.
        """
        blob = servers.Blob()
        self.root.putChild(b"range", blob)
        victim = os.path.join(self.out, "victim")
        with open(victim, "wb") as f:
            f.write(servers.BODY[:500])
        os.link(victim, os.path.join(self.out, "range.part"))
        result = yield self.fetch("-C", self.web + "/range")
        self.assertFailed(result, fetch_errors.EXIT_FILE, "range.part", "hard links")
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), servers.BODY[:500])
        self.assertEqual(self.files(), ["range.part", "victim"])

    @defer.inlineCallbacks
    def test_stallWithoutContinue(self) -> Any:
        """
        Without ``-C`` a stalled transfer leaves nothing at all.
        """
        result = yield self.fetch("--idle-timeout", "0.5", self.liar + "/stall")
        self.assertFailed(result, fetch_errors.EXIT_TIMEOUT, "--idle-timeout")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_newer(self) -> Any:
        """
        ``-N`` twice: the second run sends the remembered ETag and gets a 304.
        """
        blob = servers.Blob()
        self.root.putChild(b"cond", blob)
        for _ in range(2):
            result = yield self.fetch("-N", self.web + "/cond")
            self.assertEqual(result, (0, []))
        self.assertEqual(blob.requests[1]["if-none-match"], servers.ETAG.decode())
        self.assertEqual(self.files(), [".cond.http.json", "cond"])

    @defer.inlineCallbacks
    def test_compressedBomb(self) -> Any:
        """
        ``--compressed`` on a gzip bomb (2 MB inflating to 2 GiB): exit 11, a clear
        sentence, no file.
        """
        result = yield self.fetch("--compressed", self.liar + "/bomb")
        self.assertFailed(result, fetch_errors.EXIT_TOO_LARGE, "decompression bomb")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_compressed(self) -> Any:
        """
        ``--compressed`` stores a gzip body decoded.
        """
        result = yield self.fetch("--compressed", self.web + "/gzip")
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "gzip"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_sha256(self) -> Any:
        """
        ``--sha256``: the right digest succeeds, a wrong one is exit 10 with no file.
        """
        result = yield self.fetch("--sha256", "a" * 64, self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_CHECKSUM, "SHA-256 mismatch")
        self.assertEqual(self.files(), [])
        digest = hashlib.sha256(servers.BODY).hexdigest()
        result = yield self.fetch("--sha256", digest, self.web + "/blob")
        self.assertEqual(result, (0, []))
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_retry(self) -> Any:
        """
        ``--retry 2`` rides out two 503s (Retry-After: 0).
        """
        flaky = servers.Flaky(2)
        self.root.putChild(b"flaky", flaky)
        result = yield self.fetch("--retry", "2", self.web + "/flaky")
        self.assertEqual(result, (0, []))
        self.assertEqual(flaky.calls, 3)
        self.assertEqual(self.files(), ["flaky"])

    @defer.inlineCallbacks
    def test_header(self) -> Any:
        """
        ``--header`` is sent; a malformed one is a usage error.
        """
        result = yield self.fetch("--header", "X-Token: abc", self.web + "/echo")
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "echo")) as f:
            self.assertEqual(json.load(f)["x-token"], "abc")
        code, _ = yield self.fetch("--header", "no colon", self.web + "/echo")
        self.assertEqual(code, fetch_errors.EXIT_USAGE)

    @defer.inlineCallbacks
    def test_tls(self) -> Any:
        """
        ``--cacert`` trusts the test's certificate; ``--insecure`` works but warns loudly.
        """
        cacert, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        url = f"https://localhost:{port}/blob"
        result = yield self.fetch("--cacert", cacert, url)
        self.assertEqual(result, (0, []))
        os.unlink(os.path.join(self.out, "blob"))
        code, lines = yield self.fetch("--insecure", url)
        self.assertEqual(code, 0)
        self.assertIn("WARNING: --insecure", lines[0])
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_httpsProxyFromEnvironment(self) -> Any:
        """
        ``HTTPS_PROXY`` sends https through ``CONNECT``; ``NO_PROXY`` bypasses it.
        """
        cacert, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        proxy, proxyPort = servers.listenProxy(self)
        env = self.env(HTTPS_PROXY=f"http://127.0.0.1:{proxyPort}")
        result = yield self.fetch("--cacert", cacert, f"https://localhost:{port}/blob", env=env)
        self.assertEqual(result, (0, []))
        self.assertEqual(proxy.requests[0][0], f"CONNECT localhost:{port} HTTP/1.1".encode())
        env["NO_PROXY"] = "localhost"
        result = yield self.fetch(
            "--cacert", cacert, "-o", "direct", f"https://localhost:{port}/blob", env=env
        )
        self.assertEqual(result, (0, []))
        self.assertEqual(len(proxy.requests), 1)
        self.assertEqual(self.files(), ["blob", "direct"])

    @defer.inlineCallbacks
    def test_httpProxyFromEnvironment(self) -> Any:
        """
        ``HTTP_PROXY`` sends plain http to the proxy in absolute form.
        """
        _, proxyPort = servers.listenProxy(self)
        env = self.env(HTTP_PROXY=f"http://127.0.0.1:{proxyPort}")
        result = yield self.fetch(self.web + "/blob", env=env)
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), f"proxied: GET {self.web}/blob HTTP/1.1".encode())

    @defer.inlineCallbacks
    def test_progress(self) -> Any:
        """
        ``--progress`` draws a bar on stderr even when it is not a terminal; without it
        (piped) stderr stays empty.
        """
        _, err, code = yield servers.runChild(
            journeyArgv("fetch", "--progress", self.web + "/blob"), self.env(), self.out
        )
        self.assertEqual(code, 0)
        self.assertIn(b"100%", err)


def _onTerminal(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, bytes]:
    """
    Run ``argv`` with stderr on a pseudo-terminal (blocking: call in a thread); return its
    status and what it wrote there.
    """
    import fcntl
    import struct
    import subprocess
    import termios

    master, slave = os.openpty()
    # A new pseudo-terminal is 0 columns wide; a real one is not (tqdm draws to the width).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        status = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=env,
            cwd=cwd,
            timeout=60,
        ).returncode
    finally:
        os.close(slave)
    output = b""
    os.set_blocking(master, False)
    try:
        for _ in range(1000):
            chunk = os.read(master, 65536)
            if not chunk:
                break
            output += chunk
    except OSError:  # drained (EAGAIN) or closed (EIO)
        pass
    os.close(master)
    return status, output


class TerminalProgressTests(ProcessMixin, unittest.TestCase):
    """
    The progress bar appears by itself on a terminal, and ``--quiet`` silences it.
    """

    @defer.inlineCallbacks
    def test_terminal(self) -> Any:
        """
        With stderr on a terminal a bar is drawn; with ``--quiet`` nothing is.
        """
        from twisted.internet.threads import deferToThread

        url = self.web + "/blob"
        status, output = yield deferToThread(
            _onTerminal, journeyArgv("fetch", url), self.env(), self.out
        )
        self.assertEqual(status, 0)
        self.assertIn(b"100%", output)
        os.unlink(os.path.join(self.out, "blob"))
        status, output = yield deferToThread(
            _onTerminal, journeyArgv("fetch", "--quiet", url), self.env(), self.out
        )
        self.assertEqual((status, output), (0, b""))
        self.assertEqual(self.files(), ["blob"])


class _Child(ProcessProtocol):
    """
    Collects a child's stderr; :attr:`ended` fires with its exit status.
    """

    def __init__(self) -> None:
        self.stderr = b""
        self.ended: Deferred[int] = Deferred()

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value.exitCode)


class InterruptTests(ProcessMixin, unittest.TestCase):
    """
    ``journey fetch`` interrupted (SIGINT) mid-body cleans up after itself.
    """

    async def interrupt(self, *arguments: str) -> tuple[int, str]:
        from twisted.internet import reactor

        argv = journeyArgv("fetch", "--quiet", *arguments, self.liar + "/stall")
        child = _Child()
        process = reactor.spawnProcess(child, argv[0], argv, env=self.env(), path=self.out)  # type: ignore[attr-defined]
        for _ in range(1000):  # until the stalled body's first 100 bytes are in
            if self.raw.connections and self.raw.requestLines:
                break
            await sleep(0.01)
        await sleep(1.0)  # and the child has read them (it needs well under 1 ms)
        process.signalProcess("INT")
        status = await child.ended.addTimeout(60, reactor)  # type: ignore[arg-type]
        return status, child.stderr.decode()

    async def _removesPart(self) -> None:
        status, stderr = await self.interrupt()
        self.assertEqual(status, 130, stderr)
        self.assertIn("interrupted", stderr)
        self.assertEqual(self.files(), [])

    def test_removesPart(self) -> Any:
        """
        Exit 130, one sentence, and neither the file nor its ``.part`` is left.
        """
        return Deferred.fromCoroutine(self._removesPart())

    async def _keepsPartWithContinue(self) -> None:
        status, stderr = await self.interrupt("-C")
        self.assertEqual(status, 130, stderr)
        self.assertEqual(self.files(), ["stall.part"])
        self.assertEqual(os.path.getsize(os.path.join(self.out, "stall.part")), 100)

    def test_keepsPartWithContinue(self) -> Any:
        """
        With ``-C`` the ``.part`` (100 bytes received) stays for a later resume.
        """
        return Deferred.fromCoroutine(self._keepsPartWithContinue())


def sleep(seconds: float) -> Deferred[None]:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds)  # type: ignore[arg-type]


class FallbackCredentialsTests(unittest.TestCase):
    """
    The stdlib twin, called in a thread against servers in this process.
    """

    @defer.inlineCallbacks
    def test_credentialsNotForwardedAcrossOrigins(self) -> Any:
        """
        ``Authorization`` survives a same-origin redirect but not one to another port
        (plain urllib forwards it).
        """
        from twisted.internet.threads import deferToThread

        from twisted_journey.fallback import fetch as fallback

        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        root = servers.webRoot()
        port = servers.listen(self, servers.webSite(root))
        other = servers.listen(self, servers.webSite())
        root.putChild(b"away", servers.RedirectTo(f"http://127.0.0.1:{other}/echo".encode()))
        root.putChild(b"home", servers.RedirectTo(b"/echo"))
        auth = [("Authorization", "Bearer secret"), ("Cookie", "a=b")]
        for name in ("away", "home"):
            yield deferToThread(
                fallback.fetch, f"http://127.0.0.1:{port}/{name}", name, out, headers=auth
            )
        with open(os.path.join(out, "away")) as f:
            away = json.load(f)
        with open(os.path.join(out, "home")) as f:
            home = json.load(f)
        self.assertNotIn("authorization", away)
        self.assertNotIn("cookie", away)
        self.assertEqual(home["authorization"], "Bearer secret")


class CurlHabitsTests(ProcessMixin, unittest.TestCase):
    """
    curl's spellings work on ``journey fetch``: ``-s -f -L -k -H -x -u -C - -m``, a
    ``sha256:`` prefix, ``user:password@`` URLs, and the header limits are options.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)

    def echoed(self, name: str) -> dict[str, str]:
        with open(os.path.join(self.out, name), "rb") as f:
            return json.loads(f.read())  # type: ignore[no-any-return]

    @defer.inlineCallbacks
    def test_shortOptions(self) -> Any:
        """
        ``-s -f -L -H`` on an http URL, and ``-k`` on an untrusted https one: exit 0, no
        output but ``-k``'s warning.
        """
        result = yield self.fetch(
            "-s", "-f", "-L", "-H", "X-Test: 1", "-o", "e", self.web + "/echo"
        )
        self.assertEqual(result, (0, []))
        self.assertEqual(self.echoed("e")["x-test"], "1")
        _, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        code, lines = yield self.fetch("-s", "-k", f"https://localhost:{port}/blob")
        self.assertEqual(code, 0, lines)
        self.assertEqual(len(lines), 1)
        self.assertIn("WARNING: --insecure", lines[0])

    @defer.inlineCallbacks
    def test_credentials(self) -> Any:
        """
        ``-u USER:PASSWORD`` and ``http://USER:PASSWORD@HOST/`` send Basic credentials;
        a failure's line shows ``user:***@``, never the password.
        """
        result = yield self.fetch("-s", "-u", "me:pw", "-o", "u", self.web + "/echo")
        self.assertEqual(result, (0, []))
        self.assertEqual(self.echoed("u")["authorization"], "Basic bWU6cHc=")
        inURL = self.web.replace("http://", "http://me:pw@")
        result = yield self.fetch("-s", "-o", "v", inURL + "/echo")
        self.assertEqual(result, (0, []))
        self.assertEqual(self.echoed("v")["authorization"], "Basic bWU6cHc=")
        code, lines = yield self.fetch("-s", inURL.replace("pw", "secret") + "/status/404")
        self.assertEqual(code, fetch_errors.EXIT_HTTP)
        self.assertNotIn("secret", "\n".join(lines))
        self.assertIn("me:***@", lines[0])

    @defer.inlineCallbacks
    def test_proxyOption(self) -> Any:
        """
        ``-x HOST:PORT`` sends plain http through that proxy.
        """
        _, proxyPort = servers.listenProxy(self)
        result = yield self.fetch("-s", "-x", f"127.0.0.1:{proxyPort}", self.web + "/blob")
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), f"proxied: GET {self.web}/blob HTTP/1.1".encode())

    @defer.inlineCallbacks
    def test_continueDash(self) -> Any:
        """
        ``-C -`` is ``-C``: the ``.part`` is continued with ``Range``.
        """
        with open(os.path.join(self.out, "blob.part"), "wb") as f:
            f.write(servers.BODY[:1000])
        result = yield self.fetch("-s", "-C", "-", self.web + "/blob")
        self.assertEqual(result, (0, []))
        self.assertEqual(self.files(), ["blob"])
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_sha256Prefix(self) -> Any:
        """
        ``--sha256 sha256:HEX`` is the digest; a wrong one exits 10 with no file.
        """
        digest = hashlib.sha256(servers.BODY).hexdigest()
        result = yield self.fetch("-s", "--sha256", "sha256:" + digest, self.web + "/blob")
        self.assertEqual(result, (0, []))
        os.unlink(os.path.join(self.out, "blob"))
        result = yield self.fetch("-s", "--sha256", "SHA256:" + "0" * 64, self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_CHECKSUM)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_headerLimits(self) -> Any:
        """
        ``--max-headers`` and ``--max-header-bytes`` bound the response headers: exit 7
        with a sentence naming the option.
        """
        result = yield self.fetch("-s", "--max-headers", "2", self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_TRUNCATED, "--max-headers")
        result = yield self.fetch("-s", "--max-header-bytes", "50", self.web + "/blob")
        self.assertFailed(result, fetch_errors.EXIT_TRUNCATED, "--max-header-bytes")
        self.assertEqual(self.files(), [])


class NoTracebackTests(ProcessMixin, unittest.TestCase):
    """
    No failure reaches stderr as a traceback: one sentence per URL, whatever failed.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", "--quiet", *arguments)

    def assertSentence(self, result: tuple[int, list[str]], status: int, *phrases: str) -> None:
        self.assertFailed(result, status, *phrases)
        self.assertNotIn("Traceback", result[1][0])

    @defer.inlineCallbacks
    def test_malformedURLs(self) -> Any:
        """
        An unclosed IPv6 bracket (with a password, not shown), a bad port, a control
        character: exit 2, one line each.
        """
        result = yield self.fetch("http://u:secret@[::1/x")
        self.assertSentence(result, fetch_errors.EXIT_USAGE, "not a valid URL", "u:***@")
        self.assertNotIn("secret", result[1][0])
        result = yield self.fetch("http://127.0.0.1:99999999/")
        self.assertSentence(result, fetch_errors.EXIT_USAGE, "bad port")
        result = yield self.fetch("http://127.0.0.1/\x01")
        self.assertSentence(result, fetch_errors.EXIT_USAGE, "control characters")

    @defer.inlineCallbacks
    def test_badRedirects(self) -> Any:
        """
        A malformed ``Location`` and one to ``ftp:``: exit 2, one line each.
        """
        self.root.putChild(b"bad", servers.RedirectTo(b"http://[::1/x"))
        self.root.putChild(b"ftp", servers.RedirectTo(b"ftp://127.0.0.1/x"))
        result = yield self.fetch(self.web + "/bad")
        self.assertSentence(result, fetch_errors.EXIT_USAGE, "not a valid URL")
        result = yield self.fetch(self.web + "/ftp")
        self.assertSentence(result, fetch_errors.EXIT_USAGE, "only http:// and https://")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_certificateProblems(self) -> Any:
        """
        A certificate for another host name, and an untrusted one: exit 5, one line
        naming the problem (Twisted's own log of the verification stays off stderr).
        """
        cacert, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        result = yield self.fetch("--retry", "2", "--cacert", cacert, f"https://127.0.0.1:{port}/")
        self.assertSentence(result, fetch_errors.EXIT_TLS, "is for localhost, not 127.0.0.1")
        result = yield self.fetch(f"https://localhost:{port}/")
        self.assertSentence(result, fetch_errors.EXIT_TLS, "self-signed")
