# -*- test-case-name: tests.test_fetch_fallback -*-
"""
The HTTP fetcher on ``urllib.request`` alone: ``python -m twisted_journey.fallback.fetch``.

The stdlib twin of ``journey fetch``, for a Python without Twisted::

    python -m twisted_journey.fallback.fetch URL [URL ...] [-o FILE] [--output-dir DIR]
        [--content-disposition] [--max-redirs N] [--max-time S] [--timeout S]
        [-u USER:PASSWORD [--digest | --anyauth]] [-b COOKIES|FILE] [-c FILE]

It keeps the Twisted fetcher's promises, through the same helpers
(:mod:`twisted_journey.fetch.naming`, :mod:`~twisted_journey.fetch.sinks`,
:mod:`~twisted_journey.fetch.semantics`,
:mod:`~twisted_journey.fetch.errors`): the same local names, the body written to
``NAME.part`` (never through a planted link) and renamed only when complete, ``-o``
onto a FIFO or device streamed into it, one name per URL in a run, a short or long
body treated as an error, the same exit statuses and one stderr line per failed URL.

Where plain ``urllib`` is lax it is made as strict as Twisted: every ``1xx`` interim
response is skipped, ``Content-Length`` must be plain digits (one value), chunk sizes
plain hexadecimal, redirects go to http/https only and at most ``--max-redirs`` (0:
none) are followed, ``Authorization``/``Cookie`` are not forwarded to another origin,
and ``-u`` or ``http://user:pass@host/`` sends credentials to that origin only: Basic,
or (``--digest``, ``--anyauth``) the answer to a Digest challenge computed by
:mod:`twisted_journey.fetch.auth`, as ``journey fetch`` does.  ``-b`` and ``-c`` run
the cookie engine of :mod:`twisted_journey.fetch.cookies`, shared by all URLs.  No
failure prints a traceback; SIGTERM and SIGINT remove the unfinished ``.part``.
``--timeout`` bounds every connect and read, ``--max-time`` the whole URL (exit 6, as
``journey fetch``).  ``HTTP_PROXY``, ``HTTPS_PROXY`` and
``NO_PROXY`` work as in ``urllib`` (with ``CONNECT`` for https).
"""

from __future__ import annotations

import argparse
import email.parser
import http.client
import re
import signal
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from twisted_journey import __version__, errors
from twisted_journey.fetch import auth, naming, semantics, sinks
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import settings as defaults
from twisted_journey.fetch.cookies import CookieEngine
from twisted_journey.fetch.errors import (
    FetchError,
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
    TooManyRedirects,
    UnsupportedURL,
    describe_url,
)
from twisted_journey.fetch.naming import NameRegistry
from twisted_journey.fetch.options import BOTH, TWIN, FetchCommand, addArguments
from twisted_journey.fetch.sinks import PartFile, Sink, open_sink

__all__ = ["fetch", "main"]

BLOCK = 1 << 16


_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class _CutMidResponse(http.client.HTTPException):
    """
    The connection closed inside a response's header block.
    """


