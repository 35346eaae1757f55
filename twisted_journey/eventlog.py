# -*- test-case-name: tests.test_eventlog -*-
"""
An event log that never blocks the server writing it.

A server's events (``Got connection from ...``, refusals, errors) go to a stream: twistd's
log on standard output under ``-n``, a worker's events on the pipe to its supervisor, the
stdlib twins' events on standard error.  When whatever reads that stream stops reading (a
pipe into a stalled program, a terminal on hold), a plain blocking ``write`` stops the whole
server: it serves nothing and does not even act on ``SIGTERM``.

:class:`EventStream` takes the writes instead: it writes an event at once when the
descriptor has room for it (the usual case, in order), else queues whole events in a bounded
buffer that one background thread writes out as the reader takes them, and drops an event
that does not fit, counting it.
Once the reader has caught up (or when the process exits, waiting at most
:data:`EXIT_WAIT` seconds) it writes one line saying how many events were dropped
(:func:`dropped_sentence`).  Nothing is torn: an event is written whole or not at all.

Stdlib only: the stdlib twins use it as well as the Twisted servers.
"""

from __future__ import annotations

import atexit
import io
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO, cast

__all__ = [
    "ACCEPT_REPORT_INTERVAL",
    "DEFAULT_BUFFER",
    "EXIT_WAIT",
    "AcceptFailures",
    "EventStream",
    "accept_failure_sentence",
    "classic_line",
    "dropped_sentence",
    "event_stream",
]

#: Bytes of events held for a reader that has fallen behind, before events are dropped.
DEFAULT_BUFFER = 256 * 1024

#: Seconds a process waits at exit for its event log to take what is still queued.
EXIT_WAIT = 2.0


def dropped_sentence(count: int) -> str:
    """
    The event that says ``count`` events were dropped.

    >>> dropped_sentence(3)
    '3 log events were dropped: the event log was not being read fast enough.'
    """
    noun = "log event was" if count == 1 else "log events were"
    return f"{count} {noun} dropped: the event log was not being read fast enough."


#: Seconds between two events about failed accepts (out of descriptors or memory): a
#: listening socket that cannot accept stays readable, and one event per attempt would
#: flood the log.
ACCEPT_REPORT_INTERVAL = 1.0


def accept_failure_sentence(reason: str, held_back: int) -> str:
    """
    The event for a failed accept (``reason``: ``EMFILE``...), and how many more failed
    since the last such event without one of their own.

    >>> accept_failure_sentence("EMFILE", 2)
    'Could not accept new connection (EMFILE); 2 more failed accepts since the last report.'
    """
    sentence = f"Could not accept new connection ({reason})"
    if held_back:
        sentence += f"; {held_back} more failed accepts since the last report"
    return sentence + "."


class AcceptFailures:
    """
    Failed accepts of one process, said at most once per ``interval`` seconds: the
    others are counted and the next event gives their number.

    :param interval: seconds between two events.
    :param clock: the time now, in seconds.
    :ivar held_back: failures since the last event that had none of their own.
    """

    def __init__(
        self, interval: float = ACCEPT_REPORT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.held_back = 0
        self._last: float | None = None

    def failed(self, reason: str) -> str | None:
        """
        An accept failed with ``reason`` (``EMFILE``...): the sentence to log now, or
        ``None`` when one was logged less than ``interval`` seconds ago.
        """
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            self.held_back += 1
            return None
        self._last = now
        held_back, self.held_back = self.held_back, 0
        return accept_failure_sentence(reason, held_back)


def classic_line(sentence: str) -> str:
    """
    ``sentence`` as a line of twistd's text log (local time, as twistd writes it).
    """
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime())
    return f"{when} [twisted_journey#warn] {sentence}\n"


def _plain_line(sentence: str) -> str:
    """
    ``sentence`` as a line of its own.
    """
    return sentence + "\n"


