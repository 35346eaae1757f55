"""
Tests for :mod:`twisted_journey.records` (escaping, record formats, framing) and
:mod:`twisted_journey.datalog` (buffering, rotation, reopening, write errors).
"""

from __future__ import annotations

import glob
import json
import os
import re
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_journey import records
from twisted_journey.datalog import DataLog, check_output, keep_count
from twisted_journey.records import PARTIAL, TRUNCATED, Framer, escape, split_marker, unescape
from twisted_journey.settings import SettingError

#: 2026-11-27T02:17:39.123456Z
NOW = 1795745859.123456

#: Characters that must never appear raw in a record (beyond the ASCII controls).
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}

chunks = st.lists(st.binary(max_size=40), max_size=8)


def assertClean(testCase: SynchronousTestCase, record: bytes) -> None:
    """
    ``record`` (without its newline) is valid UTF-8 with no control, format or separator
    character.
    """
    text = record.decode("utf-8")
    bad = [c for c in text if unicodedata.category(c) in FORBIDDEN_CATEGORIES]
    testCase.assertEqual(bad, [], record)


class EscapeTests(SynchronousTestCase):
    """
    :func:`escape` and :func:`unescape`.
    """

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=500)
    @given(st.binary())
    def test_roundTripBytes(self, data: bytes) -> None:
        """
        Any bytes come back from ``unescape(escape(data))``, and the escaped form is clean.
        """
        escaped = escape(data)
        self.assertEqual(unescape(escaped), data)
        assertClean(self, escaped)

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
    @given(st.text())
    def test_roundTripText(self, text: str) -> None:
        """
        Any Unicode text (encoded UTF-8, surrogates replaced) round-trips and escapes clean.
        """
        data = text.encode("utf-8", "replace")
        escaped = escape(data)
        self.assertEqual(unescape(escaped), data)
        assertClean(self, escaped)

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)
    @given(st.binary())
    def test_keepNewlines(self, data: bytes) -> None:
        """
        With ``keep_newlines``, newlines stay and each line escapes as on its own.
        """
        self.assertEqual(
            escape(data, keep_newlines=True),
            b"\n".join(escape(line) for line in data.split(b"\n")),
        )

    def test_table(self) -> None:
        """
        The documented escapes, and printable text (Chinese, accents) left as it is.
        """
        cases = {
            b"plain {evil} text": b"plain {evil} text",
            b"back\\slash": b"back\\\\slash",
            b"\t\r\n": b"\\t\\r\\n",
            b"\x00\x1b[31m\x7f": b"\\x00\\x1b[31m\\x7f",
            b"\xff\xc3": b"\\xff\\xc3",
            "日志 café".encode(): "日志 café".encode(),
            "\u202eevil\u200b\ufeff".encode(): b"\\u202eevil\\u200b\\ufeff",
            "\u0085\u2028".encode(): b"\\u0085\\u2028",
            "\U000e0001".encode(): b"\\U000e0001",
        }
        for raw, escaped in cases.items():
            self.assertEqual(escape(raw), escaped, raw)
            self.assertEqual(unescape(escaped), raw)

    def test_unknownEscape(self) -> None:
        """
        A backslash sequence :func:`escape` never writes is refused.
        """
        self.assertRaises(ValueError, unescape, b"a\\q")
        self.assertRaises(ValueError, unescape, PARTIAL)

    def test_splitMarker(self) -> None:
        """
        Markers come off; an escaped backslash before marker-like text is not a marker.
        """
        self.assertEqual(split_marker(b"abc" + PARTIAL), (b"abc", PARTIAL))
        self.assertEqual(split_marker(b"abc" + TRUNCATED), (b"abc", TRUNCATED))
        self.assertEqual(split_marker(escape(b"x\\[partial]")), (escape(b"x\\[partial]"), b""))
        self.assertEqual(split_marker(b"plain"), (b"plain", b""))

    def test_timestamp(self) -> None:
        """
        ISO-8601 UTC with microseconds and ``Z``.
        """
        self.assertEqual(records.timestamp(NOW), b"2026-11-27T02:17:39.123456Z")
        self.assertEqual(records.timestamp(0), b"1970-01-01T00:00:00.000000Z")
        self.assertEqual(records.timestamp(59.9999996), b"1970-01-01T00:01:00.000000Z")


def parseText(output: bytes) -> list[list[bytes]]:
    """
    Text records as ``[time, peer, conn, line]``.
    """
    return [line.split(b" ", 3) for line in output.split(b"\n")[:-1]]


