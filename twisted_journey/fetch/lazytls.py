# -*- test-case-name: tests.test_fetch_startup -*-
"""
Start ``journey fetch`` without loading pyOpenSSL until a connection needs TLS.

Twisted imports its TLS support (``OpenSSL``, ``cryptography``, ``service_identity``)
whenever it can: ``twisted.internet.tcp`` and ``posixbase`` (hence every reactor),
``twisted.internet.endpoints`` and ``twisted.web.client`` each try to at import time and
carry on without it when the import fails.  For a process that fetches one small
``http://`` file that import is most of its start-up (more than half the instructions
of the run).

:func:`withoutTLSImports` hides ``OpenSSL`` while the reactor and the HTTP client are
imported, so those modules load in their no-TLS form; afterwards ``OpenSSL`` imports
normally.  What the no-TLS form lacks (``startTLS`` on a TCP transport, the reactor's
``connectSSL``/``listenSSL``, ``endpoints.wrapClientTLS``, ``ssl:`` endpoint strings,
``twisted.web.client.BrowserLikePolicyForHTTPS``) the fetcher does not use: https
goes through :class:`twisted_journey.fetch.agent.TLSEndpoint`, which imports
``twisted.protocols.tls`` (and with it pyOpenSSL) on its first connection, and through
:class:`~twisted_journey.fetch.agent.TLSPolicy`, which imports ``twisted.internet.ssl``
when it makes its first connection creator.

Stdlib only: importing this module loads nothing of Twisted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["TLS_MODULE", "withoutTLSImports"]

#: The package whose absence Twisted's modules test for.
TLS_MODULE = "OpenSSL"

#: Modules that keep what they found at import time: once one of them is loaded, hiding
#: ``OpenSSL`` would change nothing (or, for those not yet loaded, make them differ).
_DECIDED = (
    TLS_MODULE,
    "twisted.internet.tcp",
    "twisted.internet.posixbase",
    "twisted.internet.endpoints",
    "twisted.web.client",
)


@contextmanager
def withoutTLSImports() -> Iterator[bool]:
    """
    Within the block, ``import OpenSSL`` fails as if pyOpenSSL were not installed.

    Only for a process of its own (the ``journey fetch`` command): the Twisted modules
    imported in the block stay in their no-TLS form for the life of the process.  When
    ``OpenSSL`` or any of those modules is already loaded (a test runner, a program that
    uses the fetcher as a library), nothing is hidden.

    :return: (as the ``with`` target) whether ``OpenSSL`` was hidden.
    """
    if any(name in sys.modules for name in _DECIDED):
        yield False
        return
    sys.modules[TLS_MODULE] = None  # type: ignore[assignment]
    try:
        yield True
    finally:
        if TLS_MODULE in sys.modules and sys.modules[TLS_MODULE] is None:
            del sys.modules[TLS_MODULE]
