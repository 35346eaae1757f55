# -*- test-case-name: tests.test_records -*-
"""
The data-log record format of journey-mux, stdlib only: escaping, timestamps, text and JSON
records, and the framing of received bytes into records.

Both engines (:mod:`twisted_journey.mux` and :mod:`twisted_journey.fallback.mux`) feed
what they receive to a :class:`Framer` and write what it returns, so their records are
byte for byte the same.

Records, one per line::

    text:  TIME PEER CONN LINE
    json:  {"time":"TIME","peer":"PEER","conn":CONN,"line":"LINE"}

``TIME`` is ISO-8601 UTC with microseconds and ``Z`` (``2026-11-27T02:17:39.123456Z``),
``PEER`` is ``host:port`` (``[v6]:port``, or ``unix``), ``CONN`` the connection's number
since the server started, ``LINE`` the received line passed through :func:`escape` (in
JSON, that same text as a JSON string).

Escaping is reversible (:func:`unescape`) and leaves no byte in a record that a terminal,
a log parser or a JSON reader would take for structure:

==========================================  ========================================
received                                    recorded
==========================================  ========================================
printable UTF-8 text (Chinese included)     unchanged
``\\`` (backslash)                           ``\\\\``
tab, CR, LF (LF only in ``--mode raw``)     ``\\t``, ``\\r``, ``\\n``
other ASCII controls (NUL, ESC...), DEL     ``\\xNN``
a byte that is not valid UTF-8              ``\\xNN``
C1 controls, format characters, separators  ``\\uNNNN`` (``\\UNNNNNNNN`` above U+FFFF)
==========================================  ========================================

"Format characters" are Unicode category Cf: bidi overrides such as U+202E, zero-width
characters, the BOM; "separators" are U+2028 and U+2029 (categories Zl and Zp).

Markers, which :func:`escape` never produces (it writes every backslash as ``\\\\``), end a
line that is not complete: :data:`TRUNCATED` (the line was longer than the limit; the rest
up to the next newline was discarded) and :data:`PARTIAL` (the connection ended before a
newline).
"""

from __future__ import annotations

import functools
import re
import sys
import time
import unicodedata

__all__ = [
    "FORMATS",
    "MODES",
    "PARTIAL",
    "TRUNCATED",
    "Framer",
    "escape",
    "format_records",
    "split_marker",
    "timestamp",
    "unescape",
]

FORMATS = ("text", "json")
MODES = ("line", "raw")

#: Ends a line that was longer than the limit and was cut there.
TRUNCATED = b"\\[truncated]"
#: Ends the last line of a connection that closed before sending a newline.
PARTIAL = b"\\[partial]"

# Bytes that may be copied to a record as they are: printable ASCII except the backslash.
# Anything else (controls, backslash, DEL, any byte >= 0x80) sends a chunk down the slow
# path.  Deleting the plain bytes with bytes.translate and looking at what is left is about
# ten times faster than a regular-expression search for the others.
_PLAIN = bytes(range(0x20, 0x5C)) + bytes(range(0x5D, 0x7F))
_PLAIN_LINES = _PLAIN + b"\n"

_NAMED = {"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"}
_UNNAMED = {"t": b"\t", "r": b"\r", "n": b"\n", "\\": b"\\"}


@functools.cache
def _special(keep_newlines: bool) -> re.Pattern[str]:
    """
    The characters :func:`escape` replaces, as a compiled class (built on first use: the
    Unicode scan takes about 0.1 s).
    """
    wanted = ("Cc", "Cf", "Zl", "Zp")
    category = unicodedata.category
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if category(chr(code)) in wanted or code == 0x5C or 0xDC80 <= code <= 0xDCFF:
            if code == 0x0A and keep_newlines:
                continue
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    members = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return re.compile(f"[{members}]")


def _replace(match: re.Match[str]) -> str:
    """
    The escape sequence for one special character.
    """
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, from surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(data: bytes, keep_newlines: bool = False) -> bytes:
    """
    ``data`` escaped as described in this module's docstring: valid UTF-8 holding no
    control, format or separator character.

    :param keep_newlines: leave ``\\n`` bytes as they are (to split the result into lines
        afterwards); otherwise they become ``\\n``.
    """
    if not data.translate(None, _PLAIN_LINES if keep_newlines else _PLAIN):
        return data
    text = data.decode("utf-8", "surrogateescape")
    return _special(keep_newlines).sub(_replace, text).encode("utf-8")


_ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|(.))", re.DOTALL)


def unescape(text: bytes) -> bytes:
    """
    The bytes that :func:`escape` turned into ``text``.

    :raises ValueError: for a backslash sequence :func:`escape` does not write (a marker
        included: remove it first with :func:`split_marker`).
    """
    out = bytearray()
    position = 0
    decoded = text.decode("utf-8")
    for match in _ESCAPE.finditer(decoded):
        out += decoded[position : match.start()].encode("utf-8")
        position = match.end()
        byte, short, wide, other = match.groups()
        if byte is not None:
            out.append(int(byte, 16))
        elif short is not None or wide is not None:
            out += chr(int(short or wide, 16)).encode("utf-8")
        elif other in _UNNAMED:
            out += _UNNAMED[other]
        else:
            raise ValueError(f"unknown escape sequence \\{other} at {match.start()}")
    out += decoded[position:].encode("utf-8")
    return bytes(out)


def split_marker(line: bytes) -> tuple[bytes, bytes]:
    """
    Split an escaped line into its text and its marker (:data:`TRUNCATED`,
    :data:`PARTIAL`, or ``b""`` for a complete line).
    """
    for marker in (TRUNCATED, PARTIAL):
        if line.endswith(marker):
            text = line[: -len(marker)]
            # The marker's backslash is real only if an even number of backslashes precede it.
            if (len(text) - len(text.rstrip(b"\\"))) % 2 == 0:
                return text, marker
    return line, b""


_second = -1
_second_text = b""


def timestamp(seconds: float) -> bytes:
    """
    ``seconds`` since the epoch as ISO-8601 UTC with microseconds: ``2026-11-27T02:17:39.123456Z``.
    """
    global _second, _second_text
    micros = round(seconds * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    if whole != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)).encode()
        _second = whole
    return b"%s%06dZ" % (_second_text, fraction)


def format_records(record_format: str, stamp: bytes, origin: bytes, body: bytes) -> bytes:
    """
    Records for escaped lines, each ending in ``\\n``.

    :param record_format: ``"text"`` or ``"json"``.
    :param stamp: from :func:`timestamp`.
    :param origin: ``PEER CONN`` as bytes: ``b"127.0.0.1:53122 17"``.
    :param body: escaped lines joined with ``\\n`` (there is one record more than newlines).
    """
    if record_format == "text":
        prefix = b"%s %s " % (stamp, origin)
        return b"".join((prefix, body.replace(b"\n", b"\n" + prefix), b"\n"))
    peer, _, conn = origin.partition(b" ")
    prefix = b'{"time":"%s","peer":"%s","conn":%s,"line":"' % (stamp, peer, conn)
    if b"\\" in body or b'"' in body:
        body = body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b"".join((prefix, body.replace(b"\n", b'"}\n' + prefix), b'"}\n'))


#: The pending line of every framer that holds none: shared, so that an idle connection
#: carries no list of its own.  Only a non-empty, framer-owned list is ever appended to.
_NOTHING_PENDING: list[bytes] = []


