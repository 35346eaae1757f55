# -*- test-case-name: tests.test_fetch_download,tests.test_fetch_answers -*-
"""
HTTP semantics both fetchers share, stdlib only: which URLs and statuses are acceptable,
when a body is complete, when a partial answer fits the ``Range`` asked for, which content
codings can be undone, where a redirect may go, when to retry, which proxy to use.

- A body shorter or longer than its ``Content-Length``, or a chunked body cut before its
  last chunk, is an error, never a success.  A body with neither (close-delimited: an
  HTTP/1.0 answer, or HTTP/1.1 without a length, usually with ``Connection: close``) ends
  when the server closes the connection and is complete, as RFC 9112 section 6.3 says and
  as curl, wget, urllib and browsers accept it.
- A ``206 Partial Content`` is accepted only in answer to a ``Range`` we sent, when its
  ``Content-Range`` starts where we asked and its body is as long as the range says.
- Content codings: ``gzip`` (several members included) and ``deflate`` can be undone,
  and ``br`` when the ``brotli`` package is installed; any other coding (``compress``,
  ``foo``, ``br`` without ``brotli``, or a stack holding one) is an error and nothing is
  saved.
- Redirects go to ``http``/``https`` only, never to a URL with a ``user:password@``; a
  ``Location`` with spaces or non-ASCII is percent-encoded (UTF-8), as browsers and curl do.
- Response headers are bounded: by default
  :data:`~twisted_journey.fetch.settings.MAX_HEADER_BYTES` bytes and
  :data:`~twisted_journey.fetch.settings.MAX_HEADERS` fields.
"""

from __future__ import annotations

import email.utils
import functools
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping

from twisted_journey.fetch.errors import (
    ProtocolError,
    TruncatedBody,
    UnsupportedURL,
    describe_url,
)

__all__ = [
    "CREDENTIAL_HEADERS",
    "DECODABLE",
    "MAX_CHUNK_LINE",
    "MAX_TRAILER_BYTES",
    "REDIRECTS",
    "basic_authorization",
    "check_codings",
    "check_length",
    "check_partial",
    "check_url",
    "content_codings",
    "decodable",
    "is_sha256",
    "parse_content_range",
    "parse_sha256",
    "proxy_for",
    "redirect_target",
    "request_target",
    "retry_after",
    "same_origin",
    "split_credentials",
]

#: The longest chunk size line (chunk extensions included) read before calling the chunked
#: framing broken: Twisted's own limit, which the stdlib twin applies too.
MAX_CHUNK_LINE = 1024

#: The most bytes of trailer fields (after a chunked body's last chunk, each line with its
#: CRLF) read before calling the chunked framing broken: Twisted's own limit, which the
#: stdlib twin applies too.
MAX_TRAILER_BYTES = 65536

#: The content codings both engines can undo (``--compressed``) with the standard library;
#: :func:`decodable` adds ``br`` when the ``brotli`` package is installed.
DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})

#: Statuses that redirect a GET.
REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Request headers that carry credentials: both engines drop them when a redirect leaves
#: the origin they were meant for (``Cookie2``: the obsolete RFC 2965 cookie header).
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Cookie2", "Proxy-Authorization")


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


