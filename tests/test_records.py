"""
Tests for :mod:`twisted_journey.records` (escaping, record formats, framing) and
:mod:`twisted_journey.datalog` (buffering, rotation, reopening, write errors).
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import subprocess
import sys
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

#: The checkout, where ``twisted_journey`` is imported from.
ROOT = str(Path(__file__).resolve().parent.parent)

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


#: Bytes that need escaping, alone or in runs (and one that does not).
SPECIALS = [
    b"\x00", b"\x1b", b"\t", b"\n", b"\r", b"\x7f", b"\\", b"\xff", b"\xc3", b'"',
    "\u0085".encode(), "\u202e".encode(), "\u2028".encode(), "\U000e0001".encode(), b"a",
]  # fmt: skip


def referenceEscape(data: bytes, keepNewlines: bool = False) -> bytes:
    """
    :func:`escape` done the slow way, a character at a time, from the table.
    """
    out = []
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        special = (
            unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
            or char == "\\"
            or 0xDC80 <= code <= 0xDCFF
        )
        if special and not (keepNewlines and char == "\n"):
            out.append(records._text_escape(code))
        else:
            out.append(char)
    return "".join(out).encode("utf-8")


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

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
    @given(st.lists(st.sampled_from(SPECIALS), max_size=30), st.booleans())
    def test_runs(self, pieces: list[bytes], keepNewlines: bool) -> None:
        """
        Runs of special characters (the fast path for floods of control bytes) are
        escaped exactly as the table says for each character, in text and in JSON.
        """
        data = b"".join(pieces)
        self.assertEqual(escape(data, keepNewlines), referenceEscape(data, keepNewlines))
        text = data.decode("utf-8", "replace")
        self.assertEqual(
            records.json_string(text, keepNewlines),
            b"".join(records.json_string(c, keepNewlines) for c in text),
        )
        self.assertEqual(json.loads(b'"%s"' % records.json_string(text)), text)

    def test_flood(self) -> None:
        """
        Floods of one control byte, of undecodable bytes and of mixed controls escape to
        the documented sequences.
        """
        self.assertEqual(escape(b"\x00" * 1000), b"\\x00" * 1000)
        self.assertEqual(escape(b"\xff\xfe" * 500), b"\\xff\\xfe" * 500)
        self.assertEqual(escape(b"\t\r\n\\\x1b\x7f" * 3), b"\\t\\r\\n\\\\\\x1b\\x7f" * 3)
        self.assertEqual(records.json_string('\x00\x7f\t"' * 2), b'\\u0000\\u007f\\t\\"' * 2)
        # Each path: ASCII and undecodable bytes only (codec), text dense with controls
        # (one translate), sparse specials among other text (runs).
        for data in [
            b"\xffa\x00" * 100,
            b"caf\xe9 \x00\n\\",
            ("\u00e9\x00" * 100).encode(),
            ("\u65e5\u5fd7 \u202e\t" * 3 + "x" * 200).encode() + b"\xff",
            b"\n".join([("\u00e9\x1b" * 20).encode(), b"\x00\xfe" * 10, b"plain"]),
        ]:
            for keepNewlines in (False, True):
                self.assertEqual(
                    escape(data, keepNewlines), referenceEscape(data, keepNewlines), data
                )
                text = data.decode("utf-8", "replace")
                self.assertEqual(json.loads(b'"%s"' % records.json_string(text)), text)

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


def heldSize(framer: Framer) -> int:
    """
    What a framer's buffers take, as ``sys.getsizeof`` counts them: every ``bytes``,
    ``bytearray`` or list of them in its slots.
    """
    total = 0
    for name in Framer.__slots__:
        value = getattr(framer, name, None)
        if isinstance(value, (bytes, bytearray)):
            total += sys.getsizeof(value)
        elif isinstance(value, list):
            total += sys.getsizeof(value) + sum(sys.getsizeof(item) for item in value)
    return total


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
        A JSON record holds the line's text as a JSON string, with JSON's own escapes.
        """
        framer = Framer("json", "[::1]:8", 2)
        out = framer.feed(b'say "hi"\\\t\n', NOW)
        self.assertEqual(
            out,
            b'{"time":"2026-11-27T02:17:39.123456Z","peer":"[::1]:8","conn":2,'
            b'"line":"say \\"hi\\"\\\\\\t"}\n',
        )
        self.assertEqual(
            json.loads(out),
            {
                "time": "2026-11-27T02:17:39.123456Z",
                "peer": "[::1]:8",
                "conn": 2,
                "line": 'say "hi"\\\t',
            },
        )

    def test_jsonText(self) -> None:
        """
        Valid UTF-8 is written as it is (Chinese included); controls, DEL, C1 controls,
        format characters and separators as ``\\uNNNN`` (a surrogate pair above U+FFFF),
        so the record stays one clean line; and there is no ``b64`` field.
        """
        framer = Framer("json", "p", 1)
        text = "日志 café \x00\x1b[31m\x7f \u0085\u202eevil\u2028 \U000e0001 {x}"
        out = framer.feed(text.encode() + b"\n", NOW)
        assertClean(self, out[:-1])
        self.assertIn("日志 café \\u0000\\u001b[31m\\u007f \\u0085\\u202eevil\\u2028".encode(), out)
        self.assertIn(b"\\udb40\\udc01 {x}", out)
        self.assertEqual(json.loads(out)["line"], text)
        self.assertNotIn("b64", json.loads(out))

    def test_jsonInvalidUtf8(self) -> None:
        """
        A line that is not valid UTF-8 has its text with U+FFFD for the bad bytes, and its
        exact bytes in ``b64``; the other lines of the chunk have no ``b64``.
        """
        framer = Framer("json", "p", 1)
        out = framer.feed(b"ok\nbad \xff\xfe caf\xc3\xa9\x00\nfine\n", NOW)
        fields = [json.loads(record) for record in out.splitlines()]
        self.assertEqual([f["line"] for f in fields], ["ok", "bad \ufffd\ufffd café\x00", "fine"])
        self.assertEqual([f.get("b64") for f in fields], [None, "YmFkIP/+IGNhZsOpAA==", None])
        self.assertEqual(base64.b64decode(fields[1]["b64"]), b"bad \xff\xfe caf\xc3\xa9\x00")
        self.assertEqual(framer.lines, 3)

    def test_jsonMarkers(self) -> None:
        """
        In JSON a cut line has ``"truncated":true`` and a partial one ``"partial":true``,
        rather than a marker inside the text (which a client could send itself).
        """
        framer = Framer("json", "p", 1, max_line_length=4)
        out = framer.feed(b"0123456789\n\\[partial]\nhalf", NOW) + framer.finish(NOW)
        fields = [json.loads(record) for record in out.splitlines()]
        self.assertEqual(
            [(f["line"], f.get("truncated"), f.get("partial")) for f in fields],
            [("0123", True, None), ("\\[pa", True, None), ("half", None, True)],
        )

    def test_peerEscaped(self) -> None:
        """
        A peer name is escaped like client data in both formats: whatever it holds, it
        makes no extra field and no extra record.
        """
        forged = '1.2.3.4","conn":1,"line":"forged"}\n{"time":"x:1 2\x1b\\'
        text = Framer("text", forged, 7).feed(b"real\n", NOW)
        self.assertEqual(text.count(b"\n"), 1)
        assertClean(self, text[:-1])
        _, peer, conn, line = text[:-1].split(b" ", 3)
        self.assertEqual((unescape(peer).decode(), conn, line), (forged, b"7", b"real"))
        out = Framer("json", forged, 7).feed(b"real\n", NOW)
        self.assertEqual(out.count(b"\n"), 1)
        assertClean(self, out[:-1])
        self.assertEqual(
            json.loads(out),
            {"time": "2026-11-27T02:17:39.123456Z", "peer": forged, "conn": 7, "line": "real"},
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

    def test_plainJsonBuildsNoTable(self) -> None:
        """
        Plain ASCII lines and peers go into JSON records without building the escaping
        tables (a scan of all of Unicode, about 0.2 s of CPU once per process).
        """
        script = (
            "from twisted_journey import records\n"
            "records.Framer('json', '127.0.0.1:5', 1).feed(b'plain text line\\n' * 3, 1.0)\n"
            "print(records._unsafe.cache_info().currsize)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, check=True, cwd=ROOT
        )
        self.assertEqual(result.stdout, b"0\n", result.stderr)

    def test_trickledLineMemory(self) -> None:
        """
        A line trickled one byte per read costs about what it weighs: the framer's
        buffers (as ``sys.getsizeof`` counts them) stay under the limit plus one read,
        and a short trickled line holds little more than its length; not a ``bytes``
        object (33 bytes and more) per byte.
        """
        for limit, length in ((65536, 65000), (65536, 10_000), (1000, 5000)):
            framer = Framer("text", "127.0.0.1:1", 1, max_line_length=limit)
            empty = heldSize(framer)
            out = b"".join(framer.feed(b"x", NOW) for _ in range(length))
            held = heldSize(framer) - empty
            overhead = sys.getsizeof(bytearray())
            self.assertLessEqual(held, limit + 1 + overhead, (limit, length))
            self.assertLessEqual(held, 2 * length + 256 + overhead, (limit, length))
            out += framer.feed(b"\n", NOW)
            expected = b"x" * min(limit, length) + (TRUNCATED if length > limit else b"")
            self.assertEqual([r[3] for r in parseText(out)], [expected])
            self.assertEqual(heldSize(framer), empty)

    def test_trickledLineTime(self) -> None:
        """
        A line of 200,000 bytes sent one byte per read, then a newline, is one record: held
        in a buffer that grows by doubling, it takes linear time (no copy of the whole
        line per byte, which would take minutes here).
        """
        framer = Framer("json", "p", 1, max_line_length=1 << 20)
        for _ in range(200_000):
            self.assertEqual(framer.feed(b"y", NOW), b"")
        self.assertEqual(json.loads(framer.feed(b"\r\n", NOW))["line"], "y" * 200_000)

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
                fields = json.loads(record)
                if "b64" in fields:
                    raw = base64.b64decode(fields["b64"])
                    self.assertEqual(fields["line"], raw.decode("utf-8", "replace"))
                else:
                    raw = fields["line"].encode("utf-8")
                marker = TRUNCATED if fields.get("truncated") else b""
                marker = PARTIAL if fields.get("partial") else marker
                lines.append((raw, marker))
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


class GeneralFramer(Framer):
    """
    A :class:`Framer` that never takes the fast path for chunks of plain lines.
    """

    __slots__ = ()

    def _plainChunk(self, data: bytes, now: float) -> None:
        return None


class CountingFramer(Framer):
    """
    A :class:`Framer` counting the chunks its fast path for plain lines took.
    """

    __slots__ = ("fast",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fast = 0

    def _plainChunk(self, data: bytes, now: float) -> tuple[bytes, bytes, memoryview] | None:
        out = super()._plainChunk(data, now)
        self.fast += out is not None
        return out


#: Lines of mostly plain text, now and then a byte to escape, a CR LF or a long line.
textLines = st.lists(
    st.one_of(
        st.just(b"plain line of text, as most are"),
        st.binary(max_size=30),
        st.lists(st.sampled_from([*SPECIALS, b"x" * 40, b"\r"]), max_size=6).map(b"".join),
        st.integers(0, 5000).map(lambda n: b"y" * n),
    ),
    max_size=80,
)


class PlainChunkTests(SynchronousTestCase):
    """
    Chunks of plain lines take a fast path, which makes the records the general path makes.
    """

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
    @given(
        st.lists(st.sampled_from([*SPECIALS, b"\n", b"z" * 1000]), max_size=8),
        st.integers(0, 5000),
        st.booleans(),
    )
    def test_plainCheck(self, pieces: list[bytes], plain: int, json: bool) -> None:
        """
        A chunk is plain exactly when it holds nothing but printable ASCII other than the
        backslash (and in JSON the double quote) and newlines, however long it is.
        """
        data = b"p" * plain + b"".join(pieces)
        allowed = records._JSON_PLAIN_LINES if json else records._PLAIN_LINES
        plain = not data.translate(None, allowed)
        self.assertEqual(records._plain_lines(data, json), plain)
        if b"\r" not in data:
            self.assertEqual(records._plain_lines(data, json, has_cr=False), plain)

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)
    @given(
        textLines,
        st.lists(st.integers(1, 9000) | st.integers(1, 3), max_size=12),
        st.sampled_from(records.FORMATS),
        st.sampled_from([30, 4096, 65536]),
        st.booleans(),
    )
    def test_sameRecords(
        self, lines: list[bytes], cuts: list[int], recordFormat: str, limit: int, crlf: bool
    ) -> None:
        """
        Whatever the lines and however they are cut into chunks, the fast path makes the
        records, the count and the held line that the general path makes.
        """
        stream = (b"\r\n" if crlf else b"\n").join(lines)
        fast = Framer(recordFormat, "127.0.0.1:1", 1, max_line_length=limit)
        general = GeneralFramer(recordFormat, "127.0.0.1:1", 1, max_line_length=limit)
        position = 0
        for cut in [*cuts, len(stream)]:
            chunk = stream[position : position + cut]
            position += cut
            self.assertEqual(fast.feed(chunk, NOW), general.feed(chunk, NOW))
            self.assertEqual((fast.lines, fast.held), (general.lines, general.held))
        self.assertEqual(fast.finish(NOW), general.finish(NOW))

    def test_plainChunksTakeIt(self) -> None:
        """
        Chunks of plain lines, large or small, in text or JSON, with LF or CR LF, a line
        held across chunks or not, all take the fast path.
        """
        for recordFormat in records.FORMATS:
            for end in (b"\n", b"\r\n"):
                framer = CountingFramer(recordFormat, "127.0.0.1:1", 1)
                stream = b"".join(b"line %d of plain text%s" % (n, end) for n in range(2000))
                for position in range(0, len(stream), 5000):
                    framer.feed(stream[position : position + 5000], NOW)
                framer.feed(b"short\n", NOW)
                framer.feed(b"cut" + end[:-1], NOW)  # no newline: held
                framer.feed(b"\nafter\n", NOW)
                self.assertEqual(framer.fast, len(range(0, len(stream), 5000)) + 2)
                self.assertEqual(framer.lines, 2003)


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
