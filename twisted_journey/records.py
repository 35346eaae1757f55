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
``PEER`` is ``host:port`` (``[v6]:port``, or ``unix``), ``CONN`` the connection's number,
unique for the life of the server.  In text records ``LINE`` (and ``PEER``) are passed through
:func:`escape`.  In JSON records ``line`` is the line's text as a JSON string (JSON's own
escapes, see :func:`json_string`); when the line is not valid UTF-8 its text has
U+FFFD for each undecodable byte and a ``"b64"`` field holds the exact bytes (base64); a
line cut at the limit has ``"truncated":true`` and a connection's unterminated last line
``"partial":true``.

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

In text records, markers, which :func:`escape` never produces (it writes every backslash
as ``\\\\``), end a line that is not complete: :data:`TRUNCATED` (the line was longer
than the limit; the rest up to the next newline was discarded) and :data:`PARTIAL` (the
connection ended before a newline).

Hostile bytes stay cheap: ASCII is escaped by C codecs (``unicode_escape``, ``json``'s
encoder) in one pass; text with other characters by one regular expression that finds
each run of special characters, rewritten by C code.  A flood of NULs or of any mix of
control bytes costs a few C loops, not a Python call per byte.
"""

from __future__ import annotations

import binascii
import functools
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring_ascii as _json_ascii

from twisted_journey.settings import DEFAULT_MAX_LINE_LENGTH

__all__ = [
    "FORMATS",
    "MODES",
    "PARTIAL",
    "TRUNCATED",
    "Framer",
    "escape",
    "json_line",
    "json_string",
    "printable",
    "split_marker",
    "timestamp",
    "unescape",
]

FORMATS = ("text", "json")
MODES = ("line", "raw")

#: Ends a line that was longer than the limit and was cut there (text records).
TRUNCATED = b"\\[truncated]"
#: Ends the last line of a connection that closed before sending a newline (text records).
PARTIAL = b"\\[partial]"

#: The JSON fields that say the same as the markers.
_JSON_MARKS = {TRUNCATED: b',"truncated":true', PARTIAL: b',"partial":true'}

# Bytes that may be copied to a record as they are: printable ASCII except the backslash
# (and, in JSON, the double quote).  Anything else (controls, backslash, DEL, any byte
# >= 0x80) sends a chunk down the slow path.  Deleting the plain bytes with
# bytes.translate and looking at what is left is about ten times faster than a
# regular-expression search for the others.
_PLAIN = bytes(range(0x20, 0x5C)) + bytes(range(0x5D, 0x7F))
_PLAIN_LINES = _PLAIN + b"\n"
_JSON_PLAIN = _PLAIN.replace(b'"', b"")
_JSON_PLAIN_LINES = _JSON_PLAIN + b"\n"
_HIGH = bytes(range(0x80, 0x100))
# The ASCII bytes that are not plain, the newline apart: tab, CR and backslash first (the
# ones most often there), then the other controls and DEL.
# (Looked for as ints: ``0x09 in data`` is one memchr, where ``b"\t" in data`` first
# fails to read the argument as an int, at the cost of an exception.)
_ASCII_SPECIAL = tuple(
    c for c in dict.fromkeys([0x09, 0x0D, 0x5C, *range(0x20), 0x7F]) if c != 0x0A
)
_JSON_ASCII_SPECIAL = (0x22, *_ASCII_SPECIAL)
# The same without the CR, for a chunk already searched for one.
_ASCII_SPECIAL_NO_CR = tuple(c for c in _ASCII_SPECIAL if c != 0x0D)
_JSON_ASCII_SPECIAL_NO_CR = (0x22, *_ASCII_SPECIAL_NO_CR)
#: From this size on, :func:`_plain_lines` looks for each special ASCII byte with one
#: ``memchr`` after ``isascii()``, a few times cheaper than ``bytes.translate``'s table
#: loop over every byte, which stays cheaper below.
_SCAN_AT = 8192


def _plain_lines(data: bytes, json: bool, has_cr: bool = True) -> bool:
    """
    Whether every byte of ``data`` is plain or a newline: a chunk of lines that a record
    holds as they are (:data:`_PLAIN`; in JSON, no double quote either).

    :param has_cr: false when ``data`` is known to hold no CR (it is not searched again).
    """
    if len(data) < _SCAN_AT:
        return not data.translate(None, _JSON_PLAIN_LINES if json else _PLAIN_LINES)
    if has_cr:
        special = _JSON_ASCII_SPECIAL if json else _ASCII_SPECIAL
    else:
        special = _JSON_ASCII_SPECIAL_NO_CR if json else _ASCII_SPECIAL_NO_CR
    return data.isascii() and not any(map(data.__contains__, special))


_NAMED = {"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"}
_UNNAMED = {"t": b"\t", "r": b"\r", "n": b"\n", "\\": b"\\"}


@functools.cache
def _unsafe() -> tuple[int, ...]:
    """
    The code points no record holds raw: controls, format characters and separators
    (categories Cc, Cf, Zl, Zp).  Found by one scan of Unicode, about 0.1 s, on first use.
    """
    wanted = ("Cc", "Cf", "Zl", "Zp")
    category = unicodedata.category
    return tuple(c for c in range(sys.maxunicode + 1) if category(chr(c)) in wanted)


def _text_escape(code: int) -> str:
    """
    The text-record escape sequence for one special code point.
    """
    named = _NAMED.get(chr(code))
    if named is not None:
        return named
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, from surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@functools.cache
def _escaper(kind: str, keep_newlines: bool) -> Callable[[str, bool], str]:
    """
    A function escaping every special character of a text, for ``kind`` ``"text"``
    (:func:`escape`) or ``"json"`` (:func:`json_string`); its second argument says the
    text is dense with special characters.

    Usually one regular expression finds each *run* of special characters, and C code
    rewrites the whole run: in text records, a run of ASCII controls and undecodable
    bytes goes through the ``unicode_escape`` codec (which writes exactly the escapes of
    this module's table for them), any other run through ``str.translate`` over a
    precomputed table; in JSON, every run goes through the ``json`` module's C string
    encoder.  A dense text (special characters alternating with others, where a Python
    call per run would cost hundreds of nanoseconds a byte) goes through one
    ``str.translate`` of the whole text instead.
    """
    codes = set(_unsafe()) | {0x5C}
    if kind == "text":
        codes.update(range(0xDC80, 0xDD00))
    else:
        codes.add(0x22)
        codes.update(range(0xD800, 0xE000))  # lone surrogates, as \\udXXX
    if keep_newlines:
        codes.discard(0x0A)
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    members = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    runs = re.compile(f"[{members}]+").sub

    if kind == "json":
        table = {code: _json_ascii(chr(code))[1:-1] for code in codes}

        def json_run(match: re.Match[str]) -> str:
            return _json_ascii(match.group())[1:-1]

        def json_escape(text: str, dense: bool) -> str:
            return text.translate(table) if dense else runs(json_run, text)

        return json_escape

    table = {code: _text_escape(code) for code in codes}
    single = {chr(code): text for code, text in table.items()}

    def run(match: re.Match[str]) -> str:
        chars = match.group()
        if len(chars) == 1:
            return single[chars]
        try:
            raw = chars.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            return chars.translate(table)
        return raw.decode("latin-1").encode("unicode_escape").decode("ascii")

    def text_escape(text: str, dense: bool) -> str:
        return text.translate(table) if dense else runs(run, text)

    return text_escape


def _dense(special: bytes, size: int) -> bool:
    """
    Whether ``size`` bytes, of which ``special`` are not plain ASCII, hold so many ASCII
    special bytes (controls, backslashes) that escaping run by run would be slow.
    """
    return len(special.translate(None, _HIGH)) * 16 > size


def printable(text: str) -> str:
    """
    ``text`` made safe to show in a message or a log line: every character
    ``str.isprintable`` refuses (C0 and C1 controls, DEL, bidi overrides and other format
    characters, separators other than the space, surrogates, unassigned code points) is
    written as its escape (``\\t``, ``\\r``, ``\\n``, ``\\xNN``, ``\\uNNNN``,
    ``\\UNNNNNNNN``, as :func:`escape` writes them; an undecodable byte kept by
    ``surrogateescape`` is ``\\xNN``); everything else, backslashes included, is left as
    it is, so a sentence reads as written and escaping twice changes nothing.

    Whatever a server or a URL contributes to a message (a reason phrase, a ``Location``,
    a name, a header value) goes through here before it reaches a terminal or a log.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _text_escape(ord(c)) for c in text)


