"""
What the fetcher says, and that both engines say it alike.

:class:`MessagesContractMixin` runs once for ``journey fetch`` on Twisted and once for the
stdlib twin with Twisted unimportable, against the scripted servers of
:mod:`tests.fetchservers`: what a server or a URL puts in a message is escaped, no password
reaches a message, ``--max-time`` ends a server that never stops talking, and the
outcomes the docs' table lists (exit status and sentence) are the same in both engines.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
import tempfile
import threading
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import fallbackArgv, freePort, journeyArgv, selfSignedCertificate
from tests.test_fetch_cli import ProcessMixin
from tests.test_fetch_fallback import _stdlibEnvironment
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import semantics
from twisted_journey.records import printable

#: Characters no message may hold raw: ESC, BEL, CSI (C1), a bidi override.
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def brotliInstalled() -> bool:
    """
    Whether the ``brotli`` package (the ``brotli`` extra) is importable here.
    """
    try:
        import brotli  # noqa: F401
    except ImportError:
        return False
    return True


_noBrotli: str | None = None


def withoutBrotli(env: dict[str, str]) -> dict[str, str]:
    """
    ``env`` with ``import brotli`` failing in the child: a ``sitecustomize`` first on
    ``PYTHONPATH`` blocks it (and, for the stdlib twin's environment, Twisted too, as the
    blocker it shadows did).
    """
    global _noBrotli
    if _noBrotli is None:
        _noBrotli = tempfile.mkdtemp(prefix="journey-no-brotli-")
        with open(os.path.join(_noBrotli, "sitecustomize.py"), "w") as f:
            f.write(
                "import os, sys\n"
                "sys.modules['brotli'] = None\n"
                "if os.environ.get('JOURNEY_TEST_STDLIB_ONLY'):\n"
                "    for name in ('twisted', 'zope', 'zope.interface'):\n"
                "        sys.modules[name] = None\n"
            )
    return {**env, "PYTHONPATH": _noBrotli + os.pathsep + env["PYTHONPATH"]}


class ResettingServer:
    """
    A loopback server, in a thread of its own, that answers each connection with the
    bytes its request path names in :attr:`answers`, then resets it (``SO_LINGER`` 0:
    an RST, not a FIN), as a crashed or hostile server or a middlebox does.

    With ``tls`` (a certificate and key path), it speaks TLS and, instead of resetting,
    closes the TCP connection without TLS's ``close_notify``, as many servers do.
    """

    def __init__(
        self, testCase: Any, answers: dict[bytes, bytes], tls: tuple[str, str] | None = None
    ) -> None:
        self.answers = answers
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        self.socket = socket.create_server(("127.0.0.1", 0))
        testCase.addCleanup(self.socket.close)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://localhost:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.socket.accept()
            except OSError:
                return
            connection = raw
            try:
                if self.context is not None:
                    # The TLS socket takes the descriptor over; closing it sends no
                    # close_notify (that would take unwrap()).
                    connection = self.context.wrap_socket(raw, server_side=True)
                self._answer(connection)
                if self.context is None:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            finally:
                connection.close()

    def _answer(self, connection: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            data = connection.recv(65536)
            if not data:
                break
            request += data
        path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
        connection.sendall(self.answers.get(path, b""))


class MessagesContractMixin(ProcessMixin):
    """
    What both engines print, and with which exit status.
    """

    def assertClean(self, lines: list[str]) -> None:
        """
        No line holds a raw control, C1 or bidi character.
        """
        text = "\n".join(lines)
        for char in RAW_CONTROLS:
            self.assertNotIn(char, text)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_reasonEscaped(self) -> Any:
        """
        A reason phrase carrying terminal escapes (title, colour, clear screen, a C1 CSI,
        a bidi override) is printed escaped: exit 8, one line, the escapes visible.
        """
        result = yield self.fetch(self.liar + "/hostile-404")
        self.assertFailed(result, fetch_errors.EXIT_HTTP, "404", "\\x1b]0;TITLE\\x07", "\\u009b")
        self.assertClean(result[1])

    @defer.inlineCallbacks
    def test_unfollowedStatuses(self) -> Any:
        """
        A bare ``304``, a ``300`` and an unknown ``3xx`` (with a hostile reason) are
        not redirects: exit 8 and the same sentence in both engines, no file; a ``302``
        without ``Location`` is exit 7.
        """
        for path, code in (("bare-304", "304"), ("status-300", "300"), ("hostile-399", "399")):
            result = yield self.fetch(self.liar + "/" + path)
            self.assertFailed(
                result,
                fetch_errors.EXIT_HTTP,
                f"answered {code} ",
                "not a redirect journey follows",
            )
            self.assertClean(result[1])
        result = yield self.fetch(self.liar + "/no-location")
        self.assertFailed(
            result, fetch_errors.EXIT_TRUNCATED, "a redirect without a Location header."
        )
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_cutHeadOrTrailer(self) -> Any:
        """
        A connection closed inside a header block (an interim answer's too) failed
        mid-response; one closed inside a chunked body's trailer cut the body short;
        trailer fields past ``semantics.MAX_TRAILER_BYTES`` are a framing error: never a
        success with an empty or partial file.  Exactly that many is a complete body.
        """
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
        field = b"X: " + b"a" * (semantics.MAX_TRAILER_BYTES - 5) + b"\r\n"
        cases = {
            b"/status-cut": (b"HTTP/1.1 200 OK\r\n", fetch_errors.EXIT_NETWORK, "mid-response"),
            b"/head-cut": (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
                fetch_errors.EXIT_NETWORK,
                "mid-response",
            ),
            b"/interim-cut": (
                b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n",
                fetch_errors.EXIT_NETWORK,
                "mid-response",
            ),
            b"/trailer-cut": (chunked + b"X-T: 1\r\n", fetch_errors.EXIT_TRUNCATED, "cut short"),
            b"/trailer-long": (
                chunked + b"a" + field + b"\r\n",
                fetch_errors.EXIT_TRUNCATED,
                "trailer headers data is too long",
            ),
            b"/trailer-limit": (chunked + field + b"\r\n", 0, ""),
        }
        for path, (raw, _, _) in cases.items():
            servers.RAW[path] = (raw, True)
            self.addCleanup(servers.RAW.pop, path)  # type: ignore[attr-defined]
        for path, (_, status, phrase) in cases.items():
            result = yield self.fetch(self.liar + path.decode())
            if status:
                self.assertFailed(result, status, phrase)  # type: ignore[attr-defined]
                self.assertEqual(self.files(), [], path)  # type: ignore[attr-defined]
            else:
                self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        self.assertEqual(self.files(), ["trailer-limit"])  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "trailer-limit"), "rb") as f:
            self.assertEqual(f.read(), b"ok")  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_connectionReset(self) -> Any:
        """
        A connection reset (RST) says where it struck: before any answer, the server
        closed without answering; inside a head, the connection failed mid-response;
        inside a body -- one ended by its connection too, which a reset does not end
        cleanly -- the body was cut short.  Never a success, never a file.
        """
        answers = {
            b"/before": (b"", fetch_errors.EXIT_NETWORK, "closed the connection without answering"),
            b"/head": (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n",
                fetch_errors.EXIT_NETWORK,
                "failed mid-response",
            ),
            b"/length": (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"b" * 50,
                fetch_errors.EXIT_TRUNCATED,
                "the body was cut short; nothing saved.",
            ),
            b"/close": (
                b"HTTP/1.0 200 OK\r\n\r\n" + b"c" * 50,
                fetch_errors.EXIT_TRUNCATED,
                "the body was cut short; nothing saved.",
            ),
        }
        server = ResettingServer(self, {path: raw for path, (raw, _, _) in answers.items()})
        for path, (_, status, phrase) in answers.items():
            result = yield self.fetch(server.url + path.decode())
            self.assertFailed(result, status, phrase)  # type: ignore[attr-defined]
            self.assertEqual(self.files(), [], path)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_tlsWithoutCloseNotify(self) -> Any:
        """
        Over TLS, a body ended by its connection is complete when the server closes the
        connection without ``close_notify`` (as curl and the stdlib take it): only a
        reset cuts such a body.
        """
        key, certificate = selfSignedCertificate(os.path.abspath(self.mktemp()))  # type: ignore[attr-defined]
        server = ResettingServer(
            self, {b"/close": b"HTTP/1.0 200 OK\r\n\r\n" + b"c" * 50}, tls=(certificate, key)
        )
        env = self.env(SSL_CERT_FILE=certificate)  # type: ignore[attr-defined]
        result = yield self.fetch(server.url + "/close", env=env)
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "close"), "rb") as f:
            self.assertEqual(f.read(), b"c" * 50)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_passwordWithSlash(self) -> Any:
        """
        ``http://u:pa/SECRET5@host/ok`` (a password holding ``/``) is a usage error whose
        message never shows the password.
        """
        port = self.liar.rsplit(":", 1)[1]
        result = yield self.fetch(f"http://u:pa/SECRET5@127.0.0.1:{port}/ok")
        self.assertFailed(result, fetch_errors.EXIT_USAGE, "u:***@")
        self.assertNotIn("SECRET5", result[1][0])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_redirectWithCredentials(self) -> Any:
        """
        A ``Location`` with ``user:password@`` is not followed: exit 2, a sentence saying
        so, the password hidden, no second request.
        """
        port = self.liar.rsplit(":", 1)[1]
        location = f"http://evil:pw2@127.0.0.1:{port}/ok".encode()
        servers.RAW[b"/to-userinfo"] = (
            servers.response(
                b"302 Found", [(b"Location", location), (b"Content-Length", b"0")], b""
            ),
            False,
        )
        result = yield self.fetch(self.liar + "/to-userinfo")
        self.assertFailed(result, fetch_errors.EXIT_USAGE, "evil:***@", "not followed")
        self.assertNotIn("pw2", result[1][0])  # type: ignore[attr-defined]
        self.assertEqual(self.raw.requestLines, [b"GET /to-userinfo HTTP/1.1"])  # type: ignore[attr-defined]
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_redirectToIPv6Named(self) -> Any:
        """
        A redirect to ``[::1]`` that is refused names ``[::1]`` and its port.
        """
        if not socket.has_ipv6:
            raise unittest.SkipTest("no IPv6")
        try:
            port = freePort("::1")
        except OSError:
            raise unittest.SkipTest("no ::1") from None
        servers.RAW[b"/to-v6"] = (
            servers.response(
                b"302 Found",
                [(b"Location", b"http://[::1]:%d/ok" % port), (b"Content-Length", b"0")],
                b"",
            ),
            False,
        )
        result = yield self.fetch(self.liar + "/to-v6")
        self.assertFailed(result, fetch_errors.EXIT_NETWORK, f"[::1] port {port} refused")

    @defer.inlineCallbacks
    def test_refusedProxyBlamed(self) -> Any:
        """
        A proxy (``HTTP_PROXY``) that refuses the connection is named, not the target.
        """
        proxyPort = freePort()
        env = self.env(HTTP_PROXY=f"http://127.0.0.1:{proxyPort}", NO_PROXY="")
        result = yield self.fetch(self.liar + "/ok", env=env)
        self.assertFailed(
            result, fetch_errors.EXIT_NETWORK, f"the proxy 127.0.0.1 port {proxyPort} refused"
        )
        target = self.liar.rsplit(":", 1)[1]
        self.assertNotIn(f"port {target}", result[1][0])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_headerFieldLimit(self) -> Any:
        """
        Exactly 100 header fields are accepted; 101, or 101 spread over interim ``103``
        answers, are refused with the same sentence (exit 7, no file).
        """
        result = yield self.fetch(self.liar + "/fields-100")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        os.remove(os.path.join(self.out, "fields-100"))
        for path in ("fields-101", "interim-flood"):
            result = yield self.fetch(self.liar + "/" + path)
            self.assertFailed(
                result, fetch_errors.EXIT_TRUNCATED, "more than 100 response header fields"
            )
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_hugeChunkExtension(self) -> Any:
        """
        A chunk size line with a 100 KB extension is a framing error, not a cut body.
        """
        result = yield self.fetch(self.liar + "/chunk-extension")
        self.assertFailed(
            result,
            fetch_errors.EXIT_TRUNCATED,
            "malformed chunked body (a chunk size line longer than 1024 bytes)",
        )
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_brotliRefused(self) -> Any:
        """
        Without the ``brotli`` package, a ``br`` body is refused by both engines (exit 7),
        never saved encoded.
        """
        result = yield self.fetch(self.liar + "/brotli", env=withoutBrotli(self.env()))
        self.assertFailed(result, fetch_errors.EXIT_TRUNCATED, "(br)")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_brotliAsSent(self) -> Any:
        """
        With the ``brotli`` package (and without ``--compressed``), a ``br`` body is saved
        as sent by both engines, as gzip is.
        """
        if not brotliInstalled():
            raise unittest.SkipTest("the brotli package is not installed")
        result = yield self.fetch(self.liar + "/brotli")
        self.assertEqual(result, (0, []))  # type: ignore[attr-defined]
        with open(os.path.join(self.out, "brotli"), "rb") as f:
            self.assertEqual(f.read(), b"hello")  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_maxTimeEndlessInterim(self) -> Any:
        """
        An endless stream of ``103`` answers ends at ``--max-time``: exit 6.
        """
        result = yield self.fetch("--max-time", "1", self.liar + "/interim-forever")
        self.assertFailed(result, fetch_errors.EXIT_TIMEOUT, "--max-time 1 seconds")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_maxTimeSlowHeader(self) -> Any:
        """
        A header sent a byte at a time ends at ``-m``: exit 6.
        """
        result = yield self.fetch("-m", "1", self.liar + "/slow-header")
        self.assertFailed(result, fetch_errors.EXIT_TIMEOUT, "--max-time 1 seconds")
        self.assertEqual(self.files(), [])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_portZero(self) -> Any:
        """
        Port 0 is a usage error, never taken for the default port.
        """
        result = yield self.fetch("http://127.0.0.1:0/x")
        self.assertFailed(result, fetch_errors.EXIT_USAGE, "bad port number")


class JourneyMessagesContractTests(MessagesContractMixin, unittest.TestCase):
    """
    The messages contract, for ``journey fetch`` on Twisted.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)


