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
    "ConnectError",
    "connect_failure",
    "create_connection",
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


class ConnectError(Exception):
    """
    A stdlib client could not connect; ``str()`` is :func:`connect_failure`'s sentence.
    """


def create_connection(host: str, port: int, timeout: float) -> socket.socket:
    """
    ``socket.create_connection`` for the stdlib clients, with a failure classified and
    raised as :class:`ConnectError`.
    """
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        raise ConnectError(connect_failure(RESOLVE, host, port)) from None
    except ConnectionRefusedError:
        raise ConnectError(connect_failure(REFUSED, host, port)) from None
    except TimeoutError:
        raise ConnectError(connect_failure(TIMEOUT, host, port, timeout=timeout)) from None
    except OSError as e:
        raise ConnectError(connect_failure(UNREACHABLE, host, port, e.strerror or str(e))) from None