class StrictResponse(http.client.HTTPResponse):
    """
    An ``HTTPResponse`` that reads framing as strictly as Twisted does.

    ``http.client`` skips only ``100 Continue``, refuses exactly 100 header fields (it
    counts the blank line), takes ``int()`` of ``Content-Length`` (so ``1_0``, ``+5`` and
    `` 5`` pass, and the first of two differing values wins) and of chunk sizes (so
    ``0x5`` passes); here every other ``1xx`` is skipped too, the status and header lines
    of all of them count against :attr:`maxHeaderBytes` and :attr:`maxHeaders` as in the
    Twisted engine (so an endless stream of ``103`` answers ends), and anything but plain
    digits (one value, repeated or not) is a :class:`ProtocolError`, as are a chunk size
    that is not plain hexadecimal, a chunk size line longer than
    :data:`~twisted_journey.fetch.semantics.MAX_CHUNK_LINE`, a chunk not followed by
    CRLF and trailer fields past
    :data:`~twisted_journey.fetch.semantics.MAX_TRAILER_BYTES`.  ``http.client`` also
    takes a connection closed inside the header block as the end of it, and one closed
    inside a chunked body's trailer as its end; both are failures here, as in Twisted (the
    head cut: the connection failed mid-response; the trailer cut: the body was cut short).
    """

    maxHeaderBytes = defaults.MAX_HEADER_BYTES
    maxHeaders = defaults.MAX_HEADERS

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        #: The connection's socket: a body may be spliced from it (:func:`_copy_body`).
        self.socket = sock

    def begin(self) -> None:
        if self.headers is not None:
            return
        try:
            self._begin()
        except ConnectionResetError:
            # Reset rather than closed: worded as the Twisted engine words it.
            if self._started:
                raise _CutMidResponse() from None
            raise http.client.RemoteDisconnected("reset without an answer") from None

    #: Whether a status line arrived (a reset after it cut the response).
    _started = False

    def _begin(self) -> None:
        budget = [self.maxHeaderBytes, self.maxHeaders]
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            self._started = True
            budget[0] -= len(version) + len(reason) + 5  # reason ends with the CRLF
            if budget[0] < 0:
                raise fetch_errors.headers_too_large(self.maxHeaderBytes)
            lines = self._read_header_lines(budget)
            if not (100 <= status < 200 and status != 101):
                break
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        text = b"".join(lines).decode("iso-8859-1")
        self.headers = self.msg = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        self._check_framing()
        # The rest is http.client's own begin(), unchanged.
        self.chunked = (self.headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            self.length = int(length.split(",")[0])
        if status in (204, 304) or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True

    def _read_header_lines(self, budget: list[int]) -> list[bytes]:
        """
        One response's header lines (up to the blank line), charged to ``budget``
        (``[bytes left, fields left]``).
        """
        lines: list[bytes] = []
        while True:
            line = self.fp.readline(max(budget[0], 0) + 1)
            budget[0] -= len(line)
            if budget[0] < 0:
                raise fetch_errors.headers_too_large(self.maxHeaderBytes)
            if not line:
                # Closed before the blank line: the head is cut, as Twisted judges it.
                raise _CutMidResponse()
            if line in (b"\r\n", b"\n"):
                return lines
            if line[:1] not in b" \t":
                budget[1] -= 1
                if budget[1] < 0:
                    raise fetch_errors.too_many_header_fields(self.maxHeaders)
            lines.append(line)

    def _check_framing(self) -> None:
        codings = ",".join(self.headers.get_all("transfer-encoding") or [])
        lengths = self.headers.get_all("content-length") or []
        if codings:
            if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
                raise ProtocolError(
                    f"the server sent an unsupported Transfer-Encoding {codings!r}; nothing saved."
                )
        elif lengths:
            values = [v.strip() for value in lengths for v in value.split(",")]
            if not all(_DIGITS.fullmatch(v) for v in values) or len(set(map(int, values))) > 1:
                raise ProtocolError(
                    f"the server sent a malformed Content-Length {', '.join(lengths)!r}; "
                    "nothing saved."
                )

    def _get_chunk_left(self) -> int | None:
        # http.client's, except that the CRLF after a chunk's data is checked, not tossed.
        chunk_left: int | None = self.chunk_left
        if not chunk_left:
            if chunk_left is not None and self._safe_read(2) != b"\r\n":  # type: ignore[attr-defined]
                self._close_conn()  # type: ignore[attr-defined]
                raise fetch_errors.malformed_chunk("a chunk longer than its size")
            chunk_left = self._read_next_chunk_size()
            if chunk_left == 0:
                self._read_and_discard_trailer()
                self._close_conn()  # type: ignore[attr-defined]
                chunk_left = None
            self.chunk_left = chunk_left
        return chunk_left

    def _read_and_discard_trailer(self) -> None:
        # http.client's, bounded and complete as Twisted reads a trailer: at most
        # MAX_TRAILER_BYTES of fields, each ended by CRLF, then an empty line; a connection
        # closed before that empty line cuts the body short.
        left = semantics.MAX_TRAILER_BYTES
        while True:
            line = self.fp.readline(left + 2)  # + 2: the closing CRLF is not counted
            if line == b"\r\n":
                return
            if not line:
                self._close_conn()  # type: ignore[attr-defined]
                raise http.client.IncompleteRead(b"")
            left -= len(line)
            if left < 0:
                self._close_conn()  # type: ignore[attr-defined]
                raise fetch_errors.trailer_too_long()

    def _read_next_chunk_size(self) -> int:
        limit = semantics.MAX_CHUNK_LINE
        line = self.fp.readline(limit + 1)
        size = line.split(b";", 1)[0].strip(b" \t\r\n")
        if len(line) > limit:
            self._close_conn()  # type: ignore[attr-defined]
            raise fetch_errors.chunk_line_too_long(limit)
        if not _HEX.fullmatch(size):
            self._close_conn()  # type: ignore[attr-defined]
            raise fetch_errors.malformed_chunk(
                f"chunk size {size[:40].decode('latin-1')!r} is not hexadecimal"
            )
        return int(size, 16)


class Deadline:
    """
    ``--max-time``: the time one URL may take, every redirect, interim answer and body
    byte included.

    ``urllib`` reads block, and its timeout is per read, so a server that keeps talking
    (an endless stream of ``103`` answers, a header sent a byte a second) is never cut by
    it.  When the time runs out a timer thread shuts down (``shutdown(2)``) every socket
    :meth:`watch` was given, so the blocked read returns at once; the failure that follows
    is reported as :meth:`error` (exit 6, as ``journey fetch --max-time``), whatever it
    looked like.

    :ivar expired: whether the time ran out.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """
        Shut ``sock`` down when the time runs out (at once if it has).
        """
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        """
        Stop the timer (the URL is done).
        """
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def error(self, url: str) -> Timeout:
        """
        The failure to report once :attr:`expired`.
        """
        return fetch_errors.max_time_exceeded(self.seconds or 0.0, url)


def _shorter(a: float | None, b: float | None) -> float | None:
    """
    The smaller of two limits, ``None`` being none.
    """
    return b if a is None else a if b is None else min(a, b)


def _shut(sock: socket.socket) -> None:
    """
    ``shutdown(2)`` both ways on ``sock``'s descriptor (the plain socket call, also for a
    TLS socket, whose own ``shutdown`` would touch its TLS state from another thread).
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched(http.client.HTTPConnection):
    """
    A connection whose socket is given to a :class:`Deadline` once connected.
    """

    response_class = StrictResponse

    def __init__(self, *args: Any, deadline: Deadline | None = None, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        if self.deadline is not None and self.sock is not None:
            self.deadline.watch(self.sock)


class StrictHTTPConnection(_Watched):
    """``HTTPConnection`` reading :class:`StrictResponse`, under a :class:`Deadline`."""


class StrictHTTPSConnection(_Watched, http.client.HTTPSConnection):
    """``HTTPSConnection`` reading :class:`StrictResponse`, under a :class:`Deadline`."""


class StrictHTTPHandler(urllib.request.HTTPHandler):
    """The ``http:`` handler, with :class:`StrictResponse` and a :class:`Deadline`."""

    def __init__(self, deadline: Deadline | None = None) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(StrictHTTPConnection, req, deadline=self.deadline)


class StrictHTTPSHandler(urllib.request.HTTPSHandler):
    """The ``https:`` handler, with :class:`StrictResponse` and a :class:`Deadline`."""

    def __init__(self, deadline: Deadline | None = None) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            StrictHTTPSConnection,
            req,
            context=self._context,  # type: ignore[attr-defined]
            deadline=self.deadline,
        )


