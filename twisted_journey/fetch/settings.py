# -*- test-case-name: tests.test_fetch_api -*-
"""
How the fetcher fetches: its defaults and :class:`FetchSettings`, stdlib only.

Every default of ``journey fetch``, of its stdlib twin and of the API is declared here
once; the options (:mod:`twisted_journey.fetch.options`) show them in their help, the
Twisted client (:mod:`twisted_journey.fetch.client`) and the twin
(:mod:`twisted_journey.fallback.fetch`) apply them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from twisted_journey import __version__
from twisted_journey.fetch import auth

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_DECODED_SIZE",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_RATIO",
    "MAX_REDIRECTS",
    "MAX_RETRY_DELAY",
    "MIRROR_INTERVAL",
    "MIRROR_PARALLEL",
    "PARALLEL",
    "RETRY_DELAY",
    "FetchSettings",
]

#: Seconds to connect (the Twisted engine), or for each connect and read (the twin's
#: ``--timeout``).
CONNECT_TIMEOUT = 30.0

#: Seconds without a byte (waiting for headers or mid-body) before giving up.
IDLE_TIMEOUT = 300.0

#: Redirects followed before giving up.
MAX_REDIRECTS = 20

#: Seconds before the first retry; doubled each time.
RETRY_DELAY = 1.0

#: No wait between retries (``Retry-After`` included) is longer than this.
MAX_RETRY_DELAY = 120.0

#: Bytes a compressed body may decode to.
MAX_DECODED_SIZE = 1 << 30

#: How many times larger than its encoded form a body may decode to (plus 1 MiB of slack).
MAX_RATIO = 100.0

#: The most bytes of response headers (status line included) read before giving up; curl
#: stops at 100 KiB too.
MAX_HEADER_BYTES = 100 * 1024

#: The most response header fields read before giving up.
MAX_HEADERS = 100

#: Transfers running at once.
PARALLEL = 1

#: Seconds between two refreshes of a mirrored URL.
MIRROR_INTERVAL = 3600.0

#: Transfers a mirror runs at once.
MIRROR_PARALLEL = 4


@dataclasses.dataclass(frozen=True)
class FetchSettings:
    """
    How a :class:`~twisted_journey.fetch.client.Fetcher` fetches; every field has a
    usable default, and nonsense (``parallel=0``, a negative delay) is a
    :class:`ValueError` when the value is built.

    :ivar maxRedirects: redirects followed before
        :class:`~twisted_journey.fetch.errors.TooManyRedirects` (0: none).
    :ivar connectTimeout: seconds for the TCP connect.
    :ivar idleTimeout: seconds without a byte (waiting for headers or mid-body).
    :ivar maxTime: seconds for one whole attempt, or ``None``.
    :ivar retries: extra attempts after a retryable failure (network, timeout,
        truncation, 408/429/5xx).
    :ivar retryDelay: seconds before the first retry; doubled each time.
    :ivar maxRetryDelay: no wait (``Retry-After`` included) is longer than this.
    :ivar parallel: transfers running at once.
    :ivar headers: extra ``(name, value)`` request headers.
    :ivar proxies: scheme -> proxy URL (``"no"``: the bypass list), or ``None`` to read
        ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` from the environment.
    :ivar cacert: a PEM file of CA certificates to trust instead of the system's.
    :ivar insecure: do not verify TLS certificates at all.
    :ivar compressed: ask for gzip/deflate and decode it.
    :ivar maxDecodedSize: bytes a compressed body may decode to.
    :ivar maxRatio: how many times larger than its encoded form a body may decode to
        (plus 1 MiB of slack).
    :ivar userAgent: the ``User-Agent`` header.
    :ivar credentials: ``(user, password)`` for HTTP authentication (as ``authMode``
        says), sent to each retrieved URL's own origin only, never after a redirect to
        another (``-u``, as curl); a URL's own ``user:password@`` wins for its origin.
    :ivar maxHeaderBytes: bytes of response headers read before a
        :class:`~twisted_journey.fetch.errors.ProtocolError`.
    :ivar maxHeaders: response header fields read before a
        :class:`~twisted_journey.fetch.errors.ProtocolError`.
    :ivar authMode: how ``credentials`` are sent: ``"basic"`` (at once), ``"digest"``
        (``--digest``: answering a Digest challenge) or ``"any"`` (``--anyauth``: Digest,
        else Basic); see :mod:`twisted_journey.fetch.auth`.
    :ivar cookie: ``-b``: ``NAME=VALUE; ...`` cookies, a Netscape cookie file, or ``""``
        (the cookie engine on, no cookies yet); ``None``: no cookie engine unless
        ``cookieJar`` is set.  See :mod:`twisted_journey.fetch.cookies`.
    :ivar cookieJar: ``-c``: the file
        :meth:`~twisted_journey.fetch.client.Fetcher.saveCookies` writes the cookies to.
    """

    maxRedirects: int = MAX_REDIRECTS
    connectTimeout: float | None = CONNECT_TIMEOUT
    idleTimeout: float | None = IDLE_TIMEOUT
    maxTime: float | None = None
    retries: int = 0
    retryDelay: float = RETRY_DELAY
    maxRetryDelay: float = MAX_RETRY_DELAY
    parallel: int = PARALLEL
    headers: tuple[tuple[str, str], ...] = ()
    proxies: Mapping[str, str] | None = None
    cacert: str | None = None
    insecure: bool = False
    compressed: bool = False
    maxDecodedSize: int = MAX_DECODED_SIZE
    maxRatio: float = MAX_RATIO
    userAgent: str = f"twisted_journey/{__version__}"
    credentials: tuple[str, str] | None = None
    maxHeaderBytes: int = MAX_HEADER_BYTES
    maxHeaders: int = MAX_HEADERS
    authMode: str = "basic"
    cookie: str | None = None
    cookieJar: str | None = None

    def __post_init__(self) -> None:
        """
        Keep ``headers`` as a tuple; refuse values no fetch could use.
        """
        object.__setattr__(self, "headers", tuple(self.headers))
        for name in ("connectTimeout", "idleTimeout", "maxTime"):
            _check(name, getattr(self, name), 0, above=True, optional=True)
        for name in ("maxRedirects", "retries", "retryDelay", "maxRetryDelay"):
            _check(name, getattr(self, name), 0)
        for name in ("parallel", "maxDecodedSize", "maxHeaderBytes", "maxHeaders"):
            _check(name, getattr(self, name), 1)
        _check("maxRatio", self.maxRatio, 0, above=True)
        if self.authMode not in auth.MODES:
            raise ValueError(
                f"authMode must be one of {', '.join(auth.MODES)}, not {self.authMode!r}"
            )


def _check(
    name: str, value: float | None, bound: float, above: bool = False, optional: bool = False
) -> None:
    """
    Refuse field ``name``'s ``value`` unless it is at least ``bound`` (above it, when
    ``above``; ``None`` passes when ``optional``).

    :raises ValueError: naming the field.
    """
    if value is None and optional:
        return
    if value is None or not (value > bound if above else value >= bound):
        relation = "above" if above else "at least"
        raise ValueError(f"{name} must be {relation} {bound}, not {value!r}")
