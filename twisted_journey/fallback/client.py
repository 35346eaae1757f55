# -*- test-case-name: tests.test_client -*-
"""
The clients of the journey servers with the standard library only: the twins of
:mod:`twisted_journey.client`, used by ``journey greet`` and ``journey send`` when Twisted is
not installed (or ``JOURNEY_ENGINE=stdlib``).

They speak the same bytes and fail with the same sentences (:mod:`twisted_journey.errors`),
raised as :class:`twisted_journey.errors.ClientError`.  Each connects to a
:class:`twisted_journey.errors.Target`: a host and port or a unix socket, optionally with TLS
(:mod:`ssl`'s default context: the system's authorities or ``--cacert``'s, host name
checked).
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from twisted_journey import errors
from twisted_journey.settings import READ_SIZE
from twisted_journey.syslogframe import OctetCounter

__all__ = ["receive_greeting", "send_stream"]


# --- journey greet -----------------------------------------------------------------------


def receive_greeting(
    target: errors.Target, write: Callable[[bytes], object], timeout: float = 10.0
) -> int:
    """
    Connect to a greeting server, pass what it sends to ``write`` until it closes the
    connection, and return the number of bytes received.

    :param timeout: seconds for the whole exchange, connecting included.
    :raises twisted_journey.errors.ClientError: when the server cannot be reached or time
        runs out.
    """
    deadline = time.monotonic() + timeout
    received = 0
    with errors.connect(target, timeout) as sock:
        try:
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(READ_SIZE)
                if not data:
                    return received
                received += len(data)
                write(data)
        except OSError as e:
            raise errors.ClientError(
                errors.describe_os_error(e, target.host, target.port, timeout)
            ) from None


# --- journey send ------------------------------------------------------------------------


def _read_input(fd: int) -> bytes:
    """
    The next chunk of input, or ``b""`` at its end.

    :raises twisted_journey.errors.ClientError: when the input cannot be read.
    """
    try:
        return os.read(fd, READ_SIZE)
    except OSError as e:
        raise errors.ClientError(f"cannot read the input: {e.strerror or e}.") from None


#: What a non-blocking socket (plain or TLS) raises when it is not ready after all.
_NOT_READY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _finish_sending(sock: socket.socket) -> None:
    """
    Tell the server the input is finished: a half-close (``SHUT_WR``), or over TLS a
    ``close_notify`` alert, after which what the server still sends is read as before.
    """
    if not isinstance(sock, ssl.SSLSocket):
        sock.shutdown(socket.SHUT_WR)
        return
    try:
        sock.unwrap()
    except _NOT_READY:
        pass  # close_notify is sent; the server's comes with the end of its answer


def _receive(sock: socket.socket) -> bytes:
    """
    The next bytes the server sent, or ``b""`` at its end: a TCP close, or over TLS the
    server's ``close_notify`` (which, once ours is sent, ``ssl`` raises as an error).
    """
    try:
        return sock.recv(READ_SIZE)
    except ssl.SSLZeroReturnError:
        return b""


def send_stream(
    target: errors.Target,
    fd: int,
    write: Callable[[bytes], object],
    timeout: float = 10.0,
    framing: str = "lines",
) -> int:
    """
    Connect, stream everything readable from ``fd`` to the server, half-close at the end
    of the input, and pass what the server sends (``--broadcast`` relays) to ``write`` as
    it arrives, until the server closes.

    One ``poll`` loop watches both the input and the socket, so relayed lines print while
    the input is idle; input is read only once the previous chunk has been sent, which is
    the back-pressure.  (``poll``, unlike ``epoll``, accepts regular files: always ready.)

    With ``framing`` ``"syslog"`` each line is sent as an octet-counted syslog frame
    (:class:`twisted_journey.syslogframe.OctetCounter`).

    :return: the number of bytes sent.
    :raises twisted_journey.errors.ClientError: when the server cannot be reached, fails,
        or closes before all the input was sent.
    """
    counter = OctetCounter() if framing == "syslog" else None
    sock = errors.connect(target, timeout)
    sent = 0
    unsent = memoryview(b"")
    reading = True
    with sock, selectors.PollSelector() as selector:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        selector.register(fd, selectors.EVENT_READ)
        try:
            while True:
                for key, events in selector.select():
                    try:
                        if key.fileobj is not sock:
                            chunk = _read_input(fd)
                            if not chunk:
                                reading = False
                                selector.unregister(fd)
                                chunk = counter.finish() if counter is not None else b""
                                if not chunk:
                                    _finish_sending(sock)
                                    continue
                            elif counter is not None:
                                try:
                                    chunk = counter.frames(chunk)
                                except ValueError as e:
                                    raise errors.ClientError(
                                        f"cannot send the input: {e}."
                                    ) from None
                                if not chunk:
                                    continue  # no line complete yet: read on
                            if reading:
                                selector.unregister(fd)
                            unsent = memoryview(chunk)
                            selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                            continue
                        if events & selectors.EVENT_WRITE:
                            count = sock.send(unsent)
                            sent += count
                            unsent = unsent[count:]
                            if not unsent:
                                selector.modify(sock, selectors.EVENT_READ)
                                if reading:
                                    selector.register(fd, selectors.EVENT_READ)
                                else:
                                    _finish_sending(sock)
                        if events & selectors.EVENT_READ:
                            # TLS may hold more decrypted bytes than one recv returns.
                            while data := _receive(sock):
                                write(data)
                                if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                                    break
                            else:
                                if reading or unsent:
                                    raise errors.ClientError(
                                        "the server closed the connection before all input "
                                        "was sent."
                                    )
                                return sent
                    except _NOT_READY:
                        pass  # not ready after all: poll again
        except OSError as e:
            raise errors.ClientError(
                f"the connection to {target} failed after {sent} bytes: {e.strerror or e}."
            ) from None
