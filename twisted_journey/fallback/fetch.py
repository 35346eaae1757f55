# -*- test-case-name: tests.test_fetch_fallback -*-
"""
The HTTP fetcher on ``urllib.request`` alone: ``python -m twisted_journey.fallback.fetch``.

The stdlib twin of ``journey fetch``, for a Python without Twisted::

    python -m twisted_journey.fallback.fetch URL [URL ...] [-o FILE] [--output-dir DIR]
        [--content-disposition] [--max-redirs N] [--timeout S]

It keeps the Twisted fetcher's promises, through the same helpers
(:mod:`twisted_journey.fetch.files`, :mod:`~twisted_journey.fetch.semantics`,
:mod:`~twisted_journey.fetch.errors`): the same local names, the body written to
``NAME.part`` (never through a planted link) and renamed only when complete, ``-o``
onto a FIFO or device streamed into it, one name per URL in a run, a short or long
body treated as an error, the same exit statuses and one stderr line per failed URL.

Where plain ``urllib`` is lax it is made as strict as Twisted: every ``1xx`` interim
response is skipped, ``Content-Length`` must be plain digits (one value), chunk sizes
plain hexadecimal, redirects go to http/https only and at most ``--max-redirs`` (0:
none) are followed, ``Authorization``/``Cookie`` are not forwarded to another origin,
and ``http://user:pass@host/`` sends Basic credentials to that origin only.  No
failure prints a traceback; SIGTERM and SIGINT remove the unfinished ``.part``.
``--timeout`` bounds every connect and read.  ``HTTP_PROXY``, ``HTTPS_PROXY`` and
``NO_PROXY`` work as in ``urllib`` (with ``CONNECT`` for https).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import re
import signal
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from twisted_journey import __version__, errors
from twisted_journey.fetch import cli as fetchcli
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import files, semantics
from twisted_journey.fetch.errors import (
    FetchError,
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
    TooManyRedirects,
    TruncatedBody,
    UnsupportedURL,
    describe_url,
)
from twisted_journey.fetch.files import NameRegistry, Sink

__all__ = ["fetch", "main"]

BLOCK = 1 << 16

#: Request headers that carry credentials: dropped when a redirect changes origin.
CREDENTIALS = ("Authorization", "Cookie", "Cookie2", "Proxy-Authorization")


_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class StrictResponse(http.client.HTTPResponse):
    """
    An ``HTTPResponse`` that reads framing as strictly as Twisted does.

    ``http.client`` skips only ``100 Continue``, takes ``int()`` of ``Content-Length``
    (so ``1_0``, ``+5`` and `` 5`` pass, and the first of two differing values wins) and
    of chunk sizes (so ``0x5`` passes); here every other ``1xx`` is skipped too, and
    anything but plain digits (one value, repeated or not) is a :class:`ProtocolError`,
    as are a chunk size that is not plain hexadecimal and a chunk not followed by CRLF.
    """

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if 100 <= status < 200 and status != 101:
                http.client._read_headers(self.fp)  # type: ignore[attr-defined]
                continue
            return version, status, reason

    def begin(self) -> None:
        super().begin()
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
                raise ProtocolError("the server sent a chunk longer than its size.")
            chunk_left = self._read_next_chunk_size()
            if chunk_left == 0:
                self._read_and_discard_trailer()  # type: ignore[attr-defined]
                self._close_conn()  # type: ignore[attr-defined]
                chunk_left = None
            self.chunk_left = chunk_left
        return chunk_left

    def _read_next_chunk_size(self) -> int:
        line = self.fp.readline(65537)
        size = line.split(b";", 1)[0].strip(b" \t\r\n")
        if len(line) > 65536 or not _HEX.fullmatch(size):
            self._close_conn()  # type: ignore[attr-defined]
            raise ProtocolError(f"the server sent a malformed chunk size {size[:40]!r}.")
        return int(size, 16)


class StrictHTTPConnection(http.client.HTTPConnection):
    """``HTTPConnection`` reading :class:`StrictResponse`."""

    response_class = StrictResponse


class StrictHTTPSConnection(http.client.HTTPSConnection):
    """``HTTPSConnection`` reading :class:`StrictResponse`."""

    response_class = StrictResponse


class StrictHTTPHandler(urllib.request.HTTPHandler):
    """The ``http:`` handler, with :class:`StrictResponse`."""

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(StrictHTTPConnection, req)


class StrictHTTPSHandler(urllib.request.HTTPSHandler):
    """The ``https:`` handler, with :class:`StrictResponse`."""

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            StrictHTTPSConnection,
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class RedirectHandler(urllib.request.HTTPRedirectHandler):
    """
    Follows at most ``limit`` redirects (0: none), to http/https only, and drops
    credentials when one leaves the origin.
    """

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.max_redirections = max(limit, 1)  # type: ignore[misc]

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
            new.journey_hops = hops + 1  # type: ignore[attr-defined]
            if not semantics.same_origin(req.full_url, new.full_url):
                for name in CREDENTIALS:
                    new.remove_header(name)
                    new.remove_header(name.capitalize())
        return new

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location is not None:
            _check_location(req.full_url, location)
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except ValueError:
            raise ProtocolError(
                f"the server redirected to a malformed Location {location!r}.", req.full_url
            ) from None
        except urllib.error.HTTPError as e:
            if e.code in (301, 302, 303, 307, 308) and "redirect error" in str(e.msg):
                raise TooManyRedirects(
                    f"too many redirects (more than --max-redirs {self.max_redirections}).",
                    req.full_url,
                ) from None
            raise

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _check_location(url: str, location: str) -> None:
    """
    Refuse (before any connection) a redirect to anything but an http/https URL.
    """
    try:
        target = urllib.parse.urljoin(url, location.strip())
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        urllib.parse.urlsplit(target).port  # noqa: B018
    except ValueError:
        raise ProtocolError(
            f"the server redirected to a malformed Location {location[:200]!r}.", url
        ) from None
    if scheme not in ("http", "https"):
        raise UnsupportedURL(
            f"the server redirected to {describe_url(target)[:200]!r}, which is not an "
            "http:// or https:// URL; not followed.",
            url,
        )


def _credentials(url: str) -> tuple[str, dict[str, str]]:
    """
    ``url`` without its ``user:password@``, and the Basic ``Authorization`` header the
    userinfo asks for (sent to that origin only: redirects elsewhere drop it).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {
        "Authorization": f"Basic {token}"
    }


