"""
Tests for :mod:`twisted_journey.settings`, the option checks both engines share.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.settings import (
    DEFAULT_GREETING,
    DEFAULT_PEER_PREFIX,
    SettingError,
    count,
    greeting,
    limit,
    peer_network,
    peer_prefix,
    seconds,
)


class GreetingTests(SynchronousTestCase):
    """
    ``greeting`` picks the bytes from ``--message`` or ``--message-file``.
    """

    def test_default(self) -> None:
        """
        Neither option: the chapter's greeting, CRLF-terminated.
        """
        self.assertEqual(greeting(), b"Thank you for connecting\r\n")
        self.assertEqual(DEFAULT_GREETING, greeting())

    def test_messageIsUtf8WithCrlf(self) -> None:
        """
        Text is encoded UTF-8 and gets CRLF appended.
        """
        self.assertEqual(greeting("你好 é"), "你好 é\r\n".encode())

    def test_fileIsExact(self) -> None:
        """
        A file's bytes are sent exactly, nothing appended.
        """
        path = self.mktemp()
        data = bytes(range(256)) * 3
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(greeting(message_file=path), data)

    def test_bothOrUnreadable(self) -> None:
        """
        Both options, or a file that cannot be read, is one sentence.
        """
        self.assertEqual(
            str(self.assertRaises(SettingError, greeting, "a", "b")),
            "give --message or --message-file, not both.",
        )
        error = self.assertRaises(SettingError, greeting, None, "/nonexistent/greeting")
        self.assertIn("cannot read --message-file '/nonexistent/greeting'", str(error))
        self.assertIn("No such file", str(error))


class NumberTests(SynchronousTestCase):
    """
    ``limit`` and ``seconds`` accept positive numbers and name the option otherwise.
    """

    def test_limit(self) -> None:
        """
        Whole numbers of at least 1; ``None`` is no limit.
        """
        self.assertEqual(limit("--max", "3"), 3)
        self.assertIsNone(limit("--max", None))
        for bad in ["0", "-2", "1.5", "many", ""]:
            error = self.assertRaises(SettingError, limit, "--max", bad)
            self.assertEqual(
                str(error), f"--max must be a whole number of at least 1, not {bad!r}."
            )

    def test_count(self) -> None:
        """
        Whole numbers of at least 0 (``--retry 0`` means none); ``None`` is not given.
        """
        self.assertEqual(count("--retry", "0"), 0)
        self.assertEqual(count("--retry", 7), 7)
        self.assertIsNone(count("--retry", None))
        for bad in ["-1", "1.5", "many", ""]:
            error = self.assertRaises(SettingError, count, "--retry", bad)
            self.assertEqual(
                str(error), f"--retry must be a whole number of at least 0, not {bad!r}."
            )

    def test_seconds(self) -> None:
        """
        Finite numbers above zero; ``None`` is none.
        """
        self.assertEqual(seconds("--timeout", "0.25"), 0.25)
        self.assertIsNone(seconds("--timeout", None))
        for bad in ["0", "-1", "nan", "inf", "soon"]:
            error = self.assertRaises(SettingError, seconds, "--timeout", bad)
            self.assertIn("--timeout must be a number of seconds above 0", str(error))


class PeerPrefixTests(SynchronousTestCase):
    """
    :func:`peer_prefix` (``--per-peer-prefix``) and :func:`peer_network`.
    """

    def test_parse(self) -> None:
        """
        ``V4,V6`` within range; the default is ``32,64``; anything else is one sentence.
        """
        self.assertEqual(peer_prefix("--per-peer-prefix", None), (32, 64))
        self.assertEqual(DEFAULT_PEER_PREFIX, (32, 64))
        self.assertEqual(peer_prefix("--per-peer-prefix", "24, 48"), (24, 48))
        self.assertEqual(peer_prefix("--per-peer-prefix", "32,128"), (32, 128))
        for bad in ("", "32", "0,64", "33,64", "32,129", "32,-1", "a,b", "32,64,1", "+32,64"):
            with self.assertRaises(SettingError) as caught:
                peer_prefix("--per-peer-prefix", bad)
            self.assertEqual(
                str(caught.exception),
                "--per-peer-prefix must be two prefix lengths, V4,V6 (IPv4 from 1 to 32, IPv6 "
                f"from 1 to 128, e.g. 32,64), not {bad!r}.",
            )

    def test_network(self) -> None:
        """
        A host is its own network under a full-length prefix, else ``network/length``;
        IPv4-mapped IPv6 addresses count as IPv4 and zones are ignored.
        """
        cases = {
            ("127.0.0.2", (32, 64)): "127.0.0.2",
            ("127.0.0.2", (8, 64)): "127.0.0.0/8",
            ("10.1.2.3", (24, 64)): "10.1.2.0/24",
            ("2001:db8:1:2:3:4:5:6", (32, 64)): "2001:db8:1:2::/64",
            ("2001:db8:1:2:3:4:5:6", (32, 128)): "2001:db8:1:2:3:4:5:6",
            ("2001:db8:1:2:3:4:5:6", (32, 48)): "2001:db8:1::/48",
            ("::ffff:10.1.2.3", (24, 64)): "10.1.2.0/24",
            ("::ffff:10.1.2.3", (32, 64)): "10.1.2.3",
            ("fe80::1%eth0", (32, 64)): "fe80::/64",
            ("not an address", (24, 64)): "not an address",
        }
        for (host, prefixes), network in cases.items():
            self.assertEqual(peer_network(host, prefixes), network, (host, prefixes))