class FallbackMessagesContractTests(MessagesContractMixin, unittest.TestCase):
    """
    The messages contract, for the stdlib twin with Twisted unimportable.
    """

    def argv(self, *arguments: str) -> list[str]:
        return fallbackArgv("fetch", *arguments)

    def env(self, **extra: str) -> dict[str, str]:
        return _stdlibEnvironment(**extra)


class JourneyOptionMessagesTests(ProcessMixin, unittest.TestCase):
    """
    Options only ``journey fetch`` has: bad values are usage errors that keep secrets.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)

    def assertUsage(self, result: tuple[int, list[str]], *phrases: str) -> None:
        """
        Exit 2, argparse's usage and one error sentence holding every phrase, no traceback.
        """
        code, lines = result
        self.assertEqual(code, fetch_errors.EXIT_USAGE, lines)
        self.assertNotIn("Traceback", "\n".join(lines))
        self.assertIn("error:", lines[-1])
        for phrase in phrases:
            self.assertIn(phrase, lines[-1])

    @defer.inlineCallbacks
    def test_proxyPasswordWithSlash(self) -> Any:
        """
        ``-x 'http://u:SEC/RET@127.0.0.1:1'``: a usage error that never shows the password.
        """
        result = yield self.fetch("-x", "http://u:SEC/RET@127.0.0.1:1", self.liar + "/ok")
        self.assertUsage(result, "-x/--proxy", "u:***@")
        self.assertNotIn("SEC", "\n".join(result[1]))

    @defer.inlineCallbacks
    def test_proxyPortZero(self) -> Any:
        """
        ``-x http://127.0.0.1:0`` is a usage error (it connected to port 80).
        """
        result = yield self.fetch("-x", "http://127.0.0.1:0", self.liar + "/ok")
        self.assertUsage(result, "-x/--proxy", "1 to 65535")
        self.assertEqual(self.raw.requestLines, [])

    @defer.inlineCallbacks
    def test_nonASCIIHeaders(self) -> Any:
        """
        ``-H 'X: €'`` and ``-H 'X-Ü: é'`` are usage errors in one sentence, nothing sent.
        """
        value = yield self.fetch("-H", "X: €", self.liar + "/ok")
        self.assertUsage(value, "-H/--header", "header value")
        name = yield self.fetch("-H", "X-Ü: é", self.liar + "/ok")
        self.assertUsage(name, "-H/--header", "header name")
        self.assertEqual(self.raw.requestLines, [])


class JourneyCredentialsScopeTests(ProcessMixin, unittest.TestCase):
    """
    ``-u``: ``--help`` and behaviour say the same thing.
    """

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)

    @defer.inlineCallbacks
    def test_eachURLsOwnHost(self) -> Any:
        """
        ``-u`` goes to each URL's own origin (two origins in one run: both get it, as
        curl sends them), never to another origin after a redirect; ``--help`` says so.
        """
        other = servers.webRoot()
        other.putChild(b"echo2", servers.Echo())
        otherURL = f"http://127.0.0.1:{servers.listen(self, servers.webSite(other))}"
        self.root.putChild(b"to-other", servers.RedirectTo(f"{otherURL}/echo2".encode()))
        result = yield self.fetch("-u", "me:pw", self.web + "/echo", otherURL + "/echo2")
        self.assertEqual(result, (0, []))
        token = "Basic " + base64.b64encode(b"me:pw").decode()
        for name in ("echo", "echo2"):
            with open(os.path.join(self.out, name)) as f:
                self.assertEqual(json.load(f).get("authorization"), token, name)
        result = yield self.fetch("-u", "me:pw", "-o", "hop", self.web + "/to-other")
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "hop")) as f:
            self.assertNotIn("authorization", json.load(f))
        out, _, _ = yield servers.runChild(self.argv("--help"), self.env(), self.out)
        text = " ".join(out.decode().split())
        self.assertIn("credentials for each URL's own host", text)
        self.assertIn("never sent on a redirect to another host", text)


class JourneyBrotliTests(ProcessMixin, unittest.TestCase):
    """
    ``--compressed`` with the ``brotli`` extra: ``br`` is asked for and decoded, capped.
    """

    def setUp(self) -> None:
        if not brotliInstalled():
            raise unittest.SkipTest("the brotli package is not installed")
        super().setUp()

    def argv(self, *arguments: str) -> list[str]:
        return journeyArgv("fetch", *arguments)

    def serve(self, path: bytes, body: bytes) -> str:
        """
        Serve ``body`` brotli-compressed at ``path``; return its URL.
        """
        import brotli

        data = brotli.compress(body, quality=5)
        headers = [(b"Content-Length", b"%d" % len(data)), (b"Content-Encoding", b"br")]
        servers.RAW[path] = (servers.response(b"200 OK", headers, data), False)
        return self.liar + path.decode()

    @defer.inlineCallbacks
    def test_decoded(self) -> Any:
        """
        ``--compressed`` stores the decoded body.
        """
        url = self.serve(b"/brotli-body", servers.BODY * 10)
        result = yield self.fetch("--compressed", url)
        self.assertEqual(result, (0, []))
        with open(os.path.join(self.out, "brotli-body"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY * 10)

    @defer.inlineCallbacks
    def test_bomb(self) -> Any:
        """
        A ``br`` body decoding past ``--max-decoded-size`` is exit 11, no file.
        """
        url = self.serve(b"/brotli-bomb", bytes(8 << 20))
        result = yield self.fetch("--compressed", "--max-decoded-size", "1000000", url)
        self.assertFailed(result, fetch_errors.EXIT_TOO_LARGE, "br body", "--max-decoded-size")
        self.assertEqual(self.files(), [])


class PrintableTests(unittest.SynchronousTestCase):
    """
    :func:`twisted_journey.records.printable` and the messages built on it.
    """

    def test_escapes(self) -> None:
        """
        C0 and C1 controls, DEL, bidi and other format characters, separators and
        undecodable bytes are escaped; printable text (backslashes, Chinese) is not.
        """
        self.assertEqual(
            printable("a\x1b[2J\x07\t\r\n\x7f\x9b\u202e\u2028\udc9b 中\\x"),
            "a\\x1b[2J\\x07\\t\\r\\n\\x7f\\u009b\\u202e\\u2028\\x9b 中\\x",
        )

    def test_idempotent(self) -> None:
        """
        Escaping twice changes nothing: a sentence can be escaped at every layer.
        """
        once = printable("x\x1b\u202e\x9b")
        self.assertEqual(printable(once), once)

    def test_fetchErrorSentence(self) -> None:
        """
        Every :class:`FetchError` sentence is printable, whatever was put in it.
        """
        error = fetch_errors.HTTPStatusError("the server answered 404 \x1b[31mX\x9b", "u", 404)
        self.assertEqual(str(error), "the server answered 404 \\x1b[31mX\\u009b")

    def test_passwordInAnySentence(self) -> None:
        """
        A ``//user:password@`` quoted in a sentence (a library's exception text, say) has
        its password hidden; a hidden one stays as it is, and a port before a path holding
        ``@`` is not taken for a password.
        """
        error = fetch_errors.FetchError(
            "ValueError: cannot open 'http://evil:pw2@127.0.0.1:1/ok' nor http://u:***@h/."
        )
        self.assertEqual(
            str(error),
            "ValueError: cannot open 'http://evil:***@127.0.0.1:1/ok' nor http://u:***@h/.",
        )
        port = fetch_errors.FetchError("see http://host:8080/a@b")
        self.assertEqual(str(port), "see http://host:8080/a@b")

    def test_describeURLShapes(self) -> None:
        """
        A password is hidden whatever the URL's shape; a path with ``@`` and a port are
        left alone.
        """
        cases = {
            "http://u:pa/SECRET5@host/ok": "http://u:***@host/ok",
            "http://u:SEC/RET@127.0.0.1:1": "http://u:***@127.0.0.1:1",
            "http://u:p?w@h/": "http://u:***@h/",
            "http://u:p#w@h/": "http://u:***@h/",
            "http://user:pw@h:80/x?a@b": "http://user:***@h:80/x?a@b",
            "http://host/users/@me": "http://host/users/@me",
            "http://host:8080/a@b": "http://host:8080/a@b",
            "http://[::1]/a@b": "http://[::1]/a@b",
            "http://h/\x1b[2J": "http://h/\\x1b[2J",
        }
        self.assertEqual({url: fetch_errors.describe_url(url) for url in cases}, cases)