def classify(error: BaseException, url: str, timeout: float | None) -> FetchError:
    """
    The :class:`FetchError` for what ``urllib`` raised.
    """
    if isinstance(error, FetchError):
        return error
    host, port = _host_port(url)
    if isinstance(error, urllib.error.HTTPError):
        return HTTPStatusError(
            f"the server answered {error.code} {error.reason}; nothing saved.",
            url,
            error.code,
            semantics.retry_after(error.headers.get("Retry-After") if error.headers else None),
        )
    reason: Any = error.reason if isinstance(error, urllib.error.URLError) else error
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
    if isinstance(reason, http.client.IncompleteRead):
        return TruncatedBody("the body was cut short; nothing saved.", url)
    if isinstance(reason, http.client.RemoteDisconnected):
        return NetworkError(f"{host} port {port} closed the connection without answering.", url)
    if isinstance(reason, (OSError, http.client.HTTPException)):
        return NetworkError(
            errors.connect_failure(errors.UNREACHABLE, host, port, str(reason)), url
        )
    if isinstance(reason, ValueError):
        return UnsupportedURL(f"cannot fetch {describe_url(url)!r}: {reason}.", url)
    return FetchError(f"unexpected failure: {type(error).__name__}.", url)


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
    """
    expected = response.length
    framed = expected is not None or bool(response.chunked)
    total = -1 if expected is None else expected
    raw = expected is not None and response.will_close and not response.chunked
    source: Any = response.fp if raw else response
    blocks = 0
    if reporthook is not None:
        reporthook(0, 0, total)
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
    semantics.check_length(url, expected, part.written - part.offset, framed)


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
    max_redirs: int = 20,
    timeout: float | None = 30.0,
    headers: Sequence[tuple[str, str]] = (),
    reporthook: Callable[[int, int, int], object] | None = None,
    create_dirs: bool = False,
    names: NameRegistry | None = None,
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
    :raises FetchError: (a subclass) when anything goes wrong; no file is left behind.
    """
    _check(url)
    names = names if names is not None else NameRegistry()
    owner = object()
    path = files.target_path(url, output, output_dir)
    streaming = output is not None and files.streams_into(path)
    if output_dir:
        files.make_directories(output_dir)
    if create_dirs and not streaming:
        files.make_directories(os.path.dirname(path))
    if not content_disposition:
        names.claim(path, owner, url)
    address, credentials = _credentials(url)
    opener = urllib.request.build_opener(
        StrictHTTPHandler(), StrictHTTPSHandler(), RedirectHandler(max_redirs)
    )
    request = urllib.request.Request(address, headers={**credentials, **dict(headers)})
    request.add_header("User-Agent", "twisted_journey-fallback")
    try:
        response = opener.open(request, timeout=timeout)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise classify(e, url, timeout) from None
    with response:
        if content_disposition:
            name = files.disposition_name(response.headers.get("Content-Disposition"))
            if name is not None:
                path = files.target_path(url, output, output_dir, name)
            names.claim(path, owner, url)
        part = files.open_sink(path, stream=streaming)
        try:
            _copy_body(response, part, url, reporthook)
            part.commit()
        except BaseException as e:
            part.discard()
            if isinstance(e, FetchError):
                e.url = e.url or url
                raise
            if isinstance(e, KeyboardInterrupt):
                raise
            raise classify(e, url, timeout) from None
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
    fetchcli.add_basic_arguments(result)
    result.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds per connect/read [30]"
    )
    return result


def run(args: argparse.Namespace, program: str = "fetch") -> int:
    """
    Fetch every URL in ``args`` one after another; print a line per failure; return the
    exit status.  SIGTERM raises :class:`KeyboardInterrupt` meanwhile, as Ctrl-C does, so
    the unfinished ``.part`` is removed on the way out.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _run(args, program)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, program: str) -> int:
    results: list[FetchError | None] = []
    names = NameRegistry(keep=True)
    for url in args.urls:
        try:
            fetch(
                url,
                args.output,
                args.output_dir,
                args.content_disposition,
                args.max_redirs,
                args.timeout,
                create_dirs=args.create_dirs,
                names=names,
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
    command = parser()
    args = command.parse_args(argv)
    fetchcli.check_arguments(command, args)
    if not args.timeout > 0:
        command.error("--timeout must be a number of seconds above 0.")
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{command.prog}: interrupted; unfinished files removed.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
