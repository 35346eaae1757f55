# -*- test-case-name: tests.test_fetch_fallback -*-
"""
The HTTP fetcher on ``urllib.request`` alone: ``python -m twisted_journey.fallback.fetch``.

The stdlib twin of ``journey fetch``, for a Python without Twisted::

    python -m twisted_journey.fallback.fetch URL [URL ...] [-o FILE] [--output-dir DIR]
        [--content-disposition] [--max-redirs N] [--timeout S]

It keeps the Twisted fetcher's promises, through the same helpers
(:mod:`twisted_journey.download`): the same local names, the body written to
``NAME.part`` and renamed only when complete, a short, long or unframed body treated as
an error, the same exit statuses and one stderr line per failed URL.  Unlike plain
``urllib``, it does not forward ``Authorization``/``Cookie`` to another origin on a
redirect, and ``--timeout`` bounds every connect and read.  ``HTTP_PROXY``,
``HTTPS_PROXY`` and ``NO_PROXY`` work as in ``urllib`` (with ``CONNECT`` for https).
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from twisted_journey import errors
from twisted_journey.fetch import cli as fetchcli
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import files, semantics
from twisted_journey.fetch.errors import (
    FetchError,
    HTTPStatusError,
    NetworkError,
    Timeout,
    TLSError,
    TooManyRedirects,
    TruncatedBody,
)
from twisted_journey.fetch.files import PartFile

__all__ = ["fetch", "main"]

BLOCK = 1 << 16

#: Request headers that carry credentials: dropped when a redirect changes origin.
CREDENTIALS = ("Authorization", "Cookie", "Cookie2", "Proxy-Authorization")


class RedirectHandler(urllib.request.HTTPRedirectHandler):
    """
    Follows at most ``limit`` redirects, and drops credentials when one leaves the origin.
    """

    def __init__(self, limit: int = 20) -> None:
        self.max_redirections = limit  # type: ignore[misc]

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not semantics.same_origin(req.full_url, new.full_url):
            for name in CREDENTIALS:
                new.remove_header(name)
                new.remove_header(name.capitalize())
        return new

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
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
    if isinstance(reason, (ssl.SSLCertVerificationError, ssl.SSLError)):
        detail = getattr(reason, "verify_message", None) or getattr(reason, "reason", None)
        return TLSError(
            f"TLS with {host} failed: {detail or reason} (use a trusted certificate).", url
        )
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
    return FetchError(f"{type(error).__name__}: {error}", url)


def _host_port(url: str) -> tuple[str, int | str]:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    try:
        port: int | str = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = "?"
    return parts.hostname or "", port


def _copy_body(
    response: http.client.HTTPResponse,
    part: PartFile,
    url: str,
    reporthook: Callable[[int, int, int], object] | None,
) -> None:
    """
    Stream the body into ``part``, then check it against its framing.

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


def fetch(
    url: str,
    output: str | None = None,
    output_dir: str | None = None,
    content_disposition: bool = False,
    max_redirs: int = 20,
    timeout: float | None = 30.0,
    headers: Sequence[tuple[str, str]] = (),
    reporthook: Callable[[int, int, int], object] | None = None,
) -> tuple[str, http.client.HTTPMessage]:
    """
    Fetch ``url`` to a file, like ``urlretrieve`` but safe; return ``(filename, headers)``.

    :param timeout: seconds for every connect and every read (not the whole transfer).
    :raises FetchError: (a subclass) when anything goes wrong; no file is left behind.
    """
    semantics.check_url(url)
    path = files.target_path(url, output, output_dir)
    opener = urllib.request.build_opener(RedirectHandler(max_redirs))
    request = urllib.request.Request(url, headers=dict(headers))
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
        part = PartFile(path)
        try:
            _copy_body(response, part, url, reporthook)
            part.commit()
        except BaseException as e:
            part.discard()
            if isinstance(e, (FetchError, KeyboardInterrupt)):
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
    fetchcli.add_basic_arguments(result)
    result.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds per connect/read [30]"
    )
    return result


def run(args: argparse.Namespace, program: str = "fetch") -> int:
    """
    Fetch every URL in ``args`` one after another; print a line per failure; return the
    exit status.
    """
    results: list[FetchError | None] = []
    for url in args.urls:
        try:
            fetch(
                url,
                args.output,
                args.output_dir,
                args.content_disposition,
                args.max_redirs,
                args.timeout,
            )
        except FetchError as e:
            print(fetch_errors.failure_line(program, url, e), file=sys.stderr)
            results.append(e)
        else:
            results.append(None)
    return fetch_errors.exit_status(results)


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
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