def escape(data: bytes, keep_newlines: bool = False) -> bytes:
    """
    ``data`` escaped as described in this module's docstring: valid UTF-8 holding no
    control, format or separator character.

    :param keep_newlines: leave ``\\n`` bytes as they are (to split the result into lines
        afterwards); otherwise they become ``\\n``.
    """
    special = data.translate(None, _PLAIN_LINES if keep_newlines else _PLAIN)
    if not special:
        return data
    if special.isascii():
        if keep_newlines and not special.translate(None, b"\\\t"):
            # Only backslashes and tabs (paths, tab-separated fields): two C passes over
            # the lines, not a call per line.
            return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t")
        # ASCII only: the unicode_escape codec writes exactly this module's escapes for
        # ASCII controls, DEL and the backslash, in one C loop, however they are mixed.
        return _each_line(data, keep_newlines, _ascii_escape)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if data.decode("utf-8", "ignore").isascii():
            # No valid character beyond ASCII: every other byte is an undecodable one,
            # which the codec writes as \\xNN too.
            return _each_line(data, keep_newlines, _ascii_escape)
        text = data.decode("utf-8", "surrogateescape")
    dense = _dense(special, len(data))
    return _escaper("text", keep_newlines)(text, dense).encode("utf-8")


def _ascii_escape(data: bytes) -> bytes:
    """
    ``data``, ASCII and undecodable bytes only, escaped as by :func:`escape` (newlines
    included).
    """
    return data.decode("latin-1").encode("unicode_escape")


