"""
Digest authentication and the cookie engine, held to one contract for ``journey fetch``
and its stdlib twin, as real processes against httpbin (in Twisted's WSGI container) and
a raw server for hostile challenges, on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import urllib.parse
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import fallbackArgv, journeyArgv
from tests.test_fetch_cli import ProcessMixin
from tests.test_fetch_fallback import _stdlibEnvironment
from twisted_journey.fetch import errors as fetch_errors

#: A 401 whose Digest challenge never ends its quoted-string.
_HOSTILE = servers.response(
    b"401 Unauthorized",
    [(b"WWW-Authenticate", b'Digest realm="r, nonce="n'), (b"Content-Length", b"0")],
    b"",
)


def listenHttpbin(testCase: Any) -> int:
    """
    Serve httpbin in Twisted's WSGI container on loopback (stopped at cleanup); return
    its port.  Skips the test when httpbin is not installed.
    """
    try:
        import httpbin
    except ImportError:
        raise unittest.SkipTest("httpbin is not installed") from None
    from twisted.internet import reactor
    from twisted.python.threadpool import ThreadPool
    from twisted.web.wsgi import WSGIResource

    pool = ThreadPool(minthreads=1, maxthreads=4)
    pool.start()
    testCase.addCleanup(pool.stop)
    resource = WSGIResource(reactor, pool, httpbin.app)
    return servers.listen(testCase, servers.webSite(resource))  # type: ignore[arg-type]


class AuthCookiesContractMixin(ProcessMixin):
    """
    ``--digest``, ``--anyauth``, ``-b`` and ``-c``, alike in both engines.
    """

    def setUp(self) -> None:
        super().setUp()
        self.port = listenHttpbin(self)
        self.bin = f"http://127.0.0.1:{self.port}"
        servers.RAW[b"/hostile-challenge"] = (_HOSTILE, False)
        self.addCleanup(servers.RAW.pop, b"/hostile-challenge")  # type: ignore[attr-defined]

    def read(self, name: str) -> Any:
        with open(os.path.join(self.out, name)) as f:
            return json.load(f)

    @defer.inlineCallbacks
    def test_digest(self) -> Any:
        """
        ``--digest`` answers httpbin's MD5 and SHA-256 challenges; ``--anyauth`` its
        Digest and its Basic.
        """
        for name, options, path in [
            ("md5", ["--digest"], "/digest-auth/auth/user/passwd/MD5"),
            ("sha256", ["--digest"], "/digest-auth/auth/user/passwd/SHA-256"),
            ("any-digest", ["--anyauth"], "/digest-auth/auth/user/passwd/SHA-256"),
            ("any-basic", ["--anyauth"], "/basic-auth/user/passwd"),
        ]:
            result = yield self.fetch(*options, "-u", "user:passwd", "-o", name, self.bin + path)
            self.assertEqual(result, (0, []), name)  # type: ignore[attr-defined]
            self.assertEqual(self.read(name), {"authenticated": True, "user": "user"})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_wrongPassword(self) -> Any:
        """
        A refused Digest answer is a 401 (exit 8), answered once, nothing saved.
        """
        result = yield self.fetch(
            "--digest", "-u", "user:wrong", self.bin + "/digest-auth/auth/user/passwd/MD5"
        )
        self.assertFailed(result, fetch_errors.EXIT_HTTP, "401", "Digest")  # type: ignore[attr-defined]
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_unauthorizedNamesScheme(self) -> Any:
        """
        ``-u`` alone (Basic) against a Digest-only server: the sentence says to use
        ``--digest`` or ``--anyauth``.
        """
        result = yield self.fetch(
            "-u", "user:passwd", self.bin + "/digest-auth/auth/user/passwd/MD5"
        )
        self.assertFailed(  # type: ignore[attr-defined]
            result, fetch_errors.EXIT_HTTP, "401", "asks for Digest authentication", "--digest"
        )

    @defer.inlineCallbacks
    def test_hostileChallenge(self) -> Any:
        """
        A malformed challenge is not answered: one request, one sentence, exit 8.
        """
        result = yield self.fetch("--digest", "-u", "u:p", self.liar + "/hostile-challenge")
        self.assertFailed(result, fetch_errors.EXIT_HTTP, "401", "malformed")  # type: ignore[attr-defined]
        self.assertEqual(self.raw.requestLines, [b"GET /hostile-challenge HTTP/1.1"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_digestNotAfterCrossOriginRedirect(self) -> Any:
        """
        After a redirect to another origin, a Digest challenge there is not answered.
        """
        other = f"http://localhost:{self.port}/digest-auth/auth/user/passwd/MD5"
        url = self.bin + "/redirect-to?url=" + urllib.parse.quote(other)
        result = yield self.fetch("--digest", "-u", "user:passwd", url)
        self.assertFailed(result, fetch_errors.EXIT_HTTP, "401")  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cookieGatedRedirect(self) -> Any:
        """
        ``-L -b ''``: ``/cookies/set`` sets a cookie and redirects to ``/cookies``, which
        is sent it.
        """
        result = yield self.fetch("-L", "-b", "", "-o", "out", self.bin + "/cookies/set?k=v")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.read("out"), {"cookies": {"k": "v"}})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cookieJar(self) -> Any:
        """
        ``-c FILE`` writes the Netscape format, mode 0600; ``-b FILE`` sends its cookies.
        """
        result = yield self.fetch("-c", "jar", "-o", "set", self.bin + "/cookies/set?k=v")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        path = os.path.join(self.out, "jar")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)  # type: ignore[attr-defined]
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "# Netscape HTTP Cookie File")  # type: ignore[attr-defined]
        self.assertIn("127.0.0.1\tFALSE\t/\tFALSE\t0\tk\tv", lines)  # type: ignore[attr-defined]
        result = yield self.fetch("-b", "jar", "-o", "sent", self.bin + "/cookies")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.read("sent"), {"cookies": {"k": "v"}})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def curl(self, *arguments: str) -> Any:
        """
        Run the real ``curl -s ARGUMENTS`` in ``self.out``; fire with its standard output.
        """
        curl = shutil.which("curl")
        if curl is None:
            raise unittest.SkipTest("curl is not installed")
        out, err, status = yield servers.runChild(
            [curl, "-s", "-S", *arguments], servers.childEnvironment(), self.out
        )
        self.assertEqual(status, 0, err)  # type: ignore[attr-defined]
        return out

    def cookieLines(self, name: str) -> list[str]:
        """
        The cookie lines of the Netscape file ``name`` (``#HttpOnly_`` ones included).
        """
        with open(os.path.join(self.out, name)) as f:
            lines = f.read().splitlines()
        return sorted(x for x in lines if x and (not x.startswith("#") or "_" in x[:10]))

    @defer.inlineCallbacks
    def test_cookieJarAsCurlWritesIt(self) -> Any:
        """
        A host-only cookie from ``localhost`` is written as curl writes it (``localhost``,
        not ``localhost.local``), so the real ``curl -b`` sends it back.
        """
        local = f"http://localhost:{self.port}"
        yield self.curl("-L", "-c", "curljar", "-o", "/dev/null", local + "/cookies/set?k=v")
        result = yield self.fetch("-c", "jar", "-o", "set", local + "/cookies/set?k=v")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.cookieLines("jar"), self.cookieLines("curljar"))  # type: ignore[attr-defined]
        sent = yield self.curl("-b", "jar", local + "/cookies")
        self.assertEqual(json.loads(sent), {"cookies": {"k": "v"}})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_curlJarRead(self) -> Any:
        """
        The jar the real ``curl -c`` wrote for ``localhost`` is read, and its cookie sent
        to ``localhost`` as curl would send it.
        """
        local = f"http://localhost:{self.port}"
        yield self.curl("-L", "-c", "curljar", "-o", "/dev/null", local + "/cookies/set?k=v")
        result = yield self.fetch("-b", "curljar", "-o", "sent", local + "/cookies")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.read("sent"), {"cookies": {"k": "v"}})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cookieStandardStreams(self) -> Any:
        """
        As in curl, ``-c -`` writes the jar to standard output and ``-b -`` reads one
        from standard input (here curl's, through a pipe); no file named ``-`` appears.
        """
        local = f"http://localhost:{self.port}"
        out, err, status = yield servers.runChild(
            self.argv("-c", "-", "-o", "set", local + "/cookies/set?k=v"), self.env(), self.out
        )
        self.assertEqual((status, err), (0, b""))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "stdout-jar"), "wb") as f:
            f.write(out)
        self.assertIn(b"localhost\tFALSE\t/\tFALSE\t0\tk\tv\n", out)  # type: ignore[attr-defined]
        yield self.curl("-L", "-c", "curljar", "-o", "/dev/null", local + "/cookies/set?j=w")
        piped = ["/bin/sh", "-c", 'cat curljar | "$@"', "sh", *self.argv("-b", "-", "-o", "sent")]
        _, err, status = yield servers.runChild([*piped, local + "/cookies"], self.env(), self.out)
        self.assertEqual((status, err), (0, b""))  # type: ignore[attr-defined]
        self.assertEqual(self.read("sent"), {"cookies": {"j": "w"}})  # type: ignore[attr-defined]
        self.assertNotIn("-", self.files())  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cookieStringOwnHostOnly(self) -> Any:
        """
        ``-b 'a=1; b=2'`` goes to the URL's own host, not to another host a redirect
        leads to.
        """
        result = yield self.fetch("-b", "a=1; b=2", "-o", "own", self.bin + "/cookies")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.read("own"), {"cookies": {"a": "1", "b": "2"}})  # type: ignore[attr-defined]
        other = urllib.parse.quote(f"http://localhost:{self.port}/cookies")
        url = self.bin + "/redirect-to?url=" + other
        result = yield self.fetch("-b", "a=1", "-o", "other", url)
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.read("other"), {"cookies": {}})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cookieJarNotThroughLink(self) -> Any:
        """
        A link at the ``-c`` file is replaced, its target untouched.
        """
        precious = self.out + ".precious"
        with open(precious, "wb") as f:
            f.write(b"precious")
        os.symlink(precious, os.path.join(self.out, "jar"))
        result = yield self.fetch("-c", "jar", "-o", "set", self.bin + "/cookies/set?k=v")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(precious, "rb") as f:
            self.assertEqual(f.read(), b"precious")  # type: ignore[attr-defined]
        self.assertFalse(os.path.islink(os.path.join(self.out, "jar")))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_badCookieFile(self) -> Any:
        """
        A ``-b FILE`` that is not a Netscape cookie file: one sentence, nothing fetched.
        """
        with open(os.path.join(self.out, "notes"), "w") as f:
            f.write("not cookies\n")
        code, lines = yield self.fetch("-b", "notes", self.bin + "/cookies")
        self.assertNotEqual(code, 0)  # type: ignore[attr-defined]
        self.assertEqual(len(lines), 1, lines)  # type: ignore[attr-defined]
        self.assertIn("Netscape", lines[0])  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["notes"])  # type: ignore[attr-defined]


class JourneyAuthCookiesContractTests(AuthCookiesContractMixin, unittest.TestCase):
    """
    The contract, for ``journey fetch`` on Twisted.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)


class FallbackAuthCookiesContractTests(AuthCookiesContractMixin, unittest.TestCase):
    """
    The contract, for the stdlib twin with Twisted unimportable.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)


class MirrorAuthCookiesTests(unittest.TestCase):
    """
    ``journey mirror`` and ``twistd journey-fetch`` take the same options.
    """

    @defer.inlineCallbacks
    def test_mirrorDigestAndCookies(self) -> Any:
        """
        ``journey mirror --once --digest -u ... -b '' -c jar``: a Digest-protected URL
        and a cookie-gated one are mirrored, and the jar is written.
        """
        port = listenHttpbin(self)
        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        base = f"http://127.0.0.1:{port}"
        urls = os.path.join(out, "urls.txt")
        with open(urls, "w") as f:
            f.write(f"{base}/digest-auth/auth/user/passwd/SHA-256 auth.json\n")
            f.write(f"{base}/cookies/set?k=v cookies.json\n")
        argv = journeyArgv(
            "mirror", "--urls", urls, "--output-dir", out, "--once", "--digest",
            "-u", "user:passwd", "-b", "", "-c", os.path.join(out, "jar"),
        )  # fmt: skip
        _, err, status = yield servers.runChild(argv, servers.childEnvironment(), out)
        self.assertEqual(status, 0, err)
        with open(os.path.join(out, "auth.json")) as f:
            self.assertEqual(json.load(f), {"authenticated": True, "user": "user"})
        with open(os.path.join(out, "cookies.json")) as f:
            # (httpbin's Digest page sets cookies of its own, sent back too.)
            self.assertEqual(json.load(f)["cookies"]["k"], "v")
        with open(os.path.join(out, "jar")) as f:
            self.assertIn("\tk\tv", f.read())

    def test_tapOptions(self) -> None:
        """
        The plugin's ``--user``, ``--digest``, ``-b`` and ``-c`` reach the service's
        settings; contradictions and a bad cookie file are usage errors.
        """
        from twisted.internet.testing import MemoryReactorClock
        from twisted.python import usage

        from twisted_journey.tap.fetch import Options, makeService

        urls = os.path.abspath(self.mktemp())
        with open(urls, "w") as f:
            f.write("")
        options = Options()
        options.parseOptions(["--urls", urls, "--digest", "--user", "u:p", "-b", "", "-c", "jar"])
        service = makeService(options, MemoryReactorClock())
        settings = service.settings  # type: ignore[attr-defined]
        self.assertEqual(
            (settings.credentials, settings.authMode, settings.cookie, settings.cookieJar),
            (("u", "p"), "digest", "", "jar"),
        )
        with open(urls + ".notes", "w") as f:
            f.write("not cookies\n")
        for bad in [
            ["--digest", "--anyauth"],
            ["--user", "nocolon"],
            ["-b", urls + ".notes"],
            ["-b", "a b=1"],
        ]:
            with self.assertRaises(usage.UsageError, msg=bad):
                Options().parseOptions(["--urls", urls, *bad])


class SharedOptionsTests(unittest.SynchronousTestCase):
    """
    ``-u``, ``--digest``/``--anyauth``/``--basic``, ``-b`` and ``-c`` are declared once
    (:class:`~twisted_journey.fetch.options.FetchCommand`) and taken alike by
    ``journey fetch``, ``journey mirror`` and ``twistd journey-fetch``.
    """

    def setUp(self) -> None:
        self.urls = os.path.abspath(self.mktemp())
        with open(self.urls, "w") as f:
            f.write("")

    def test_journeyMirror(self) -> None:
        """
        ``journey mirror``'s ``-u`` is ``--user`` (as on ``journey fetch``), and its
        options reach the mirror's fetcher settings; two modes are argparse's usage error.
        """
        from twisted_journey.cli import _parser
        from twisted_journey.fetch.options import MirrorCommand

        parser = _parser()
        for mode, expected in [("--digest", "digest"), ("--anyauth", "any"), ("--basic", "basic")]:
            args = parser.parse_args(
                ["mirror", "--urls", self.urls, "-u", "u:p", mode, "-b", "a=1", "-c", "jar"]
            )
            settings = MirrorCommand.fromValues(vars(args)).settings()
            self.assertEqual(
                (settings.credentials, settings.authMode, settings.cookie, settings.cookieJar),
                (("u", "p"), expected, "a=1", "jar"),
            )
        args = parser.parse_args(["mirror", "--urls", self.urls, "--parallel", "7"])
        settings = MirrorCommand.fromValues(vars(args)).settings()
        self.assertEqual((settings.authMode, settings.parallel), ("basic", 7))
        with self.assertRaises(SystemExit):
            parser.parse_args(["mirror", "--urls", self.urls, "--digest", "--basic"])

    def test_mirrorRefusesStandardStreams(self) -> None:
        """
        ``-b -`` and ``-c -`` (standard input and output, as in curl) are refused by
        ``journey mirror`` and ``twistd journey-fetch`` in one sentence: a mirror reads
        its cookies again at each start and writes them after each pass.
        """
        from twisted.python import usage

        from twisted_journey.cli import _parser
        from twisted_journey.fetch.options import MirrorCommand
        from twisted_journey.settings import SettingError
        from twisted_journey.tap.fetch import Options

        for flag in ["-b", "-c"]:
            args = _parser().parse_args(["mirror", "--urls", self.urls, flag, "-"])
            error = self.assertRaises(SettingError, MirrorCommand.fromValues, vars(args))
            self.assertIn("standard input and output are not supported", str(error))
            error = self.assertRaises(
                usage.UsageError, Options().parseOptions, ["-u", self.urls, flag, "-"]
            )
            self.assertIn("give a file", str(error))

    def test_journeyFetchAndTwin(self) -> None:
        """
        ``journey fetch`` and the twin's parser take the mode flags into one setting.
        """
        import argparse

        from twisted_journey.fallback import fetch as twin
        from twisted_journey.fetch.cli import configure
        from twisted_journey.fetch.options import FetchCommand

        journey = argparse.ArgumentParser()
        configure(journey)
        for parser in [journey, twin.parser()]:
            args = parser.parse_args(["--anyauth", "-u", "u:p", "-b", "", "http://h/"])
            command = FetchCommand.fromArguments(args)
            self.assertEqual(
                (command.credentials, command.authMode, command.cookie), (("u", "p"), "any", "")
            )
            self.assertEqual(command.settings().authMode, "any")
            with self.assertRaises(SystemExit):
                parser.parse_args(["--anyauth", "--digest", "http://h/"])

    def test_twistdFlags(self) -> None:
        """
        On ``twistd journey-fetch`` ``-u`` is ``--urls`` and the credentials are
        ``--user`` only; ``--basic`` is there too, exclusive of the other modes.
        """
        from twisted.python import usage

        from twisted_journey.tap.fetch import Options

        options = Options()
        options.parseOptions(["-u", self.urls, "--user", "u:p", "--basic"])
        self.assertEqual(options.command.urls, self.urls)
        assert options.fetchSettings is not None
        self.assertEqual(
            (options.fetchSettings.credentials, options.fetchSettings.authMode),
            (("u", "p"), "basic"),
        )
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["-u", self.urls, "--anyauth", "--basic"])
        self.assertEqual(str(caught.exception), "--anyauth and --basic exclude each other.")
