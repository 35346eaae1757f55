# -*- test-case-name: tests.test_syslogframe -*-
"""
Syslog framing for journey-mux (``--framing syslog``), stdlib only: both engines feed what
a connection sends to a :class:`SyslogFramer` instead of a line
:class:`twisted_journey.records.Framer`, and write the same records.

A TCP (or TLS) connection carries syslog messages in either of the two framings of
RFC 6587, decided per frame as rsyslog's ``imtcp`` decides:

- a frame that starts with a digit is *octet counted*: ``LEN SP MSG``, ``MSG`` exactly
  ``LEN`` bytes, no terminator (``logger --octet-count``, rsyslog
  ``TCP_Framing="octet-counted"``, every RFC 5425 TLS sender); one LF ending ``MSG`` is
  not part of the message (rsyslog's forwarding templates put one there, and rsyslog
  drops it on reception);
- any other frame is *traditional*: it ends at LF, CR LF or NUL (``logger -T``,
  ``--rfc3164``, Python's ``SysLogHandler``, which ends each message with NUL).

Each message becomes one record whose line is the message without its framing.  Empty
frames (a lone terminator) carry no message and make no record.  A traditional frame
longer than ``max_line_length`` is recorded cut there and marked truncated, and the rest
of it, up to its terminator, is discarded, as in line mode.

An octet count that is not a number (a digit not followed by digits and a space), is
zero, or exceeds ``max_line_length`` is a *framing error*: from there on nothing can be
framed.  The messages before it are recorded; what follows the bad count in that chunk
is recorded as one record marked partial (cut at the limit); ``error`` says what went
wrong, in one sentence (:func:`framing_error`), and the engine logs it and closes the
connection.  No count is ever allocated: a frame's bytes are held as they arrive, never
more than ``max_line_length`` of them, so a count of ``999999999`` costs nothing beyond
the refusal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from functools import partial
from operator import is_, is_not

from twisted_journey import records
from twisted_journey.settings import DEFAULT_MAX_LINE_LENGTH, SettingError

__all__ = [
    "FACILITIES",
    "FRAMINGS",
    "MAX_SENT_MESSAGE",
    "SEVERITIES",
    "OctetCounter",
    "SyslogFramer",
    "check_framing",
    "framing_error",
    "new_framer",
    "parse",
    "parsed_json",
]

#: ``--framing``: ``lines`` (a record per line, the default) or ``syslog``.
FRAMINGS = ("lines", "syslog")

_DIGITS = re.compile(rb"[0-9]*")
#: Terminators (and a CR LF) that end frames holding nothing.
_EMPTY = re.compile(rb"(?:\r?\n|\x00)*")
_END = re.compile(rb"[\n\x00]")


#: Facility names by number, as rsyslog names them (RFC 5424 section 6.2.1).
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
#: Severity names by number.
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

#: The PRI of a message that has none, or a malformed one: user.notice (RFC 3164 4.3.3).
DEFAULT_PRI = 13

#: The fields of a parsed message, in the order a JSON record holds them.
FIELDS = (
    "facility", "severity", "timestamp", "hostname", "app_name", "procid", "msgid",
    "structured_data", "msg",
)  # fmt: skip

_PRI = re.compile(rb"<(0|[1-9][0-9]{0,2})>")
_RFC3339 = (
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    rb"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_SD_NAME = rb"[!#-<>-\\^-~]{1,32}"
_SD_ELEMENT = rb'\[%s(?: %s="(?:[^"\\\]]|\\.)*")*\]' % (_SD_NAME, _SD_NAME)
#: RFC 5424 after the PRI, strictly: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
#: PROCID SP MSGID SP STRUCTURED-DATA [SP MSG].
_HOSTNAME = rb"[!-~]{1,255}"
_APP_NAME = rb"[!-~]{1,48}"
_PROCID = rb"[!-~]{1,128}"
_MSGID = rb"[!-~]{1,32}"
_RFC5424 = re.compile(
    rb"1 (?P<timestamp>-|%s) (?P<hostname>%s) (?P<app_name>%s) "
    rb"(?P<procid>%s) (?P<msgid>%s) "
    rb"(?P<structured_data>-|(?:%s)+)(?: (?P<msg>.*))?"
    % (_RFC3339, _HOSTNAME, _APP_NAME, _PROCID, _MSGID, _SD_ELEMENT),
    re.DOTALL,
)
#: A whole RFC 5424 message, PRI included (one match for the usual case, no slice).
_PRI_RFC5424 = re.compile(rb"<(0|[1-9][0-9]{0,2})>" + _RFC5424.pattern, re.DOTALL)
#: RFC 3164 after the PRI, leniently (as rsyslog reads it): an optional timestamp
#: (``Mmm dd hh:mm:ss`` or RFC 3339) and, only after one, a host name; an optional tag,
#: ``APP[PID]:`` or ``APP:`` (Python's ``SysLogHandler`` sends just ``<PRI>APP: MSG``).
_RFC3164_STAMP = re.compile(
    rb"(?P<timestamp>[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}|%s) " % _RFC3339
)
_RFC3164_HOST = re.compile(rb"(?P<hostname>[!-9;-Z\\^-~][!-Z\\^-~]*) ")
_RFC3164_TAG = re.compile(
    rb"(?P<app_name>[!-9;-Z\\^-~]{1,48})(?:\[(?P<procid>[!-\\^-~]{1,128})\]:?|:)(?: |$)"
)
_BOM = b"\xef\xbb\xbf"


def parse(message: bytes) -> dict[str, bytes | None]:
    """
    The syslog fields of ``message`` (framing removed), as bytes, ``None`` for a field it
    does not hold: ``facility`` and ``severity`` (names), ``timestamp`` (as sent),
    ``hostname``, ``app_name``, ``procid``, ``msgid``, ``structured_data`` (raw) and
    ``msg`` (a leading UTF-8 BOM removed).

    RFC 5424 is parsed strictly (``-`` is ``None``); anything else leniently as RFC 3164,
    as rsyslog does: a missing or malformed PRI means user.notice and the whole message
    is read as what follows a PRI.
    """
    return dict(zip(FIELDS, _values(message), strict=True))


#: PRI numbers to their facility and severity names, for every valid PRI.
_PRI_NAMES = [
    (FACILITIES[number >> 3].encode(), SEVERITIES[number & 7].encode()) for number in range(192)
]


def _values(message: bytes) -> list[bytes | None]:
    """
    The fields of :func:`parse`, in the order of :data:`FIELDS`.
    """
    strict = _PRI_RFC5424.fullmatch(message)
    number = int(strict.group(1)) if strict is not None else 192
    if strict is not None and number < 192:
        facility, severity = _PRI_NAMES[number]
        timestamp, hostname, app, procid, msgid, data, msg = strict.groups()[1:]
        if msg is not None and msg.startswith(_BOM):
            msg = msg[len(_BOM) :]
        return [
            facility,
            severity,
            None if timestamp == b"-" else timestamp,
            None if hostname == b"-" else hostname,
            None if app == b"-" else app,
            None if procid == b"-" else procid,
            None if msgid == b"-" else msgid,
            None if data == b"-" else data,
            msg,
        ]
    pri = _PRI.match(message)
    number = int(pri.group(1)) if pri is not None else 192
    if pri is not None and number < 192:
        rest = message[pri.end() :]
    else:
        number, rest = DEFAULT_PRI, message
    facility, severity = _PRI_NAMES[number]
    timestamp = hostname = app = procid = None
    stamp = _RFC3164_STAMP.match(rest)
    position = 0
    if stamp is not None:
        timestamp = stamp.group("timestamp")
        position = stamp.end()
        host = _RFC3164_HOST.match(rest, position)
        if host is not None and not _RFC3164_TAG.match(rest, position):
            hostname = host.group("hostname")
            position = host.end()
    tag = _RFC3164_TAG.match(rest, position)
    if tag is not None:
        app, procid = tag.group("app_name", "procid")
        position = tag.end()
    return [facility, severity, timestamp, hostname, app, procid, None, None, rest[position:]]


#: Each field's JSON member name, in the order of :data:`FIELDS`.
_MEMBERS = [b'"%s":' % name.encode() for name in FIELDS]

#: JSON ``"syslog"`` members with ``%s`` for the fields present, by which are absent.
_TEMPLATES: dict[tuple[bool, ...], bytes] = {}

#: Nine ``None`` (to find the absent fields in one ``map``).
_NONES = (None,) * len(FIELDS)
#: Whether a field is present (not ``None``).
_present = partial(is_not, None)

#: Bytes a JSON string holds as they are: printable ASCII but ``"`` and ``\\``.
_JSON_PLAIN = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")


def parsed_json(message: bytes) -> bytes:
    """
    ``,"syslog":{...}``: the fields of :func:`parse` as a JSON record's member, each text
    escaped like the record's line (invalid UTF-8 as U+FFFD), ``null`` when absent.
    """
    values = _values(message)
    absent = tuple(map(is_, _NONES, values))
    template = _TEMPLATES.get(absent)
    if template is None:
        members = [
            name + (b"null" if gone else b'"%s"')
            for name, gone in zip(_MEMBERS, absent, strict=True)
        ]
        template = _TEMPLATES[absent] = b',"syslog":{' + b",".join(members) + b"}"
    present: list[bytes] = [*filter(_present, values)]  # type: ignore[list-item]
    special = b"".join(present).translate(None, _JSON_PLAIN)
    if special and not special.strip(b'"\\'):
        # Only quotes and backslashes (structured data's usual case): JSON's escapes, made
        # in the fields joined by NULs (which none holds) and split again.
        joined = b"\0".join(present).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return template % tuple(joined.split(b"\0"))
    if special:
        # Something else to escape (a control, UTF-8...).
        present = [
            value
            if not value.translate(None, _JSON_PLAIN)
            else records.json_string(value.decode("utf-8", "replace"))
            for value in present
        ]
    return template % tuple(present)


#: A valid PRI's number (below 192).
_VALID_PRI = rb"0|[1-9][0-9]?|1[0-8][0-9]|19[01]"
#: What :func:`_values` finds, in one match: :data:`_PRI_RFC5424` with a valid PRI and
#: each nil field (``-``) captured as ``None`` (groups 1-8), else the lenient RFC 3164
#: reading, which always matches (groups 9-14: PRI, timestamp, host name, app name,
#: procid, message), each part tried where and as :func:`_values` tries it.
_HEADER = re.compile(
    rb"<(%s)>1 (?:-|(%s)) (?:-|(%s)) (?:-|(%s)) (?:-|(%s)) (?:-|(%s)) "
    rb"(?:-|((?:%s)+))(?: (.*))?\Z"
    rb"|(?:<(%s)>)?(?:%s(?:(?!%s)%s)?)?(?:%s)?(.*)"
    % (
        _VALID_PRI,
        _RFC3339,
        _HOSTNAME,
        _APP_NAME,
        _PROCID,
        _MSGID,
        _SD_ELEMENT,
        _VALID_PRI,
        _RFC3164_STAMP.pattern.replace(b"?P<timestamp>", b""),
        _RFC3164_TAG.pattern.replace(b"?P<app_name>", b"?:").replace(b"?P<procid>", b"?:"),
        _RFC3164_HOST.pattern.replace(b"?P<hostname>", b""),
        _RFC3164_TAG.pattern.replace(b"?P<app_name>", b"").replace(b"?P<procid>", b""),
    ),
    re.DOTALL,
)

#: ``"facility":"NAME","severity":"NAME"`` by PRI as sent, for every valid PRI.
_PRI_JSON = {
    b"%d" % number: b'"facility":"%s","severity":"%s"' % names
    for number, names in enumerate(_PRI_NAMES)
}
#: The same for a message without a valid PRI: user.notice.
_DEFAULT_PRI_JSON = _PRI_JSON[b"%d" % DEFAULT_PRI]

#: JSON records of RFC 5424 messages, by which fields after the PRI are absent:
#: ``%s`` for the prefix, the line, the PRI's names and each field present.
_NIL_RECORDS: dict[tuple[bool, ...], bytes] = {}


def _nil_record(absent: tuple[bool, ...]) -> bytes:
    """
    The entry of :data:`_NIL_RECORDS` for ``absent`` (made once).
    """
    members = [
        name + (b"null" if gone else b'"%s"')
        for name, gone in zip(_MEMBERS[2:], absent, strict=True)
    ]
    record = _NIL_RECORDS[absent] = b'%s%s","syslog":{%s,' + b",".join(members) + b"}}\n"
    return record


#: The longest line ``journey send --framing syslog`` holds to count (16 MiB).
MAX_SENT_MESSAGE = 1 << 24


class OctetCounter:
    """
    What ``journey send --framing syslog`` sends: each line of its input (``\\n`` and one
    ``\\r`` before it removed) as an octet-counted frame, ``LEN SP MSG``; empty lines
    are no message and are skipped.  Both clients feed their input through one.

    :param limit: the longest line held while its end is awaited.
    """

    def __init__(self, limit: int = MAX_SENT_MESSAGE) -> None:
        self.limit = limit
        #: the unterminated line so far, in the pieces it came in (joined once complete)
        self._tail: list[bytes] = []
        self._held = 0

    def frames(self, data: bytes) -> bytes:
        """
        The frames of the lines ``data`` completes (``b""`` when it completes none).

        :raises ValueError: with a sentence, when a line grows past the limit.
        """
        end = data.rfind(b"\n")
        if end < 0:
            self._hold(data)
            return b""
        if self._tail:
            data = b"".join([*self._tail, data])
            end += self._held
            self._tail, self._held = [], 0
        rest = data[end + 1 :]
        out = []
        for line in data[:end].split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                out.append(b"%d %s" % (len(line), line))
        self._hold(rest)
        return b"".join(out)

    def _hold(self, piece: bytes) -> None:
        """
        Keep ``piece`` of the unterminated line, refusing a line past the limit.
        """
        if not piece:
            return
        self._held += len(piece)
        if self._held > self.limit:
            raise ValueError(
                f"a line is longer than {self.limit} bytes, too long for one syslog message"
            )
        self._tail.append(piece)

    def finish(self) -> bytes:
        """
        The frame of an unterminated last line (``b""`` when there is none).
        """
        tail = b"".join(self._tail)
        self._tail, self._held = [], 0
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        return b"%d %s" % (len(tail), tail) if tail else b""


def check_framing(framing: str, mode: str) -> str:
    """
    ``framing`` if it can be used with ``mode``.

    :raises SettingError: for an unknown framing, or ``syslog`` with ``--mode raw``
        (syslog frames are messages; raw mode records chunks).
    """
    if framing not in FRAMINGS:
        raise SettingError(f"--framing must be one of {', '.join(FRAMINGS)}, not {framing!r}.")
    if framing == "syslog" and mode != "line":
        raise SettingError(
            "--framing syslog records one record per message; it cannot be used with --mode raw."
        )
    return framing


def framing_error(conn: int, peer: str, reason: str) -> str:
    """
    The sentence both engines log when a connection breaks syslog framing.
    """
    return (
        f"Connection {conn} from {peer} broke syslog framing ({reason}): its messages up to "
        f"there are recorded, what followed is recorded as one partial record, and the "
        f"connection is closed"
    )


def new_framer(
    framing: str,
    record_format: str,
    peer: str,
    conn: int,
    *,
    mode: str = "line",
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    keep_lines: bool = False,
) -> records.Framer:
    """
    The framer for one connection: a :class:`SyslogFramer` for ``framing`` ``"syslog"``,
    else a line :class:`twisted_journey.records.Framer`.
    """
    kind = SyslogFramer if framing == "syslog" else records.Framer
    return kind(
        record_format,
        peer,
        conn,
        mode=mode,
        max_line_length=max_line_length,
        keep_lines=keep_lines,
    )


#: The mark of a run of messages joined by newlines (:meth:`SyslogFramer._terminatedRun`).
_RUN = b"\n"
#: Octet counts below this are remembered in :data:`_COUNTS` once seen.
_COUNTED = 8192
#: By limit (``--max-line-length``), octet counts each with its space (``b"94 "``) to
#: their value: every count within the limit and below :data:`_COUNTED` (written
#: without a leading zero) seen so far; at most about 1 MiB a limit.
_COUNTS: dict[int, dict[bytes, int]] = {}


class SyslogFramer(records.Framer):
    """
    A :class:`twisted_journey.records.Framer` for syslog frames (see the module
    docstring): :meth:`feed` returns a record per message, :attr:`complete` holds the
    messages of the last chunk re-framed octet counted (``LEN SP MSG``, what
    ``--broadcast`` relays: a message may hold newlines), and ``error`` (see
    :class:`twisted_journey.records.Framer`) is set once a framing error ends the
    connection.

    The bytes of an unfinished frame are kept in one buffer with the rest of the chunk
    until the frame is complete; a traditional frame is searched for its terminator only
    in bytes not searched before, so a frame trickled a byte at a time costs linear time.

    A chunk's runs of well-formed frames are framed a run at a time, its text records
    escaped all at once and its JSON records' fields found with one match each (see
    ``_frames`` and ``_jsonRecords``); everything else a frame and a record at a
    time, into the same records.
    """

    __slots__ = ("_buffer", "_conn", "_joined", "_peer", "_scanned", "_width")

    _buffer: bytearray | None

    #: Whether runs of well-formed frames are taken at once and text records made a
    #: chunk at a time (false only to test those against the frame-at-a-time path,
    #: which makes the same records).
    _runs = True

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
        super().__init__(
            record_format,
            peer,
            conn,
            mode=mode,
            max_line_length=max_line_length,
            keep_lines=keep_lines,
        )
        self._peer = peer
        self._conn = conn
        #: the most digits a count below the limit has
        self._width = len(str(max_line_length))
        #: bytes received and not yet framed (an unfinished frame)
        self._buffer = None
        #: how far into the buffer a traditional frame was searched for its end
        self._scanned = 0
        #: the chunk's messages joined in runs (:data:`_RUN`) beyond one per run
        self._joined = 0

    def feedPieces(self, data: bytes, now: float) -> Sequence[bytes | memoryview]:
        """
        The records for a chunk received at ``now``, one per complete message, in one
        piece (empty when there are none).
        """
        return self._chunk(data, now)

    def _chunk(self, data: bytes, now: float) -> Sequence[bytes]:
        """
        The records for a chunk received at ``now``, one per complete message, in
        pieces (none when there are none).
        """
        self.received += len(data)
        if self._keep_lines:
            self.complete = b""
        if self.error is not None or not data:
            return ()
        held = self._buffer
        buffer: bytes | bytearray = data
        if held is not None:
            if len(data) >= len(held):
                # Mostly new bytes: framed as bytes, whose slices are the messages, at the
                # cost of one copy of at most twice the chunk.
                buffer = b"".join((held, data))
                held = self._buffer = None
            else:
                # Appending to a buffer of our own: a frame trickled a byte at a time
                # costs linear time, not a copy of everything held per byte.
                held += data
                buffer = held
        messages: list[bytes] = []
        marks: dict[int, bytes] = {}
        self._joined = 0
        position = self._frames(buffer, messages, marks)
        self._scanned = max(self._scanned - position, 0)
        if position >= len(buffer):
            self._buffer = None
        elif held is not None:
            del held[:position]
        else:
            self._buffer = bytearray(memoryview(buffer)[position:])
        rest = self._buffer
        if self.error is not None:
            self._buffer = None
            if rest:
                limit = self._max
                marks[len(messages)] = records.TRUNCATED if len(rest) > limit else records.PARTIAL
                messages.append(bytes(rest[:limit]))
        if not messages:
            return ()
        if self._keep_lines:
            messages, marks = self._split(messages, marks)
            self.complete = b"".join(b"%d %s" % (len(message), message) for message in messages)
        return self._messageRecords(now, messages, marks)

    def _frames(
        self, buffer: bytes | bytearray, messages: list[bytes], marks: dict[int, bytes]
    ) -> int:
        """
        Append every complete message of ``buffer`` to ``messages`` (and the marker of
        each one cut at the limit to ``marks``, by its index); return where the
        unfinished frame starts (``len(buffer)`` when there is none).  Sets
        :attr:`error` at a bad octet count, returning where its frame starts.

        Runs of well-formed frames are taken a run at a time (:meth:`_countedRun`,
        :meth:`_terminatedRun`); whatever they leave (a frame cut by the chunk's end, a
        bad count, a frame to truncate...) is framed here, a frame at a time.
        """
        limit = self._max
        width = self._width
        size = len(buffer)
        position = 0
        append = messages.append
        # Without a NUL, a traditional frame ends at the next LF: one find, not a search
        # for either.
        nul = b"\x00" in buffer
        # Runs are taken in bytes (whose slices are bytes).
        whole = buffer if self._runs and isinstance(buffer, bytes) else None
        terminated_runs = whole is not None
        while position < size:
            if self._discarding:
                # The rest of a truncated traditional frame, up to its end, is dropped.
                ended = _END.search(buffer, position)
                if ended is None:
                    return size
                self._discarding = False
                position = ended.end()
                continue
            first = buffer[position]
            if first == 0x0A or first == 0x00:
                # Empty frames, a flood of them at C speed.
                position = _EMPTY.match(buffer, position).end()  # type: ignore[union-attr]
                continue
            if 0x30 <= first <= 0x39:
                if whole is not None:
                    start = position
                    position = self._countedRun(whole, position, messages)
                    if position != start:
                        continue
                space = buffer.find(b" ", position, position + width + 1)
                number = buffer[position:space] if space > 0 else b""
                if not number.isdigit():
                    digits = _DIGITS.match(buffer, position).end()  # type: ignore[union-attr]
                    if digits - position > width:
                        return self._fail(
                            position,
                            f"octet count {self._shown(buffer, position)} "
                            f"is longer than --max-line-length {limit}",
                        )
                    if digits == size:
                        return position  # the count goes on in the next chunk
                    return self._fail(
                        position,
                        f"octet count {self._shown(buffer, position)} is not a number "
                        f"followed by a space",
                    )
                count = int(number)
                if count == 0 or count > limit:
                    return self._fail(
                        position,
                        f"octet count {count} is "
                        + ("zero" if count == 0 else f"above --max-line-length {limit}"),
                    )
                stop = space + 1 + count
                if stop > size:
                    return position
                # rsyslog's templates end a message with LF even when it is octet
                # counted, and rsyslog drops it on reception: so do we.
                last = stop - 1 if buffer[stop - 1] == 0x0A else stop
                append(bytes(buffer[space + 1 : last]))
                position = stop
                continue
            if terminated_runs and whole is not None and first == 0x3C:
                start = position
                position = self._terminatedRun(whole, position, nul, messages, marks)
                if position != start:
                    continue
                # Not such a run: not tried again in this buffer (each try reads the
                # rest of it).
                terminated_runs = False
            scan = position if position > self._scanned else self._scanned
            if nul:
                found = _END.search(buffer, scan)
                end = -1 if found is None else found.start()
            else:
                end = buffer.find(b"\n", scan)
            if end < 0:
                if size - position > limit + 1:
                    # Too long: record it cut, discard the rest up to its end.
                    marks[len(messages)] = records.TRUNCATED
                    append(bytes(buffer[position : position + limit]))
                    self._discarding = True
                    self._scanned = 0
                    return size
                self._scanned = size
                return position
            self._scanned = 0
            stop = end - 1 if buffer[end] == 0x0A and buffer[end - 1] == 0x0D else end
            if stop - position > limit:
                marks[len(messages)] = records.TRUNCATED
                append(bytes(buffer[position : position + limit]))
            elif stop > position:  # not a lone CR LF
                append(bytes(buffer[position:stop]))
            position = end + 1
        return size

    def _countedRun(self, buffer: bytes, position: int, messages: list[bytes]) -> int:
        """
        Append the messages of the octet-counted frames from ``position`` on to
        ``messages``, as long as each is complete in ``buffer`` and its count is one
        within the limit: a ``dict`` look-up (:data:`_COUNTS`, which holds only counts
        within the limit; a ``find`` when the count's width changes) and a slice a frame; a count written with a leading zero
        is left to ``_frames``.  Return where the first frame left for
        ``_frames`` starts (``len(buffer)`` when there is none).
        """
        limit = self._max
        reach = self._width + 1
        size = len(buffer)
        find = buffer.find
        counts = _COUNTS.setdefault(limit, {})
        count_of = counts.get
        append = messages.append
        # The count's width with its space: most often the last one's.
        width = 3
        while True:
            # At the end, b"": not a count, nor is what the find below slices.
            space = position + width
            count = count_of(buffer[position:space])
            if count is None:
                # b"" when there is no space: not a count.
                space = find(b" ", position, position + reach) + 1
                width = space - position
                number = buffer[position:space]
                count = count_of(number)
                if count is None:
                    if not number[:-1].isdigit() or number[0] == 0x30:
                        break
                    count = int(number)
                    if count > limit:
                        break
                    if count < _COUNTED:
                        counts[number] = count
            stop = space + count
            if stop > size:
                break
            # An LF ending the message is not part of it (see _frames).
            append(buffer[space : stop - (buffer[stop - 1] == 0x0A)])
            position = stop
        return position

    def _terminatedRun(
        self,
        buffer: bytes,
        position: int,
        nul: bool,
        messages: list[bytes],
        marks: dict[int, bytes],
    ) -> int:
        """
        Append the messages of the traditional frames from ``position`` up to the last
        terminator in ``buffer`` to ``messages``, all at once, joined by newlines and
        marked :data:`_RUN` in ``marks``, when each of them starts
        with ``<`` (a PRI: so none is empty or octet counted) and none is too long;
        return where the frame after them starts, or ``position`` when they are not
        such frames (for ``_frames``, a frame at a time).

        A few C passes over the run: the NULs made LFs (when there is no CR, which
        only an LF removes), CR LF made LF, LFs counted twice (all of them, and those
        followed by ``<``), one split.
        """
        end = buffer.rfind(b"\n", position)
        if nul:
            end = max(end, buffer.rfind(b"\x00", position))
        if end < 0:
            return position
        run = buffer[position:end]
        if nul:
            if 0x0D in run:
                return position
            run = run.replace(b"\x00", b"\n")
        elif 0x0D in run or buffer[end - 1] == 0x0D:
            run = buffer[position : end + 1].replace(b"\r\n", b"\n")[:-1]
        newlines = run.count(b"\n")
        if run.count(b"\n<") != newlines:
            return position
        if len(run) > self._max and self._hasLongLine(run):
            return position
        # Kept joined: a text record is made of it as it is.
        marks[len(messages)] = _RUN
        messages.append(run)
        self._joined += newlines
        return end + 1

    def _split(
        self, messages: list[bytes], marks: dict[int, bytes]
    ) -> tuple[list[bytes], dict[int, bytes]]:
        """
        ``messages`` and ``marks`` with each run (:data:`_RUN`) split into its messages.
        """
        if all(mark is not _RUN for mark in marks.values()):
            return messages, marks
        self._joined = 0
        split: list[bytes] = []
        split_marks: dict[int, bytes] = {}
        for index, message in enumerate(messages):
            mark = marks.get(index)
            if mark is _RUN:
                split.extend(message.split(b"\n"))
                continue
            if mark is not None:
                split_marks[len(split)] = mark
            split.append(message)
        return split, split_marks

    def _messageRecords(
        self, now: float, messages: list[bytes], marks: dict[int, bytes]
    ) -> Sequence[bytes]:
        """
        Records for ``messages``, with the markers of ``marks`` (by index); JSON records
        also hold each message's parsed fields (see :func:`parsed_json`).  Text records
        for messages that hold no newline and have no marker (the usual case) are
        escaped all at once, joined by newlines, as line mode escapes a chunk.
        """
        total = len(messages) + self._joined
        if self._runs and all(mark is _RUN for mark in marks.values()):
            if self._format == "json":
                made = self._jsonRecords(now, messages, total)
                if made is not None:
                    return made
            else:
                joined = b"\n".join(messages)
                escaped, newlines = self._body(joined)
                if newlines == total - 1:
                    assert escaped is not None  # always, for text
                    prefix = self._prefix(records.timestamp(now))
                    self.lines += total
                    return (prefix, escaped.replace(b"\n", b"\n" + prefix), b"\n")
        messages, marks = self._split(messages, marks)
        pairs = [(message, marks.get(index, b"")) for index, message in enumerate(messages)]
        return (self._records(now, pairs),)

    def _jsonRecords(self, now: float, messages: list[bytes], total: int) -> Sequence[bytes] | None:
        """
        JSON records for the ``total`` messages of ``messages`` (runs joined), their lines escaped all at once, joined by
        newlines, as line mode escapes a chunk; ``None`` when a message holds a newline
        or is not valid UTF-8 (those take :meth:`_records`).

        When the chunk has nothing but quotes and backslashes to escape (the usual
        case), each message is parsed by one match of :data:`_HEADER` and written with
        one template of :data:`_NIL_RECORDS`; else each message's fields are
        :func:`parsed_json`'s.
        """
        joined = b"\n".join(messages)
        special = joined.translate(None, _JSON_PLAIN)
        if special.count(b"\n") != total - 1:
            return None
        if total != len(messages):
            messages = joined.split(b"\n")
        quotes = not special.translate(None, b'\n"\\')
        if quotes:
            escaped = joined.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        else:
            body, _ = self._body(joined)
            if body is None:
                return None
            escaped = body
        prefix = self._prefix(records.timestamp(now))
        header = _HEADER.match
        pri_json = _PRI_JSON.get
        templates = _NIL_RECORDS.get
        out: list[bytes] = []
        append = out.append
        for message, line in zip(messages, escaped.split(b"\n"), strict=True):
            if not quotes:
                append(b'%s%s"%s}\n' % (prefix, line, parsed_json(message)))
                continue
            groups = header(message).groups()  # type: ignore[union-attr]
            pri, stamp, host, app, procid, msgid, data, msg = groups[:8]
            if pri is None:
                # RFC 3164, read leniently: no msgid, no structured data, a message.
                pri, stamp, host, app, procid, msg = groups[8:]
                msgid = data = None
            names = _DEFAULT_PRI_JSON if pri is None else pri_json(pri)
            absent = (
                stamp is None,
                host is None,
                app is None,
                procid is None,
                msgid is None,
                data is None,
                msg is None,
            )
            template = templates(absent) or _nil_record(absent)
            # Present fields are never empty, but the message may be.
            present = [*filter(None, (stamp, host, app, procid, msgid, data))]
            if msg is not None:
                present.append(msg)
            fields = b"\0".join(present)
            if 0x22 in fields or 0x5C in fields:
                # JSON's escapes, made in the fields joined by NULs (which none holds)
                # and split again.
                fields = fields.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                present = fields.split(b"\0")
            append(template % (prefix, line, names, *present))
        self.lines += len(out)
        return (b"".join(out),)

    def _records(self, now: float, lines: Iterable[tuple[bytes, bytes]]) -> bytes:
        """
        Records for ``(message, marker)`` pairs, a call per message; JSON records also
        hold the message's parsed fields (see :func:`parsed_json`).
        """
        if self._format != "json":
            return super()._records(now, lines)
        prefix = self._prefix(records.timestamp(now))
        out = [
            b"%s%s\n" % (prefix, records.json_line(line, marker, parsed_json(line)))
            for line, marker in lines
        ]
        self.lines += len(out)
        return b"".join(out)

    @staticmethod
    def _shown(buffer: bytes | bytearray, position: int) -> str:
        """
        The bad count as a sentence shows it: its first 20 bytes, escaped.
        """
        piece = bytes(buffer[position : position + 20]).split(b" ", 1)[0]
        return repr(records.escape(piece).decode("utf-8"))

    def _fail(self, position: int, reason: str) -> int:
        """
        Note the framing error at ``position``; return it.
        """
        self.error = framing_error(self._conn, self._peer, reason)
        return position

    def finish(self, now: float) -> bytes:
        """
        The record for an unfinished last frame, marked partial, when the connection ends
        at ``now``; ``b""`` when there is none.  Later calls return ``b""``.
        """
        held, self._buffer = self._buffer, None
        if held is None or self._discarding or self.error is not None:
            return b""
        pending = bytes(held[_EMPTY.match(held).end() :])  # type: ignore[union-attr]
        if not pending:
            return b""
        limit = self._max
        if len(pending) > limit:
            return self._records(now, [(pending[:limit], records.TRUNCATED)])
        return self._records(now, [(pending, records.PARTIAL)])

    @property
    def held(self) -> int:
        """
        The bytes of memory the unfinished frame takes now (0 when nothing is held).
        """
        return sys.getsizeof(self._buffer) if self._buffer is not None else 0