class RedirectHandler(urllib.request.HTTPRedirectHandler):
    """
    Follows at most ``limit`` redirects (0: none), to http/https only, and drops
    credentials when one leaves the origin.
    """

    def __init__(self, limit: int = defaults.MAX_REDIRECTS) -> None:
        self.limit = limit
        self.max_redirections = max(limit, 1)  # type: ignore[misc]
        #: The URL of the latest hop (``None`` before the first redirect).
        self.current: str | None = None

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        hops = getattr(req, "journey_hops", 0)
        if hops >= self.limit:
            raise TooManyRedirects(
                f"too many redirects (more than --max-redirs {self.limit}).", req.full_url
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            self.current = new.full_url
            new.journey_hops = hops + 1  # type: ignore[attr-defined]
            if not semantics.same_origin(req.full_url, new.full_url):
                for name in semantics.CREDENTIAL_HEADERS:
                    new.remove_header(name)
                    new.remove_header(name.capitalize())
        return new

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location is not None:
            # One judgement for both engines (before any connection): http/https only,
            # no credentials, a valid URL; urllib then follows the URL as sent on the wire.
            target = semantics.redirect_target(req.full_url, location)
            del headers["uri"]
            del headers["location"]
            headers["Location"] = target
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except urllib.error.HTTPError as e:
            if e.code in (301, 302, 303, 307, 308) and "redirect error" in str(e.msg):
                raise TooManyRedirects(
                    f"too many redirects (more than --max-redirs {self.max_redirections}).",
                    req.full_url,
                ) from None
            raise

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class AuthHandler(urllib.request.BaseHandler):
    """
    Sends credentials to ``origin`` only, as :mod:`twisted_journey.fetch.auth` says:
    Basic with each request there (``basic`` mode), or a ``401``'s challenge answered
    once (``--digest``, ``--anyauth``).  Nothing is added to a request that carries an
    ``Authorization`` of the user's own (``-H``).
    """

    handler_order = 400

    def __init__(self, origin: str, authenticator: auth.Authenticator) -> None:
        self.origin = origin
        self.authenticator = authenticator

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        value = self.authenticator.preemptive()
        if (
            value is not None
            and "Authorization" not in req.headers
            and semantics.same_origin(req.full_url, self.origin)
        ):
            req.add_unredirected_header("Authorization", value)
        return req

    https_request = http_request

    def http_error_401(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        if (
            getattr(req, "journey_answered", False)
            or "Authorization" in req.headers
            or not semantics.same_origin(req.full_url, self.origin)
        ):
            return None
        challenges = headers.get_all("WWW-Authenticate") or []
        value = self.authenticator.answer("GET", auth.request_uri(req.full_url), challenges)
        if value is None:
            return None
        fp.close()
        retry = urllib.request.Request(req.full_url, headers=dict(req.headers))
        retry.add_unredirected_header("Authorization", value)
        retry.journey_answered = True  # type: ignore[attr-defined]
        retry.journey_hops = getattr(req, "journey_hops", 0)  # type: ignore[attr-defined]
        return self.parent.open(retry, timeout=req.timeout)


class CookieHandler(urllib.request.BaseHandler):
    """
    The cookie engine of :mod:`twisted_journey.fetch.cookies` on every request and
    answer, redirects included (``-b``, ``-c``); a ``Cookie`` the user gave (``-H``) is
    sent instead.
    """

    handler_order = 700  # before HTTPErrorProcessor: a redirect's cookies are kept

    def __init__(self, engine: CookieEngine) -> None:
        self.engine = engine

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        value = self.engine.header(req.full_url)
        if value is not None and "Cookie" not in req.headers:
            req.add_unredirected_header("Cookie", value)
        return req

    def http_response(self, req: urllib.request.Request, response: Any) -> Any:
        self.engine.store(req.full_url, response.headers.get_all("Set-Cookie") or [])
        return response

    https_request = http_request
    https_response = http_response


def classify(
    error: BaseException,
    url: str,
    timeout: float | None,
    current: str | None = None,
    auth_mode: str = "basic",
) -> FetchError:
    """
    The :class:`FetchError` for what ``urllib`` raised.

    :param current: the URL requested when it failed (after redirects: the one named in
        the sentence, as in the Twisted engine); default ``url``.
    :param auth_mode: the ``-u`` mode a ``401``'s sentence is written for.
    """
    if isinstance(error, FetchError):
        return error
    current = current or url
    host, port = _host_port(current)
    if isinstance(error, urllib.error.HTTPError):
        if 300 <= error.code < 400:
            if error.code in semantics.REDIRECTS:
                return ProtocolError("a redirect without a Location header.", url)
            return fetch_errors.unfollowed_status(url, error.code, str(error.reason))
        detail = ""
        if error.code == 401 and error.headers is not None:
            challenges = error.headers.get_all("WWW-Authenticate") or []
            detail = auth.unauthorized_detail(challenges, auth_mode)
            detail = f" ({detail})" if detail else ""
        return HTTPStatusError(
            f"the server answered {error.code} {error.reason}{detail}; nothing saved.",
            url,
            error.code,
            semantics.retry_after(error.headers.get("Retry-After") if error.headers else None),
        )
    reason: Any = error.reason if isinstance(error, urllib.error.URLError) else error
    proxy = _proxy_of(current)
    if proxy is not None and isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        # The proxy was not reached: blame it, not the target (never reached either).
        kind = errors.RESOLVE if isinstance(reason, socket.gaierror) else errors.REFUSED
        return _at(fetch_errors.proxy_failure(kind, *proxy), url)
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = getattr(reason, "verify_message", None) or str(reason)
        return TLSError(
            f"the TLS certificate of {host} was not accepted: {detail}.",
            url,
        )
    if isinstance(reason, ssl.SSLError):
        detail = getattr(reason, "reason", None) or str(reason)
        return TLSError(f"TLS with {host} failed: {detail}.", url)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return Timeout(errors.connect_failure(errors.TIMEOUT, host, port, timeout=timeout), url)
    if isinstance(reason, socket.gaierror):
        return NetworkError(errors.connect_failure(errors.RESOLVE, host, port), url)
    if isinstance(reason, ConnectionRefusedError):
        return NetworkError(errors.connect_failure(errors.REFUSED, host, port), url)
    if isinstance(reason, _CutMidResponse):
        return fetch_errors.cut_mid_response(host, port, url)
    if isinstance(reason, http.client.IncompleteRead):
        return fetch_errors.cut_short(url)
    if isinstance(reason, http.client.RemoteDisconnected):
        return NetworkError(
            f"{errors.place(host, port)} closed the connection without answering.", url
        )
    if isinstance(reason, (OSError, http.client.HTTPException)):
        return NetworkError(
            errors.connect_failure(errors.UNREACHABLE, host, port, str(reason)), url
        )
    if isinstance(reason, ValueError):
        return UnsupportedURL(f"cannot fetch {describe_url(url)!r}: {reason}.", url)
    return FetchError(f"unexpected failure: {type(error).__name__}.", url)


def _at(error: FetchError, url: str) -> FetchError:
    """
    ``error``, recorded as the failure of ``url``.
    """
    error.url = url
    return error


def _proxy_of(url: str) -> tuple[str, int | str] | None:
    """
    The host and port of the proxy ``urllib`` uses for ``url`` (from the environment,
    as its ``ProxyHandler`` reads it), or ``None`` for a direct connection.
    """
    try:
        proxy = semantics.proxy_for(url)
    except ValueError:
        return None
    return _host_port(proxy) if proxy else None


def _host_port(url: str) -> tuple[str, int | str]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "", "?"
    try:
        port: int | str = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = "?"
    return parts.hostname or "", port


def _copy_body(
    response: http.client.HTTPResponse,
    part: Sink,
    url: str,
    reporthook: Callable[[int, int, int], object] | None,
) -> None:
    """
    Stream the body into ``part``, then check it against its framing (a body ended only
    by the connection closing is judged by :func:`semantics.check_length`).

    When the server will close the connection, the raw stream is read to its end, so a
    body longer than its ``Content-Length`` is seen (``http.client`` would stop at it).
    Then, on Linux, over plain TCP into a ``.part``, once the first read has emptied the
    8 KiB buffer above the socket, the rest of the declared length is moved from the socket
    into the file by the kernel (:meth:`PartFile.splice_socket`), never copied through
    Python; what follows it (the end of the stream, or surplus bytes) is read as before.
    """
    expected = response.length
    framed = expected is not None or bool(response.chunked)
    total = -1 if expected is None else expected
    raw = expected is not None and response.will_close and not response.chunked
    source: Any = response.fp if raw else response
    blocks = 0
    splice = raw and _spliceable(response, part)
    if reporthook is not None:
        reporthook(0, 0, total)
    try:
        while True:
            block = source.read1(BLOCK) if raw else source.read(BLOCK)
            if not block:
                break
            part.write(block)
            blocks += 1
            if reporthook is not None:
                reporthook(blocks, len(block), total)
            if expected is not None and part.written > expected:
                break
            if splice and expected is not None:
                assert isinstance(part, PartFile)
                splice = False
                sock = response.socket  # type: ignore[attr-defined]
                left = expected - part.written
                moved = part.splice_socket(sock.fileno(), left, sock.gettimeout())
                blocks += 1
                if reporthook is not None:
                    reporthook(blocks, moved, total)
    except ConnectionResetError:
        # Reset, not closed: whatever the framing (a close-delimited body included), the
        # body may be cut, as the Twisted engine judges it.
        raise fetch_errors.cut_short() from None
    semantics.check_length(url, expected, part.written - part.offset, framed)


def _spliceable(response: http.client.HTTPResponse, part: Sink) -> bool:
    """
    Whether the body of ``response`` may be spliced into ``part``: Linux, a ``.part``, a
    plain (not TLS) socket, and more than a megabyte declared.
    """
    sock = getattr(response, "socket", None)
    return (
        sinks.CAN_SPLICE
        and isinstance(part, PartFile)
        and isinstance(sock, socket.socket)
        and not isinstance(sock, ssl.SSLSocket)
        and (response.length or 0) > 1 << 20
    )


def _check(url: str) -> None:
    """
    :func:`semantics.check_url`, with a malformed URL (``http://[::1/x``) a sentence too.
    """
    try:
        semantics.check_url(url)
    except ValueError as e:
        raise UnsupportedURL(f"{describe_url(url)!r} is not a valid URL: {e}.", url) from None


def fetch(
    url: str,
    output: str | None = None,
    output_dir: str | None = None,
    content_disposition: bool = False,
    max_redirs: int = defaults.MAX_REDIRECTS,
    timeout: float | None = defaults.CONNECT_TIMEOUT,
    headers: Sequence[tuple[str, str]] = (),
    reporthook: Callable[[int, int, int], object] | None = None,
    create_dirs: bool = False,
    names: NameRegistry | None = None,
    max_time: float | None = None,
    credentials: tuple[str, str] | None = None,
    auth_mode: str = "basic",
    cookies: CookieEngine | None = None,
) -> tuple[str, http.client.HTTPMessage]:
    """
    Fetch ``url`` to a file, like ``urlretrieve`` but safe; return ``(filename, headers)``.

    :param output: the file (``-``: standard output; a FIFO, a character device or a
        terminal is written into as the body arrives).
    :param output_dir: the directory for the file, created when missing.
    :param timeout: seconds for every connect and every read (not the whole transfer).
    :param create_dirs: create the missing parent directories of ``output``.
    :param names: the run's claimed names (a name another URL of the run claimed is a
        :class:`FileError`, never a splice).
    :param max_time: seconds for the whole URL (redirects, interim answers and body
        included), or ``None``; past them, :class:`Timeout` (see :class:`Deadline`).
    :param credentials: ``-u``'s ``(user, password)`` for ``url``'s own origin (the
        URL's own ``user:password@`` wins), sent as ``auth_mode`` says (see
        :mod:`twisted_journey.fetch.auth`).
    :param cookies: the run's cookie engine (``-b``, ``-c``), or ``None``.
    :raises FetchError: (a subclass) when anything goes wrong; no file is left behind.
    """
    _check(url)
    names = names if names is not None else NameRegistry()
    owner = object()
    path, streaming = naming.choose_target(url, output, output_dir, create_dirs)
    if not content_disposition:
        names.claim(path, owner, url)
    address, userinfo = semantics.split_credentials(url)
    authenticator = auth.Authenticator(userinfo or credentials, auth_mode)
    deadline = Deadline(max_time)
    redirects = RedirectHandler(max_redirs)
    handlers: list[urllib.request.BaseHandler] = [
        StrictHTTPHandler(deadline),
        StrictHTTPSHandler(deadline),
        redirects,
        AuthHandler(address, authenticator),
    ]
    if cookies is not None:
        cookies.begin(address)
        handlers.append(CookieHandler(cookies))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(address, headers=dict(headers))
    request.add_header("User-Agent", "twisted_journey-fallback")
    try:
        response = opener.open(request, timeout=_shorter(timeout, max_time))
    except BaseException as e:
        deadline.cancel()
        if isinstance(e, KeyboardInterrupt):
            raise
        if deadline.expired:
            raise deadline.error(url) from None
        raise classify(e, url, timeout, redirects.current, auth_mode) from None
    with response, deadline:
        # A coding journey cannot undo (br, compress...) is refused, as by journey fetch;
        # gzip and deflate, never asked for here, are saved as sent, as journey does
        # without --compressed.
        codings = semantics.content_codings(response.headers.get("Content-Encoding"))
        semantics.check_codings(url, codings)
        server_named = False
        if content_disposition:
            chosen = naming.disposition_target(
                url, response.headers.get("Content-Disposition"), output, output_dir
            )
            if chosen is not None:
                path, server_named = chosen
            names.claim(path, owner, url)
        part = open_sink(path, stream=streaming, server_named=server_named)
        try:
            _copy_body(response, part, url, reporthook)
            if deadline.expired:  # the body may only look complete: the socket was shut
                raise deadline.error(url)
            part.commit()
        except BaseException as e:
            part.discard()
            if deadline.expired and not isinstance(e, KeyboardInterrupt):
                raise deadline.error(url) from None
            if isinstance(e, FetchError):
                e.url = e.url or url
                raise
            if isinstance(e, KeyboardInterrupt):
                raise
            raise classify(e, url, timeout, redirects.current, auth_mode) from None
        return path, response.headers


def parser() -> argparse.ArgumentParser:
    """
    The twin's command line.
    """
    result = argparse.ArgumentParser(
        prog="python -m twisted_journey.fallback.fetch",
        description="Fetch URLs to files with urllib: same names, .part files and exit "
        "codes as journey fetch.",
    )
    result.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    addArguments(result, FetchCommand, where=(BOTH, TWIN))
    return result


def run(command: FetchCommand, program: str = "fetch") -> int:
    """
    Fetch every URL of ``command`` one after another; print a line per failure; return the
    exit status.  SIGTERM raises :class:`KeyboardInterrupt` meanwhile, as Ctrl-C does, so
    the unfinished ``.part`` is removed on the way out.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _run(command, program)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(command: FetchCommand, program: str) -> int:
    results: list[FetchError | None] = []
    names = NameRegistry(keep=True)
    try:
        cookies = CookieEngine.fromOptions(command.cookie, command.cookieJar)
    except FetchError as e:
        print(f"{program}: {e}", file=sys.stderr)
        return e.exitCode
    for url in command.urls:
        try:
            fetch(
                url,
                command.output,
                command.outputDir,
                command.contentDisposition,
                command.maxRedirects,
                command.timeout,
                create_dirs=command.createDirs,
                names=names,
                max_time=command.maxTime,
                credentials=command.credentials,
                auth_mode=command.authMode or "basic",
                cookies=cookies,
            )
        except FetchError as e:
            print(fetch_errors.failure_line(program, url, e), file=sys.stderr)
            results.append(e)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a bug: still one sentence, never a traceback
            error = FetchError(f"unexpected failure: {type(e).__name__}.", url)
            print(fetch_errors.failure_line(program, url, error), file=sys.stderr)
            results.append(error)
        else:
            results.append(None)
    if cookies is not None:
        try:
            cookies.save()
        except FetchError as e:
            print(f"{program}: {e}", file=sys.stderr)
            results.append(e)
    return fetch_errors.exit_status(results)


def _terminate(signum: int, frame: object) -> None:
    """
    SIGTERM: unwind like Ctrl-C, so the unfinished ``.part`` is removed.
    """
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """
    ``python -m twisted_journey.fallback.fetch``: parse ``argv`` and fetch.
    """
    arguments = parser()
    command = FetchCommand.fromArguments(arguments.parse_args(argv))
    problem = command.problem()
    if problem is not None:
        arguments.error(problem)
    try:
        return run(command)
    except KeyboardInterrupt:
        print(f"{arguments.prog}: interrupted; unfinished files removed.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
