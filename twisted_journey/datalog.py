# -*- test-case-name: tests.test_datalog -*-
"""
The data-log file of journey-mux, stdlib only: buffered, flushed on demand, rotated by
size without splitting a record, reopened for logrotate, loud when a write fails, and
never blocking its server.

Both engines write records (whole lines, from :mod:`twisted_journey.records`) to a
:class:`DataLog` and call :meth:`DataLog.flush` on a timer and at stop.

**Whole records.**  A record is on disk whole or not at all.  When a write to a regular
file fails part-way (``ENOSPC``, ``EDQUOT``, ``EIO``...), the file is truncated back to the
end of the last whole record written, the records of that flush that did not make it are
dropped and counted exactly (``DataLog.dropped``), the first failure and then at most
one per :attr:`DataLog.report_interval` are reported through ``report`` (the engines log
it critically), and the next flush tries again with whole records; a later success is
reported too, with the totals lost.  The server keeps serving its clients.

**Never blocking.**  A pipe, FIFO, socket or terminal output is written without blocking
(through a descriptor of its own, so standard output's flags are left as they were for
whoever shares it).  What the output does not take yet stays buffered; the engine is told
through ``DataLog.watch`` to call :meth:`DataLog.flush` when the output is writable,
and through ``DataLog.pause`` and ``DataLog.resume`` to stop and restart reading
from its clients once ``DataLog.max_backlog`` bytes are waiting: nothing is lost, the
clients wait.  :meth:`DataLog.close` waits at most ``stop_timeout`` seconds for a stalled
output, then reports in one sentence how many records it could not write.

**Rotation** (``rotate_bytes``) renames the full file to ``PATH-YYYYMMDDTHHMMSS.ffffffZ``
(its UTC time of rotation, to the microsecond, always later than the one before: the
names sort oldest first, like logrotate's ``dateext``) and deletes the oldest of these
beyond ``rotate_keep``: one rename and at most one deletion, whatever the count kept.
Files named otherwise (logrotate's own) are never touched.

**Moved away.**  At every flush the file at ``PATH`` is compared (device and inode) with
the one being written; when logrotate (or anyone) has renamed or removed it, the data log
reopens ``PATH`` by itself, so records go to the new file with or without ``SIGUSR1``.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import os
import re
import select
import socket
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted_journey.settings import DEFAULT_ROTATE_KEEP, SettingError

__all__ = ["DataLog", "check_output", "keep_count", "open_output", "rotated_name"]


def keep_count(name: str, value: str | int) -> int:
    """
    A number of rotated files to keep: a whole number of at least 0.

    :raises SettingError: otherwise, naming the option ``name``.
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise SettingError(f"{name} must be a whole number of at least 0, not {value!r}.")
    return number


def check_output(path: str, rotate_bytes: int | None) -> None:
    """
    Refuse settings that cannot go together.

    :raises SettingError: rotation asked for on standard output.
    """
    if path == "-" and rotate_bytes is not None:
        raise SettingError("--rotate-bytes needs --output PATH: standard output cannot be rotated.")


