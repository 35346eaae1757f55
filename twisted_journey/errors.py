# -*- test-case-name: tests.test_cli -*-
"""
The sentences clients print when a server cannot be reached, stdlib only.

The Twisted clients and their stdlib twins classify a failure into one of the kinds below
and print :func:`connect_failure`'s sentence, so both engines say the same thing.
"""

from __future__ import annotations

__all__ = ["REFUSED", "RESOLVE", "TIMEOUT", "UNREACHABLE", "connect_failure"]

RESOLVE = "resolve"
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"


def connect_failure(
    kind: str, host: str, port: int | str, detail: str = "", timeout: float | None = None
) -> str:
    """
    One sentence saying why ``host``/``port`` could not be talked to.

    :param kind: :data:`RESOLVE`, :data:`REFUSED`, :data:`TIMEOUT` or :data:`UNREACHABLE`.
    :param detail: the system's reason, for :data:`UNREACHABLE`.
    :param timeout: the limit that ran out, for :data:`TIMEOUT`.
    """
    if kind == RESOLVE:
        return f"cannot resolve host name {host!r}."
    if kind == REFUSED:
        return f"connection to {host} port {port} refused: is the server running?"
    if kind == TIMEOUT:
        return f"no complete answer from {host} port {port} within {timeout:g} seconds."
    return f"cannot reach {host} port {port}: {detail or 'unknown error'}."
