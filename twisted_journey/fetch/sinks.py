# -*- test-case-name: tests.test_fetch_files,tests.test_fetch_download -*-
"""
Where a body goes while it arrives, stdlib only: the ``NAME.part`` file renamed into
place when complete (:class:`PartFile`), or the FIFO, device, terminal or standard output
the user named, written into as the body arrives (:class:`StreamSink`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import select
import sys
from typing import Any

from twisted_journey.fetch.errors import ChecksumMismatch, FileError
from twisted_journey.fetch.naming import STDOUT, _server_named, refuse_server_name, streams_into
from twisted_journey.fetch.safefiles import (
    _CLOEXEC,
    _is,
    _replaceable,
    _unlink,
    open_existing,
    own_existing,
    own_new,
    replace_atomically,
)
from twisted_journey.fetch.validators import forget_validators

__all__ = [
    "CAN_SPLICE",
    "PartFile",
    "Sink",
    "StreamSink",
    "open_sink",
    "same_content",
    "splice_pipe",
]

#: Whether this system can move bytes from a socket into a file with ``splice(2)``
#: (Linux): :meth:`PartFile.splice_from` and :meth:`PartFile.splice_socket`.
CAN_SPLICE = sys.platform.startswith("linux") and hasattr(os, "splice")

#: Bytes the pipe between a socket and a file holds when splicing (the system may grant
#: less: then it works in smaller steps).
PIPE_SIZE = 1 << 20

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def splice_pipe() -> tuple[int, int]:
    """
    A non-blocking pipe ``(read end, write end)`` to splice through, as large as allowed
    up to ``PIPE_SIZE``.
    """
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


class Sink:
    """
    Where a body goes while it arrives: a :class:`PartFile` (renamed into place when
    complete) or a :class:`StreamSink` (written straight into a FIFO, a device, a terminal
    or standard output).  :func:`open_sink` picks one.

    :ivar path: the final name.
    :ivar part: the ``.part`` name, or ``None`` when nothing is renamed.
    :ivar offset: bytes already there when opened (a resumed ``.part``).
    :ivar written: bytes there now.
    :ivar digest: a running SHA-256, when asked for.
    """

    path: str
    part: str | None
    offset: int
    written: int
    digest: Any
    #: Whether a transfer into this sink can be resumed later (``--continue``).
    resumable = True

    def __init__(self, path: str, sha256: bool = False) -> None:
        self.path = path
        self.digest = hashlib.sha256() if sha256 else None
        self.offset = self.written = 0
        self._fd: int | None = None

    def write(self, data: bytes) -> None:
        """
        Append ``data``; raises :class:`FileError` when the file refuses it.
        """
        self.write_many([data])

    def write_many(self, chunks: list[bytes]) -> None:
        """
        Append every chunk with as few system calls as possible (``writev``), without
        joining them first; raises :class:`FileError` when the file refuses them.
        """
        assert self._fd is not None
        fd = self._fd
        try:
            for start in range(0, len(chunks), 512):
                batch = chunks[start : start + 512]
                size = sum(len(c) for c in batch)
                done = os.writev(fd, batch) if hasattr(os, "writev") else 0
                if done < size:  # a short write (or no writev): finish plainly
                    rest = memoryview(b"".join(batch))[done:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
        except OSError as e:
            raise FileError(
                f"cannot write {self.part or self.path!r}: {e.strerror or e}."
            ) from None
        if self.digest is not None:
            self._digest_chunks(chunks)
        self.written += sum(len(chunk) for chunk in chunks)

    def _digest_chunks(self, chunks: list[bytes]) -> None:
        """
        Add ``chunks``, just written after :attr:`written` bytes, to the digest.
        """
        for chunk in chunks:
            self.digest.update(chunk)

    def verify(self, sha256: str | None) -> None:
        """
        Raise :class:`ChecksumMismatch` unless the body's SHA-256 is ``sha256``.
        """
        if sha256 is None or self.digest is None:
            return
        actual = self.digest.hexdigest()
        if actual != sha256.lower():
            raise ChecksumMismatch(
                f"SHA-256 mismatch: expected {sha256.lower()}, got {actual}; file removed."
            )

    def close(self) -> None:
        """
        Close the file (idempotent).
        """
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def restart(self) -> None:
        """
        Throw away what was written: start at 0.
        """
        raise NotImplementedError

    def commit(self) -> None:
        """
        The body is complete: close, and put it in place.
        """
        raise NotImplementedError

    def discard(self, keep: bool = False) -> None:
        """
        The body failed: close, and remove what was written unless ``keep``.
        """
        raise NotImplementedError


class PartFile(Sink):
    """
    A body being written to ``PATH.part``, renamed to ``PATH`` by :meth:`commit`.

    The ``.part`` is this object's for its whole life: it is created (or, to resume,
    reopened) and locked at once (:func:`own_new`, :func:`own_existing`), so a second
    download of the same name -- in another process or this one -- fails instead of
    writing into it, and it is renamed or removed only while the name is still the file
    written here.  Neither name is ever written through a symbolic link, a FIFO, a device
    or a file with other hard links; the rename replaces a link at ``PATH`` (not its
    target) and refuses a directory, FIFO or device there.  The validators remembered
    beside the ``.part`` (for ``--continue``) go with it: :meth:`commit` and
    :meth:`discard` (unless ``keep``) forget them while the ``.part`` is still held.

    :param path: the final name.
    :param resume: append to an existing ``.part`` (for ``--continue``).
    :param no_clobber: make :meth:`commit` fail rather than replace an existing file.
    :param sha256: keep a SHA-256 of everything written: hashed as it is written, or,
        for a resumed start and whatever follows bytes that went in by :meth:`splice_from`,
        read back from the file by :meth:`verify` (on the thread that calls it).
    :param server_named: the server chose ``path``: like ``no_clobber``, with a sentence
        that says so.
    """

    part: str
    #: Bytes moved into files by splicing in this process (for tests and diagnostics).
    spliced = 0

    def __init__(
        self,
        path: str,
        resume: bool = False,
        no_clobber: bool = False,
        sha256: bool = False,
        server_named: bool = False,
    ) -> None:
        super().__init__(path, sha256)
        self.part = path + ".part"
        self.server_named = server_named
        self.no_clobber = no_clobber or server_named
        if server_named:
            refuse_server_name(path)
        elif not no_clobber:
            _replaceable(path)  # fail before the transfer, not after it
        fd = None
        if resume:
            try:
                fd = own_existing(self.part)
            except FileNotFoundError:
                fd = None
        if fd is None:
            fd = own_new(self.part)
            _quietly_forget(self.part)  # a stale .part's record does not describe this one
        else:
            try:
                self.offset = os.lseek(fd, 0, os.SEEK_END)
            except OSError as e:
                os.close(fd)
                raise FileError(f"cannot read {self.part!r}: {e.strerror or e}.") from None
        self._fd = fd
        self.written = self.offset
        #: The digest covers the file's first ``_hashed`` bytes; the rest (a resumed
        #: start, a spliced stretch) is read back from the page cache when needed.
        self._hashed = 0

    def _catchUp(self) -> None:
        """
        Hash what the file holds past what the digest covers (a resumed start, bytes
        that went in by :meth:`splice_from`), reading it back without moving the offset.
        """
        if self.digest is None or self._hashed >= self.written:
            return
        assert self._fd is not None
        try:
            while self._hashed < self.written:
                block = os.pread(self._fd, min(self.written - self._hashed, 1 << 20), self._hashed)
                if not block:
                    raise OSError(errno.EIO, f"{self.part!r} is shorter than written")
                self.digest.update(block)
                self._hashed += len(block)
        except OSError as e:
            raise FileError(f"cannot read {self.part!r}: {e.strerror or e}.") from None

    def _digest_chunks(self, chunks: list[bytes]) -> None:
        """
        Hash ``chunks`` as they are written when the digest covers everything before
        them; otherwise (a resumed start, a spliced stretch before them) leave them to be
        read back with the rest by :meth:`verify` -- on the writer's thread, whichever
        thread wrote them.
        """
        if self._hashed == self.written:
            super()._digest_chunks(chunks)
            self._hashed += sum(len(chunk) for chunk in chunks)

    @property
    def fileno(self) -> int | None:
        """
        The descriptor :meth:`splice_from` writes to, while open.
        """
        return self._fd

    def splice_from(self, pipe: int, size: int) -> None:
        """
        Append ``size`` bytes waiting in the pipe ``pipe`` with ``splice(2)`` (Linux):
        the kernel moves them into the file without a copy through this process.  They
        are hashed later, from the page cache (:meth:`verify`).  Raises
        :class:`FileError` when the file refuses them, as :meth:`write_many` does.
        """
        assert self._fd is not None
        fd = self._fd
        try:
            while size:
                moved = os.splice(pipe, fd, size)
                if not moved:  # cannot happen: the bytes are in the pipe
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                size -= moved
                self.written += moved
                PartFile.spliced += moved
        except OSError as e:
            raise FileError(f"cannot write {self.part!r}: {e.strerror or e}.") from None

    def splice_socket(self, sock: int, size: int, timeout: float | None) -> int:
        """
        Append up to ``size`` bytes read from the connected socket ``sock`` (a plain TCP
        socket, nothing of the body buffered above it), moved by the kernel through a
        pipe (:meth:`splice_from`), waiting at most ``timeout`` seconds for each piece as
        a socket read would; return how many came (fewer at the end of the stream).

        :raises TimeoutError: when nothing arrives for ``timeout`` seconds.
        :raises OSError: when the socket fails, as a read would.
        :raises FileError: when the file refuses the bytes.
        """
        r, w = splice_pipe()
        poll = select.poll()
        poll.register(sock, select.POLLIN)
        done = 0
        try:
            while done < size:
                try:
                    moved = os.splice(
                        sock, w, min(size - done, PIPE_SIZE), flags=os.SPLICE_F_NONBLOCK
                    )
                except BlockingIOError:
                    if not poll.poll(None if timeout is None else timeout * 1000):
                        raise TimeoutError("timed out") from None
                    continue
                if not moved:
                    break
                self.splice_from(r, moved)
                done += moved
        finally:
            os.close(r)
            os.close(w)
        return done

    def verify(self, sha256: str | None) -> None:
        """
        Raise :class:`ChecksumMismatch` unless the whole file's SHA-256 is ``sha256``.
        """
        self._catchUp()
        super().verify(sha256)

    def restart(self) -> None:
        """
        Throw away what was written (the server ignored our ``Range``): start at 0.
        """
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        self.offset = self.written = self._hashed = 0
        if self.digest is not None:
            self.digest = hashlib.sha256()

    def commit(self) -> None:
        """
        Move the complete ``.part`` to the final name, then close it.  The ``.part`` is
        removed instead when the final name cannot take it.

        :raises FileError: when the final name refuses it, or when the ``.part`` is no
            longer the file written here (then it is left alone).
        """
        fd = self._fd
        if fd is None:
            raise FileError(f"{self.part!r} was already closed; not renamed.")
        try:
            if not _is(fd, self.part):
                raise FileError(
                    f"{self.part!r} was replaced by another process meanwhile; not renamed."
                )
            _quietly_forget(self.part)
            if not self.no_clobber:
                replace_atomically(self.part, self.path, fd)
                return
            try:
                os.link(self.part, self.path)  # never follows a link at self.path
            except FileExistsError:
                _unlink(self.part)
                if self.server_named:
                    raise FileError(_server_named(self.path)) from None
                raise FileError(
                    f"{self.path!r} appeared meanwhile; not replaced (--no-clobber)."
                ) from None
            except OSError as e:
                _unlink(self.part)
                raise FileError(f"cannot rename {self.part!r}: {e.strerror or e}.") from None
            _unlink(self.part)
        finally:
            self.close()

    def discard(self, keep: bool = False) -> None:
        """
        Close, and remove the ``.part`` (and its remembered validators) unless ``keep``
        (for a later ``--continue``), if it is still the file written here.
        """
        fd = self._fd
        if fd is not None and not keep and _is(fd, self.part):
            _quietly_forget(self.part)
            _unlink(self.part)
        self.close()


def _quietly_forget(path: str) -> None:
    """
    :func:`forget_validators`, ignoring failure (the record of a ``.part`` is read only
    while that ``.part`` exists).
    """
    with contextlib.suppress(FileError):
        forget_validators(path)


class StreamSink(Sink):
    """
    A body written straight into something that is not a regular file -- a FIFO, a
    character device (``/dev/null``), a terminal, or standard output (``-``) -- as it
    arrives, as curl does: no ``.part``, no rename, no resume, and the thing itself is
    never replaced.

    :param path: the name given (``-`` for standard output).
    """

    part = None
    resumable = False

    def __init__(self, path: str, sha256: bool = False) -> None:
        super().__init__(path, sha256)
        try:
            if path == STDOUT:
                sys.stdout.flush()
                self._fd = os.dup(1)
            else:
                self._fd = os.open(path, os.O_WRONLY | _CLOEXEC)
        except (OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or e
            raise FileError(f"cannot write to {_shown(path)}: {reason}.") from None

    def restart(self) -> None:
        """
        A stream cannot be rewound.
        """
        if self.written:
            raise FileError(f"cannot rewrite what was already written to {_shown(self.path)}.")

    def commit(self) -> None:
        """
        Close: everything is already there.
        """
        self.close()

    def discard(self, keep: bool = False) -> None:
        """
        Close: what was written cannot be taken back.
        """
        self.close()


def _shown(path: str) -> str:
    return "standard output" if path == STDOUT else repr(path)


def open_sink(
    path: str,
    resume: bool = False,
    no_clobber: bool = False,
    sha256: bool = False,
    stream: bool = False,
    server_named: bool = False,
) -> Sink:
    """
    The :class:`Sink` for a body going to ``path``.

    :param stream: ``path`` is the user's own choice (``-o``): when it is ``-``, a FIFO, a
        character device or a terminal, write into it (:class:`StreamSink`).  Otherwise
        (a name from the URL, the server or a URL list) such a file is an error, never
        written through or replaced.
    :param resume, no_clobber, sha256, server_named: as for :class:`PartFile`.
    """
    if stream and streams_into(path):
        return StreamSink(path, sha256)
    return PartFile(path, resume, no_clobber, sha256, server_named)


def same_content(path: str, sha256: str, size: int) -> bool:
    """
    Whether the file at ``path`` has ``size`` bytes with this SHA-256 (hex).
    """
    try:
        fd = open_existing(path)
    except (OSError, FileError):
        return False
    digest = hashlib.sha256()
    try:
        with open(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                return False
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256
