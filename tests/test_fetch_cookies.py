"""
Tests for :mod:`twisted_journey.fetch.cookies` (the engine behind ``-b`` and ``-c``) and
for cookies kept by ``journey mirror``'s service across passes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial import unittest

from tests import fetchservers as servers
from twisted_journey.fetch.client import Fetcher
from twisted_journey.fetch.cookies import MAX_SET_COOKIES, CookieEngine, parse_pairs
from twisted_journey.fetch.errors import FileError
from twisted_journey.fetch.mirror import MirrorService
from twisted_journey.fetch.settings import FetchSettings


class CookieEngineTests(unittest.SynchronousTestCase):
    """
    What the engine sends, keeps and writes.
    """

    def test_pairsOwnHost(self) -> None:
        """
        ``-b 'a=1; b=2'`` cookies go to the host they were given to, not to another.
        """
        engine = CookieEngine("a=1; b=2")
        engine.begin("http://127.0.0.1:8080/x")
        self.assertEqual(engine.header("http://127.0.0.1:9090/y"), "a=1; b=2")
        self.assertIsNone(engine.header("http://example.org/"))

    def test_badPairs(self) -> None:
        """
        A name that is not a token, a value with a control character or a quote: a
        ``ValueError`` naming the cookie.
        """
        for text in ["a b=1", "=1", "a=x\x01", 'a="1"', "a=1,2"]:
            with self.assertRaises(ValueError, msg=text):
                parse_pairs(text)

    def test_domainRules(self) -> None:
        """
        A cookie set without ``Domain`` goes back to its own host only; ``Secure`` ones
        only over https; ``Path`` is honoured.
        """
        engine = CookieEngine("")
        engine.store(
            "http://a.example.org/dir/page",
            ["host=1; Path=/", "sec=2; Secure; Path=/", "deep=3; Path=/dir"],
        )
        self.assertEqual(engine.header("http://a.example.org/"), "host=1")
        self.assertIsNone(engine.header("http://b.example.org/"))
        self.assertIsNone(engine.header("http://sub.a.example.org/"))
        self.assertEqual(engine.header("https://a.example.org/dir/x"), "deep=3; host=1; sec=2")

    def test_bounds(self) -> None:
        """
        Only the first ``MAX_SET_COOKIES`` fields of an answer are read, and a value
        over 4096 bytes is ignored.
        """
        engine = CookieEngine("")
        values = [f"c{i}=v" for i in range(MAX_SET_COOKIES + 10)]
        engine.store("http://example.org/", ["big=" + "x" * 5000, *values])
        self.assertEqual(len(engine.jar), MAX_SET_COOKIES - 1)

    def test_roundTrip(self) -> None:
        """
        A jar written by :meth:`CookieEngine.save` reads back, session cookies included
        (curl's expiry ``0``), ``HttpOnly`` ones too.
        """
        path = os.path.abspath(self.mktemp())
        engine = CookieEngine(None, path)
        engine.store("http://example.org/", ["s=1", "h=2; HttpOnly", "p=3; Max-Age=3600"])
        engine.save()
        with open(path) as f:
            text = f.read()
        self.assertIn("example.org\tFALSE\t/\tFALSE\t0\ts\t1\n", text)
        self.assertIn("#HttpOnly_example.org\tFALSE\t/\tFALSE\t0\th\t2\n", text)
        again = CookieEngine(path)
        sent = (again.header("http://example.org/") or "").split("; ")
        self.assertEqual(sorted(sent), ["h=2", "p=3", "s=1"])

    def test_ipv6AndDotlessHosts(self) -> None:
        """
        ``-b`` cookies reach an IPv6 literal and a dotless host name too.
        """
        engine = CookieEngine("a=1")
        for url in ["http://[::1]:8080/x", "http://localhost/"]:
            engine.begin(url)
            self.assertEqual(engine.header(url), "a=1", url)

    def test_curlHostNames(self) -> None:
        """
        Host-only cookies of a dotless host and of an IPv6 literal are kept and written
        under the names curl gives them (``localhost``, ``::1``), sent back to that host
        only.
        """
        engine = CookieEngine("")
        engine.store("http://localhost:8080/", ["a=1"])
        engine.store("http://[::1]:8080/", ["b=2"])
        lines = engine.netscape().decode().splitlines()
        self.assertIn("localhost\tFALSE\t/\tFALSE\t0\ta\t1", lines)
        self.assertIn("::1\tFALSE\t/\tFALSE\t0\tb\t2", lines)
        self.assertNotIn(".local\t", "\n".join(lines))
        self.assertEqual(engine.header("http://localhost:9/"), "a=1")
        self.assertEqual(engine.header("http://[::1]:9/"), "b=2")
        for other in ["http://sub.localhost/", "http://otherhost/", "http://localhost.local/"]:
            self.assertIsNone(engine.header(other), other)

    def test_readsCurlFile(self) -> None:
        """
        A file as curl writes it (``localhost``, ``::1``, a ``.localhost`` domain cookie,
        ``#HttpOnly_``) is sent as curl sends it, and written back unchanged.
        """
        path = os.path.abspath(self.mktemp())
        lines = [
            "#HttpOnly_localhost\tFALSE\t/\tFALSE\t0\th\t1",
            "::1\tFALSE\t/\tFALSE\t0\tsix\t2",
            ".localhost\tTRUE\t/\tFALSE\t0\td\t3",
        ]
        with open(path, "w") as f:
            f.write("# Netscape HTTP Cookie File\n" + "\n".join(lines) + "\n")
        engine = CookieEngine(path)
        self.assertEqual(sorted(engine.header("http://localhost/").split("; ")), ["d=3", "h=1"])
        self.assertEqual(engine.header("http://sub.localhost/"), "d=3")
        self.assertEqual(engine.header("http://[::1]/"), "six=2")
        self.assertEqual(
            sorted(x for x in engine.netscape().decode().splitlines() if "\t" in x), sorted(lines)
        )

    def test_httpOnlyAnyCase(self) -> None:
        """
        ``HttpOnly`` is recognised in any case, as curl recognises it.
        """
        engine = CookieEngine("")
        engine.store("http://example.org/", ["a=1; httponly", "b=2; HTTPONLY", "c=3"])
        text = engine.netscape().decode()
        self.assertIn("#HttpOnly_example.org\tFALSE\t/\tFALSE\t0\ta\t1", text)
        self.assertIn("#HttpOnly_example.org\tFALSE\t/\tFALSE\t0\tb\t2", text)
        self.assertIn("\nexample.org\tFALSE\t/\tFALSE\t0\tc\t3", text)

    def test_missingFile(self) -> None:
        """
        A ``-b`` file that does not exist is an empty jar, as in curl (``-b jar -c jar``
        on a first run).
        """
        engine = CookieEngine(os.path.abspath(self.mktemp()))
        self.assertEqual(len(engine.jar), 0)

    def test_fifoRefused(self) -> None:
        """
        A FIFO at the ``-b`` path is refused without blocking on it.
        """
        path = os.path.abspath(self.mktemp())
        os.mkfifo(path)
        error = self.assertRaises(FileError, CookieEngine, path)
        self.assertIn("not a regular file", str(error))

    def test_bytesKept(self) -> None:
        """
        A value's bytes (``Set-Cookie`` values are latin-1 text in both engines) are
        written and read back unchanged; a CRLF file reads as an LF one.
        """
        path = os.path.abspath(self.mktemp())
        engine = CookieEngine(None, path)
        engine.store("http://example.org/", ["v=caf\xe9\x85x"])
        engine.save()
        with open(path, "rb") as f:
            data = f.read()
        self.assertIn(b"\tv\tcaf\xe9\x85x\n", data)
        with open(path, "wb") as f:
            f.write(data.replace(b"\n", b"\r\n"))
        self.assertEqual(CookieEngine(path).header("http://example.org/"), "v=caf\xe9\x85x")

    def test_badFile(self) -> None:
        """
        A ``-b`` file not in the Netscape format: a :class:`FileError` naming it.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("just text\n")
        error = self.assertRaises(FileError, CookieEngine, path)
        self.assertIn("Netscape", str(error))

    def test_badLineNoTraceback(self) -> None:
        """
        A malformed line in a Netscape cookie file is one :class:`FileError`, with no
        traceback written anywhere (``http.cookiejar`` would warn with one).
        """
        import warnings

        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("# Netscape HTTP Cookie File\nexample.org\tFALSE\t/\tFALSE\tsoon\ta\tb\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            error = self.assertRaises(FileError, CookieEngine, path)
        self.assertIn("Netscape", str(error))
        self.assertEqual([str(w.message) for w in caught], [])

    def test_emptyOrHeaderlessFile(self) -> None:
        """
        An empty ``-b`` file (``mktemp``'s) is an empty jar, and a file of cookie lines
        without the ``# Netscape HTTP Cookie File`` line is read, as curl reads them.
        """
        path = os.path.abspath(self.mktemp())
        open(path, "w").close()
        self.assertEqual(len(CookieEngine(path).jar), 0)
        with open(path, "w") as f:
            f.write("example.org\tFALSE\t/\tFALSE\t0\ta\tb\n")
        self.assertEqual(CookieEngine(path).header("http://example.org/"), "a=b")

    def test_saveRefusesDirectory(self) -> None:
        """
        A directory at the ``-c`` path is a :class:`FileError`; nothing is left beside.
        """
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        engine = CookieEngine(None, path)
        self.assertRaises(FileError, engine.save)
        self.assertEqual(os.listdir(os.path.dirname(path)), [os.path.basename(path)])


class MirrorCookiesTests(unittest.TestCase):
    """
    The mirror's fetcher sends its cookies and writes its jar after each pass.
    """

    @defer.inlineCallbacks
    def test_jarWrittenEachPass(self) -> Any:
        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        base = f"http://127.0.0.1:{servers.listen(self, servers.webSite())}"
        urls = os.path.join(out, "urls.txt")
        with open(urls, "w") as f:
            f.write(f"{base}/echo echo.json\n")
        jar = os.path.join(out, "jar")
        settings = FetchSettings(proxies={}, cookie="a=1", cookieJar=jar)
        fetcher = Fetcher(settings=settings)
        self.addCleanup(fetcher.close)
        clock = Clock()
        service = MirrorService(urls, out, interval=60, reactor=clock, fetcher=fetcher)
        service.log = Logger(observer=lambda event: None)  # type: ignore[arg-type]
        service.startService()
        self.addCleanup(service.stopService)
        clock.advance(0)
        if service._running is not None:
            yield service._running
        with open(os.path.join(out, "echo.json")) as f:
            self.assertEqual(json.load(f)["cookie"], "a=1")
        with open(jar) as f:
            self.assertIn("127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1", f.read())
