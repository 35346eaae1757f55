# -*- test-case-name: tests.test_fetch_download -*-
"""
What both HTTP fetchers share, stdlib only: the failure classes and exit codes, the
``.part`` file, the body checks, proxy decisions and the basic command-line options.

The Twisted fetcher (:mod:`twisted_journey.fetch`) and its ``urllib`` twin
(:mod:`twisted_journey.fallback.fetch`) both import this module (and
:mod:`twisted_journey.localfiles` for names), so a body is checked and committed the same
way, and a failure ends with the same exit status, whichever engine ran.

Safety rules kept here:

- A body is written to ``NAME.part`` and renamed to ``NAME`` only once it is complete and
  verified; on failure the ``.part`` is removed (unless kept for a later resume), so the
  final name never appears for a broken download.  The ``.part`` is opened without
  following symbolic links.
- A body shorter or longer than its ``Content-Length``, or cut without any framing, is an
  error, never a success.
"""

from __future__ import annotations

import argparse
import email.message
import email.utils
import hashlib
import os
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "EXIT_CHECKSUM",
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_FILE",
    "EXIT_HTTP",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_REDIRECTS",
    "EXIT_TIMEOUT",
    "EXIT_TLS",
    "EXIT_TOO_LARGE",
    "EXIT_TRUNCATED",
    "EXIT_USAGE",
    "ChecksumMismatch",
    "FetchError",
    "FileError",
    "HTTPStatusError",
    "NetworkError",
    "PartFile",
    "ProtocolError",
    "TLSError",
    "Timeout",
    "TooLarge",
    "TooManyRedirects",
    "TruncatedBody",
    "UnsupportedURL",
    "check_length",
    "exit_status",
    "is_retryable_status",
    "proxy_for",
    "retry_after",
    "same_origin",
]

# --- exit codes ---------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_FILE = 3
EXIT_NETWORK = 4
EXIT_TLS = 5
EXIT_TIMEOUT = 6
EXIT_TRUNCATED = 7
EXIT_HTTP = 8
EXIT_REDIRECTS = 9
EXIT_CHECKSUM = 10
EXIT_TOO_LARGE = 11

#: Exit status -> what it means; the how-to prints this table.
EXIT_CODES: Mapping[int, str] = {
    EXIT_OK: "every URL was fetched (or was already up to date, or skipped by --no-clobber)",
    EXIT_FAILURE: "an unexpected failure",
    EXIT_USAGE: "a usage error: bad option or unsupported URL",
    EXIT_FILE: "the output file could not be written",
    EXIT_NETWORK: "the server could not be reached, or dropped the connection",
    EXIT_TLS: "the TLS handshake or certificate verification failed",
    EXIT_TIMEOUT: "a connect, idle or total time limit ran out",
    EXIT_TRUNCATED: "the body was shorter or longer than announced, or cut without framing",
    EXIT_HTTP: "the server answered with an HTTP status of 400 or more",
    EXIT_REDIRECTS: "too many redirects",
    EXIT_CHECKSUM: "the body did not match --sha256",
    EXIT_TOO_LARGE: "the body (or its decoded form) was larger than allowed",
}


class FetchError(Exception):
    """
    Why fetching one URL failed: a sentence for a person and an exit status.

    Subclasses are the failure classes a caller can branch on; ``str()`` is the sentence.

    :ivar url: the URL that failed (may be empty when unknown).
    :ivar exitCode: the ``journey fetch`` exit status for this class of failure.
    :ivar retryable: whether trying again later may succeed.
    """

    exitCode = EXIT_FAILURE
    retryable = False

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return self.message


class UnsupportedURL(FetchError):  # noqa: N818
    """The URL is malformed or its scheme is not http/https."""

    exitCode = EXIT_USAGE


class FileError(FetchError):
    """The local file could not be created, written or renamed."""

    exitCode = EXIT_FILE


class NetworkError(FetchError):
    """The server could not be reached, or the connection failed before a response."""

    exitCode = EXIT_NETWORK
    retryable = True


class TLSError(FetchError):
    """The TLS handshake failed, usually because the certificate was not trusted."""

    exitCode = EXIT_TLS


class Timeout(FetchError):  # noqa: N818
    """A connect, idle or total time limit ran out."""

    exitCode = EXIT_TIMEOUT
    retryable = True


class TruncatedBody(FetchError):  # noqa: N818
    """The body ended before (or ran past) its announced length, or had no framing."""

    exitCode = EXIT_TRUNCATED
    retryable = True


class ProtocolError(FetchError):
    """The server's answer made no sense (a bad ``Content-Range``, say)."""

    exitCode = EXIT_TRUNCATED


class HTTPStatusError(FetchError):
    """
    The final response had a status of 400 or more.

    :ivar status: the HTTP status code.
    :ivar retryAfter: seconds from a ``Retry-After`` header, or ``None``.
    """

    exitCode = EXIT_HTTP

    def __init__(
        self, message: str, url: str = "", status: int = 0, retryAfter: float | None = None
    ) -> None:
        super().__init__(message, url)
        self.status = status
        self.retryAfter = retryAfter
        self.retryable = is_retryable_status(status)


