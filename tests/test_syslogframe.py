"""
Tests for :mod:`twisted_journey.syslogframe`: RFC 6587 framing (octet counted and
traditional, mixed per frame), framing errors, and the parsed syslog fields.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_journey import records
from twisted_journey.records import PARTIAL, TRUNCATED, split_marker, unescape
from twisted_journey.settings import SettingError
from twisted_journey.syslogframe import (
    FACILITIES,
    OctetCounter,
    SyslogFramer,
    check_framing,
    new_framer,
    parse,
    parsed_json,
)

NOW = 1795745859.123456
LIMIT = 64


def framer(**kwargs: object) -> SyslogFramer:
    """
    A text-format syslog framer with a small limit.
    """
    options: dict[str, object] = {"max_line_length": LIMIT}
    options.update(kwargs)
    return SyslogFramer("text", "127.0.0.1:5", 1, **options)  # type: ignore[arg-type]


def lines_(out: bytes) -> list[tuple[bytes, bytes]]:
    """
    The (message, marker) of each text record in ``out``.
    """
    result = []
    for record in out.splitlines():
        text, marker = split_marker(record.split(b" ", 3)[3])
        result.append((unescape(text), marker))
    return result


def feedAll(f: SyslogFramer, chunks: list[bytes]) -> bytes:
    """
    Feed every chunk, then finish; all the records.
    """
    return b"".join(f.feed(chunk, NOW) for chunk in chunks) + f.finish(NOW)


# A traditional message: no terminator inside, not starting with a digit or a CR LF,
# not ending with a CR (a CR before the LF is part of the terminator), not empty.
traditional = st.binary(min_size=1, max_size=LIMIT).filter(
    lambda m: (
        b"\n" not in m
        and b"\x00" not in m
        and not m[:1].isdigit()
        and not m.endswith(b"\r")
        and not m.startswith(b"\r\n")
    )
)
counted = st.binary(min_size=1, max_size=LIMIT)
frames = st.lists(
    st.one_of(
        st.tuples(st.just("count"), counted),
        st.tuples(st.sampled_from([b"\n", b"\r\n", b"\x00"]), traditional),
    ),
    max_size=8,
)


def encode(frames: list[tuple[object, bytes]]) -> bytes:
    """
    The frames on the wire.
    """
    out = []
    for how, message in frames:
        if how == "count":
            out.append(b"%d %s" % (len(message), message))
        else:
            assert isinstance(how, bytes)
            out.append(message + how)
    return b"".join(out)


class FramingTests(SynchronousTestCase):
    """
    :class:`SyslogFramer` turns each frame into one record, however the bytes are split.
    """

    @settings(max_examples=300, deadline=None)
    @given(frames, st.data())
    def test_everySplitSameRecords(
        self, frames: list[tuple[object, bytes]], data: st.DataObject
    ) -> None:
        """
        Mixed frames give one record per message, the message exactly, in order, whether
        they arrive in one chunk, a byte at a time, or split anywhere.
        """
        wire = encode(frames)
        expected = [
            (message[:-1] if how == "count" and message.endswith(b"\n") else message, b"")
            for how, message in frames
        ]
        whole = feedAll(framer(), [wire])
        self.assertEqual(lines_(whole), expected)
        self.assertEqual(feedAll(framer(), [wire[i : i + 1] for i in range(len(wire))]), whole)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        self.assertEqual(feedAll(framer(), pieces), whole)

    def test_everyBoundary(self) -> None:
        """
        A stream mixing all three framings, split in two at every byte boundary, gives
        the same records.
        """
        wire = b"5 hello<13>x: lf\n<14>y: crlf\r\n<12>app5: nul 1\x0012 with\nnewline<9>tail"
        whole = feedAll(framer(), [wire])
        self.assertEqual(
            lines_(whole),
            [
                (b"hello", b""),
                (b"<13>x: lf", b""),
                (b"<14>y: crlf", b""),
                (b"<12>app5: nul 1", b""),
                (b"with\nnewline", b""),
                (b"<9>tail", PARTIAL),
            ],
        )
        for cut in range(len(wire) + 1):
            self.assertEqual(feedAll(framer(), [wire[:cut], wire[cut:]]), whole, cut)

    def test_emptyFramesNoRecords(self) -> None:
        """
        A flood of NULs and blank lines holds no message and makes no record; the
        messages around it are recorded.
        """
        f = framer()
        out = f.feed(b"<1>a\x00" + b"\x00" * 100000 + b"\n\r\n" * 1000 + b"<2>b\n", NOW)
        self.assertEqual(lines_(out), [(b"<1>a", b""), (b"<2>b", b"")])
        self.assertIsNone(f.error)

    def test_longTraditionalTruncated(self) -> None:
        """
        A traditional frame over the limit is recorded cut and marked, its rest dropped;
        the next frame is recorded.
        """
        f = framer()
        out = f.feed(b"a" * 100, NOW) + f.feed(b"b" * 100 + b"\n<1>next\n", NOW)
        self.assertEqual(lines_(out), [(b"a" * LIMIT, TRUNCATED), (b"<1>next", b"")])
        self.assertLessEqual(f.held, sys.getsizeof(bytearray(2 * LIMIT)))

    def test_countAtLimit(self) -> None:
        """
        An octet count of exactly the limit is a message.
        """
        f = framer()
        out = f.feed(b"%d %s" % (LIMIT, b"x" * LIMIT), NOW)
        self.assertEqual(lines_(out), [(b"x" * LIMIT, b"")])

    def test_broadcastRelaysWholeMessages(self) -> None:
        """
        With ``keep_lines``, :attr:`complete` holds the chunk's messages octet counted.
        """
        f = framer(keep_lines=True)
        f.feed(b"<1>a\n3 b\nc4 <2>", NOW)
        self.assertEqual(f.complete, b"4 <1>a3 b\nc")
        f.feed(b"d", NOW)
        self.assertEqual(f.complete, b"4 <2>d")


class FramingErrorTests(SynchronousTestCase):
    """
    A bad octet count ends the connection's framing: what came before is recorded, what
    follows is one partial record, and :attr:`SyslogFramer.error` says why.
    """

    def test_notANumber(self) -> None:
        """
        Digits followed by something other than a space are not a count.
        """
        f = framer()
        out = f.feed(b"<1>ok\n12a rest\n", NOW)
        self.assertEqual(lines_(out), [(b"<1>ok", b""), (b"12a rest\n", PARTIAL)])
        self.assertIn("'12a' is not a number", f.error or "")
        self.assertEqual(f.feed(b"5 hello", NOW), b"")
        self.assertEqual(f.finish(NOW), b"")

    def test_zero(self) -> None:
        """
        A count of zero is an error.
        """
        f = framer()
        out = f.feed(b"0 x", NOW)
        self.assertEqual(lines_(out), [(b"0 x", PARTIAL)])
        self.assertIn("octet count 0 is zero", f.error or "")

    def test_overLimit(self) -> None:
        """
        A count above the limit is an error, found before its bytes arrive.
        """
        f = framer()
        self.assertEqual(f.feed(b"6", NOW), b"")
        self.assertIsNone(f.error)
        out = f.feed(b"5 ", NOW)
        self.assertEqual(lines_(out), [(b"65 ", PARTIAL)])
        self.assertIn("65 is above --max-line-length 64", f.error or "")

    def test_hugeCountAllocatesNothing(self) -> None:
        """
        A count of 10^9, given a byte at a time, is refused once it has more digits than
        the limit, holding only those digits; with a limit above it, the count is
        accepted and only the bytes that arrive are held.
        """
        f = framer()
        out = b"".join(f.feed(bytes([c]), NOW) for c in b"1000000000 x")
        self.assertIn("longer than --max-line-length", f.error or "")
        self.assertEqual(lines_(out), [(b"100", PARTIAL)])
        big = framer(max_line_length=2_000_000_000)
        self.assertEqual(big.feed(b"1000000000 <1>", NOW), b"")
        self.assertLess(big.held, 1000)
        self.assertEqual(lines_(big.finish(NOW)), [(b"1000000000 <1>", PARTIAL)])

    def test_lyingCountShort(self) -> None:
        """
        A count shorter than its message frames the rest as the next frame (as rsyslog
        does): nothing merged, nothing lost.
        """
        out = feedAll(framer(), [b"3 <1>abc\n4 <2>d"])
        self.assertEqual(lines_(out), [(b"<1>", b""), (b"abc", b""), (b"<2>d", b"")])

    def test_lyingCountLong(self) -> None:
        """
        A count longer than what was sent leaves a partial record at the end.
        """
        out = feedAll(framer(), [b"4 <1>a", b"50 <2>b"])
        self.assertEqual(lines_(out), [(b"<1>a", b""), (b"50 <2>b", PARTIAL)])


class SettingTests(SynchronousTestCase):
    """
    ``--framing`` is checked once for both engines.
    """

    def test_check(self) -> None:
        """
        ``lines`` and ``syslog`` are framings; anything else, or syslog with raw mode, is
        refused with a sentence.
        """
        self.assertEqual(check_framing("syslog", "line"), "syslog")
        self.assertEqual(check_framing("lines", "raw"), "lines")
        with self.assertRaises(SettingError) as e:
            check_framing("octet", "line")
        self.assertIn("--framing must be one of lines, syslog", str(e.exception))
        with self.assertRaises(SettingError):
            check_framing("syslog", "raw")

    def test_newFramer(self) -> None:
        """
        :func:`new_framer` picks the framer class.
        """
        self.assertIsInstance(new_framer("syslog", "text", "p", 1), SyslogFramer)
        plain = new_framer("lines", "text", "p", 1)
        self.assertIs(type(plain), records.Framer)
        self.assertEqual(plain.feed(b"123 apples\n", NOW).split(b" ", 3)[3], b"123 apples\n")


class ParseTests(SynchronousTestCase):
    """
    :func:`parse` reads RFC 5424 strictly and RFC 3164 leniently, as rsyslog does.
    """

    def test_rfc5424(self) -> None:
        """
        Every RFC 5424 field, structured data raw, ``-`` as ``None``, the BOM removed.
        """
        fields = parse(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Appl\\]ication"][examplePriority@32473 '
            b'class="high"] \xef\xbb\xbfAn application event'
        )
        self.assertEqual(
            fields,
            {
                "facility": b"local4",
                "severity": b"notice",
                "timestamp": b"2003-10-11T22:14:15.003Z",
                "hostname": b"mymachine.example.com",
                "app_name": b"evntslog",
                "procid": None,
                "msgid": b"ID47",
                "structured_data": b'[exampleSDID@32473 iut="3" eventSource="Appl\\]ication"]'
                b'[examplePriority@32473 class="high"]',
                "msg": b"An application event",
            },
        )

    def test_loggerOctetCount(self) -> None:
        """
        What ``logger --octet-count`` sends.
        """
        fields = parse(
            b'<13>1 2026-12-02T05:41:14.123456+00:00 vm app1 4242 - [timeQuality tzKnown="1" '
            b'isSynced="0"] oc 1'
        )
        self.assertEqual(
            (fields["app_name"], fields["procid"], fields["msgid"], fields["msg"]),
            (b"app1", b"4242", None, b"oc 1"),
        )
        self.assertEqual(fields["timestamp"], b"2026-12-02T05:41:14.123456+00:00")

    def test_pythonSysLogHandler(self) -> None:
        """
        Python's ``SysLogHandler`` sends ``<PRI>APP: MSG``: no timestamp, no host name.
        """
        fields = parse(b"<12>app5: nul 1")
        self.assertEqual(
            fields,
            {
                "facility": b"user",
                "severity": b"warning",
                "timestamp": None,
                "hostname": None,
                "app_name": b"app5",
                "procid": None,
                "msgid": None,
                "structured_data": None,
                "msg": b"nul 1",
            },
        )

    def test_rfc3164(self) -> None:
        """
        ``logger --rfc3164``: timestamp, host name, ``APP[PID]:``.
        """
        fields = parse(b"<38>Dec  2 13:00:00 myhost sshd[12]: Accepted key")
        self.assertEqual(
            [fields[k] for k in ("facility", "severity", "timestamp", "hostname")],
            [b"auth", b"info", b"Dec  2 13:00:00", b"myhost"],
        )
        self.assertEqual(
            [fields[k] for k in ("app_name", "procid", "msg")], [b"sshd", b"12", b"Accepted key"]
        )
        noHost = parse(b"<13>Dec  2 13:00:00 cron: job")
        self.assertEqual((noHost["hostname"], noHost["app_name"]), (None, b"cron"))

    def test_defaults(self) -> None:
        """
        A missing or malformed PRI means user.notice and the whole message is the rest;
        a broken RFC 5424 header falls back to the lenient reading.
        """
        for message in [b"plain words", b"<999>x", b"<013>x", b"<12 x", b"<>x"]:
            fields = parse(message)
            self.assertEqual((fields["facility"], fields["severity"]), (b"user", b"notice"))
            self.assertEqual(fields["msg"], message)
        broken = parse(b"<13>1 not-a-time host app - - - m")
        self.assertEqual(broken["timestamp"], None)
        self.assertEqual(broken["msg"], b"1 not-a-time host app - - - m")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=80))
    def test_anyBytes(self, message: bytes) -> None:
        """
        Any message parses, and its JSON is valid and escaped like the line.
        """
        fields = parse(message)
        self.assertIn(fields["facility"], [f.encode() for f in FACILITIES])
        decoded = json.loads(b"{" + parsed_json(message)[1:] + b"}")
        self.assertEqual(list(decoded["syslog"]), list(fields))

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(alphabet='<>13 -[]="\\\\ab\x1b\u202e\xe9', max_size=60).map(
            lambda t: b"<13>1 - h a - - " + t.encode("utf-8")
        )
    )
    def test_jsonHoldsTheFields(self, message: bytes) -> None:
        """
        Each field of :func:`parsed_json`, read back as JSON, is the field :func:`parse`
        found, quotes, backslashes, controls and bidi characters included.
        """
        decoded = json.loads(b"{" + parsed_json(message)[1:] + b"}")["syslog"]
        expected = {
            name: None if value is None else value.decode("utf-8", "replace")
            for name, value in parse(message).items()
        }
        self.assertEqual(decoded, expected)
        self.assertNotIn(b"\x1b", parsed_json(message))
        self.assertNotIn("\u202e".encode(), parsed_json(message))

    def test_jsonRecords(self) -> None:
        """
        With the JSON format each record keeps ``line`` and adds ``syslog``, its texts
        escaped (control and bidi characters as ``\\uXXXX``).
        """
        f = SyslogFramer("json", "127.0.0.1:5", 3)
        out = f.feed(b"<12>app5: nul \xe2\x80\xae 1\x1b\x0021 <13>1 - h a - - - m\xff\n", NOW)
        first, second = [json.loads(r) for r in out.splitlines()]
        self.assertEqual(first["line"], "<12>app5: nul \u202e 1\x1b")
        self.assertIn(b"nul \\u202e 1\\u001b", out)
        self.assertEqual(first["syslog"]["app_name"], "app5")
        self.assertEqual(first["syslog"]["msg"], "nul \u202e 1\x1b")
        self.assertEqual(second["syslog"]["msg"], "m\ufffd")  # the LF ending it dropped
        self.assertEqual(second["syslog"]["hostname"], "h")
        self.assertIn("b64", second)
        text = SyslogFramer("text", "127.0.0.1:5", 3).feed(b"<12>app5: x\x00", NOW)
        self.assertTrue(text.endswith(b" 3 <12>app5: x\n"), text)


class OctetCounterTests(SynchronousTestCase):
    """
    :class:`OctetCounter` frames ``journey send --framing syslog``'s input lines.
    """

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.binary(max_size=LIMIT).map(lambda b: b.replace(b"\n", b"")), max_size=8),
        st.data(),
    )
    def test_roundTrip(self, lines: list[bytes], data: st.DataObject) -> None:
        """
        Lines cut anywhere into chunks come out of a :class:`SyslogFramer` as the same
        messages (empty lines, and the CR of a CR LF, dropped).
        """
        wire = b"".join(line + b"\n" for line in lines)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
        counter = OctetCounter()
        sent = (
            b"".join(
                counter.frames(wire[a:b])
                for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)
            )
            + counter.finish()
        )
        expected = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        got = lines_(feedAll(framer(), [sent]))
        self.assertEqual(got, [(m, b"") for m in expected if m])

    def test_finishAndLimit(self) -> None:
        """
        An unterminated last line is a frame at the end; a line past the limit is refused
        with a sentence, however it arrives.
        """
        counter = OctetCounter(limit=10)
        self.assertEqual(counter.frames(b"ab\r\n\n12 x"), b"2 ab")
        self.assertEqual(counter.frames(b"y"), b"")
        self.assertEqual(counter.finish(), b"5 12 xy")
        with self.assertRaises(ValueError) as e:
            for _ in range(11):
                counter.frames(b"z")
        self.assertIn("longer than 10 bytes", str(e.exception))


class GeneralFramer(SyslogFramer):
    """
    A :class:`SyslogFramer` that frames a frame at a time and makes a record at a time
    (no runs, no chunk-wide records): the path every record of the fast path must match.
    """

    _runs = False


# Pieces of hostile streams: whole frames of every framing (messages of special bytes:
# controls, CR, LF, NUL, quotes, backslashes, bidi, invalid UTF-8, RFC 5424 and 3164
# headers), bad and lying counts, floods of terminators.
_BITS = [b"<", b">", b"1", b"13", b" ", b"\n", b"\r", b"\r\n", b"\x00", b"a", b"\\", b'"',
         b"\xe2\x80\xae", b"\xff", b"\t", b"\x1b", b"9", b"-", b"[x y=\"1\"]", b"\xef\xbb\xbf",
         b"<13>1 2026-12-02T05:41:14Z vm app1 - - ", b"<13>1 - h a - - - ", b"<12>app5: ",
         b"<14>Dec  2 05:41:14 vm app[12]: ", b"<999>"]  # fmt: skip
_MESSAGE = st.lists(st.sampled_from(_BITS), max_size=12).map(b"".join)
_HOSTILE = [b"0 ", b"12a ", b"99999 ", b"1000000000 ", b"05 abcde", b"\x00" * 50,
            b"\n\r\n" * 5, b"\r\n", b"<" + b"x" * 400 + b"\n", b"1", b"12", b" 3 abc",
            b"-1 a", b"+3 abc", b"1_0 0123456789", b"65 " + b"y" * 65, b"99 ", b"301 " + b"z" * 301,
            b"999 "]  # fmt: skip
_PIECE = st.one_of(
    # octet counted (sometimes with rsyslog's LF)
    _MESSAGE.filter(bool).map(lambda m: b"%d %s" % (len(m), m)),
    # traditional, with a PRI (the runs' case) or anything else
    st.tuples(_MESSAGE, st.sampled_from([b"\n", b"\r\n", b"\x00"])).map(
        lambda p: b"<" + p[0] + p[1]
    ),
    st.tuples(_MESSAGE, st.sampled_from([b"\n", b"\r\n", b"\x00"])).map(b"".join),
    st.sampled_from(_HOSTILE),
    st.binary(max_size=12),
)
# Mostly well-formed streams (long runs), sometimes with a hostile piece.
_STREAM = st.lists(_PIECE, max_size=40).map(b"".join)


def _pieces(wire: bytes, cuts: list[int]) -> list[bytes]:
    """
    ``wire`` cut at ``cuts``.
    """
    cuts = sorted(cuts)
    return [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]


class FastPathTests(SynchronousTestCase):
    """
    Runs of frames taken at once and text records made a chunk at a time give exactly
    the records, errors, counts and relayed messages of a frame at a time.
    """

    def assertSame(self, record_format: str, limit: int, pieces: list[bytes]) -> None:
        """
        Feeding ``pieces`` to a fast and a general framer gives the same output for each
        piece and at the end, the same error, count and broadcast messages.
        """
        made = []
        for kind in (SyslogFramer, GeneralFramer):
            f = kind(record_format, "127.0.0.1:5", 7, max_line_length=limit, keep_lines=True)
            steps = []
            for piece in pieces:
                steps.append((f.feed(piece, NOW), f.complete, f.error))
            steps.append((f.finish(NOW), b"", f.error))
            made.append((steps, f.lines, f.received))
        self.assertEqual(made[0], made[1])

    @settings(max_examples=400, deadline=None)
    @given(
        _STREAM,
        st.sampled_from(["text", "json"]),
        st.sampled_from([64, 300, 65536]),
        st.lists(st.integers(0, 2000), max_size=8),
    )
    def test_sameRecords(
        self, wire: bytes, record_format: str, limit: int, cuts: list[int]
    ) -> None:
        """
        Any mix of framings and hostile bytes, cut anywhere, makes the same records.
        """
        self.assertSame(record_format, limit, _pieces(wire, [c for c in cuts if c <= len(wire)]))

    @settings(max_examples=60, deadline=None)
    @given(_STREAM, st.sampled_from(["text", "json"]))
    def test_sameRecordsByteByByte(self, wire: bytes, record_format: str) -> None:
        """
        The same, a byte at a time.
        """
        self.assertSame(record_format, 64, [wire[i : i + 1] for i in range(len(wire))])

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([b"0", b"13", b"191", b"192", b"999", b"013", b""]),
                st.sampled_from([b"-", b"2026-12-02T05:41:14Z", b"2026-12-02T05:41:14.123+01:00"]),
                st.lists(
                    st.sampled_from([b"-", b"h", b'"', b"\\", b"-x", b"a" * 49, b"--"]),
                    min_size=4,
                    max_size=4,
                ),
                st.sampled_from(
                    [b"-", b'[x y="1"]', b'[x@1 a="q\\"uo\\]te" b=""][y]', b"[x", b"-[x]"]
                ),
                st.one_of(
                    st.just(b""),
                    st.text(alphabet='ab "\\-[]', max_size=12).map(lambda t: b" " + t.encode()),
                ),
            ).map(lambda m: b"<%s>1 %s %s %s%s" % (m[0], m[1], b" ".join(m[2]), m[3], m[4])),
            min_size=1,
            max_size=20,
        ),
        st.sampled_from([b"\n", b"\x00", b"count"]),
    )
    def test_sameParsedFields(self, messages: list[bytes], how: bytes) -> None:
        """
        RFC 5424 messages (valid or nearly: fields absent, too long, written ``-x``,
        quotes and backslashes anywhere, PRIs out of range) get the same parsed fields
        in JSON records, through the chunk's RFC 5424 fast path and one at a time.
        """
        self.assertSameFields(messages, how)

    def assertSameFields(self, messages: list[bytes], how: bytes) -> None:
        """
        ``messages``, framed ``how`` (a terminator, or ``b"count"``), make the same JSON
        records both ways, in one chunk and in two.
        """
        if how == b"count":
            wire = b"".join(b"%d %s" % (len(m), m) for m in messages)
        else:
            wire = how.join(messages) + how
        self.assertSame("json", 65536, [wire])
        self.assertSame("json", 65536, [wire[:7], wire[7:]])

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([b"", b"<13>", b"<192>", b"<0>", b"<01>", b"<191>", b"<"]),
                st.sampled_from(
                    [
                        b"",
                        b"Dec  2 05:41:14 ",
                        b"Dec 12 05:41:14",
                        b"2026-12-02T05:41:14Z ",
                        b"2026-12-02T05:41:14.5+01:00 ",
                        b"Dec  2 05:41:14 -",
                    ]
                ),
                st.sampled_from([b"", b"vm ", b'v"m ', b"a:b ", b"[x ", b"vm\\ "]),
                st.sampled_from(
                    [
                        b"",
                        b"app: ",
                        b"app:",
                        b"app[12]: ",
                        b"app[12] ",
                        b"app[12]:",
                        b"app[] ",
                        b"a" * 49 + b": ",
                        b"ap\\p: ",
                        b'a"[1"]: ',
                    ]
                ),
                st.lists(
                    st.sampled_from([b"x", b" ", b'"', b"\\", b":", b"-", b"1 ", b"[2]"]),
                    max_size=6,
                ).map(b"".join),
            ).map(b"".join),
            min_size=1,
            max_size=20,
        ),
        st.sampled_from([b"\n", b"\x00", b"count"]),
    )
    def test_sameLenientFields(self, messages: list[bytes], how: bytes) -> None:
        """
        RFC 3164 messages, or anything read as one (PRI, time stamp, host name and tag
        present or not, well formed or not), get the same parsed fields in JSON
        records, through the chunk's fast path and one at a time.
        """
        self.assertSameFields(messages, how)

    def test_realSenders(self) -> None:
        """
        What ``logger --octet-count``, rsyslog's octet-counted forwarding (a LF ending
        each message), ``logger -T`` (CR LF too) and Python's ``SysLogHandler`` (NUL)
        send, in chunks of every size, makes the same records both ways.
        """
        message = b'<13>1 2026-12-02T05:41:14Z vm app1 - - [timeQuality tzKnown="1"] n %d'
        streams = [
            b"".join(b"%d %s" % (len(message % i), message % i) for i in range(300)),
            b"".join(b"%d %s\n" % (len(message % i) + 1, message % i) for i in range(300)),
            b"".join(message % i + b"\n" for i in range(300)),
            b"".join(message % i + b"\r\n" for i in range(300)),
            b"".join(b"<12>app5: nul %d\x00" % i for i in range(300)),
            b"".join(b"<13>x %d\r\n<12>y %d\r\x00" % (i, i) for i in range(300)),
        ]
        for wire in streams:
            for size in [1, 7, 100, 1000, 4096, 65536]:
                pieces = [wire[i : i + size] for i in range(0, len(wire), size)]
                for record_format in ["text", "json"]:
                    self.assertSame(record_format, 65536, pieces)

    def test_runsTaken(self) -> None:
        """
        A chunk of whole octet-counted frames, and one of whole newline- or
        NUL-terminated frames starting with a PRI, is each framed by one run.
        """
        taken: list[tuple[str, int, int]] = []

        class Watched(SyslogFramer):
            def _countedRun(self, buffer: bytes, position: int, messages: list[bytes]) -> int:
                end = super()._countedRun(buffer, position, messages)
                taken.append(("counted", position, end))
                return end

            def _terminatedRun(self, buffer: bytes, position: int, *rest: Any) -> int:
                end = super()._terminatedRun(buffer, position, *rest)
                taken.append(("terminated", position, end))
                return end

        counted = b"".join(b"%d <13>x %d" % (len(b"<13>x %d" % i), i) for i in range(100))
        crlf = b"".join(b"<13>x %d\r\n" % i for i in range(100))
        nul = b"".join(b"<13>x %d\n<12>y %d\x00" % (i, i) for i in range(100))
        for wire in [counted, crlf, nul]:
            out = Watched("text", "127.0.0.1:5", 1).feed(wire, NOW)
            self.assertEqual(len(out.splitlines()), wire.count(b"<"))
        self.assertEqual(
            taken,
            [
                ("counted", 0, len(counted)),
                ("terminated", 0, len(crlf)),
                ("terminated", 0, len(nul)),
            ],
        )
