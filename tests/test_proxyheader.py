"""
Tests for :mod:`twisted_journey.proxyheader`: PROXY protocol headers, versions 1 and 2,
parsed strictly.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support import environment
from twisted_journey.proxyheader import (
    MAX_V2_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse,
)


def v2(command: int, family: int, body: bytes) -> bytes:
    """
    A version 2 header with ``command`` (0 LOCAL, 1 PROXY), the family/protocol byte and
    the address block ``body``.
    """
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


class Version1Tests(SynchronousTestCase):
    """
    Version 1: one line of text.
    """

    def test_valid(self) -> None:
        """
        TCP4 and TCP6 headers give canonical addresses and the header's length; what
        follows is the connection's data.
        """
        data = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /"
        self.assertEqual(
            parse(data), ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443), len(data) - 5)
        )
        self.assertEqual(
            parse(b"PROXY TCP6 2001:DB8:0::1 ::ffff:1.2.3.4 0 65535\r\n"),
            ProxyHeader(("2001:db8::1", 0), ("::ffff:102:304", 65535), 49),
        )
        self.assertEqual(parse(b"PROXY UNKNOWN\r\n"), ProxyHeader(None, None, 15))
        self.assertEqual(
            parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), ProxyHeader(None, None, 35)
        )

    def test_incomplete(self) -> None:
        """
        Every proper start of a valid header is ``None``: wait for more.
        """
        header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
        for end in range(len(header)):
            self.assertIsNone(parse(header[:end]), header[:end])

    def test_invalid(self) -> None:
        """
        Anything that is not exactly the specification's shape, with IP literals of the
        declared family and plain decimal ports, is refused, saying why.
        """
        cases = {
            b'PROXY TCP4 1.2.3.4","conn":1 5.6.7.8 1 2\r\n': "is not an IPv4 address",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n": "is not a port number",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n": "is not a port number",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n": "is not a port number",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1_0 2\r\n": "is not a port number",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n": "is not a port number",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa1\r\n": "is not a port number",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n": "is not an IPv4 address",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n": "is not an IPv4 address",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n": "is not an IPv6 address",
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n": "is not an IPv6 address",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n": "PROXY TCP4|TCP6",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n": "PROXY TCP4|TCP6",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n": "PROXY TCP4|TCP6",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n": "no CR LF",
            b"GET / HTTP/1.1\r\n": "not a PROXY header",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n": "not a PROXY header",
        }
        for data, reason in cases.items():
            data += b" " * 120  # past the longest header, for the one without CR LF
            with self.assertRaises(ProxyHeaderError) as caught:
                parse(data)
            self.assertIn(reason, str(caught.exception), data)


class Version2Tests(SynchronousTestCase):
    """
    Version 2: binary.
    """

    def test_valid(self) -> None:
        """
        TCP over IPv4 and IPv6, with TLVs after the addresses; LOCAL, unspecified and UNIX
        give no address.
        """
        four = (
            ipaddress.IPv4Address("127.0.0.2").packed
            + ipaddress.IPv4Address("127.0.0.1").packed
            + struct.pack("!HH", 40001, 1235)
        )
        header = v2(1, 0x11, four + b"\x04\x00\x01x")
        self.assertEqual(
            parse(header + b"data"),
            ProxyHeader(("127.0.0.2", 40001), ("127.0.0.1", 1235), len(header)),
        )
        six = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HH", 1, 2)
        self.assertEqual(parse(v2(1, 0x21, six)), ProxyHeader(("::1", 1), ("::2", 2), 52))
        self.assertEqual(parse(v2(0, 0x11, four)), ProxyHeader(None, None, 28))
        self.assertEqual(parse(v2(1, 0x00, b"")), ProxyHeader(None, None, 16))
        self.assertEqual(parse(v2(1, 0x31, bytes(216))), ProxyHeader(None, None, 232))
        for end in range(len(header)):
            self.assertIsNone(parse(header[:end]))

    def test_invalid(self) -> None:
        """
        Unknown versions, commands, families and protocols, UDP, address blocks too short
        for their family and headers longer than :data:`MAX_V2_LENGTH` are refused.
        """
        four = bytes(12)
        for data in [
            V2_SIGNATURE + bytes([0x11, 0x11]) + struct.pack("!H", 12) + four,
            v2(2, 0x11, four),
            v2(1, 0x41, four),
            v2(1, 0x13, four),
            v2(1, 0x12, four),
            v2(1, 0x11, four[:11]),
            v2(1, 0x21, bytes(35)),
            V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2_LENGTH),
        ]:
            self.assertRaises(ProxyHeaderError, parse, data)


class AnyBytesTests(SynchronousTestCase):
    """
    Whatever a client sends.
    """

    @settings(deadline=None, max_examples=500)
    @given(
        st.one_of(
            st.binary(max_size=120),
            st.binary(max_size=100).map(lambda b: b"PROXY " + b),
            st.binary(max_size=60).map(lambda b: V2_SIGNATURE + b),
            st.lists(
                st.sampled_from(
                    [b"PROXY", b"TCP4", b"TCP6", b"1.2.3.4", b"::1", b"80", b"+1", b"\r\n"]
                ),
                max_size=8,
            ).map(b" ".join),
        )
    )
    def test_anyBytes(self, data: bytes) -> None:
        """
        Any bytes are a header (whose addresses are canonical IP literals and ports in
        range), the start of one (``None``), or a :class:`ProxyHeaderError`: never
        another exception.
        """
        try:
            header = parse(data)
        except ProxyHeaderError:
            return
        if header is None:
            return
        self.assertLessEqual(header.length, len(data))
        for address in (header.source, header.destination):
            if address is not None:
                host, port = address
                self.assertEqual(str(ipaddress.ip_address(host)), host)
                self.assertTrue(0 <= port <= 65535)


class StdlibOnlyTests(SynchronousTestCase):
    """
    The parser is a floor-1 helper.
    """

    def test_importsNoTwisted(self) -> None:
        """
        :mod:`twisted_journey.proxyheader` (and :mod:`twisted_journey.settings`, with
        ``--per-peer-prefix``) import and work where ``import twisted`` fails.
        """
        script = (
            "from twisted_journey import proxyheader, settings\n"
            "print(proxyheader.parse(b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\\r\\n').source)\n"
            "print(settings.peer_network('2001:db8::1', settings.peer_prefix('', '32,64')))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            env=environment(stdlibOnly=True),
            check=False,
        )
        self.assertEqual(
            (result.returncode, result.stdout),
            (0, b"('1.2.3.4', 1)\n2001:db8::/64\n"),
            result.stderr,
        )