class Framer:
    """
    Turns the bytes one connection sends into data-log records, a received chunk at a
    time: one timestamp and a handful of ``bytes`` operations per chunk, no Python call
    per line.

    In ``line`` mode a line ends at ``\\n`` and one ``\\r`` before it is removed; a line
    longer than ``max_line_length`` bytes is recorded cut to that length and marked
    :data:`TRUNCATED`, and the rest of it, up to the next newline, is discarded (the
    connection carries on).  In ``raw`` mode every chunk is one record (cut the same way).

    :ivar lines: records made so far.
    :ivar received: bytes received so far.
    :ivar complete: when ``keep_lines`` is true, the complete lines of the last chunk,
        each ending in ``\\n`` (what ``--broadcast`` relays); else ``b""``.
    """

    __slots__ = (
        "_discarding",
        "_format",
        "_keep_lines",
        "_max",
        "_origin",
        "_pending",
        "_pending_size",
        "_raw",
        "complete",
        "lines",
        "received",
    )

    def __init__(
        self,
        record_format: str,
        peer: str,
        conn: int,
        *,
        mode: str = "line",
        max_line_length: int = 65536,
        keep_lines: bool = False,
    ) -> None:
        if record_format not in FORMATS:
            raise ValueError(f"unknown record format {record_format!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self._format = record_format
        self._origin = b"%s %d" % (peer.encode("ascii", "backslashreplace"), conn)
        self._raw = mode == "raw"
        self._max = max_line_length
        self._keep_lines = keep_lines
        # An unterminated line, as the chunks that brought it: joined once, when its
        # newline comes, so a client trickling a long line costs linear, not quadratic, time.
        self._pending: list[bytes] = _NOTHING_PENDING
        self._pending_size = 0
        self._discarding = False
        self.complete = b""
        self.lines = 0
        self.received = 0

    def _records(self, stamp: bytes, body: bytes, newlines: int = 0) -> bytes:
        """
        Records for ``body`` (escaped lines joined with ``\\n``, ``newlines`` of them);
        counts them.
        """
        self.lines += newlines + 1
        return format_records(self._format, stamp, self._origin, body)

    def feed(self, data: bytes, now: float) -> bytes:
        """
        The records for a chunk received at ``now`` (seconds since the epoch); ``b""``
        when it completes no line.
        """
        self.received += len(data)
        if self._keep_lines:
            self.complete = b""
        if self._raw:
            if not data:
                return b""
            over = len(data) > self._max
            body = escape(data[: self._max]) + TRUNCATED if over else escape(data)
            return self._records(timestamp(now), body)
        if self._pending:
            if b"\n" not in data:
                self._pending.append(data)
                self._pending_size += len(data)
                if self._pending_size <= self._max:
                    return b""
                data = self._take_pending()
                return self._hold(data, now)
            data = self._take_pending() + data
        end = data.rfind(b"\n")
        if end < 0:
            return self._hold(data, now)
        rest = data[end + 1 :]
        complete = data[:end]
        if b"\r" in complete:
            complete = complete.replace(b"\r\n", b"\n")
            if complete.endswith(b"\r"):
                complete = complete[:-1]
        if self._discarding:
            # The rest of a truncated line, up to its newline, is dropped.
            self._discarding = False
            cut = complete.find(b"\n")
            if cut < 0:
                self.complete = b""
                return self._hold(rest, now)
            complete = complete[cut + 1 :]
        if len(complete) > self._max and self._hasLongLine(complete):
            lines = complete.split(b"\n")
            body = b"\n".join(
                escape(line[: self._max]) + TRUNCATED if len(line) > self._max else escape(line)
                for line in lines
            )
            complete = b"\n".join(line[: self._max] for line in lines)
            newlines = len(lines) - 1
        else:
            # One translate both finds the bytes that need escaping and counts the lines.
            special = complete.translate(None, _PLAIN)
            newlines = special.count(b"\n")
            body = complete if newlines == len(special) else escape(complete, keep_newlines=True)
        if self._keep_lines:
            self.complete = complete + b"\n"
        out = self._records(timestamp(now), body, newlines)
        return out + self._hold(rest, now) if rest else out

    def _hasLongLine(self, complete: bytes) -> bool:
        """
        Whether a line of ``complete`` is longer than the limit: one ``rfind`` per window
        of the limit's size, not one call per line.
        """
        limit = self._max
        position = 0
        while len(complete) - position > limit:
            newline = complete.rfind(b"\n", position, position + limit + 1)
            if newline < 0:
                return True
            position = newline + 1
        return False

    def _hold(self, data: bytes, now: float) -> bytes:
        """
        Keep ``data``, an unterminated line, for the next chunk, or record it truncated if
        it is already too long.
        """
        if self._discarding:
            return b""
        # One byte more may be the CR of a CR-LF still to come, which is not counted.
        if len(data) > self._max + data.endswith(b"\r"):
            self._discarding = True
            return self._records(timestamp(now), escape(data[: self._max]) + TRUNCATED)
        if data:
            self._pending = [data]
            self._pending_size = len(data)
        return b""

    def _take_pending(self) -> bytes:
        """
        The unterminated line held so far, joined; nothing is held afterwards.
        """
        pending = b"".join(self._pending)
        self._pending = _NOTHING_PENDING
        self._pending_size = 0
        return pending

    def finish(self, now: float) -> bytes:
        """
        The record for an unterminated last line, marked :data:`PARTIAL`, when the
        connection ends at ``now``; ``b""`` when there is none.  Later calls return ``b""``.
        """
        pending = self._take_pending()
        if not pending:
            return b""
        return self._records(timestamp(now), escape(pending) + PARTIAL)
