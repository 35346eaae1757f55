# -*- test-case-name: tests.test_fetch_download -*-
"""
Why a fetch failed, stdlib only: the failure classes, the exit codes of ``journey fetch``
and the one-line sentences a person reads.

Both engines (:mod:`twisted_journey.fetch.client` and its ``urllib`` twin
:mod:`twisted_journey.fallback.fetch`) and the mirror raise these classes, so a failure
ends with the same sentence and the same exit status whichever engine ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from twisted_journey import errors
from twisted_journey.records import printable

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
    "chunk_line_too_long",
    "cut_mid_response",
    "cut_short",
    "describe_url",
    "exit_status",
    "failure_line",
    "headers_too_large",
    "is_retryable_status",
    "malformed_chunk",
    "max_time_exceeded",
    "proxy_failure",
    "too_many_header_fields",
    "trailer_too_long",
    "unfollowed_status",
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
    EXIT_HTTP: "the server answered with an HTTP status of 400 or more, or a 3xx that is "
    "not a redirect (300, an unasked-for 304, an unknown 3xx)",
    EXIT_REDIRECTS: "too many redirects",
    EXIT_CHECKSUM: "the body did not match --sha256",
    EXIT_TOO_LARGE: "the body (or its decoded form) was larger than allowed",
}


#: ``//user:password@`` in a sentence: the password is replaced by ``***`` (a port
#: followed by a path holding ``@``, ``//host:8080/a@b``, is left alone).
_USERINFO = re.compile(r"(//[^\s/?#@:'\"]*):(?!\d*[/?#\s'\"])[^\s@'\"]*@")


class FetchError(Exception):
    """
    Why fetching one URL failed: a sentence for a person and an exit status.

    Subclasses are the failure classes a caller can branch on; ``str()`` is the sentence,
    with whatever a server or a URL put in it made :func:`~twisted_journey.records.printable`
    (a reason phrase can carry terminal escapes), and the password of any
    ``scheme://user:password@`` in it shown as ``***`` (a library's exception text quoting
    a URL included).

    :ivar url: the URL that failed (may be empty when unknown).
    :ivar exitCode: the ``journey fetch`` exit status for this class of failure.
    :ivar retryable: whether trying again later may succeed.
    """

    exitCode = EXIT_FAILURE
    retryable = False

    def __init__(self, message: str, url: str = "") -> None:
        message = _USERINFO.sub(r"\1:***@", printable(message))
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
    The final response had a status of 400 or more, or a ``3xx`` that is not followed
    (:func:`unfollowed_status`).

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


def headers_too_large(limit: int) -> ProtocolError:
    """
    The failure for response headers (interim ``1xx`` answers included) past ``limit``
    bytes.
    """
    return ProtocolError(
        f"the server sent more than {limit} bytes of response headers "
        "(--max-header-bytes); nothing saved."
    )


def too_many_header_fields(limit: int) -> ProtocolError:
    """
    The failure for more than ``limit`` response header fields (interim ``1xx`` answers
    included).
    """
    return ProtocolError(
        f"the server sent more than {limit} response header fields (--max-headers); nothing saved."
    )


def malformed_chunk(detail: str) -> ProtocolError:
    """
    The failure for a chunked body whose framing is broken (``detail`` says how: a chunk
    size that is not hexadecimal, a chunk line longer than allowed...): a framing error,
    not a body cut short.
    """
    return ProtocolError(f"the server sent a malformed chunked body ({detail}); nothing saved.")


def chunk_line_too_long(limit: int) -> ProtocolError:
    """
    The failure for a chunk size line (chunk extensions included) longer than ``limit``
    bytes, as both engines read them (:data:`twisted_journey.fetch.semantics.MAX_CHUNK_LINE`).
    """
    return malformed_chunk(f"a chunk size line longer than {limit} bytes")


def unfollowed_status(url: str, code: int, phrase: str) -> HTTPStatusError:
    """
    The failure for a final ``3xx`` answer that is not a redirect journey follows
    (``300 Multiple Choices``, ``304 Not Modified`` to a request that was not
    conditional, ``305``, an unknown ``3xx``): nothing to save, exit 8 (``EXIT_HTTP``),
    in both engines.
    """
    return HTTPStatusError(
        f"the server answered {code} {phrase}, which is not a redirect journey follows; "
        "nothing saved.",
        url,
        code,
    )


def cut_short(url: str = "") -> TruncatedBody:
    """
    The connection ended before the body did (its framing says so, or the connection
    was reset rather than closed).
    """
    return TruncatedBody("the body was cut short; nothing saved.", url)


def cut_mid_response(host: str, port: int | str, url: str = "") -> NetworkError:
    """
    The connection closed after the server began its answer but before the answer's
    header block (or a chunked body's trailer) ended.
    """
    return NetworkError(f"the connection to {errors.place(host, port)} failed mid-response.", url)


def trailer_too_long() -> ProtocolError:
    """
    A chunked body's trailer fields past
    :data:`~twisted_journey.fetch.semantics.MAX_TRAILER_BYTES`, in the words the Twisted
    engine uses.
    """
    return malformed_chunk("trailer headers data is too long")


def max_time_exceeded(seconds: float, url: str = "") -> Timeout:
    """
    The failure for a URL not fetched within ``--max-time`` seconds.
    """
    return Timeout(f"not complete within --max-time {seconds:g} seconds.", url)


def proxy_failure(kind: str, host: str, port: int | str, detail: str = "") -> FetchError:
    """
    The failure for a proxy that could not be reached: the proxy is named, never the
    target (which was not reached either).

    :param kind: :data:`twisted_journey.errors.REFUSED`, ``RESOLVE``, ``TIMEOUT`` or
        ``UNREACHABLE``.
    """
    name = f"the proxy {errors.place(host, port)}"
    if kind == errors.REFUSED:
        return NetworkError(f"connection to {name} refused: is the proxy running?")
    if kind == errors.RESOLVE:
        return NetworkError(f"cannot resolve the host name of {name}.")
    if kind == errors.TIMEOUT:
        return Timeout(f"cannot connect to {name} in time.")
    return NetworkError(f"cannot reach {name}: {detail or 'unknown error'}.")


def failure_line(program: str, url: str, error: FetchError) -> str:
    """
    The one stderr line for a URL that failed.
    """
    return f"{program}: {describe_url(url)}: {error}"


def describe_url(url: str) -> str:
    """
    ``url`` for messages, logs and mirror events: a password in it is shown as ``***``
    (``http://user:***@host/``), and anything that could be one too: in
    ``http://u:pa/SECRET@host/`` (which ``urlsplit`` reads as host ``u``, port ``pa``)
    everything between the first ``:`` and the last ``@`` of the part before any
    ``?`` or ``#`` is hidden.  The result is :func:`~twisted_journey.records.printable`.
    Never raises, even for a malformed URL.
    """
    return printable(_hide_password(url))


def _hide_password(url: str) -> str:
    """
    ``url`` with its password (or what may be one) replaced by ``***``.
    """
    head, sep, rest = url.partition("//")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    first = rest[:end]
    hostport = first.rpartition("]")[2] if first.startswith("[") else first
    if "@" in first:
        # A plain user:password@host: hide up to the authority's last "@".
        userinfo, _, host = first.rpartition("@")
        tail = host + rest[end:]
    elif "@" in rest and ":" in hostport and not hostport.rpartition(":")[2].isdigit():
        # u:pa/ss@host (or pa?ss, pa#ss): a password holding a delimiter, which urlsplit
        # takes for a port followed by a path; hide up to the last "@".
        userinfo, _, tail = rest.rpartition("@")
    else:
        return url
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***@" if colon else f"{user}@"
    return f"{head}//{hidden}{tail}"