def _ascii_json(data: bytes) -> bytes:
    """
    ASCII ``data`` escaped as by :func:`json_string` (newlines included).
    """
    return _json_ascii(data.decode("ascii"))[1:-1].encode("ascii")


def _each_line(data: bytes, keep_newlines: bool, convert: Callable[[bytes], bytes]) -> bytes:
    """
    ``convert(data)``, or with ``keep_newlines`` each line converted and the newlines kept.
    """
    if not keep_newlines or b"\n" not in data:
        return convert(data)
    return b"\n".join([convert(line) for line in data.split(b"\n")])


def json_string(text: str, keep_newlines: bool = False) -> bytes:
    """
    ``text`` as the inside of a JSON string (without the quotes), UTF-8 encoded.

    JSON's own escapes are used: ``\\"``, ``\\\\``, ``\\t``, ``\\r``, ``\\n``, and
    ``\\uNNNN`` (a surrogate pair above U+FFFF) for every other control, format or
    separator character (DEL, C1 controls, bidi overrides, U+2028...), so that the record
    stays one line that a terminal shows as it is; other text, Chinese included, is
    written as it is.

    :param keep_newlines: leave ``\\n`` as it is (to split the result into lines).
    """
    data = text.encode("utf-8", "surrogatepass")
    special = data.translate(None, _JSON_PLAIN_LINES if keep_newlines else _JSON_PLAIN)
    if not special:
        return data  # nothing to escape: no regular expression, no table built
    if special.isascii():
        if keep_newlines and not special.translate(None, b'\\"\t'):
            # Only quotes, backslashes and tabs (JSON or quoted text in the lines): JSON's
            # escapes for them in three C passes over the lines, not a call per line.
            return data.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\t", b"\\t")
        return _each_line(data, keep_newlines, _ascii_json)
    dense = _dense(special, len(data))
    return _escaper("json", keep_newlines)(text, dense).encode("utf-8")


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


