# -*- test-case-name: tests.test_proxyheader -*-
"""
The PROXY protocol header (versions 1 and 2) that HAProxy, nginx and others send before a
proxied connection's data, parsed strictly, stdlib only.

Twisted's own parser (behind ``haproxy:`` endpoints) takes the addresses of a version 1
header as they come: ``PROXY TCP4 1.2.3.4","conn":1,... 5.6.7.8 1 2`` gives a peer named
``1.2.3.4","conn":1,...``, and ``int()`` takes ports such as ``+80``, ``-1`` or
``8_0``.  :func:`parse` refuses all of that: an address is an IP literal of the family
the header declares (no IPv6 zone), a port is 0 to 65535 in plain decimal, and the
header is exactly the specification's shape.  The address given back is in canonical
form (``::1`` however it was written), so limits keyed on it count one host once.

A header without a client address (version 1 ``UNKNOWN``, version 2 ``LOCAL`` as sent by
health checks, an unspecified family or a UNIX socket client) gives ``None``: the
connection is then the proxy's own.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import NamedTuple

__all__ = ["MAX_V2_LENGTH", "V1_MAX", "V2_SIGNATURE", "ProxyHeader", "ProxyHeaderError", "parse"]

#: Version 1 headers are at most this long, CR LF included.
V1_MAX = 107
#: Every version 2 header starts with these 12 bytes.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Longest version 2 header accepted (16 fixed bytes, addresses and TLVs): more is refused
#: rather than buffered.
MAX_V2_LENGTH = 4096

_V1 = b"PROXY "
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


class ProxyHeaderError(ValueError):
    """
    Bytes that are not a valid PROXY header; ``str()`` says why, as a phrase.
    """


class ProxyHeader(NamedTuple):
    """
    A parsed PROXY header.

    :ivar source: the client's ``(host, port)``, or ``None`` when the header gives none
        (the connection is the proxy's own: a health check, ``UNKNOWN``...).
    :ivar destination: the address the client connected to, or ``None`` likewise.
    :ivar length: the header's length in bytes; the connection's data follows it.
    """

    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int


def parse(data: bytes) -> ProxyHeader | None:
    """
    The PROXY header at the start of ``data``, or ``None`` when ``data`` is the start of
    a header that is not complete yet.

    :raises ProxyHeaderError: when ``data`` cannot start a valid header.
    """
    if data[:12] == V2_SIGNATURE[: len(data)]:
        if len(data) < 16:
            return None
        return _parse_v2(data)
    if len(data) < len(_V1) and _V1.startswith(data):
        return None
    if not data.startswith(_V1):
        raise ProxyHeaderError("not a PROXY header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"no CR LF in the first {V1_MAX} bytes")
        return None
    return _parse_v1(data[:end], end + 2)


def _parse_v1(line: bytes, length: int) -> ProxyHeader:
    """
    A version 1 header's line (without CR LF).
    """
    fields = line.split(b" ")
    if fields[1:2] == [b"UNKNOWN"]:
        return ProxyHeader(None, None, length)
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("a version 1 header is PROXY TCP4|TCP6 SRC DST SPORT DPORT")
    version = 4 if fields[1] == b"TCP4" else 6
    source = (_address(fields[2], version), _port(fields[4]))
    destination = (_address(fields[3], version), _port(fields[5]))
    return ProxyHeader(source, destination, length)


def _address(text: bytes, version: int) -> str:
    """
    An IP literal of ``version`` (4 or 6) in canonical form.
    """
    try:
        if not text.isascii() or b"%" in text:
            raise ValueError
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise ProxyHeaderError(f"{text!r} is not an IPv{version} address")
    return str(address)


def _port(text: bytes) -> int:
    """
    A port: 0 to 65535, decimal digits only, no sign, no leading zero.
    """
    if _PORT.fullmatch(text) is None or int(text) > 65535:
        raise ProxyHeaderError(f"{text!r} is not a port number")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    """
    A version 2 header (binary), from at least its 16 fixed bytes.
    """
    if data[:12] != V2_SIGNATURE:
        raise ProxyHeaderError("not a PROXY header")
    version_command, family_protocol, size = struct.unpack("!BBH", data[12:16])
    length = 16 + size
    if version_command >> 4 != 2 or version_command & 0xF > 1:
        raise ProxyHeaderError(f"unknown version 2 command byte 0x{version_command:02x}")
    if length > MAX_V2_LENGTH:
        raise ProxyHeaderError(
            f"a version 2 header of {length} bytes (the most is {MAX_V2_LENGTH})"
        )
    if len(data) < length:
        return None
    if version_command & 0xF == 0:  # LOCAL: the proxy's own connection
        return ProxyHeader(None, None, length)
    family, protocol = family_protocol >> 4, family_protocol & 0xF
    if family > 3 or protocol > 2:
        raise ProxyHeaderError(f"unknown version 2 family byte 0x{family_protocol:02x}")
    if family in (0, 3) or protocol == 0:  # unspecified, or a UNIX socket client
        return ProxyHeader(None, None, length)
    if protocol != 1:
        raise ProxyHeaderError("a datagram (UDP) connection")
    packed = 4 if family == 1 else 16
    if size < 2 * packed + 4:
        raise ProxyHeaderError(f"a version 2 header too short for its addresses ({size} bytes)")
    body = data[16 : 16 + 2 * packed + 4]
    source_port, destination_port = struct.unpack("!HH", body[2 * packed :])
    make = ipaddress.IPv4Address if family == 1 else ipaddress.IPv6Address
    source = (str(make(body[:packed])), source_port)
    destination = (str(make(body[packed : 2 * packed])), destination_port)
    return ProxyHeader(source, destination, length)
