# -*- test-case-name: tests.test_fetch_files,tests.test_fetch_download -*-
"""
Writing files without following what someone planted there, stdlib only.

Every file the fetchers write goes through these helpers: a new file is created with
``O_EXCL|O_NOFOLLOW`` (a symlink, FIFO or device planted at its name makes the open fail
instead of being written through), an existing one is reopened with ``O_NOFOLLOW`` and
checked to be a regular file, and a complete file reaches its final name by a rename,
which replaces a symlink there (not its target) and refuses anything else that is not
a regular file.

Every file written here is its writer's from creation to rename: it is created with
``O_EXCL|O_NOFOLLOW`` and locked (``flock``) at once, so a second download of the same
name, in any process, fails with one sentence instead of writing into it; and it is
renamed or removed only while its name still holds the file written (``fstat`` of the
descriptor against ``lstat`` of the name).  A file with other hard links is never
written into.
"""

from __future__ import annotations

import os
import secrets
import stat

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory locks
    fcntl = None  # type: ignore[assignment]

from twisted_journey.fetch.errors import FileError

__all__ = [
    "Replacement",
    "is_regular",
    "make_directories",
    "open_existing",
    "open_new",
    "own_existing",
    "own_new",
    "read_regular",
    "replace_atomically",
    "temporary_beside",
]


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    """
    A few words for a file type, for messages.
    """
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _replaceable(path: str) -> None:
    """
    Raise :class:`FileError` unless ``path`` is missing, a regular file or a symbolic
    link (which a rename replaces without touching its target).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise FileError(f"cannot write {path!r}: {e.strerror or e}.") from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise FileError(f"{path!r} is {_kind(mode)}, not a regular file; not replaced.")


def open_new(path: str, replace: bool = False, mode: int = 0o666, read: bool = False) -> int:
    """
    Create ``path`` for writing (and reading, with ``read``) and return its descriptor,
    never writing through a symbolic link, FIFO or device at that name.

    :param replace: remove a regular file already at ``path`` first (unless another
        download holds it or it has other hard links); otherwise anything there is an
        error.
    :raises FileError: when the name is taken (by a symbolic link, directory, FIFO or
        device, or by anything unless ``replace``) or cannot be created.
    """
    flags = (os.O_RDWR if read else os.O_WRONLY) | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(3):
        try:
            return os.open(path, flags, mode)
        except FileExistsError:
            if not replace:
                raise FileError(f"{path!r} already exists; not overwritten.") from None
            try:
                there = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            except OSError as e:
                raise FileError(f"cannot write {path!r}: {e.strerror or e}.") from None
            if not stat.S_ISREG(there):
                raise FileError(f"{path!r} is {_kind(there)}; not written through.") from None
            _remove_stale(path)
        except OSError as e:
            raise FileError(f"cannot write {path!r}: {e.strerror or e}.") from None
    raise FileError(f"{path!r} keeps being recreated by someone else; not written.")


def _remove_stale(path: str) -> None:
    """
    Remove the regular file at ``path`` unless another download holds it (``_lock``)
    or it has other hard links, which are :class:`FileError`; it is removed only while
    locked here and still at that name.
    """
    try:
        stale = open_existing(path, write=True)
    except FileNotFoundError:
        return
    except OSError as e:
        raise FileError(f"cannot write {path!r}: {e.strerror or e}.") from None
    try:
        _lock(stale, path)
        _single(stale, path)
        if _is(stale, path):
            os.unlink(path)
    except OSError as e:
        raise FileError(f"cannot replace {path!r}: {e.strerror or e}.") from None
    finally:
        os.close(stale)


def open_existing(path: str, write: bool = False) -> int:
    """
    Open the regular file ``path`` (read-only, or read-write to append) without following
    a symbolic link or blocking on a FIFO; return its descriptor.

    :raises FileNotFoundError: when there is nothing at ``path``.
    :raises FileError: when it is a link, FIFO, device or directory, or unreadable.
    """
    flags = (os.O_RDWR if write else os.O_RDONLY) | _NOFOLLOW | _NONBLOCK | _CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        try:
            kind = _kind(os.lstat(path).st_mode)
        except OSError:
            kind = ""
        if kind and kind != "not a regular file":
            raise FileError(f"{path!r} is {kind}, not a regular file; not used.") from None
        raise FileError(f"cannot open {path!r}: {e.strerror or e}.") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileError(f"{path!r} is {_kind(info.st_mode)}, not a regular file; not used.")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def _lock(fd: int, path: str) -> None:
    """
    Take an exclusive, non-blocking ``flock`` on ``fd`` (the file at ``path``): the file
    is ours for as long as the descriptor stays open.

    :raises FileError: when another process (or another open of it in this one) holds it.
    """
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FileError(_busy(path)) from None
    except OSError as e:
        raise FileError(f"cannot lock {path!r}: {e.strerror or e}.") from None


def _busy(path: str) -> str:
    """
    The sentence for a file another download is writing.
    """
    return f"{path!r} is being written by another download; not touched."


def _is(fd: int, path: str) -> bool:
    """
    Whether the name ``path`` (not a link's target) is still the file open as ``fd``.
    """
    try:
        mine, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _single(fd: int, path: str) -> None:
    """
    Raise :class:`FileError` when the file open as ``fd`` has other hard links: writing
    into it would write into a file of another name.
    """
    links = os.fstat(fd).st_nlink
    if links > 1:
        raise FileError(f"{path!r} has {links} hard links; not written through.")


def own_new(path: str, mode: int = 0o666) -> int:
    """
    Create ``path`` (:func:`open_new` with ``replace``, readable too, so what went in
    can be read back), lock it (``_lock``) and return its descriptor.  A stale regular file at ``path`` that nobody holds (a crashed
    run's) is removed first; one another download holds, a link, a file with other hard
    links, a FIFO or a device is an error and is left as it is.

    :raises FileError: as said, or when the file cannot be created.
    """
    fd = open_new(path, replace=True, mode=mode, read=True)
    try:
        _lock(fd, path)
        if not _is(fd, path):  # taken over between our open and our lock
            raise FileError(_busy(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def own_existing(path: str) -> int:
    """
    Open the regular file ``path`` to append to it, locked (``_lock``), refusing a
    link, FIFO or device there and a file with other hard links.

    :raises FileNotFoundError: when there is nothing at ``path``.
    :raises FileError: as said, or when another download holds it.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileError(f"cannot open {path!r}: {e.strerror or e}.") from None
    if not stat.S_ISREG(mode):
        raise FileError(f"{path!r} is {_kind(mode)}, not a regular file; not used.")
    fd = open_existing(path, write=True)
    try:
        _lock(fd, path)
        _single(fd, path)
        if not _is(fd, path):
            raise FileError(_busy(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def temporary_beside(path: str) -> tuple[str, int]:
    """
    A new, exclusively created and locked temporary file in ``path``'s directory, with a
    random name (``.NAME.RANDOM.tmp``): ``(its name, its descriptor)``.
    """
    directory, name = os.path.split(path)
    for _ in range(8):
        candidate = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = open_new(candidate)
        except FileError:
            if os.path.lexists(candidate):
                continue
            raise
        try:
            _lock(fd, candidate)
        except BaseException:
            os.close(fd)
            raise
        return candidate, fd
    raise FileError(f"cannot create a temporary file beside {path!r}.")


def replace_atomically(temporary: str, final: str, fd: int | None = None) -> None:
    """
    Rename ``temporary`` to ``final``.  A symbolic link at ``final`` is replaced (the link,
    never its target); a directory, FIFO, device or socket there is an error and
    ``temporary`` is removed.

    :param fd: ``temporary``'s open descriptor: the rename happens only while the name is
        still that file (another process's file is neither renamed nor removed).
    """
    try:
        if fd is not None and not _is(fd, temporary):
            raise FileError(f"{temporary!r} was replaced by another process; not renamed.")
        _replaceable(final)
        os.replace(temporary, final)
    except FileError:
        if fd is None or _is(fd, temporary):
            _unlink(temporary)
        raise
    except OSError as e:
        _unlink(temporary)
        raise FileError(f"cannot rename {temporary!r} to {final!r}: {e.strerror or e}.") from None


class Replacement:
    """
    A new version of the small file ``path``, written at once to a locked temporary file
    beside it and put in place by :meth:`commit` (or dropped by :meth:`discard`): write
    it before the change it describes, so that a full disk fails the run before anything
    is renamed.

    :raises FileError: when the temporary file cannot be created or written, or
        something at ``path`` could not be replaced by it.
    """

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        _replaceable(path)  # a directory or FIFO there would fail the rename: fail now
        self.temporary, fd = temporary_beside(path)
        self._fd: int | None = fd
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as e:
            self.discard()
            raise FileError(f"cannot write {self.temporary!r}: {e.strerror or e}.") from None

    def commit(self) -> None:
        """
        Rename the temporary file to ``path`` (see :func:`replace_atomically`).
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            replace_atomically(self.temporary, self.path, fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        """
        Remove the temporary file (idempotent).
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            if _is(fd, self.temporary):
                _unlink(self.temporary)
            os.close(fd)


def read_regular(path: str, limit: int = 1 << 20) -> bytes | None:
    """
    The first ``limit`` bytes of the regular file ``path``, or ``None`` when it is
    missing, not a regular file (a link, a FIFO...) or unreadable.
    """
    try:
        fd = open_existing(path)
    except (OSError, FileError):
        return None
    with open(fd, "rb") as f:
        try:
            return f.read(limit)
        except OSError:
            return None


def is_regular(path: str) -> bool:
    """
    Whether ``path`` itself (not a link's target) is a regular file.
    """
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def make_directories(path: str) -> None:
    """
    Create the directory ``path`` and its missing parents (mode ``0o777`` less the umask),
    like ``wget -P`` and ``curl --create-dirs``.

    :raises FileError: when it cannot be created, or something else has that name.
    """
    if not path:
        return
    try:
        os.makedirs(path, 0o777, exist_ok=True)
    except FileExistsError:
        raise FileError(f"{path!r} exists and is not a directory.") from None
    except OSError as e:
        raise FileError(f"cannot create the directory {path!r}: {e.strerror or e}.") from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