class TooManyRedirects(FetchError):  # noqa: N818
    """More redirects than the limit allows (or a loop)."""

    exitCode = EXIT_REDIRECTS


class ChecksumMismatch(FetchError):  # noqa: N818
    """The body's SHA-256 was not the one asked for."""

    exitCode = EXIT_CHECKSUM


class TooLarge(FetchError):  # noqa: N818
    """The body, or its decoded form, was larger than the limit (or inflated too much)."""

    exitCode = EXIT_TOO_LARGE


def exit_status(errors: Sequence[FetchError | None]) -> int:
    """
    The process exit status for one result per URL (``None`` for a success).

    :return: 0 when all succeeded, else the exit code of the first failure.
    """
    for error in errors:
        if error is not None:
            return error.exitCode
    return EXIT_OK


def is_retryable_status(status: int) -> bool:
    """
    Whether an HTTP status is worth retrying: 408, 429 and 5xx.
    """
    return status in (408, 429) or 500 <= status <= 599


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """
    Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    :param now: the current POSIX time, for dates (default: ``time.time()``).
    :return: ``None`` when absent or unreadable; never negative.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if now is None:
        import time

        now = time.time()
    return max(0.0, when.timestamp() - now)


# --- the .part file --------------------------------------------------------------------------


class PartFile:
    """
    A body being written to ``PATH.part``, renamed to ``PATH`` by :meth:`commit`.

    :param path: the final name.
    :param resume: append to an existing ``.part`` (for ``--continue``).
    :param no_clobber: make :meth:`commit` fail rather than replace an existing file.
    :param sha256: keep a SHA-256 of everything written (including a resumed start).

    :ivar offset: bytes already in the ``.part`` when it was opened.
    :ivar written: bytes in the ``.part`` now.
    """

    def __init__(
        self, path: str, resume: bool = False, no_clobber: bool = False, sha256: bool = False
    ) -> None:
        self.path = path
        self.part = path + ".part"
        self.no_clobber = no_clobber
        self.digest = hashlib.sha256() if sha256 else None
        self.offset = 0
        self._file: Any = None
        try:
            nofollow = getattr(os, "O_NOFOLLOW", 0)
            if resume and os.path.exists(self.part):
                fd = os.open(self.part, os.O_RDWR | nofollow)
                self._file = open(fd, "r+b", buffering=0)  # noqa: SIM115
                self._file.seek(0, os.SEEK_END)
                self.offset = self._file.tell()
                if self.digest is not None:
                    self._file.seek(0)
                    while block := self._file.read(1 << 20):
                        self.digest.update(block)
                    self._file.seek(0, os.SEEK_END)
            else:
                fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | nofollow, 0o666)
                self._file = open(fd, "wb", buffering=0)  # noqa: SIM115
        except OSError as e:
            raise FileError(f"cannot write {self.part!r}: {e.strerror or e}.") from None
        self.written = self.offset

    def write(self, data: bytes) -> None:
        """
        Append ``data``; raises :class:`FileError` when the disk refuses it.
        """
        self.write_many([data])

    def write_many(self, chunks: list[bytes]) -> None:
        """
        Append every chunk with as few system calls as possible (``writev``), without
        joining them first; raises :class:`FileError` when the disk refuses them.
        """
        assert self._file is not None
        fd = self._file.fileno()
        try:
            for start in range(0, len(chunks), 512):
                batch = chunks[start : start + 512]
                size = sum(len(c) for c in batch)
                done = os.writev(fd, batch) if hasattr(os, "writev") else 0
                if done < size:  # a short write (or no writev): finish plainly
                    rest = memoryview(b"".join(batch))[done:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
        except OSError as e:
            raise FileError(f"cannot write {self.part!r}: {e.strerror or e}.") from None
        for chunk in chunks:
            self.written += len(chunk)
            if self.digest is not None:
                self.digest.update(chunk)

    def restart(self) -> None:
        """
        Throw away what was written (the server ignored our ``Range``): start at 0.
        """
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self.offset = self.written = 0
        if self.digest is not None:
            self.digest = hashlib.sha256()

    def verify(self, sha256: str | None) -> None:
        """
        Raise :class:`ChecksumMismatch` unless the body's SHA-256 is ``sha256``.
        """
        if sha256 is None or self.digest is None:
            return
        actual = self.digest.hexdigest()
        if actual != sha256.lower():
            raise ChecksumMismatch(
                f"SHA-256 mismatch: expected {sha256.lower()}, got {actual}; file removed."
            )

    def close(self) -> None:
        """
        Close the ``.part`` (idempotent).
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    def commit(self) -> None:
        """
        Close and move the complete ``.part`` to the final name.
        """
        try:
            self.close()
            if self.no_clobber:
                os.link(self.part, self.path)
                os.unlink(self.part)
            else:
                os.replace(self.part, self.path)
        except FileExistsError:
            self.discard()
            raise FileError(
                f"{self.path!r} appeared meanwhile; not replaced (--no-clobber)."
            ) from None
        except OSError as e:
            self.discard()
            raise FileError(f"cannot rename {self.part!r}: {e.strerror or e}.") from None

    def discard(self, keep: bool = False) -> None:
        """
        Close, and remove the ``.part`` unless ``keep`` (for a later ``--continue``).
        """
        self.close()
        if not keep:
            try:
                os.unlink(self.part)
            except FileNotFoundError:
                pass


