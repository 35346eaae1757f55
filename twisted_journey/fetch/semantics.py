# -*- test-case-name: tests.test_fetch_download -*-
"""
HTTP semantics both fetchers share, stdlib only: which URLs and statuses are acceptable,
when a body is complete, when to retry, which proxy to use.

A body shorter or longer than its ``Content-Length``, or cut without any framing, is an
error, never a success.
"""

from __future__ import annotations

import email.utils
import urllib.parse
import urllib.request
from collections.abc import Mapping

from twisted_journey.fetch.errors import TruncatedBody, UnsupportedURL, describe_url

__all__ = [
    "check_length",
    "check_url",
    "is_sha256",
    "parse_content_range",
    "proxy_for",
    "retry_after",
    "same_origin",
]


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
