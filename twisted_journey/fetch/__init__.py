# -*- test-case-name: tests.test_fetch_api -*-
"""
The HTTP fetcher: ``journey fetch``, its API and the mirror, one module per concern.

- :mod:`~twisted_journey.fetch.errors`: failure classes, exit codes, sentences (stdlib);
- :mod:`~twisted_journey.fetch.naming`: which local file a URL goes to (stdlib);
- :mod:`~twisted_journey.fetch.safefiles`: writing without following planted links
  (stdlib);
- :mod:`~twisted_journey.fetch.validators`: the remembered ETag / Last-Modified (stdlib);
- :mod:`~twisted_journey.fetch.sinks`: the ``.part`` file, or a FIFO written into
  (stdlib);
- :mod:`~twisted_journey.fetch.semantics`: HTTP rules both engines apply (stdlib);
- :mod:`~twisted_journey.fetch.auth`: Basic and Digest authentication (stdlib);
- :mod:`~twisted_journey.fetch.cookies`: the cookie engine of ``-b`` and ``-c`` (stdlib);
- :mod:`~twisted_journey.fetch.settings`: the defaults and
  :class:`~twisted_journey.fetch.settings.FetchSettings` (stdlib);
- :mod:`~twisted_journey.fetch.options`: every command-line option, declared once (stdlib);
- :mod:`~twisted_journey.fetch.client`: the Twisted client
  (:class:`~twisted_journey.fetch.client.Fetcher`,
  :func:`~twisted_journey.fetch.client.retrieve`), with :mod:`~twisted_journey.fetch.body`
  (one response body) and :mod:`~twisted_journey.fetch.agent` (proxies, TLS, failure
  classification);
- :mod:`~twisted_journey.fetch.mirror`: the service behind ``twistd journey-fetch``, and
  its URL list;
- :mod:`~twisted_journey.fetch.cli`: the ``journey fetch`` command line, started without
  pyOpenSSL until a connection needs TLS (:mod:`~twisted_journey.fetch.lazytls`).

The public names below are importable from this package.  They are loaded on first use,
so the stdlib-only modules import without Twisted (the ``urllib`` twin,
:mod:`twisted_journey.fallback.fetch`, uses them on a Python that has no Twisted).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The failure classes are stdlib-only: imported at once.  The Twisted client is loaded on
# first use (see __getattr__), so the stdlib modules import on a Python without Twisted.
from twisted_journey.fetch.errors import (
    ChecksumMismatch,
    FetchError,
    FileError,
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
    TooLarge,
    TooManyRedirects,
    TruncatedBody,
    UnsupportedURL,
)

if TYPE_CHECKING:
    from twisted_journey.fetch.agent import classify
    from twisted_journey.fetch.client import Fetched, Fetcher, Retrieved, retrieve
    from twisted_journey.fetch.settings import FetchSettings

__all__ = [
    "ChecksumMismatch",
    "FetchError",
    "FetchSettings",
    "Fetched",
    "Fetcher",
    "FileError",
    "HTTPStatusError",
    "NetworkError",
    "ProtocolError",
    "Retrieved",
    "TLSError",
    "Timeout",
    "TooLarge",
    "TooManyRedirects",
    "TruncatedBody",
    "UnsupportedURL",
    "classify",
    "retrieve",
]

#: The module each lazily loaded public name lives in.
_HOMES = {
    **dict.fromkeys(("Fetched", "Fetcher", "Retrieved", "retrieve"), "client"),
    "FetchSettings": "settings",
    "classify": "agent",
}


def __getattr__(name: str) -> Any:
    """
    Load a public name of the Twisted client from the module that defines it, on first use.
    """
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