class FramerTests(SynchronousTestCase):
    """
    :class:`Framer`: lines, chunks, limits and markers.
    """

    def test_textRecord(self) -> None:
        """
        The issue's example record.
        """
        framer = Framer("text", "127.0.0.1:53122", 17)
        self.assertEqual(
            framer.feed(b"hello\n", NOW), b"2026-11-27T02:17:39.123456Z 127.0.0.1:53122 17 hello\n"
        )

    def test_jsonRecord(self) -> None:
        """
        JSON records carry the same escaped text.
        """
        framer = Framer("json", "[::1]:8", 2)
        out = framer.feed(b'say "hi"\\\t\n', NOW)
        self.assertEqual(
            json.loads(out),
            {
                "time": "2026-11-27T02:17:39.123456Z",
                "peer": "[::1]:8",
                "conn": 2,
                "line": 'say "hi"\\\\\\t',
            },
        )

    def test_linesAcrossChunks(self) -> None:
        """
        A line split over chunks is one record; one CR before LF is dropped, even when the
        CR and LF arrive in different chunks.
        """
        framer = Framer("text", "p", 1)
        out = (
            framer.feed(b"one\r\ntw", NOW)
            + framer.feed(b"o\r", NOW)
            + framer.feed(b"\nthree\r\r\n", NOW)
        )
        self.assertEqual([r[3] for r in parseText(out)], [b"one", b"two", b"three\\r"])
        self.assertEqual(framer.lines, 3)
        self.assertEqual(framer.received, 18)

    def test_partial(self) -> None:
        """
        An unterminated last line is recorded by :meth:`Framer.finish`, marked, once.
        """
        framer = Framer("text", "p", 1)
        self.assertEqual(framer.feed(b"done\nhalf", NOW).count(b"\n"), 1)
        self.assertEqual(parseText(framer.finish(NOW))[0][3], b"half" + PARTIAL)
        self.assertEqual(framer.finish(NOW), b"")

    def test_truncated(self) -> None:
        """
        A line longer than the limit is recorded cut and marked, the rest up to the newline
        discarded, whether it arrives in one chunk or many, and the next line is intact.
        """
        for pieces in ([b"0123456789abc\nnext\n"], [b"0123", b"456789a", b"bc", b"\nnext\n"]):
            framer = Framer("text", "p", 1, max_line_length=8)
            out = b"".join(framer.feed(piece, NOW) for piece in pieces)
            self.assertEqual(
                [r[3] for r in parseText(out)], [b"01234567" + TRUNCATED, b"next"], pieces
            )

    def test_rawMode(self) -> None:
        """
        In raw mode each chunk is one record, newlines escaped.
        """
        framer = Framer("text", "p", 1, mode="raw")
        out = framer.feed(b"a\nb", NOW) + framer.feed(b"c\n", NOW)
        self.assertEqual([r[3] for r in parseText(out)], [b"a\\nb", b"c\\n"])
        self.assertEqual(framer.finish(NOW), b"")

    def test_completeLines(self) -> None:
        """
        With ``keep_lines``, :attr:`Framer.complete` holds the chunk's complete lines.
        """
        framer = Framer("text", "p", 1, keep_lines=True)
        framer.feed(b"a\r\nb\nc", NOW)
        self.assertEqual(framer.complete, b"a\nb\n")
        framer.feed(b"no newline yet", NOW)
        self.assertEqual(framer.complete, b"")

    def test_unknownSettings(self) -> None:
        """
        Unknown formats and modes are refused.
        """
        self.assertRaises(ValueError, Framer, "xml", "p", 1)
        self.assertRaises(ValueError, Framer, "text", "p", 1, mode="packet")

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
    @given(chunks, st.sampled_from(records.FORMATS), st.integers(1, 30))
    def test_anyInput(self, pieces: list[bytes], recordFormat: str, maxLength: int) -> None:
        """
        Whatever arrives, in any chunks: every record is one clean line (JSON records
        parse), and unescaping the lines gives back the input (with CR-LF as LF, long
        lines cut at the limit).
        """
        framer = Framer(recordFormat, "127.0.0.1:1", 1, max_line_length=maxLength)
        out = b"".join(framer.feed(piece, NOW) for piece in pieces) + framer.finish(NOW)
        self.assertTrue(out == b"" or out.endswith(b"\n"))
        lines = []
        for record in out.split(b"\n")[:-1]:
            assertClean(self, record)
            if recordFormat == "json":
                line = json.loads(record)["line"].encode("utf-8")
            else:
                line = record.split(b" ", 3)[3]
            text, marker = split_marker(line)
            lines.append((unescape(text), marker))
        self.assertEqual(len(lines), framer.lines)
        expected = []
        stream = b"".join(pieces)
        parts = stream.split(b"\n")
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if not last and part.endswith(b"\r"):
                part = part[:-1]
            if len(part) > maxLength:
                expected.append((part[:maxLength], TRUNCATED))
                # The rest of the line is gone; the following part starts a new line.
                continue
            if last:
                if part:
                    expected.append((part, PARTIAL))
            else:
                expected.append((part, b""))
        self.assertEqual(lines, expected)