class EventStream(io.TextIOBase):
    """
    A text stream over the descriptor ``fd`` whose :meth:`write` never blocks.

    :param fd: the descriptor written to (not closed by :meth:`close`).
    :param line: turns a sentence of our own into the line written for it (a timestamp
        and the log's prefix, or a JSON event).
    :param limit: bytes held for a slow reader; past it, whole events are dropped.
    :param encoding: how text is written.

    :ivar dropped: events dropped since the stream was made.
    """

    def __init__(
        self,
        fd: int,
        line: Callable[[str], str] = _plain_line,
        limit: int = DEFAULT_BUFFER,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__()
        self.fd = fd
        self.line = line
        self.limit = limit
        self._encoding = encoding
        self.dropped = 0
        self._unreported = 0
        self._pending: deque[bytes] = deque()
        self._size = 0
        self._broken = False
        self._closing = False
        self._start()
        atexit.register(self.close)

    def _start(self) -> None:
        """
        A fresh lock, no writer and nothing queued yet (also in a forked child, where
        the writer of the parent does not exist, its lock may be held for ever, and what
        it queued is the parent's to write).
        """
        self._pending.clear()
        self._size = 0
        self._unreported = 0
        self._pid = os.getpid()
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLOUT)
        # Reentrant: a signal handler runs in the main thread between any two bytecodes,
        # also inside write() with the lock held, and logging from it (twistd's "Received
        # SIGTERM") must not wait for a lock its own thread holds.
        self._wake = threading.Condition(threading.RLock())
        self._writer: threading.Thread | None = None
        self._idle = True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """
        The encoding text is written in.
        """
        return self._encoding

    def fileno(self) -> int:
        """
        The descriptor written to.
        """
        return self.fd

    def writable(self) -> bool:
        """
        Always writable: a write that cannot be taken is dropped, never refused.
        """
        return True

    def isatty(self) -> bool:
        """
        Whether the descriptor is a terminal.
        """
        try:
            return os.isatty(self.fd)
        except OSError:
            return False

    def write(self, text: str) -> int:
        """
        Write ``text`` (one event) now if the descriptor has room, else queue it for the
        writer, or drop and count it when the buffer is full or the descriptor is gone.
        Never blocks.
        """
        data = text.encode(self._encoding, "backslashreplace")
        if not data:
            return 0
        if self._pid != os.getpid():
            self._start()
        with self._wake:
            if self._broken:
                self.dropped += 1
                self._unreported += 1
                return len(text)
            if self._size + len(data) > self.limit:
                # Dropped: the writer says so (see _run), even with nothing queued.
                self.dropped += 1
                self._unreported += 1
            else:
                if not self._pending and self._idle:
                    # Nothing queued and the writer waits: write now what surely fits.
                    data = self._writeNow(data)
                    if not data:
                        return len(text)
                self._pending.append(data)
                self._size += len(data)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="journey-event-log", daemon=True
                )
                self._writer.start()
            elif self._idle:
                self._wake.notify_all()
        return len(text)

    def _writeNow(self, data: bytes) -> bytes:
        """
        Write ``data`` at once if the descriptor can take it without waiting (it reports
        room, and ``data`` is no longer than ``PIPE_BUF``, which a pipe with room takes
        whole); return what is left to queue.
        """
        if len(data) > select.PIPE_BUF:
            return data
        try:
            ready = self._poll.poll(0)
            if not ready or not ready[0][1] & select.POLLOUT:
                return data
            return data[os.write(self.fd, data) :]
        except (BlockingIOError, InterruptedError):
            return data
        except OSError:
            self._broken = True
            self.dropped += 1
            return b""

    def flush(self) -> None:
        """
        Nothing to do: the writer writes as soon as the reader takes it.
        """

    def _run(self) -> None:
        """
        The writer: write what is queued (blocking, in this thread only), then say how
        many events were dropped meanwhile.
        """
        while True:
            with self._wake:
                while not self._pending and not self._unreported and not self._closing:
                    self._idle = True
                    self._wake.notify_all()  # for drain()
                    self._wake.wait()
                self._idle = False
                if not self._pending and not self._unreported:
                    return
                chunk = b"".join(self._pending)
                self._pending.clear()
                self._size = 0
            if not self._writeAll(chunk):
                return
            with self._wake:
                count, self._unreported = self._unreported, 0
            if count:
                summary = self.line(dropped_sentence(count)).encode(
                    self._encoding, "backslashreplace"
                )
                if not self._writeAll(summary):
                    return

    def _writeAll(self, data: bytes) -> bool:
        """
        Write all of ``data`` to the descriptor; on an error (the reader is gone), drop
        everything from now on.
        """
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            with self._wake:
                self._broken = True
                self.dropped += len(self._pending)
                self._pending.clear()
                self._size = 0
            return False
        return True

    def drain(self, timeout: float = EXIT_WAIT) -> None:
        """
        Wait at most ``timeout`` seconds for the writer to write what is queued (and say
        what was dropped): for a process about to end without ``atexit`` (twistd ends by
        raising the signal that stopped it).
        """
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._writer is not None and (
                self._pending or self._unreported or not self._idle
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._broken:
                    return
                self._wake.wait(remaining)

    def close(self, timeout: float = EXIT_WAIT) -> None:
        """
        Let the writer finish what is queued (and say what was dropped), waiting at most
        ``timeout`` seconds; the descriptor stays open.
        """
        atexit.unregister(self.close)
        if self._pid != os.getpid():
            self._start()
        writer = self._writer
        with self._wake:
            self._closing = True
            if writer is None and self._unreported and not self._broken:
                # Nothing was ever written by a writer of ours: say it here, if it fits.
                self._pending.append(self.line(dropped_sentence(self._unreported)).encode())
                self._unreported = 0
            if writer is None and self._pending:
                writer = self._writer = threading.Thread(
                    target=self._run, name="journey-event-log", daemon=True
                )
                writer.start()
            self._wake.notify_all()
        if writer is not None:
            writer.join(timeout)
        super().close()


def event_stream(stream: Any, line: Callable[[str], str] = _plain_line) -> TextIO:
    """
    An :class:`EventStream` writing where ``stream`` (an open text file such as
    ``sys.stdout``) writes, once what ``stream`` holds is flushed; ``stream`` itself when
    it is an :class:`EventStream` already or has no descriptor (a test's capture).
    """
    if isinstance(stream, EventStream):
        return cast(TextIO, stream)
    try:
        fd = stream.fileno()
        stream.flush()
    except (AttributeError, OSError, ValueError):
        return cast(TextIO, stream)
    return cast(TextIO, EventStream(fd, line))
