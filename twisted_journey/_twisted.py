# -*- test-case-name: tests.test_twisted_internals -*-
"""
Every use of Twisted's private or undocumented API in twisted_journey, in one place.

Public Twisted API (interfaces, ``write``, ``registerProducer``, ``loseWriteConnection``...)
is used where it is needed; anything that leans on how a Twisted class works inside lives
here instead, one section per user, so that a Twisted upgrade has one module to check.
``tests/test_twisted_internals.py`` checks each assumption on a real loopback connection and
fails with a message naming it when Twisted changes.

Checked with Twisted 26.10.0 on CPython 3.11 (the greeting fast path also runs under the
epoll, poll, select and asyncio reactors in ``tests/test_greet_contract.py``).

What we rely on
---------------

Greeting fast path (:mod:`twisted_journey.greet`)
    * Exactly ``twisted.internet.tcp.Server`` and ``twisted.internet.unix.Server`` are the
      transports of plain stream sockets (``tcp:``, ``tcp6:``, ``unix:``, ``systemd:``);
      TLS and ``haproxy:`` wrap the protocol in another transport, so the exact type tells
      a plain socket apart.
    * Such a transport has its connected, non-blocking socket as ``.socket``; ``.TLS`` is
      true once ``startTLS`` ran; ``.disconnecting`` once a close was asked for; bytes
      written but not yet sent are counted in ``._tempDataLen`` (``write`` appends there)
      and held in ``.dataBuffer`` (``doWrite`` moves them there).  With all three empty
      and false, nothing is queued, so a direct ``send`` keeps the byte order.
    * Reading that socket directly (``recv`` with ``MSG_DONTWAIT``, after an
      ``ioctl(FIONREAD)``) inside ``connectionMade`` takes nothing the transport expects
      to read itself: the bytes are the greeting protocol's to discard.
    * ``transport.connectionLost(ConnectionDone)`` is what the reactor itself calls once
      ``loseConnection``'s buffer has drained: it stops watching the socket, shuts it down
      and closes it (an orderly close, a FIN), and calls the protocol's ``connectionLost``.
"""

from __future__ import annotations

import fcntl
import socket
import termios
from typing import TypeGuard

from twisted.internet import tcp, unix
from twisted.internet.protocol import connectionDone

__all__ = ["PLAIN_TRANSPORTS", "closeNow", "drainNow", "isPlainSocket", "sendNow"]


# --- Greeting fast path (twisted_journey.greet) ------------------------------------------

#: The transports of plain stream sockets, which :mod:`twisted_journey.greet` may write to
#: directly.  Exact types only: a subclass, or a wrapper such as TLS or ``haproxy:``, goes
#: through ``transport.write``.
PLAIN_TRANSPORTS = frozenset({tcp.Server, unix.Server})


def isPlainSocket(transport: object) -> TypeGuard[tcp.Server]:
    """
    Whether ``transport`` is exactly the transport of a plain TCP or UNIX stream socket.
    """
    return type(transport) in PLAIN_TRANSPORTS


def sendNow(transport: tcp.Server, data: bytes) -> int | None:
    """
    Offer ``data`` to the socket of ``transport``, a plain socket transport, directly.

    :return: how many bytes the kernel took: all of them, some, or none (its buffer is
        full, or the send failed and the ordinary write path is left to find out why);
        ``None`` when the transport is not in its fresh state (TLS started, closing, or
        bytes already queued), so that only the ordinary write path keeps the order.
    """
    if transport.TLS or transport.disconnecting or transport._tempDataLen or transport.dataBuffer:
        return None
    try:
        return transport.socket.send(data)
    except OSError:
        return 0


#: the result buffer of the ``FIONREAD`` ioctl (the reactor runs in one thread)
_unread = bytearray(4)


def drainNow(transport: tcp.Server, limit: int) -> int:
    """
    Read and discard what the peer of ``transport`` has already sent, without waiting,
    up to about ``limit`` bytes: a socket closed with unread bytes resets the connection,
    and a reset can discard what was sent but not yet delivered.

    One ``ioctl(FIONREAD)`` says whether anything is waiting (cheaper than a ``recv``
    that fails with ``EAGAIN``); only then is the socket read.

    :return: the number of bytes discarded.
    """
    sock = transport.socket
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, _unread)
    except OSError:
        return 0
    if not any(_unread):
        return 0
    drained = 0
    while drained <= limit:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except OSError:
            break  # nothing more waiting (EAGAIN), or the peer is gone
        if not data:
            break
        drained += len(data)
    return drained


def closeNow(transport: tcp.Server) -> None:
    """
    Close a plain socket transport whose write buffer is empty, at once: what the reactor
    does once ``loseConnection``'s buffer has drained (with Twisted's shared
    ``ConnectionDone`` failure, as the reactor shares its own).
    """
    transport.connectionLost(connectionDone)