class DataLogTests(SynchronousTestCase):
    """
    :class:`DataLog`.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        self.reports: list[str] = []

    def test_buffersUntilFlush(self) -> None:
        """
        Records are buffered until :meth:`DataLog.flush` or a full buffer.
        """
        log = DataLog(self.path, buffer_bytes=10)
        self.addCleanup(log.close)
        log.write(b"abc\n")
        self.assertEqual(os.path.getsize(self.path), 0)
        log.flush()
        self.assertEqual(os.path.getsize(self.path), 4)
        log.write(b"0123456789\n")
        self.assertEqual(os.path.getsize(self.path), 15)

    def test_rotation(self) -> None:
        """
        Files never pass the size, records are never split, old files beyond the count are
        removed, and nothing else is lost.
        """
        log = DataLog(self.path, rotate_bytes=25, rotate_keep=2)
        written = [b"record %02d\n" % n for n in range(12)]  # 10 bytes each
        for record in written:
            log.write(record)
        log.close()
        files = [*sorted(glob.glob(self.path + "-*Z")), self.path]
        self.assertEqual(len(files), 3)
        contents = [Path(f).read_bytes() for f in files]
        for content in contents:
            self.assertLessEqual(len(content), 25)
            self.assertTrue(content.endswith(b"\n"))
        self.assertEqual(b"".join(contents), b"".join(written[-6:]))

    def test_hugeRecordRotation(self) -> None:
        """
        A record bigger than a whole file gets a file of its own.
        """
        log = DataLog(self.path, rotate_bytes=5, rotate_keep=5)
        log.write(b"ab\n0123456789\ncd\n")
        log.close()
        older, newer = sorted(glob.glob(self.path + "-*Z"))
        self.assertEqual(Path(older).read_bytes(), b"ab\n")
        self.assertEqual(Path(newer).read_bytes(), b"0123456789\n")
        self.assertEqual(Path(self.path).read_bytes(), b"cd\n")

    def test_reopen(self) -> None:
        """
        After the file is moved away, :meth:`DataLog.reopen` starts a new one at ``PATH``.
        """
        log = DataLog(self.path)
        log.write(b"old\n")
        os.rename(self.path, self.path + ".moved")
        log.reopen()
        log.write(b"new\n")
        log.close()
        self.assertEqual(Path(self.path + ".moved").read_bytes(), b"old\n")
        self.assertEqual(Path(self.path).read_bytes(), b"new\n")

    def test_writeErrors(self) -> None:
        """
        On ``/dev/full`` nothing raises: the loss is counted and reported, not silent.
        """
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        log = DataLog("/dev/full", report=self.reports.append)
        log.write(b"a\nb\n")
        log.flush()
        log.write(b"c\n")
        log.close()
        self.assertEqual((log.dropped_records, log.dropped_bytes), (3, 6))
        self.assertEqual(len(self.reports), 1)
        self.assertRegex(
            self.reports[0], r"cannot write data log /dev/full: No space left on device; 2 records"
        )

    def test_closedIgnoresWrites(self) -> None:
        """
        Writes after :meth:`DataLog.close` are ignored.
        """
        log = DataLog(self.path)
        log.close()
        log.write(b"late\n")
        log.flush()
        self.assertEqual(os.path.getsize(self.path), 0)

    def test_settings(self) -> None:
        """
        Rotation needs a file; the kept count is a whole number of at least 0.
        """
        self.assertRaises(SettingError, check_output, "-", 100)
        check_output("x", 100)
        check_output("-", None)
        self.assertEqual(keep_count("--rotate-keep", "0"), 0)
        error = self.assertRaises(SettingError, keep_count, "--rotate-keep", "-1")
        self.assertEqual(
            str(error), "--rotate-keep must be a whole number of at least 0, not '-1'."
        )
        self.assertTrue(
            re.match(
                r"--rotate-bytes needs", str(self.assertRaises(SettingError, check_output, "-", 1))
            )
        )