def check_length(url: str, expected: int | None, received: int, framed: bool = True) -> None:
    """
    Raise :class:`TruncatedBody` unless ``received`` bytes is a complete body.

    :param expected: the announced body length (``Content-Length``), or ``None``.
    :param framed: whether the end of the body was marked (by a length or chunking).  A
        close-delimited body (``False``) is complete when the connection closes (RFC 9112
        section 6.3); a cut chunked body never gets here (the parser reports it).
    """
    if expected is not None and received < expected:
        raise TruncatedBody(
            f"body cut short: got {received} of {expected} bytes; nothing saved.", url
        )
    if expected is not None and received > expected:
        raise TruncatedBody(
            f"body longer than announced: more than {expected} bytes; nothing saved.", url
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


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def parse_sha256(text: str) -> str | None:
    """
    The lower-case hex digest in ``text`` (64 hex digits, optionally prefixed with
    ``sha256:`` as in ``sha256:ab12...``), or ``None`` when it is not one.
    """
    text = text.strip()
    if text[:7].lower() == "sha256:":
        text = text[7:]
    return text.lower() if is_sha256(text) else None


def check_url(url: str) -> None:
    """
    Raise :class:`UnsupportedURL` unless ``url`` is an absolute http(s) URL whose port,
    when given, is 1 to 65535 (``:0`` is refused, never taken for the default).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise UnsupportedURL(f"{describe_url(url)!r} is not a valid URL: {e}.", url) from None
    if _CONTROL.search(url):
        raise UnsupportedURL(
            f"{describe_url(url)!r} holds control characters; percent-encode them.", url
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(
            f"{describe_url(url)!r} is not an http:// or https:// URL with a host.", url
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise UnsupportedURL(
            f"{describe_url(url)!r} has a bad port number (1 to 65535).", url
        ) from None


def check_partial(url: str, content_range: str | None, offset: int, length: int | None) -> None:
    """
    Raise :class:`ProtocolError` unless a ``206 Partial Content`` answers the ``Range:
    bytes=OFFSET-`` we sent: no range sent (``offset`` 0), a ``Content-Range`` that is
    unreadable, starts elsewhere or ends past its total, or a body length (when known)
    other than the range's are all refused, so nothing is ever spliced at the wrong place.

    :param length: the body length the response announced, or ``None``.
    """
    if offset <= 0:
        raise ProtocolError(
            "the server sent 206 Partial Content to a request without Range; nothing saved.", url
        )
    span = parse_content_range(content_range)
    if span is None or span[0] != offset:
        raise ProtocolError(
            f"the server sent a range other than the one asked for (from byte {offset}); "
            "nothing saved.",
            url,
        )
    first, last, total = span
    if total is not None and last >= total:
        raise ProtocolError(f"the server sent a Content-Range past its end: {content_range}.", url)
    if length is not None and length != last - first + 1:
        raise ProtocolError(
            f"the server sent {length} bytes for the range {first}-{last} "
            f"({last - first + 1} bytes); nothing saved.",
            url,
        )


def content_codings(value: str | None) -> list[str]:
    """
    The content codings of a ``Content-Encoding`` value, in the order they were applied,
    lower-cased, without ``identity``.
    """
    if not value:
        return []
    codings = [c.strip().lower() for c in value.split(",")]
    return [c for c in codings if c and c != "identity"]


@functools.cache
def decodable() -> frozenset[str]:
    """
    The content codings journey can undo here: :data:`DECODABLE`, and ``br`` when the
    ``brotli`` package (the ``brotli`` extra) is installed.  Both engines judge a body's
    codings by this set, so they agree whichever packages are installed.
    """
    try:
        import brotli  # noqa: F401
    except ImportError:
        return DECODABLE
    return DECODABLE | {"br"}


def check_codings(url: str, codings: list[str]) -> None:
    """
    Raise :class:`ProtocolError` unless every coding in ``codings`` can be undone
    (:func:`decodable`): a body in a coding we cannot read is refused rather than saved
    still encoded as if it were the file.
    """
    if not codings:
        return
    known = decodable()
    unknown = [c for c in codings if c not in known]
    if unknown:
        raise ProtocolError(
            f"the server sent the body in a content coding journey cannot decode "
            f"({', '.join(unknown)}); nothing saved.",
            url,
        )


_SAFE = "!#$%&'()*+,/:;=?@[]~"


def redirect_target(base: str, location: str) -> str:
    """
    The absolute URL a ``Location`` header sends us to, from ``base``.

    Relative references are resolved; spaces, other characters not allowed in a URL, and
    non-ASCII are percent-encoded as UTF-8 (a non-ASCII host becomes IDNA), as browsers
    and curl do; the fragment is dropped.

    :raises UnsupportedURL: for a scheme other than http/https, a ``Location`` holding a
        ``user:password@`` (nothing is requested in either case), or a ``Location`` that is
        not a URL.
    """
    location = location.strip()
    try:
        target = urllib.parse.urljoin(base, location)
        parts = urllib.parse.urlsplit(target)
        parts.port  # noqa: B018
    except ValueError:
        raise UnsupportedURL(
            f"the server redirected to {describe_url(location)!r}, which is not a valid URL.",
            base,
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(
            f"the server redirected to {describe_url(target)!r}; only http:// and https:// "
            "redirects are followed.",
            base,
        )
    if "@" in parts.netloc:
        raise UnsupportedURL(
            f"the server redirected to {describe_url(target)!r}, a URL with a user name "
            "or password in it; not followed (credentials are never taken from a server).",
            base,
        )
    return request_target(target)


def request_target(url: str) -> str:
    """
    ``url`` as sent on the wire: spaces, other characters not allowed in a URL, and
    non-ASCII percent-encoded as UTF-8 (existing ``%XX`` escapes kept), a non-ASCII host
    in IDNA, no fragment.

    :raises UnsupportedURL: for a host name IDNA cannot encode.
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        host = parts.hostname or ""
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsupportedURL(
                f"{describe_url(url)!r} has a host name that is not valid.", url
            ) from None
        netloc = netloc.replace(host, ascii_host)
    path = urllib.parse.quote(parts.path, safe=_SAFE)
    query = urllib.parse.quote(parts.query, safe=_SAFE)
    return urllib.parse.urlunsplit((parts.scheme, netloc, path or "/", query, ""))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """
    ``url`` without its ``user:password@``, and the (percent-decoded) user and password,
    or ``None`` when it has none.
    """
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=hostport))
    return bare, (urllib.parse.unquote(user), urllib.parse.unquote(password))


def basic_authorization(credentials: tuple[str, str]) -> str:
    """
    The ``Authorization`` value for HTTP Basic authentication (UTF-8, RFC 7617).
    """
    import base64

    user, password = credentials
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
