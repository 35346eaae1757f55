# -*- test-case-name: tests.test_datagrams -*-
"""
journey-mux's UDP listeners (``--listen udp:PORT``), stdlib only: both engines bind with
:func:`bind_udp` and, whenever the socket is readable, call
:meth:`DatagramReceiver.receive` and write the records it returns.

One datagram is one message (RFC 5426, syslog over UDP): any trailing LF and NUL bytes
(and a CR before an LF) are removed, and the rest is one record, cut at
``max_line_length`` and marked truncated if longer; an empty datagram makes none.  The
record's peer is the sender's address and its connection number is ``0`` (a datagram
belongs to no connection).  Datagrams come from anyone: connection and peer limits do not
apply to them.  With ``--broadcast`` each message is relayed to the TCP clients as a TCP
client's would be (see :func:`relayed`).

The kernel drops datagrams when the socket's receive buffer is full.  On Linux
``SO_RXQ_OVFL`` makes it report, with each datagram, how many it has dropped on this
socket so far; ``DatagramReceiver.dropped`` holds the latest count (``--metrics``
shows it as ``journey_datagrams_dropped_total``).  Elsewhere drops cannot be counted and
it stays 0.
"""

from __future__ import annotations

import socket
import struct
import sys

from twisted_journey.listen import ListenError, ListenSpec, format_peer
from twisted_journey.records import Framer
from twisted_journey.settings import DEFAULT_MAX_LINE_LENGTH
from twisted_journey.syslogframe import new_framer

__all__ = [
    "SO_RXQ_OVFL",
    "DatagramReceiver",
    "bind_udp",
    "message",
    "relayed",
    "socket_drops",
]

#: The socket option that reports kernel drops (Linux's value where Python lacks the name).
SO_RXQ_OVFL: int | None = getattr(
    socket, "SO_RXQ_OVFL", 40 if sys.platform.startswith("linux") else None
)

#: The largest UDP payload: every datagram is read whole.
MAX_DATAGRAM = 65535

#: Datagrams read per readiness event at most, so that TCP clients get their turn.
BATCH = 256

#: Senders whose record prefix is kept; the cache starts again when it is full.
_PEERS = 1024

_COUNT = struct.Struct("=I")

#: ``getsockopt`` ``SO_MEMINFO`` (Linux 4.6+): a socket's memory figures, the drops last.
_SO_MEMINFO: int | None = getattr(
    socket, "SO_MEMINFO", 55 if sys.platform.startswith("linux") else None
)
_MEMINFO = struct.Struct("=9I")


def message(datagram: bytes) -> bytes:
    """
    The message a datagram carries: trailing LF and NUL bytes, and a CR before an LF,
    removed.
    """
    stripped = datagram.rstrip(b"\n\x00")
    if len(stripped) < len(datagram) and stripped.endswith(b"\r"):
        stripped = stripped[:-1]
    return stripped


def relayed(framing: str, message: bytes) -> bytes:
    """
    What ``--broadcast`` sends the TCP clients for one datagram's ``message`` (cut at the
    line limit already): the bytes a TCP client's message is relayed as, so that a
    listener cannot tell how it arrived.  With ``framing`` ``"syslog"`` it is octet
    counted (``LEN SP MSG``: a message may hold newlines); with ``"lines"`` it is the
    message and a newline.
    """
    if framing == "syslog":
        return b"%d %s" % (len(message), message)
    return message + b"\n"


def socket_drops(sock: socket.socket) -> int:
    """
    The datagrams the kernel has dropped on ``sock`` since it was bound, asked of the
    kernel (``SO_MEMINFO``) rather than read from a datagram: the count of a socket that
    several processes read (``--workers``), which none of them can sum.  ``0`` where the
    kernel cannot say.
    """
    if _SO_MEMINFO is None:
        return 0
    try:
        figures = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
    except OSError:
        return 0
    if len(figures) < _MEMINFO.size:
        return 0
    return int(_MEMINFO.unpack_from(figures)[-1])


def bind_udp(spec: ListenSpec, receive_buffer: int | None = None) -> socket.socket:
    """
    A non-blocking UDP socket bound as ``spec`` says (from
    :func:`twisted_journey.listen.parse_udp`), reporting kernel drops where it can.

    :raises ListenError: when the address cannot be bound, with the reason.
    """
    family = socket.AF_INET6 if ":" in spec.interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if SO_RXQ_OVFL is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            except OSError:
                pass  # not this kernel: drops are not counted
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((spec.interface, spec.port))
    except OSError as e:
        sock.close()
        raise ListenError(f"cannot listen on {spec}: {e.strerror or e}.") from None
    return sock


class DatagramReceiver:
    """
    Reads a UDP socket's datagrams and turns each into a record.

    :param sock: a socket from :func:`bind_udp`.
    :param framing: ``"lines"`` or ``"syslog"`` (JSON records then hold the parsed fields).
    :param keep_messages: keep :attr:`complete` (for ``--broadcast``).

    :ivar complete: when ``keep_messages`` is true, the messages of the last
        :meth:`receive`, each framed as :func:`relayed` says (what ``--broadcast``
        relays); else ``b""``.
    :ivar received: datagrams received.
    :ivar received_bytes: their bytes.
    :ivar dropped: datagrams the kernel dropped on this socket (``SO_RXQ_OVFL``).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        framing: str = "lines",
        record_format: str = "text",
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        keep_messages: bool = False,
    ) -> None:
        self.sock = sock
        self.framing = framing
        self.record_format = record_format
        self.max_line_length = max_line_length
        self.received = 0
        self.received_bytes = 0
        self.dropped = 0
        self.keep_messages = keep_messages
        self.complete = b""
        self._framers: dict[object, Framer] = {}
        self._space = socket.CMSG_SPACE(_COUNT.size)

    def drops(self) -> int:
        """
        The datagrams the kernel has dropped on the socket so far: ``dropped``, or
        the kernel's count now (:func:`socket_drops`) if that is higher, as it is when
        drops came after the last datagram read (``SO_RXQ_OVFL`` tells of them only with
        the next one).
        """
        return max(self.dropped, socket_drops(self.sock))

    def _framer(self, address: object) -> Framer:
        """
        The record maker for a sender.
        """
        framer = self._framers.get(address)
        if framer is None:
            if len(self._framers) >= _PEERS:
                self._framers.clear()
            if isinstance(address, tuple):
                peer = format_peer(address[0], address[1])
            else:
                peer = format_peer(None, None)
            framer = self._framers[address] = new_framer(
                self.framing,
                self.record_format,
                peer,
                0,
                max_line_length=self.max_line_length,
            )
        return framer

    def receive(self, now: float) -> bytes:
        """
        The records of the datagrams waiting now (up to ``BATCH``), received at
        ``now``; ``b""`` when none is waiting.

        :raises OSError: for an error other than "nothing waiting" before any datagram
            was read (the engine logs it and carries on); after one, the records of
            those read are returned, none lost.
        """
        out = []
        kept: list[bytes] | None = [] if self.keep_messages else None
        for read in range(BATCH):
            try:
                data, ancillary, _flags, address = self.sock.recvmsg(MAX_DATAGRAM, self._space)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                if read:
                    break
                raise
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self.dropped = _COUNT.unpack_from(value)[0]
            self.received += 1
            self.received_bytes += len(data)
            text = message(data)
            if text:
                out.append(self._framer(address).message(text, now))
                if kept is not None:
                    kept.append(relayed(self.framing, text[: self.max_line_length]))
        if kept is not None:
            self.complete = b"".join(kept)
        return b"".join(out)
