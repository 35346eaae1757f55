"""
Tests of the mirror service: ``twistd journey-fetch`` options, the plugin, the service
driven by a fake clock against loopback servers, and ``twistd -n journey-fetch --once``
as a real process.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import freePort, journeyArgv, twistdArgv
from twisted_journey.fetch import Fetcher, FetchSettings
from twisted_journey.fetch.mirror import MirrorService
from twisted_journey.tap import fetch as tap


class OptionsTests(unittest.SynchronousTestCase):
    """
    ``twistd journey-fetch`` options.
    """

    def setUp(self) -> None:
        self.urls = self.mktemp()
        with open(self.urls, "w") as f:
            f.write("http://127.0.0.1:1/x\n")

    def test_defaults(self) -> None:
        """
        Only ``--urls`` is required; the rest have defaults.
        """
        options = tap.Options()
        options.parseOptions(["--urls", self.urls])
        self.assertEqual(
            (options["output-dir"], options["interval"], options["parallel"], options["once"]),
            (".", 3600.0, 4, 0),
        )

    def test_required(self) -> None:
        """
        Without ``--urls``, with a missing file, or a file as the directory, a sentence (a
        missing directory is created by the service).
        """
        for argv, phrase in [
            ([], "--urls FILE is required"),
            (["--urls", "missing"], "not a readable file"),
            (["--urls", self.urls, "--output-dir", self.urls], "not a directory"),
            (["--urls", self.urls, "--interval", "0"], "--interval must be"),
            (["--urls", self.urls, "--parallel", "none"], "--parallel must be"),
        ]:
            with self.assertRaises(usage.UsageError) as e:
                tap.Options().parseOptions(argv)
            self.assertIn(phrase, str(e.exception))

    def test_help(self) -> None:
        """
        The help names every option.
        """
        text = str(tap.Options())
        for option in ("--urls", "--output-dir", "--interval", "--parallel", "--once"):
            self.assertIn(option, text)

    def test_makeService(self) -> None:
        """
        ``makeService`` builds a :class:`MirrorService` from the options.
        """
        options = tap.Options()
        options.parseOptions(["--urls", self.urls, "--interval", "5", "--parallel", "2", "--once"])
        service = tap.makeService(options, Clock())
        assert isinstance(service, MirrorService)
        self.assertEqual((service.interval, service.parallel, service.once), (5.0, 2, True))

    def test_plugin(self) -> None:
        """
        The dropin offers ``journey-fetch`` pointing at this module.
        """
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertEqual(makers["journey-fetch"].module, "twisted_journey.tap.fetch")  # type: ignore[attr-defined]


class MirrorServiceTests(unittest.TestCase):
    """
    The service on a fake clock, fetching from loopback servers on the real reactor.
    """

    def setUp(self) -> None:
        self.out = os.path.abspath(self.mktemp())
        os.makedirs(self.out)
        self.root = servers.webRoot()
        self.blob = servers.Blob()
        self.root.putChild(b"page", self.blob)
        self.base = f"http://127.0.0.1:{servers.listen(self, servers.webSite(self.root))}"
        self.urls = os.path.abspath(self.mktemp())
        self.writeURLs(f"{self.base}/page  copy.bin\n{self.base}/status/404?{{x}}\n")
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        fetcher = Fetcher(settings=FetchSettings(proxies={}))
        self.addCleanup(fetcher.close)
        self.service = MirrorService(
            self.urls, self.out, interval=60, reactor=self.clock, fetcher=fetcher
        )
        self.service.log = Logger(observer=self.events.append)  # type: ignore[arg-type]

    def writeURLs(self, text: str) -> None:
        with open(self.urls, "w") as f:
            f.write(text)
        # A new mtime even within the same clock tick:
        info = os.stat(self.urls)
        os.utime(self.urls, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))

    @defer.inlineCallbacks
    def cycle(self) -> Any:
        """
        Let a pass start on the fake clock and wait for it to finish.
        """
        self.clock.advance(0)
        running = self.service._running
        if running is not None:
            yield running

    def messages(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events]

    @defer.inlineCallbacks
    def test_refreshCycle(self) -> Any:
        """
        The first pass writes the file (and its validators) and logs the 404; the next
        pass, an interval later, gets a 304 for the file; the failing URL's wait doubles
        with each failure, and logging survives braces in a URL.
        """
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.assertEqual(servers.files(self.out), [".copy.bin.http.json", "copy.bin"])
        text = "\n".join(self.messages())
        self.assertIn("Updated", text)
        self.assertIn("/status/404?{x}", text)
        self.assertIn("404", text)
        self.clock.advance(60)
        yield self.cycle()
        self.assertEqual(len(self.blob.requests), 2)
        self.assertEqual(self.blob.requests[1]["if-none-match"], servers.ETAG.decode())
        self.assertEqual(self.failureDelays(), [60, 120])
        self.clock.advance(60)  # t=120: the failing URL is due at 180
        yield self.cycle()
        self.assertEqual(self.failureDelays(), [60, 120])
        self.clock.advance(60)
        yield self.cycle()
        self.assertEqual(self.failureDelays(), [60, 120, 240])
        self.assertEqual(len(self.blob.requests), 4)

    def failureDelays(self) -> list[float]:
        return [e["delay"] for e in self.events if "Failed" in e.get("log_format", "")]

    @defer.inlineCallbacks
    def test_reloadsChangedFile(self) -> Any:
        """
        A changed URL file is read again at the next pass.
        """
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.writeURLs(f"{self.base}/page  copy.bin\n{self.base}/blob\n")
        self.clock.advance(60)
        yield self.cycle()
        self.assertEqual(
            servers.files(self.out), [".blob.http.json", ".copy.bin.http.json", "blob", "copy.bin"]
        )
        self.assertIn(f"Read 2 URLs from {self.urls!r}", self.messages())

    async def _busyName(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        from tests.test_fetch_cli import _Child

        body = b"A" * 2000000
        slow = servers.Trickle(body, 1000000)
        self.root.putChild(b"slow", slow)
        argv = journeyArgv("fetch", "--quiet", "-o", "copy.bin", self.base + "/slow")
        child = _Child()
        reactor.spawnProcess(child, argv[0], argv, env=servers.childEnvironment(), path=self.out)  # type: ignore[attr-defined]
        part = os.path.join(self.out, "copy.bin.part")
        for _ in range(3000):  # until that run is mid-body
            if os.path.exists(part) and os.path.getsize(part) > 0:
                break
            await deferLater(reactor, 0.01)  # type: ignore[arg-type]
        self.service.startService()
        self.addCleanup(self.service.stopService)
        await self.cycle()
        text = "\n".join(self.messages())
        self.assertNotIn("Updated", text)
        self.assertIn("being written by another download", text)
        slow.release()
        status = await child.ended.addTimeout(60, reactor)  # type: ignore[arg-type]
        self.assertEqual((status, child.stderr), (0, b""))
        with open(os.path.join(self.out, "copy.bin"), "rb") as f:
            self.assertEqual(f.read(), body)

    def test_busyName(self) -> Any:
        """
        A pass that finds its file being written by another process (a ``journey fetch``
        of the same name, mid-body) logs a failure for it, never ``Updated``, and leaves
        that download to finish with its own body.
        """
        return defer.Deferred.fromCoroutine(self._busyName())


class MirrorProcessTests(unittest.TestCase):
    """
    ``twistd -n journey-fetch --once`` as a real process.
    """

    @defer.inlineCallbacks
    def test_once(self) -> Any:
        """
        One pass: the good URL is written with its validators, the bad one is logged,
        the process exits 0; a second pass leaves the file unchanged.
        """
        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        base = f"http://127.0.0.1:{servers.listen(self, servers.webSite())}"
        urls = os.path.join(out, "..", "urls.txt")
        with open(urls, "w") as f:
            f.write(f"# test\n{base}/blob  mirrored.bin\n{base}/status/500\n")
        argv = twistdArgv("journey-fetch", "--urls", urls, "--output-dir", out, "--once")
        stdout, stderr, code = yield servers.runChild(argv, servers.childEnvironment(), out)
        log = stdout.decode()
        self.assertEqual(code, 0, log + stderr.decode())
        self.assertEqual(servers.files(out), [".mirrored.bin.http.json", "mirrored.bin"])
        self.assertIn("Updated", log)
        self.assertIn("Failed", log)
        self.assertIn("500", log)
        stdout, _, code = yield servers.runChild(argv, servers.childEnvironment(), out)
        self.assertEqual(code, 0)
        self.assertIn("Unchanged", stdout.decode())
        self.assertEqual(servers.files(out), [".mirrored.bin.http.json", "mirrored.bin"])


class MirrorInputTests(MirrorServiceTests):
    """
    No input stops the refresh loop; names are never shared; nothing is written through
    a planted link.
    """

    @defer.inlineCallbacks
    def test_malformedLinesSkipped(self) -> Any:
        """
        Malformed lines are logged and skipped, the good ones are mirrored, and the
        next pass still happens (one bad line used to end the loop for good).
        """
        self.writeURLs(
            f"http://[::1/x\nhttp://]/y\n{self.base}/page  copy.bin\nhttp://h/\x01 n\n"
            f"{self.base}/blob\n"
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.assertEqual(
            servers.files(self.out), [".blob.http.json", ".copy.bin.http.json", "blob", "copy.bin"]
        )
        skipped = [m for m in self.messages() if m.startswith("Skipped")]
        self.assertEqual(len(skipped), 3, skipped)
        self.clock.advance(60)
        yield self.cycle()
        self.assertEqual(self.service.cycles, 2)
        self.assertEqual(len(self.blob.requests), 2)

    @defer.inlineCallbacks
    def test_sameNameTwice(self) -> Any:
        """
        Two lines mapping to one name (or to the other's ``.part``): the later is
        skipped with a sentence; the file holds the first URL's body.
        """
        other = servers.Blob(b"other body")
        self.root.putChild(b"other", other)
        self.writeURLs(
            f"{self.base}/page  copy.bin\n{self.base}/other  copy.bin\n"
            f"{self.base}/other  copy.bin.part\n"
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.assertEqual(servers.files(self.out), [".copy.bin.http.json", "copy.bin"])
        with open(os.path.join(self.out, "copy.bin"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        self.assertEqual(other.requests, [])
        skipped = [m for m in self.messages() if m.startswith("Skipped")]
        self.assertEqual(len(skipped), 2, skipped)
        self.assertIn("also saved as 'copy.bin'", skipped[0])

    @defer.inlineCallbacks
    def test_plantedLinks(self) -> Any:
        """
        Links planted at the copy's ``.part`` and its validators record (and that
        record's old temporary name) are never written through, pass after pass: the
        transfer fails while a link sits at the ``.part`` and succeeds once it is gone.
        """
        precious = os.path.join(self.out, "..", "precious")
        with open(precious, "wb") as f:
            f.write(b"precious")
        os.symlink(precious, os.path.join(self.out, ".copy.bin.http.json"))
        os.symlink(precious, os.path.join(self.out, ".copy.bin.http.json.part"))
        os.symlink(precious, os.path.join(self.out, "copy.bin.part"))
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.assertIn("symbolic link", "\n".join(self.messages()))
        os.unlink(os.path.join(self.out, "copy.bin.part"))
        self.clock.advance(60)
        yield self.cycle()
        self.clock.advance(60)
        yield self.cycle()
        with open(precious, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        self.assertFalse(os.path.islink(os.path.join(self.out, ".copy.bin.http.json")))
        self.assertEqual(self.blob.requests[-1]["if-none-match"], servers.ETAG.decode())

    @defer.inlineCallbacks
    def test_noPasswordLogged(self) -> Any:
        """
        A URL's password never reaches a log event.
        """
        self.writeURLs(f"http://user:secret@127.0.0.1:{freePort()}/x\n")
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        text = "\n".join(self.messages())
        self.assertIn("Failed", text)
        self.assertNotIn("secret", text)

    @defer.inlineCallbacks
    def test_hostileTextEscaped(self) -> Any:
        """
        A reason phrase with terminal escapes reaches the log escaped, and a password
        holding ``/`` (``u:pa/SECRET@host``) never reaches it.
        """
        _, rawPort = servers.listenRaw(self)
        self.writeURLs(
            f"http://127.0.0.1:{rawPort}/hostile-404\nhttp://u:pa/SECRET7@127.0.0.1:{rawPort}/ok\n"
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        text = "\n".join(self.messages())
        self.assertIn("404", text)
        self.assertNotIn("SECRET7", text)
        for char in ("\x1b", "\x07", "\x9b", "\u202e"):
            self.assertNotIn(char, text)

    @defer.inlineCallbacks
    def test_outputDirCreated(self) -> Any:
        """
        A missing output directory is created (parents too).
        """
        self.service.outputDir = os.path.join(self.out, "new", "deeper")
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.cycle()
        self.assertIn("copy.bin", servers.files(self.service.outputDir))


class JourneyMirrorTests(unittest.TestCase):
    """
    ``journey mirror --once``: the service as a command cron can judge by its status.
    """

    @defer.inlineCallbacks
    def mirror(self, lines: str) -> Any:
        out = os.path.abspath(self.mktemp())
        urls = out + ".txt"
        base = f"http://127.0.0.1:{servers.listen(self, servers.webSite())}"
        with open(urls, "w") as f:
            f.write(lines.format(base=base))
        argv = journeyArgv("mirror", "--urls", urls, "--output-dir", out, "--once")
        _, stderr, code = yield servers.runChild(argv, servers.childEnvironment(), ".")
        return code, stderr.decode(), out

    @defer.inlineCallbacks
    def test_allGood(self) -> Any:
        """
        Every URL fetched: exit 0, the directory created, the log on stderr.
        """
        code, log, out = yield self.mirror("{base}/blob  m.bin\n")
        self.assertEqual(code, 0, log)
        self.assertEqual(servers.files(out), [".m.bin.http.json", "m.bin"])
        self.assertIn("Updated", log)

    @defer.inlineCallbacks
    def test_failureExitStatus(self) -> Any:
        """
        One URL failed: the exit status is its class's code (8 for an HTTP status), the
        good one is still mirrored, and no "next try" is promised after the last pass.
        """
        code, log, out = yield self.mirror(
            "{base}/blob  m.bin\n{base}/status/500\nbad line here x\n"
        )
        self.assertEqual(code, 8, log)
        self.assertEqual(servers.files(out), [".m.bin.http.json", "m.bin"])
        self.assertIn("500", log)
        self.assertIn("Skipped", log)
        self.assertNotIn("next try", log)
        self.assertNotIn("Traceback", log)

    @defer.inlineCallbacks
    def test_refusedAsTwistdRefuses(self) -> Any:
        """
        ``journey mirror`` refuses what ``twistd journey-fetch`` refuses, with the same
        sentence, before fetching anything: an ``--output-dir`` that is a file, a
        ``--urls`` file that is missing, bad numbers.  Exit 2, no traceback.
        """
        urls = os.path.abspath(self.mktemp())
        with open(urls, "w") as f:
            f.write("http://127.0.0.1:1/x\n")
        for extra, phrase in [
            (["--urls", urls, "--output-dir", urls], f"--output-dir {urls!r} is not a directory."),
            (["--urls", urls + ".missing"], "is not a readable file."),
            (["--urls", urls, "--interval", "0"], "--interval must be"),
            (["--urls", urls, "--parallel", "none"], "--parallel must be"),
        ]:
            argv = journeyArgv("mirror", *extra, "--once")
            _, stderr, code = yield servers.runChild(argv, servers.childEnvironment(), ".")
            self.assertEqual(code, 2, stderr)
            self.assertTrue(stderr.decode().startswith("journey mirror: "), stderr)
            self.assertIn(phrase, stderr.decode())
            self.assertNotIn("Traceback", stderr.decode())

    @defer.inlineCallbacks
    def test_uncreatableOutputDirectory(self) -> Any:
        """
        An ``--output-dir`` that cannot be created (its parent is a file) fails at once,
        with a sentence and the file error's status (3), instead of failing every URL.
        """
        parent = os.path.abspath(self.mktemp())
        urls = parent + ".txt"
        with open(urls, "w") as f:
            f.write("http://127.0.0.1:1/x\n")
        open(parent, "w").close()
        out = os.path.join(parent, "sub")
        argv = journeyArgv("mirror", "--urls", urls, "--output-dir", out, "--once")
        _, stderr, code = yield servers.runChild(argv, servers.childEnvironment(), ".")
        self.assertEqual(
            (code, stderr.decode()),
            (
                3,
                f"journey mirror: --output-dir: cannot create the directory {out!r}: "
                "Not a directory.\n",
            ),
        )

    @defer.inlineCallbacks
    def test_needsTwisted(self) -> Any:
        """
        Without Twisted, ``journey mirror`` says so in one sentence and exits 2.
        """
        urls = os.path.abspath(self.mktemp())
        with open(urls, "w") as f:
            f.write("http://127.0.0.1:1/x\n")
        argv = journeyArgv("mirror", "--urls", urls, "--once")
        env = servers.childEnvironment(JOURNEY_ENGINE="stdlib")
        _, stderr, code = yield servers.runChild(argv, env, ".")
        self.assertEqual(
            (code, stderr.decode()), (2, "journey mirror: needs Twisted, which is not installed.\n")
        )
