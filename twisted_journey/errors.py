# -*- test-case-name: tests.test_cli -*-
"""
The sentences clients print when a server cannot be reached, stdlib only.

The Twisted clients and their stdlib twins classify a failure into one of the kinds below
and print :func:`connect_failure`'s sentence, so both engines say the same thing.
"""

from __future__ import annotations

import socket

__all__ = [
    "REFUSED",
    "RESOLVE",
    "TIMEOUT",
    "UNREACHABLE",
    "ClientError",
    "connect_failure",
    "create_connection",
    "describe_os_error",
]

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


class ClientError(Exception):
    """
    A stdlib client failed: it could not connect, the exchange failed or ran out of time,
    or its input could not be read.  ``str()`` is one sentence for a person.
    """


def describe_os_error(
    error: OSError, host: str, port: int | str, timeout: float | None = None
) -> str:
    """
    :func:`connect_failure`'s sentence for a socket error talking to ``host``/``port``.
    """
    if isinstance(error, socket.gaierror):
        kind = RESOLVE
    elif isinstance(error, ConnectionRefusedError):
        kind = REFUSED
    elif isinstance(error, TimeoutError):
        kind = TIMEOUT
    else:
        kind = UNREACHABLE
    return connect_failure(kind, host, port, error.strerror or str(error), timeout)


def create_connection(host: str, port: int, timeout: float) -> socket.socket:
    """
    ``socket.create_connection`` for the stdlib clients, a failure raised as
    :class:`ClientError` with its sentence.
    """
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise ClientError(describe_os_error(e, host, port, timeout)) from None