def open_output(path: str, wait: bool = True) -> int:
    """
    Open the data log at ``path`` for appending, creating it: never through a symbolic
    link planted at that name (the last component; use ``-`` for standard output).

    :param wait: whether opening a FIFO may wait for its reader.
    :raises OSError: whose ``strerror`` is a phrase for a person, for a link too.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags if wait else flags | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(
                errno.ELOOP,
                "a symbolic link is there, and the data log is never written through one",
            ) from None
        raise


def rotated_name(path: str, microseconds: int) -> str:
    """
    The name a rotated data log gets: ``PATH-YYYYMMDDTHHMMSS.ffffffZ`` for the UTC time
    ``microseconds`` after the epoch.
    """
    seconds, fraction = divmod(microseconds, 1_000_000)
    return f"{path}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{fraction:06d}Z"


_STAMP = re.compile(r"-(\d{8}T\d{6})\.(\d{6})Z")


def _stamp_of(name: str) -> int:
    """
    The microseconds since the epoch in a :func:`rotated_name` suffix.
    """
    match = _STAMP.fullmatch(name)
    assert match is not None
    whole = time.strptime(match.group(1), "%Y%m%dT%H%M%S")
    return calendar.timegm(whole) * 1_000_000 + int(match.group(2))


class DataLog:
    """
    An append-only file of records.

    :param path: the file, or ``"-"`` for standard output.
    :param rotate_bytes: start a new file before one would grow past this many bytes
        (``None``: never); see the module docstring for the rotated files' names.
    :param rotate_keep: how many rotated files to keep.
    :param report: called with one sentence when writing fails, recovers, or cannot
        finish at close (the engines log it critically).
    :param notice: called with one sentence for events that lose nothing (the file was
        moved away and reopened; the engines log it as information).
    :param buffer_bytes: flush as soon as this much is buffered.
    :param max_backlog: call ``pause`` once this many bytes wait for a slow output,
        and ``resume`` once fewer than half of them do.
    :param stop_timeout: at :meth:`close`, how long to wait for a stalled output.

    :ivar written: records written whole since start.
    :ivar written_bytes: bytes of those records.
    :ivar dropped: records lost to write errors since start (each counted once, whole).
    :ivar dropped_bytes: bytes of those records.
    :ivar writeErrors: failed writes since start (one per failed flush).
    :ivar pause: called (no arguments) when the backlog reaches ``max_backlog``.
    :ivar resume: called when it has fallen below half of that.
    :ivar watch: called with ``True`` when the output would block and :meth:`flush`
        should be called again once :meth:`fileno` is writable, ``False`` when not.
    :ivar paused: whether ``pause`` was called last (rather than ``resume``).
    :ivar waiting: whether the output would block.
    :raises OSError: from the constructor, when ``path`` cannot be opened.
    """

    report_interval = 10.0
    #: the system call that writes (tests replace it to inject short writes and errors)
    _os_write = staticmethod(os.write)
    #: the one that writes the records of several :meth:`write` calls at once, while
    #: ``_os_write`` is not replaced (tests replace it too)
    _os_writev = staticmethod(os.writev)
    #: records of this many :meth:`write` calls at most are kept apart, for one
    #: ``writev`` (``IOV_MAX`` is 1024); beyond, they are copied into one buffer
    max_pieces = 64

    def __init__(
        self,
        path: str,
        rotate_bytes: int | None = None,
        rotate_keep: int = DEFAULT_ROTATE_KEEP,
        report: Callable[[str], object] = lambda sentence: None,
        buffer_bytes: int = 1 << 18,
        *,
        notice: Callable[[str], object] = lambda sentence: None,
        max_backlog: int = 1 << 20,
        stop_timeout: float = 3.0,
    ) -> None:
        check_output(path, rotate_bytes)
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.rotate_keep = rotate_keep
        self.report = report
        self.notice = notice
        self.buffer_bytes = buffer_bytes
        self.max_backlog = max_backlog
        self.stop_timeout = stop_timeout
        self.pause: Callable[[], object] = lambda: None
        self.resume: Callable[[], object] = lambda: None
        self.watch: Callable[[bool], object] = lambda waiting: None
        self.paused = False
        self.waiting = False
        self.written = 0
        self.written_bytes = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self.writeErrors = 0
        self._buffer = bytearray()
        self._start = 0  # bytes of _buffer already written
        self._records = 0  # records in _buffer[_start:]
        # Records written since, each as the caller gave it (no copy), after those of
        # _buffer: their bytes and their number.
        self._pieces: list[bytes | memoryview] = []
        self._pieces_size = 0
        self._pieces_records = 0
        self._written_part = 0  # bytes of the buffer a cut-short writev wrote
        self._failing = False
        self._last_report = -float("inf")
        self._fd = -1
        self._identity: tuple[int, int] | None = None
        self._regular = False
        self._restore_flags: int | None = None
        self._socket: socket.socket | None = None
        self._size = 0
        self._closed = False
        self._kept: deque[str] = deque()
        self._last_stamp = 0
        self._open(wait=True)
        if rotate_bytes is not None:
            self._find_rotated()

    @property
    def dropped_records(self) -> int:
        """
        The same as ``dropped`` (the name this counter had first).
        """
        return self.dropped

    @property
    def backlog(self) -> int:
        """
        Bytes of records accepted and not yet written.
        """
        return len(self._buffer) - self._start + self._pieces_size

    def fileno(self) -> int:
        """
        The descriptor written to (``-1`` while none is open), for an engine to watch.
        """
        return self._fd

    # --- opening and closing ---------------------------------------------------------------

    def _open(self, wait: bool = False) -> None:
        """
        Open (or reopen) the file for appending; make a pipe, socket or terminal
        non-blocking.

        :param wait: whether opening a FIFO may wait for its reader (only at start: a
            reopen while serving must not block, and fails with ``ENXIO`` instead when
            no one reads the FIFO).
        """
        fd = 1 if self.path == "-" else open_output(self.path, wait)
        info = os.fstat(fd)
        self._regular = stat.S_ISREG(info.st_mode)
        # Standard output has no path to compare with: it is never "moved away".
        self._identity = (info.st_dev, info.st_ino) if self._regular and self.path != "-" else None
        self._size = info.st_size if self._regular else 0
        if stat.S_ISSOCK(info.st_mode):
            fd = self._socket_output(fd)
        elif stat.S_ISFIFO(info.st_mode) or os.isatty(fd):
            fd = self._non_blocking(fd)
        self._fd = fd

    def _non_blocking(self, fd: int) -> int:
        """
        A non-blocking descriptor for ``fd``'s pipe, socket or terminal: for standard
        output, a new open file description of the same pipe or terminal when Linux
        allows it (``/proc/self/fd/1``), so the flags of the one we share are untouched;
        otherwise ``fd`` itself, its flags put back by :meth:`_close_fd`.
        """
        if fd == 1:
            with contextlib.suppress(OSError):
                return os.open(
                    "/proc/self/fd/1",
                    os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_APPEND,
                )
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if fd <= 2:
            self._restore_flags = flags
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return fd

    def _socket_output(self, fd: int) -> int:
        """
        A socket as output (standard output under systemd goes to journald through one):
        written with ``MSG_DONTWAIT`` through a duplicate, so its flags, shared with
        whoever else writes to it, stay blocking.
        """
        sock = socket.socket(fileno=os.dup(fd))
        self._socket = sock

        def send(ignored: int, data: Any) -> int:
            return sock.send(data, socket.MSG_DONTWAIT)

        self._os_write = send
        return sock.fileno()

    def _close_fd(self) -> None:
        """
        Close the file (never standard output: give it back its flags instead).  An
        engine watching it stops (the next flush asks again, for the new descriptor).
        """
        if self.waiting:
            self.waiting = False
            self.watch(False)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            del self._os_write
        elif self._fd > 2:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        elif self._fd >= 0 and self._restore_flags is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._fd, fcntl.F_SETFL, self._restore_flags)
            self._restore_flags = None
        self._fd = -1

    def _moved(self) -> bool:
        """
        Whether ``PATH`` is no longer the regular file being written (renamed or removed
        by someone else).
        """
        if self._identity is None or self._fd < 0:
            return False
        try:
            info = os.stat(self.path)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._identity

    def _reopen_moved(self) -> None:
        """
        ``PATH`` was moved away: write to a new file there.
        """
        self._close_fd()
        self._open()
        self.notice(f"data log {self.path} was moved away; writing a new one at that path.")

    # --- writing ---------------------------------------------------------------------------

    def write(self, records: bytes, count: int | None = None) -> None:
        """
        Buffer whole records; flush when the buffer is full (unless the output is known
        to be full); pause the clients when too much is waiting.

        :param records: whole records, each ending in ``\\n`` (the only ``\\n`` in it).
        :param count: how many records ``records`` holds, when the caller knows (a framer
            does: it made them), so that no flush reads the bytes again to count them;
            ``None``: count them here.
        """
        if not records or self._closed:
            return
        self.extend((records,), records.count(b"\n") if count is None else count)

    def extend(self, pieces: Iterable[bytes | memoryview], count: int) -> None:
        """
        :meth:`write` for records in pieces (:meth:`twisted_journey.records.Framer.feedPieces`),
        which, one after the other, are whole records.

        :param count: how many records the pieces hold.
        """
        if self._closed:
            return
        # Kept as they are: a flush writes them all with one writev (or copies them
        # into the buffer once); appending each to one growing buffer would copy them,
        # and the buffer too each time it grows.
        kept = self._pieces
        for piece in pieces:
            if piece:
                kept.append(piece)
                self._pieces_size += len(piece)
        self._pieces_records += count
        if len(kept) >= self.max_pieces:
            self._gather()
        backlog = self.backlog
        if backlog >= self.buffer_bytes and not self.waiting:
            self.flush()
            backlog = self.backlog
        if backlog >= self.max_backlog and not self.paused:
            self.paused = True
            self.pause()

    def flush(self) -> None:
        """
        Write everything buffered (rotating when it is due), or as much as a
        non-blocking output takes.  Never raises for a write error: see the module
        docstring.
        """
        self._flush(check_moved=True)

    def _gather(self) -> None:
        """
        Move the records kept apart into the buffer, after those already there.
        """
        pieces = self._pieces
        if not pieces:
            return
        if self._start >= len(self._buffer):
            self._buffer = bytearray().join(pieces)  # one copy, of the exact size
            self._start = 0
        else:
            self._buffer += b"".join(pieces)
        self._records += self._pieces_records
        self._pieces = []
        self._pieces_size = self._pieces_records = 0

    def _write_pieces(self) -> bool:
        """
        Write the records kept apart with one ``writev``, straight from where the callers
        made them, when nothing else waits, they all go in the current file, and
        ``_os_write`` is the plain one; else (or if the write is cut short) move them into
        the buffer, its first ``done`` bytes noted as written, for :meth:`_flush`.

        :return: whether all of them were written.
        """
        pieces = self._pieces
        size = self._pieces_size
        limit = self.rotate_bytes
        if (
            self._start < len(self._buffer)
            # a socket (or a test's writes, unless it replaces the writev too)
            or ("_os_write" in self.__dict__ and "_os_writev" not in self.__dict__)
            or (self._regular and limit is not None and self._size + size > limit)
        ):
            self._gather()
            return False
        try:
            done = self._os_writev(self._fd, pieces)
        except OSError:
            done = 0  # the buffer's write meets the error again, and handles it
        if done == size:
            self._size += done
            self.written += self._pieces_records
            self.written_bytes += size
            self._pieces = []
            self._pieces_size = self._pieces_records = 0
            return True
        self._gather()
        self._written_part = done
        return False

    def _flush(self, check_moved: bool) -> None:
        """
        :meth:`flush`; with ``check_moved``, first reopen ``PATH`` if it was moved away.
        """
        if not self.backlog:
            return
        try:
            if self._fd < 0:
                self._open()
            elif check_moved and self._moved():
                self._reopen_moved()
        except OSError as e:
            self._gather()
            self._failed(e, self._start, 0)
            return
        if self._pieces and self._write_pieces():
            self._emptied()
            self._recovered()
            return
        # Bytes a cut-short writev already wrote, at the start of the buffer.
        written, self._written_part = self._written_part, 0
        buffer = self._buffer
        while self._start < len(buffer):
            start = self._start
            end = len(buffer)
            limit = self.rotate_bytes
            if self._regular and limit is not None and self._size + end - start > limit:
                room = limit - self._size
                cut = buffer.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
                if cut == 0 and self._size == 0:
                    # One record bigger than a whole file: it gets a file of its own.
                    cut = buffer.find(b"\n", start) + 1 or end
                if cut == 0:
                    self._rotate_now()
                    continue
                end = cut
            if not self._write_span(start, end, written):
                return
            written = 0
            if end < len(buffer):
                self._rotate_now()
        self._emptied()
        self._recovered()

    def _recovered(self) -> None:
        """
        A flush wrote everything: report it if writes were failing.
        """
        if self._failing:
            self._failing = False
            self.report(
                f"data log {self.path} is being written again; {self.dropped} records "
                f"({self.dropped_bytes} bytes) were lost while it failed."
            )

    def _write_span(self, start: int, end: int, written: int = 0) -> bool:
        """
        Write ``_buffer[start:end]`` (whole records), of which the first ``written`` bytes
        already went out, and move :attr:`_start` past what went out.

        :return: ``True`` when all of it was written; ``False`` when the output would
            block (the rest stays buffered) or failed (the rest is dropped).
        """
        position = start + written
        self._size += written
        error: OSError | None = None
        with memoryview(self._buffer) as view:
            try:
                while position < end:
                    position += (done := self._os_write(self._fd, view[position:end]))
                    self._size += done
            except BlockingIOError:
                pass
            except OSError as e:
                error = e
            else:
                self._count_written(start, end)
                self._start = end
                return True
        if error is None:
            self._count_written(start, position)
            self._start = position
            self._compact()
            if not self.waiting:
                self.waiting = True
                self.watch(True)
            self._caught_up()
        else:
            self._failed(error, start, position - start)
        return False

    def _count_written(self, start: int, end: int) -> None:
        """
        Count the records whose last byte is in ``_buffer[start:end]`` as written
        (``start`` is :attr:`_start`): all those buffered when ``end`` is the end of the
        buffer (no pass over the bytes), else those counted in the span.
        """
        if end > start:
            done = (
                self._records if end == len(self._buffer) else self._buffer.count(b"\n", start, end)
            )
            self._records -= done
            self.written += done
            self.written_bytes += end - start

    def _compact(self) -> None:
        """
        Forget the written head of the buffer once it is most of it.
        """
        if self._start > len(self._buffer) // 2:
            del self._buffer[: self._start]
            self._start = 0

    def _emptied(self) -> None:
        """
        Everything buffered is written or dropped: forget it, stop watching the output, and
        resume the clients if they were paused.
        """
        self._buffer = bytearray()
        self._start = 0
        self._records = 0
        if self.waiting:
            self.waiting = False
            self.watch(False)
        self._caught_up()

    def _caught_up(self) -> None:
        """
        Resume the clients when the backlog has fallen below half its bound.
        """
        if self.paused and self.backlog < self.max_backlog // 2:
            self.paused = False
            self.resume()

    def _failed(self, error: OSError, start: int, done: int) -> None:
        """
        A write of ``_buffer[start:]`` failed after ``done`` bytes: keep the records that
        went out whole, take back (truncate) the torn one of a regular file, drop and count
        the rest, and report it, at most every :attr:`report_interval` seconds.
        """
        buffer = self._buffer
        whole = buffer.rfind(b"\n", start, start + done) + 1 if done else 0
        whole = max(whole, start)
        torn = start + done - whole
        if torn and self._regular:
            try:
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - torn)
                self._size -= torn
            except OSError as e:
                self.report(
                    f"cannot cut a torn record from data log {self.path}: {e.strerror or e}."
                )
        self._count_written(start, whole)
        lost = len(buffer) - whole
        self.dropped += self._records  # those left after the whole ones written
        self.dropped_bytes += lost
        self.writeErrors += 1
        self._emptied()
        now = time.monotonic()
        if not self._failing or now - self._last_report >= self.report_interval:
            self._failing = True
            self._last_report = now
            reason = error.strerror or errno.errorcode.get(error.errno or 0, str(error))
            self.report(
                f"cannot write data log {self.path}: {reason}; {self.dropped} records "
                f"({self.dropped_bytes} bytes) lost so far, and the server carries on."
            )

    # --- rotation --------------------------------------------------------------------------

    def _find_rotated(self) -> None:
        """
        Note the rotated files already there (from an earlier run), oldest first.
        """
        directory, base = os.path.split(os.path.abspath(self.path))
        prefix = re.escape(base)
        pattern = re.compile(prefix + _STAMP.pattern)
        found = []
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if pattern.fullmatch(entry.name):
                    found.append(entry.name)
        found.sort()
        self._kept.extend(os.path.join(os.path.dirname(self.path), name) for name in found)
        if found:
            self._last_stamp = _stamp_of(found[-1][len(base) :])

    def _next_name(self) -> str:
        """
        A rotated file name later than every one before, and free.
        """
        stamp = max(int(time.time() * 1_000_000), self._last_stamp + 1)
        while os.path.lexists(rotated_name(self.path, stamp)):
            stamp += 1
        self._last_stamp = stamp
        return rotated_name(self.path, stamp)

    def _rotate_now(self) -> None:
        """
        Rotate from :meth:`flush`; a rotation that fails is reported, and the records go
        on into the current file rather than being lost.
        """
        try:
            self.rotate()
        except OSError as e:
            self.report(f"cannot rotate data log {self.path}: {e.strerror or e}; writing on to it.")
            self._size = 0  # try again when another rotate_bytes have been written
            if self._fd < 0:
                with contextlib.suppress(OSError):
                    self._open()

    def rotate(self) -> None:
        """
        Rename ``PATH`` to :func:`rotated_name` (now), delete the oldest rotated files
        beyond ``rotate_keep``, and start an empty ``PATH``.  When ``PATH`` was already
        moved away (logrotate), only reopen.  Buffered records are not written here;
        :meth:`flush` calls this between records.  Standard output, pipes and devices are
        never rotated.
        """
        if not self._regular:
            return
        if self._moved():
            self._reopen_moved()
            return
        name = self._next_name()
        try:
            os.rename(self.path, name)
        except FileNotFoundError:
            self._reopen_moved()
            return
        self._kept.append(name)
        while len(self._kept) > self.rotate_keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._kept.popleft())
        self._close_fd()
        self._open()

    def reopen(self) -> None:
        """
        Flush (into the file logrotate has moved away: it holds what came before the
        signal), then close and reopen ``PATH``.
        """
        self._flush(check_moved=False)
        if self.path == "-" or self._closed:
            return
        self._close_fd()
        try:
            self._open()
        except OSError as e:
            self._failed(e, self._start, 0)

    def close(self) -> None:
        """
        Flush and close; later writes are ignored.  A stalled output is waited for at
        most ``stop_timeout`` seconds; what it did not take is counted as dropped and
        reported in one sentence.
        """
        if self._closed:
            return
        self.flush()
        deadline = time.monotonic() + self.stop_timeout
        if self.backlog and self.waiting and self._fd >= 0:
            poller = select.poll()
            poller.register(self._fd, select.POLLOUT)
            while self.backlog and self.waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                poller.poll(left * 1000)
                self.flush()
        self._gather()
        if self.backlog:
            records = self._records
            self.dropped += records
            self.dropped_bytes += self.backlog
            self.report(
                f"data log {self.path} did not take the last {records} records "
                f"({self.backlog} bytes) within {self.stop_timeout:g} seconds of stopping; "
                f"they are lost."
            )
        self._buffer = bytearray()
        self._start = 0
        self._records = 0
        self._pieces = []
        self._pieces_size = self._pieces_records = 0
        self._closed = True
        self._close_fd()
