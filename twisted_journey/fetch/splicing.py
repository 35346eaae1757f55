# -*- test-case-name: tests.test_fetch_splicing -*-
"""
The kernel's way for a large body: socket to pipe to file with ``splice(2)`` (Linux).

A body framed by ``Content-Length``, over plain TCP (no TLS), not decoded, going to a
``.part`` file, is moved by the kernel from the socket into the file: its bytes never
enter the process, so it costs neither a copy into Python's memory nor one back out, nor
an allocation per read.  Everything else about the transfer is unchanged:

- the parser still frames the body (``_twisted.consumeIdentity``
  counts the spliced bytes as received, and the last byte is left to it), so a body
  shorter than declared, bytes past its end, and connection reuse are judged exactly as
  for a body read the ordinary way;
- every splice restarts the idle timer and reports progress; the total time limit and a
  cancellation stop the connection as before;
- a write the file refuses (a full disk) stops the transfer with the same error as an
  ordinary write, and the ``.part`` is removed as usual;
- with a checksum to verify, the spliced bytes are hashed afterwards from the page cache,
  on the disk thread.

Where it does not apply -- TLS, chunked or close-delimited bodies, content decoding, a
stream (FIFO, terminal, standard output), a short body, not Linux -- the body is read the
ordinary way; ``Splicer.used`` and ``PartFile.spliced`` say whether it was taken.

The stdlib twin splices the same way, blocking, through
:meth:`~twisted_journey.fetch.sinks.PartFile.splice_socket`; both engines share the pipe
and the pipe-to-file step (:mod:`twisted_journey.fetch.sinks`).
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from typing import Any

from twisted_journey.fetch import _twisted, sinks
from twisted_journey.fetch.errors import FetchError, FileError

__all__ = ["Splicer"]


class Splicer:
    """
    Reads one identity body from a plain TCP connection with ``splice(2)`` into a file,
    in the reactor thread, in place of the connection's ordinary reads; the last byte is
    left to the connection, whose parser then ends the response as usual.

    :ivar used: bytes moved so far.
    """

    #: Bytes asked of one splice from the socket.
    pipeSize = sinks.PIPE_SIZE
    #: A body with fewer bytes left than this is read the ordinary way: a pipe costs more
    #: than it saves.
    minimum = 1 << 20
    #: The most bytes moved per wake-up, so other connections get their turn.
    perRead = 8 << 20

    def __init__(
        self,
        connection: Any,
        sink: Any,
        counted: Callable[[int], object],
        failed: Callable[[FetchError], object],
        ready: Callable[[], bool],
    ) -> None:
        self.connection = connection
        self.sink = sink
        self.counted = counted
        self.failed = failed
        self.ready: Callable[[], bool] | None = ready
        self.used = 0
        self._socket = connection.socket.fileno()
        self._pipe: tuple[int, int] | None = None
        _twisted.divertReads(connection, self.doRead)

    @classmethod
    def attach(
        cls,
        transport: Any,
        sink: Any,
        counted: Callable[[int], object],
        failed: Callable[[FetchError], object],
        ready: Callable[[], bool],
    ) -> Splicer | None:
        """
        A :class:`Splicer` taking over the reads of the body arriving on ``transport``
        (the body protocol's transport) into ``sink``, or ``None`` where splicing does not
        apply: not Linux, not plain TCP, not a ``Content-Length`` body, fewer than
        :attr:`minimum` bytes left, or a sink that is not a regular file written at its
        offset.

        :param counted: called with the size of each spliced stretch once it is in the file.
        :param failed: called with the error when the file refuses a stretch (the
            transfer must then be stopped).
        :param ready: called once before the first stretch, to write what was received
            before it; ``False``: not now, read the body the ordinary way.
        """
        if not sinks.CAN_SPLICE:
            return None
        connection = _twisted.identityBody(transport)
        if connection is None or (_twisted.identityLeft(connection) or 0) <= cls.minimum:
            return None
        fd = getattr(sink, "fileno", None)
        if not isinstance(fd, int) or not hasattr(sink, "splice_from"):
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or fcntl.fcntl(fd, fcntl.F_GETFL) & (
                os.O_APPEND
            ):
                return None
        except OSError:
            return None
        return cls(connection, sink, counted, failed, ready)

    def _openPipe(self) -> tuple[int, int]:
        """
        The pipe the bytes pass through, made on first use and as large as allowed.
        """
        if self._pipe is None:
            self._pipe = sinks.splice_pipe()
        return self._pipe

    def doRead(self) -> object:
        """
        The socket is readable: splice what is there (up to :attr:`perRead`, all but the
        body's last byte) into the file.  At the body's last byte, at the end of the
        stream or at an error on the socket, hand the connection back to its own
        ``doRead``, which sees the same and reports it as it always does.
        """
        budget = self.perRead
        while budget > 0:
            left = _twisted.identityLeft(self.connection)
            want = min((left or 0) - 1, self.pipeSize, budget)
            if want <= 0:
                return self._handBack()
            if self.ready is not None:
                ready, self.ready = self.ready, None
                try:
                    if not ready():
                        return self._handBack()
                except FetchError as e:
                    return self._fail(e)
                except Exception as e:
                    return self._fail(FileError(f"cannot write the file: {e}."))
            r, w = self._openPipe()
            try:
                moved = os.splice(
                    self._socket, w, want, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
                )
            except BlockingIOError:
                return None
            except OSError:
                return self._handBack()
            if not moved:
                return self._handBack()
            try:
                self.sink.splice_from(r, moved)
            except FetchError as e:
                return self._fail(e)
            except Exception as e:
                return self._fail(FileError(f"cannot write the file: {e}."))
            self.used += moved
            budget -= moved
            _twisted.consumeIdentity(self.connection, moved)
            self.counted(moved)
            if self._pipe is None or self.connection.disconnecting:
                return None  # stopped meanwhile (a timer, a cancellation): read no more
        return None

    def _fail(self, error: FetchError) -> object:
        """
        The file refused the body: stop diverting, and report ``error`` (which stops the
        transfer).
        """
        self.release()
        self.failed(error)
        return None

    def _handBack(self) -> object:
        """
        Give the connection its own reads back, and let it read now.
        """
        self.release()
        return self.connection.doRead()

    def release(self) -> None:
        """
        Stop diverting the connection's reads; close the pipe (idempotent).
        """
        _twisted.restoreReads(self.connection)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
