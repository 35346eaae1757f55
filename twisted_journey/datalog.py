# -*- test-case-name: tests.test_records -*-
"""
The data-log file of journey-mux, stdlib only: buffered, flushed on demand, rotated by
size without splitting a record, reopened for logrotate, and loud when a write fails.

Both engines write records (whole lines, from :mod:`twisted_journey.records`) to a
:class:`DataLog` and call :meth:`DataLog.flush` on a timer and at stop.

A failed write (``ENOSPC`` on ``/dev/full``, ``EIO``...) does not stop the server: the
records of that flush are dropped and counted, the first failure and then at most one
per :attr:`DataLog.report_interval` are reported through ``report`` (the engines log it
critically), and the next flush tries again; a later success is reported too, with the
totals lost.  The server keeps serving its clients and the file's readers are told how
much is missing.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from twisted_journey.settings import SettingError

__all__ = ["DataLog", "check_output", "keep_count"]


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


class DataLog:
    """
    An append-only file of records.

    :param path: the file, or ``"-"`` for standard output.
    :param rotate_bytes: start a new file before one would grow past this many bytes
        (``None``: never); the old ones are ``PATH.1`` (newest) to ``PATH.K``.
    :param rotate_keep: how many old files to keep (``K``).
    :param report: called with one sentence when writing fails or recovers.
    :param buffer_bytes: flush as soon as this much is buffered.

    :ivar dropped_records: records lost to write errors since start.
    :ivar dropped_bytes: bytes lost to write errors since start.
    :ivar written: bytes written since start.
    :ivar records_written: records written since start.
    :ivar write_errors: failed writes since start.
    :raises OSError: from the constructor, when ``path`` cannot be opened.
    """

    report_interval = 10.0

    def __init__(
        self,
        path: str,
        rotate_bytes: int | None = None,
        rotate_keep: int = 10,
        report: Callable[[str], object] = lambda sentence: None,
        buffer_bytes: int = 1 << 18,
    ) -> None:
        check_output(path, rotate_bytes)
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.rotate_keep = rotate_keep
        self.report = report
        self.buffer_bytes = buffer_bytes
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._failing = False
        self._last_report = -float("inf")
        self.dropped_records = 0
        self.dropped_bytes = 0
        self.written = 0
        self.records_written = 0
        self.write_errors = 0
        self._fd = -1
        self._size = 0
        self._closed = False
        self._open()

    def _open(self) -> None:
        """
        Open (or reopen) the file for appending.
        """
        if self.path == "-":
            self._fd = 1
            self._size = 0
            return
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _close_fd(self) -> None:
        """
        Close the file (never standard output).
        """
        if self._fd > 2:
            os.close(self._fd)
        self._fd = -1

    def write(self, records: bytes) -> None:
        """
        Buffer whole records; flush when the buffer is full.
        """
        if records and not self._closed:
            self._buffer.append(records)
            self._buffered += len(records)
            if self._buffered >= self.buffer_bytes:
                self.flush()

    def flush(self) -> None:
        """
        Write everything buffered (rotating first when it is due).  Never raises for a
        write error: see the module docstring.
        """
        if not self._buffer:
            return
        data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer.clear()
        self._buffered = 0
        view = memoryview(data)
        records = data.count(b"\n")
        try:
            if self._fd < 0:
                self._open()
            while view:
                if self.rotate_bytes is not None and self._size + len(view) > self.rotate_bytes:
                    room = self.rotate_bytes - self._size
                    cut = bytes(view[:room]).rfind(b"\n") + 1 if room > 0 else 0
                    if cut == 0 and self._size == 0:
                        # One record bigger than a whole file: it gets a file of its own.
                        cut = bytes(view).find(b"\n") + 1 or len(view)
                    if cut:
                        self._write_all(view[:cut])
                        view = view[cut:]
                    if view:
                        self.rotate()
                    continue
                self._write_all(view)
                view = view[len(view) :]
        except OSError as e:
            lost = bytes(view)
            self.records_written += records - lost.count(b"\n")
            self._failed(e, lost)
            return
        self.records_written += records
        if self._failing:
            self._failing = False
            self.report(
                f"data log {self.path} is being written again; {self.dropped_records} records "
                f"({self.dropped_bytes} bytes) were lost while it failed."
            )

    def _write_all(self, view: memoryview) -> None:
        """
        Write all of ``view``; ``os.write`` may write less than asked.
        """
        while view:
            done = os.write(self._fd, view)
            self._size += done
            self.written += done
            view = view[done:]

    def _failed(self, error: OSError, lost: bytes) -> None:
        """
        Count the records lost to ``error`` and report it, at most every
        :attr:`report_interval` seconds.
        """
        self.write_errors += 1
        self.dropped_records += lost.count(b"\n")
        self.dropped_bytes += len(lost)
        now = time.monotonic()
        if not self._failing or now - self._last_report >= self.report_interval:
            self._failing = True
            self._last_report = now
            reason = error.strerror or errno.errorcode.get(error.errno or 0, str(error))
            self.report(
                f"cannot write data log {self.path}: {reason}; {self.dropped_records} records "
                f"({self.dropped_bytes} bytes) lost so far, and the server carries on."
            )

    def rotate(self) -> None:
        """
        Move ``PATH`` to ``PATH.1`` (``PATH.1`` to ``PATH.2``... dropping the oldest past
        ``rotate_keep``) and start an empty ``PATH``.  Buffered records are not written
        here; :meth:`flush` calls this between records.
        """
        if self.path == "-":
            return
        self._close_fd()
        for number in range(self.rotate_keep, 0, -1):
            older = f"{self.path}.{number}"
            if number == self.rotate_keep:
                if os.path.exists(older):
                    os.unlink(older)
                continue
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{number + 1}")
        if self.rotate_keep > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._open()

    def reopen(self) -> None:
        """
        Flush, then close and reopen ``PATH`` (after logrotate has moved it away).
        """
        self.flush()
        if self.path == "-":
            return
        self._close_fd()
        try:
            self._open()
        except OSError as e:
            self._failed(e, b"")

    def close(self) -> None:
        """
        Flush and close; later writes are ignored.
        """
        self.flush()
        self._buffer.clear()
        self._closed = True
        self._close_fd()
