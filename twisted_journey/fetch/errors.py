# -*- test-case-name: tests.test_fetch_download -*-
"""
Why a fetch failed, stdlib only: the failure classes, the exit codes of ``journey fetch``
and the one-line sentences a person reads.

Both engines (:mod:`twisted_journey.fetch.client` and its ``urllib`` twin
:mod:`twisted_journey.fallback.fetch`) and the mirror raise these classes, so a failure
ends with the same sentence and the same exit status whichever engine ran.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence

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
    "ProtocolError",
    "TLSError",
    "Timeout",
    "TooLarge",
    "TooManyRedirects",
    "TruncatedBody",
    "UnsupportedURL",
    "describe_url",
    "exit_status",
    "failure_line",
    "is_retryable_status",
]


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
    EXIT_TRUNCATED: "the answer was cut short, longer than announced, or malformed (range, coding, headers)",
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
    """
    The TLS handshake failed: the certificate was untrusted, expired or for another
    host name.  Not retried: trying again gets the same certificate.
    """

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
    """
    The server's answer made no sense: a bad ``Content-Range``, a content coding that
    cannot be decoded, headers past the limit, a redirect to another scheme.
    """

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


def is_retryable_status(status: int) -> bool:
    """
    Whether an HTTP status is worth retrying: 408, 429 and 5xx.
    """
    return status in (408, 429) or 500 <= status <= 599


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


def failure_line(program: str, url: str, error: FetchError) -> str:
    """
    The one stderr line for a URL that failed.
    """
    return f"{program}: {describe_url(url)}: {error}"


def describe_url(url: str) -> str:
    """
    ``url`` for messages, logs and mirror events: a password in it is shown as ``***``
    (``http://user:***@host/``).  Never raises, even for a malformed URL.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = None
    if parts is None:
        # Unparseable: hide whatever sits between "//" and the last "@" before the path.
        head, sep, rest = url.partition("//")
        authority, slash, tail = rest.partition("/")
        if sep and "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            user = userinfo.partition(":")[0]
            return f"{head}//{user}:***@{host}{slash}{tail}"
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***@" if colon else f"{user}@"
    return urllib.parse.urlunsplit(parts._replace(netloc=hidden + hostport))