def json_line(line: bytes, marker: bytes = b"", fields: bytes = b"") -> bytes:
    """
    A JSON record's ``line`` string contents and closing fields for one line's bytes: its
    text, the exact bytes in ``"b64"`` when they are not valid UTF-8, the marker's field,
    then ``fields`` (more ``,"name":value`` members, already JSON) and the closing brace.
    """
    try:
        text = line.decode("utf-8")
        extra = b""
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        extra = b'","b64":"%s' % binascii.b2a_base64(line, newline=False)
    return b'%s%s"%s%s}' % (json_string(text), extra, _JSON_MARKS.get(marker, b""), fields)


class Framer:
    """
    Turns the bytes one connection sends into data-log records, a received chunk at a
    time: one timestamp and a handful of ``bytes`` operations per chunk, no Python call
    per line.

    In ``line`` mode a line ends at ``\\n`` and one ``\\r`` before it is removed; a line
    longer than ``max_line_length`` bytes is recorded cut to that length and marked
    :data:`TRUNCATED`, and the rest of it, up to the next newline, is discarded (the
    connection carries on).  In ``raw`` mode every chunk is one record (cut the same way).

    An unterminated line is held as the bytes of the chunk that ended with it; when more
    of it arrives without a newline, in one buffer that grows by doubling up to
    ``max_line_length`` bytes and never past it.  So a connection holds at most
    ``max_line_length`` bytes (one more for a CR whose LF is still to come) however its
    client slices them, one byte per ``recv`` included, and a line trickled byte by byte
    costs linear time.

    :ivar lines: records made so far.
    :ivar received: bytes received so far.
    :ivar complete: when ``keep_lines`` is true, the complete lines of the last chunk,
        each ending in ``\\n`` (in ``raw`` mode, the chunk as its record holds it): what
        ``--broadcast`` relays; else ``b""``.
    :ivar error: ``None``; a framer that finds bytes it cannot frame (see
        :class:`twisted_journey.syslogframe.SyslogFramer`) sets it to the sentence to
        log, and the engine then closes the connection.
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
        "error",
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
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        keep_lines: bool = False,
    ) -> None:
        if record_format not in FORMATS:
            raise ValueError(f"unknown record format {record_format!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self._format = record_format
        # The peer is escaped like client data: whatever a PROXY header or a transport
        # claims, it cannot add a field or a record.
        if record_format == "text":
            name = escape(peer.encode("utf-8", "backslashreplace")).replace(b" ", b"\\x20")
            self._origin = b"%s %d" % (name, conn)
        else:
            self._origin = b'"peer":"%s","conn":%d' % (json_string(peer), conn)
        self._raw = mode == "raw"
        self._max = max_line_length
        self._keep_lines = keep_lines
        # The unterminated line: b"" (nothing held), the bytes of the chunk that ended
        # with it, or a buffer of which _pending_size bytes are used.
        self._pending: bytes | bytearray = b""
        self._pending_size = 0
        self._discarding = False
        self.complete = b""
        self.error: str | None = None
        self.lines = 0
        self.received = 0

    def _prefix(self, stamp: bytes) -> bytes:
        """
        What every record made at ``stamp`` starts with, up to its line.
        """
        if self._format == "text":
            return b"%s %s " % (stamp, self._origin)
        return b'{"time":"%s",%s,"line":"' % (stamp, self._origin)

    def _records(self, now: float, lines: Iterable[tuple[bytes, bytes]]) -> bytes:
        """
        Records, made at ``now``, for ``(line, marker)`` pairs of raw bytes, a Python
        call per line: for the lines that need more than the fast path (cut lines, JSON
        that is not valid UTF-8, partial lines).
        """
        prefix = self._prefix(timestamp(now))
        out = []
        if self._format == "text":
            for line, marker in lines:
                out.append(b"%s%s%s\n" % (prefix, escape(line), marker))
        else:
            for line, marker in lines:
                out.append(b"%s%s\n" % (prefix, json_line(line, marker)))
        self.lines += len(out)
        return b"".join(out)

    def _body(self, complete: bytes) -> tuple[bytes | None, int]:
        """
        ``complete`` (lines joined with ``\\n``) with each line escaped for the format,
        still joined with ``\\n``, and the number of newlines; ``None`` for the body when
        a JSON line is not valid UTF-8 (those take :meth:`_records`).
        """
        # One translate both finds the bytes that need escaping and counts the lines.
        if self._format == "text":
            special = complete.translate(None, _PLAIN)
            newlines = special.count(b"\n")
            if newlines == len(special):
                return complete, newlines
            return escape(complete, keep_newlines=True), newlines
        special = complete.translate(None, _JSON_PLAIN)
        newlines = special.count(b"\n")
        if newlines == len(special):
            return complete, newlines
        try:
            text = complete.decode("utf-8")
        except UnicodeDecodeError:
            return None, newlines
        return json_string(text, keep_newlines=True), newlines

    def feed(self, data: bytes, now: float) -> bytes:
        """
        The records for a chunk received at ``now`` (seconds since the epoch); ``b""``
        when it completes no line.
        """
        pieces = self.feedPieces(data, now)
        return bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)

    def feedPieces(self, data: bytes, now: float) -> Sequence[bytes | memoryview]:
        """
        :meth:`feed`'s records in pieces, which are written one after the other
        (:meth:`twisted_journey.datalog.DataLog.extend`) rather than joined first: a
        chunk of plain lines makes them without copying its records once more.  Empty
        when the chunk completes no line.
        """
        if not (self._raw or self._keep_lines or self._discarding):
            pieces = self._plainChunk(data, now)
            if pieces is not None:
                self.received += len(data)
                return pieces
        out = self._feed(data, now)
        return (out,) if out else ()

    def _feed(self, data: bytes, now: float) -> bytes:
        """
        :meth:`feed` for any chunk.
        """
        self.received += len(data)
        if self._keep_lines:
            self.complete = b""
        if self._raw:
            if not data:
                return b""
            if self._keep_lines:
                self.complete = data[: self._max]
            if len(data) > self._max:
                return self._records(now, [(data[: self._max], TRUNCATED)])
            return self._records(now, [(data, b"")])
        if self._pending:
            if b"\n" not in data:
                return self._append(data, now)
            data = self._take_pending(data)
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
        limit = self._max
        if len(complete) > limit and self._hasLongLine(complete):
            lines = complete.split(b"\n")
            out = self._records(
                now,
                [(line[:limit], TRUNCATED if len(line) > limit else b"") for line in lines],
            )
            if self._keep_lines:
                complete = b"\n".join(line[:limit] for line in lines)
        else:
            escaped, newlines = self._body(complete)
            if escaped is None:
                out = self._records(now, [(line, b"") for line in complete.split(b"\n")])
            else:
                # One record per line: the newlines between them become record ends.
                prefix = self._prefix(timestamp(now))
                self.lines += newlines + 1
                close = b"\n" if self._format == "text" else b'"}\n'
                out = b"".join((prefix, escaped.replace(b"\n", close + prefix), close))
        if self._keep_lines:
            self.complete = complete + b"\n"
        return out + self._hold(rest, now) if rest else out

    def _plainChunk(self, data: bytes, now: float) -> tuple[bytes, bytes, memoryview] | None:
        """
        The records, in pieces, for a chunk that completes lines which need no escaping
        (the usual case), made with one ``replace``; ``None`` when it is not such a chunk
        (no newline, a byte to escape, a line that may be longer than the limit), for the
        general path (:meth:`_feed`), which makes the same records.

        The unterminated line held from earlier chunks is not joined to the chunk: it
        follows the first record's prefix, and the chunk finishes its line.  The chunk's
        newlines become record ends in one ``replace``; the end of its output (the prefix
        and the next unterminated line) is left out through a ``memoryview``, and the
        records are counted from the output's length.
        """
        end = data.rfind(b"\n")
        if end < 0 or len(data) > self._max:
            return None
        json = self._format == "json"
        held = self._pending
        head = b""
        if held:
            size = self._pending_size
            if size + data.find(b"\n") > self._max:
                return None
            head = bytes(memoryview(held)[:size]) if isinstance(held, bytearray) else held
            if head.endswith(b"\r") and data.startswith(b"\n"):
                head = head[:-1]  # a CR LF cut between two chunks
            if not _plain_lines(head, json):
                return None
        has_cr = 0x0D in data
        if has_cr:
            # CR LF line ends, as the general path's replace takes them.
            data = data.replace(b"\r\n", b"\n")
            end = data.rfind(b"\n")
        if not _plain_lines(data, json, has_cr):
            return None
        prefix = self._prefix(timestamp(now))
        separator = (b'"}\n' if json else b"\n") + prefix
        replaced = data.replace(b"\n", separator)
        self.lines += (len(replaced) - len(data)) // (len(separator) - 1)
        tail = data[end + 1 :]
        self._pending = tail
        self._pending_size = len(tail)
        return prefix, head, memoryview(replaced)[: len(replaced) - len(tail) - len(prefix)]

    def message(self, data: bytes, now: float) -> bytes:
        """
        The record for one whole message received at ``now`` (a UDP datagram, its
        framing removed), cut at the limit and marked truncated if longer.
        """
        self.received += len(data)
        if len(data) > self._max:
            return self._records(now, [(data[: self._max], TRUNCATED)])
        return self._records(now, [(data, b"")])

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
            return self._records(now, [(data[: self._max], TRUNCATED)])
        self._pending = data
        self._pending_size = len(data)
        return b""

    def _append(self, data: bytes, now: float) -> bytes:
        """
        More of the unterminated line held, without its newline: keep it, or record the
        line truncated once it is longer than the limit.
        """
        if not data:
            return b""
        size = self._pending_size
        need = size + len(data)
        if need > self._max:
            # Too long, unless the last byte is a CR whose LF is still to come.
            return self._hold(self._take_pending(data), now)
        pending = self._pending
        if need > len(pending):
            # Grow by doubling (linear time for a line trickled a byte at a time), never
            # past the limit; a new buffer of an exact size rather than bytearray's own
            # growth, which would keep up to an eighth more.
            grown = bytearray(min(max(need, 2 * len(pending), 256), self._max))
            grown[:size] = memoryview(pending)[:size]
            self._pending = pending = grown
        pending[size:need] = data  # type: ignore[index]
        self._pending_size = need
        return b""

    def _take_pending(self, data: bytes = b"") -> bytes:
        """
        The unterminated line held so far followed by ``data``; nothing is held afterwards.
        """
        pending = self._pending
        if isinstance(pending, bytearray):
            joined = b"".join((memoryview(pending)[: self._pending_size], data))
        else:
            joined = pending + data if data else pending
        self._pending = b""
        self._pending_size = 0
        return joined

    def finish(self, now: float) -> bytes:
        """
        The record for an unterminated last line, marked :data:`PARTIAL`, when the
        connection ends at ``now``; ``b""`` when there is none.  Later calls return ``b""``.
        """
        pending = self._take_pending()
        if not pending:
            return b""
        if len(pending) > self._max:  # held one byte over for a CR, whose LF never came
            return self._records(now, [(pending[: self._max], TRUNCATED)])
        return self._records(now, [(pending, PARTIAL)])

    @property
    def held(self) -> int:
        """
        The bytes of memory the unterminated line takes now (its buffer's size, as
        ``sys.getsizeof`` counts it; 0 when nothing is held).
        """
        return sys.getsizeof(self._pending) if self._pending else 0
