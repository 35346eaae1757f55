"""
Tests for :mod:`twisted_journey.settings`, the option checks both engines share.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.settings import DEFAULT_GREETING, SettingError, greeting, limit, seconds


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

    def test_seconds(self) -> None:
        """
        Finite numbers above zero; ``None`` is none.
        """
        self.assertEqual(seconds("--timeout", "0.25"), 0.25)
        self.assertIsNone(seconds("--timeout", None))
        for bad in ["0", "-1", "nan", "inf", "soon"]:
            error = self.assertRaises(SettingError, seconds, "--timeout", bad)
            self.assertIn("--timeout must be a number of seconds above 0", str(error))