def same_content(path: str, sha256: str, size: int) -> bool:
    """
    Whether the file at ``path`` has ``size`` bytes with this SHA-256 (hex).
    """
    try:
        if os.path.getsize(path) != size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256


# --- checks ----------------------------------------------------------------------------------


def check_length(url: str, expected: int | None, received: int, framed: bool = True) -> None:
    """
    Raise :class:`TruncatedBody` unless ``received`` bytes is a complete body.

    :param expected: the announced body length (``Content-Length``), or ``None``.
    :param framed: whether the end of the body was marked (by a length or chunking);
        a body ended only by the connection closing may have been cut.
    """
    if expected is not None and received < expected:
        raise TruncatedBody(
            f"body cut short: got {received} of {expected} bytes; nothing saved.", url
        )
    if expected is not None and received > expected:
        raise TruncatedBody(
            f"body longer than announced: more than {expected} bytes; nothing saved.", url
        )
    if not framed:
        raise TruncatedBody(
            "the server closed the connection without Content-Length or chunked framing, "
            "so the body may be incomplete; nothing saved.",
            url,
        )


def same_origin(a: str, b: str) -> bool:
    """
    Whether two absolute URLs share scheme, host and port.
    """
    x, y = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    defaults = {"http": 80, "https": 443}

    def port(parts: urllib.parse.SplitResult) -> int | None:
        try:
            return parts.port or defaults.get(parts.scheme)
        except ValueError:
            return None

    return (x.scheme, x.hostname, port(x)) == (y.scheme, y.hostname, port(y))


def proxy_for(url: str, proxies: Mapping[str, str] | None = None) -> str | None:
    """
    The proxy URL the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) gives
    for ``url``, or ``None`` to connect directly.

    :param proxies: a scheme -> proxy URL mapping (default: ``urllib.request.getproxies()``);
        ``"no"`` in it is the ``NO_PROXY`` list.
    """
    parts = urllib.parse.urlsplit(url)
    if proxies is None:
        proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if not proxy:
        return None
    host = parts.hostname or ""
    if "no" in proxies:
        if _bypassed(parts.netloc, host, proxies["no"]):
            return None
    elif urllib.request.proxy_bypass(parts.netloc):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _bypassed(netloc: str, host: str, no_proxy: str) -> bool:
    """
    ``NO_PROXY`` matching as ``urllib.request.proxy_bypass_environment`` does it.
    """
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(netloc, {"no": no_proxy})) or (
        bool(host) and bool(bypass(host, {"no": no_proxy}))
    )


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """
    ``(first, last, total)`` from ``Content-Range: bytes first-last/total`` (total may be
    ``*``, giving ``None``), or ``None`` when unreadable.
    """
    if not value:
        return None
    unit, _, rest = value.strip().partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or not first.isdigit() or not last.isdigit():
        return None
    if total != "*" and not total.isdigit():
        return None
    start, end = int(first), int(last)
    if end < start:
        return None
    return start, end, None if total == "*" else int(total)


def is_sha256(value: str) -> bool:
    """
    Whether ``value`` is 64 hexadecimal digits.
    """
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def describe_url(url: str) -> str:
    """
    ``url`` without any user:password, for messages.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str) -> None:
    """
    Raise :class:`UnsupportedURL` unless ``url`` is an absolute http(s) URL.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(
            f"{describe_url(url)!r} is not an http:// or https:// URL with a host.", url
        )
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise UnsupportedURL(f"{describe_url(url)!r} has a bad port number.", url) from None


# --- the command line both engines share ------------------------------------------------------


def add_basic_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options both ``journey fetch`` and the stdlib twin take: ``URL...``, ``-o``,
    ``--output-dir``, ``--content-disposition``, ``--max-redirs``, ``--quiet``.
    """
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URLs")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (one URL only) [name from the URL]"
    )
    parser.add_argument("--output-dir", metavar="DIR", help="put files in DIR [.]")
    parser.add_argument(
        "--content-disposition",
        action="store_true",
        help="use the server's Content-Disposition name, reduced to a safe basename",
    )
    parser.add_argument(
        "--max-redirs", type=_count, default=20, metavar="N", help="follow at most N redirects [20]"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """
    Refuse combinations that make no sense (``-o`` with several URLs, a missing directory).
    """
    if args.output is not None and len(args.urls) > 1:
        parser.error("-o/--output takes one URL; use --output-dir for several.")
    if args.output_dir is not None and not os.path.isdir(args.output_dir):
        parser.error(f"--output-dir {args.output_dir!r} is not a directory.")


def _count(text: str) -> int:
    """
    An argparse type for a whole number of at least 0.
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return value


def failure_line(program: str, url: str, error: FetchError) -> str:
    """
    The one stderr line for a URL that failed.
    """
    return f"{program}: {describe_url(url)}: {error}"
