# -*- test-case-name: tests.test_sockets,tests.test_mux_server -*-
"""
What both engines need of the operating system's sockets and descriptors, stdlib only.
"""

from __future__ import annotations

import array
import fcntl
import resource
import socket
import termios
from typing import NamedTuple, Protocol

__all__ = [
    "RESERVED_DESCRIPTORS",
    "Drained",
    "Readable",
    "descriptor_ceiling",
    "discard_unread",
    "drain_unread",
    "unread_count",
]

#: descriptors kept free under ``ulimit -n`` for the data log's reopening and rotation,
#: the log file, the event loop's own (a reactor's waker, a signal wake-up pair) and the
#: odd file: accepting stops above this many in use
RESERVED_DESCRIPTORS = 8


def descriptor_ceiling() -> int:
    """
    The highest descriptor number a client may get before a server stops accepting: the
    soft ``RLIMIT_NOFILE`` less :data:`RESERVED_DESCRIPTORS`, at least 1, and ``1 << 30``
    when there is no limit.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(soft - RESERVED_DESCRIPTORS, 1)


class Readable(Protocol):
    """
    What :func:`drain_unread` and :func:`discard_unread` use of a connected socket.
    """

    def fileno(self) -> int:
        """
        The socket's descriptor.
        """
        ...

    def recv(self, size: int, flags: int = ..., /) -> bytes:
        """
        Receive at most ``size`` bytes, as ``socket.socket.recv`` does.
        """
        ...


#: bytes asked of one ``recv`` while discarding
_DISCARD_SIZE = 65536


def unread_count(fd: int, result: array.array[int] | None = None) -> int:
    """
    How many bytes the peer of the connected socket ``fd`` has sent that are waiting to
    be read: one ``ioctl(FIONREAD)``, cheaper than a ``recv`` failing with ``EAGAIN``.
    The peer's close is not a byte; a failed ioctl counts as nothing waiting.

    :param result: an ``array("i", [0])`` for the ioctl to fill in, which a caller that
        runs in one thread keeps and hands in every time (it saves an allocation); by
        default a new one (safe from any thread).
    """
    if result is None:
        result = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, result)
    except OSError:
        return 0
    return result[0]


class Drained(NamedTuple):
    """
    What a drain did: :func:`discard_unread`'s and :func:`drain_unread`'s result.
    """

    #: bytes read and discarded
    discarded: int
    #: false once reading found that the peer has closed its side or the connection
    #: failed (there is nothing more to wait for)
    open: bool


#: a drain that found nothing waiting (the usual case: no allocation for it)
_NOTHING = Drained(0, True)


def discard_unread(sock: Readable, limit: int) -> Drained:
    """
    Read and discard what the peer of ``sock`` has sent, without waiting (``recv`` with
    ``MSG_DONTWAIT``), until nothing more is waiting or more than ``limit`` bytes were
    read.  ``sock`` must be blocking or non-blocking, not in timeout mode (where ``recv``
    first waits for data, ``MSG_DONTWAIT`` or not).
    """
    drained = 0
    while drained <= limit:
        try:
            data = sock.recv(_DISCARD_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return Drained(drained, True)
        except OSError:
            return Drained(drained, False)
        if not data:
            return Drained(drained, False)
        drained += len(data)
    return Drained(drained, True)


def drain_unread(sock: Readable, limit: int, result: array.array[int] | None = None) -> Drained:
    """
    Before closing a connection whose peer's bytes are not wanted: read and discard what
    the peer has already sent, up to about ``limit`` bytes, without waiting.  A socket
    closed with unread bytes resets the connection, and the reset discards whatever the
    kernel has not delivered yet of what was sent last (a greeting, to a client that
    spoke first).

    Usually nothing is waiting, so :func:`unread_count` asks first, and only then is the
    socket read (:func:`discard_unread`, whose conditions on ``sock`` apply); ``result``
    is :func:`unread_count`'s.

    :return: what :func:`discard_unread` did (nothing, the connection open, when
        nothing was waiting).
    """
    if not unread_count(sock.fileno(), result):
        return _NOTHING
    return discard_unread(sock, limit)
