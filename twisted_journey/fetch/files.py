# -*- test-case-name: tests.test_fetch_files -*-
"""
Where downloads go on disk, stdlib only: safe local names, the ``.part`` file renamed into
place when complete, the remembered validators (ETag / Last-Modified) beside a file, and
the mirror's URL list.

Both fetchers (:mod:`twisted_journey.fetch`, :mod:`twisted_journey.fallback.fetch`) and
the mirror (:mod:`twisted_journey.fetch.mirror`) name files here, so a URL gets the same local
name whichever of them fetched it.  A name chosen by someone else (the server's
``Content-Disposition``, a line of the URL list) is reduced to a safe basename: no
directory parts, no ``..``, no control characters, a bounded length, and it never
replaces an existing file (:func:`refuse_server_name`).

Every file written here is its writer's from creation to rename: it is created with
``O_EXCL|O_NOFOLLOW`` and locked (``flock``) at once, so a second download of the same
name, in any process, fails with one sentence instead of writing into it; and it is
renamed or removed only while its name still holds the file written (``fstat`` of the
descriptor against ``lstat`` of the name).  A file with other hard links is never
written into.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import hashlib
import json
import os
import secrets
import stat
import sys
import unicodedata
import urllib.parse
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory locks
    fcntl = None  # type: ignore[assignment]

from twisted_journey.fetch.errors import ChecksumMismatch, FileError, UnsupportedURL, describe_url
from twisted_journey.fetch.semantics import check_url

__all__ = [
    "DEFAULT_NAME",
    "MAX_NAME_BYTES",
    "STDOUT",
    "NameRegistry",
    "PartFile",
    "Replacement",
    "Sink",
    "StreamSink",
    "choose_target",
    "conditional_headers",
    "disposition_name",
    "disposition_target",
    "forget_validators",
    "is_regular",
    "load_validators",
    "make_directories",
    "name_from_url",
    "open_existing",
    "open_new",
    "open_sink",
    "own_existing",
    "own_new",
    "parse_url_list",
    "prepare_validators",
    "range_condition",
    "range_validator_changed",
    "read_regular",
    "refuse_server_name",
    "replace_atomically",
    "safe_basename",
    "same_content",
    "save_validators",
    "streams_into",
    "target_path",
    "temporary_beside",
    "validators_path",
    "write_atomically",
]


# --- names ---------------------------------------------------------------------------------

#: The longest file name (in UTF-8 bytes) we choose, leaving room for ``.part`` and the
#: validators file's prefix and suffix within the usual 255-byte limit.
MAX_NAME_BYTES = 200

DEFAULT_NAME = "index.html"


def safe_basename(name: str, max_bytes: int = MAX_NAME_BYTES) -> str | None:
    """
    Reduce a name someone else chose to a safe file name, or ``None`` when nothing is left.

    Keeps only the part after the last ``/`` or ``\\``; drops control and format
    characters; strips leading dots (no hidden files, no ``..``) and trailing dots and
    spaces; shortens to ``max_bytes`` of UTF-8, keeping a short extension.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip().lstrip(".").rstrip(". ")
    if not name:
        return None
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > max_bytes:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension.encode("utf-8")) > 16:
            stem, extension = name, ""
        suffix = f".{extension}" if extension else ""
        room = max_bytes - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
        name = stem.rstrip(". ") + suffix
        if not name.strip("."):
            return None
    return name


def name_from_url(url: str) -> str:
    """
    The local name for ``url``: its path's last segment, decoded and made safe, else
    ``index.html``.
    """
    path = urllib.parse.urlsplit(url).path
    segment = urllib.parse.unquote(path.rsplit("/", 1)[-1], errors="replace")
    return safe_basename(segment) or DEFAULT_NAME


def disposition_name(header: str | None) -> str | None:
    """
    The safe basename a ``Content-Disposition`` header asks for, or ``None``.

    ``filename*`` (RFC 5987) is preferred over ``filename`` (RFC 6266 §4.3).
    """
    if not header:
        return None
    message = email.message.Message()
    try:
        message["content-disposition"] = header
        params = message.get_params(header="content-disposition") or []
    except Exception:
        return None
    plain = extended = None
    for key, value in params[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):
            try:
                extended = email.utils.collapse_rfc2231_value(value)
            except (LookupError, UnicodeError):
                continue
        else:
            plain = email.utils.unquote(value)
    chosen = extended if extended is not None else plain
    return safe_basename(chosen) if chosen else None


def target_path(
    url: str,
    output: str | None = None,
    output_dir: str | None = None,
    server_name: str | None = None,
) -> str:
    """
    Where the body of ``url`` goes.

    :param output: ``-o FILE``, the user's own choice (relative to ``output_dir``).
    :param server_name: a name from :func:`disposition_name`, used instead of the URL's.
    """
    if output == "-":
        return STDOUT
    directory = output_dir or "."
    if output is not None:
        return os.path.join(directory, output)
    name = server_name or name_from_url(url)
    # The name has no separator and is not "..": it is inside the directory.  A symlink
    # planted there cannot redirect the write either: see open_new and replace_atomically.
    return os.path.join(directory, name)


#: The name ``-o -`` gives: the body goes to standard output.
STDOUT = "-"


def choose_target(
    url: str,
    output: str | None = None,
    output_dir: str | None = None,
    create_dirs: bool = False,
    stream: bool = True,
    made: set[str] | None = None,
) -> tuple[str, bool]:
    """
    Choose where the body of ``url`` goes (:func:`target_path`) and make its directories,
    before the request: ``(path, streaming)``, ``streaming`` when ``-o`` names something
    written into as the body arrives (:func:`streams_into`: a FIFO, a device, standard
    output), which has no ``.part``.

    :param create_dirs: also make the missing parents of ``output`` (not when streaming).
    :param stream: whether streaming into such an ``output`` is allowed at all.
    :param made: directories made already (and, updated, those made now), so that a
        ``--output-dir`` shared by many URLs is made once.
    :raises FileError: when a directory cannot be made.
    """
    path = target_path(url, output, output_dir)
    streaming = stream and output is not None and streams_into(path)
    if output_dir and (made is None or output_dir not in made):
        make_directories(output_dir)
        if made is not None:
            made.add(output_dir)
    if create_dirs and not streaming:
        make_directories(os.path.dirname(path))
    return path, streaming


def disposition_target(
    url: str, header: str | None, output: str | None = None, output_dir: str | None = None
) -> tuple[str, bool] | None:
    """
    Where the body goes once the server's ``Content-Disposition`` ``header`` is read
    (``--content-disposition``): ``(path, server_named)``, ``server_named`` when the name
    is the server's (no ``-o``), so it must never replace a file; ``None`` when the header
    gives no usable name (the URL's name stands).
    """
    name = disposition_name(header)
    if name is None:
        return None
    return target_path(url, output, output_dir, name), output is None


# --- writing without following what someone planted -----------------------------------------
#
# Every file the fetchers write goes through these helpers: a new file is created with
# O_EXCL|O_NOFOLLOW (a symlink, FIFO or device planted at its name makes the open fail
# instead of being written through), an existing one is reopened with O_NOFOLLOW and
# checked to be a regular file, and a complete file reaches its final name by a rename,
# which replaces a symlink there (not its target) and refuses anything else that is not
# a regular file.

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


def open_new(path: str, replace: bool = False, mode: int = 0o666) -> int:
    """
    Create ``path`` for writing and return its descriptor, never writing through a
    symbolic link, FIFO or device at that name.

    :param replace: remove a regular file already at ``path`` first (unless another
        download holds it or it has other hard links); otherwise anything there is an
        error.
    :raises FileError: when the name is taken (by a symbolic link, directory, FIFO or
        device, or by anything unless ``replace``) or cannot be created.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
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
    Remove the regular file at ``path`` unless another download holds it (:func:`_lock`)
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
    Create ``path`` (:func:`open_new` with ``replace``), lock it (:func:`_lock`) and
    return its descriptor.  A stale regular file at ``path`` that nobody holds (a crashed
    run's) is removed first; one another download holds, a link, a file with other hard
    links, a FIFO or a device is an error and is left as it is.

    :raises FileError: as said, or when the file cannot be created.
    """
    fd = open_new(path, replace=True, mode=mode)
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
    Open the regular file ``path`` to append to it, locked (:func:`_lock`), refusing a
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
        Rename the temporary file to :attr:`path` (see :func:`replace_atomically`).
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


def write_atomically(path: str, data: bytes) -> None:
    """
    Replace ``path`` with ``data`` through a temporary file beside it (:class:`Replacement`).
    """
    Replacement(path, data).commit()


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


# --- one name, one download --------------------------------------------------------------------


class NameRegistry:
    """
    The names the downloads of one run (or the transfers of one :class:`Fetcher` in
    flight) have claimed, so that two URLs never write one file: a URL whose name is
    taken fails with :class:`FileError` instead of splicing its bytes into another's.

    A claim on ``NAME`` holds ``NAME`` and ``NAME.part`` (and so their validators
    records): ``a`` and ``a.part`` are one claim apart.  Claims are made before a byte
    of the body is written (before the request, or as soon as ``Content-Disposition``
    names the file), in one thread, so the first claimant wins without a race.

    :param keep: keep every claim until the registry is dropped (a ``journey fetch``
        run: a URL reported as fetched keeps its file); otherwise :meth:`release` frees
        an owner's claims when its transfer ends.
    """

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self._claims: dict[str, tuple[object, str, str]] = {}

    @staticmethod
    def _held(path: str) -> tuple[str, str]:
        absolute = os.path.abspath(path)
        return absolute, absolute + ".part"

    def claim(self, path: str, owner: object, url: str = "") -> None:
        """
        Claim ``path`` for ``owner`` (any object; one per transfer) fetching ``url``.

        :raises FileError: when another owner holds ``path`` or its ``.part`` (or
            ``path`` is the other's ``.part``).
        """
        if path == STDOUT:
            return
        held = self._held(path)
        for name in held:
            claim = self._claims.get(name)
            if claim is not None and claim[0] is not owner:
                raise FileError(
                    f"not fetched: {describe_url(claim[1])} of this run is also saved as "
                    f"{os.path.basename(claim[2])!r}.",
                    url,
                )
        absolute = held[0]
        for name in held:
            self._claims[name] = (owner, url, absolute)

    def release(self, owner: object) -> None:
        """
        Free every claim of ``owner`` (nothing when the registry keeps its claims).
        """
        if self.keep:
            return
        for name in [n for n, claim in self._claims.items() if claim[0] is owner]:
            del self._claims[name]


# --- remembered validators (ETag / Last-Modified) -----------------------------------------------


def validators_path(path: str) -> str:
    """
    Where the ETag and Last-Modified of the file at ``path`` are remembered:
    ``DIR/.NAME.http.json``.
    """
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.http.json")


def load_validators(path: str) -> dict[str, str]:
    """
    The remembered ``etag``/``last-modified`` for the file at ``path`` (empty when the file
    or its record is missing, unreadable, or not a regular file).
    """
    if not is_regular(path):
        return {}
    text = read_regular(validators_path(path))
    if text is None:
        return {}
    try:
        data: Any = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if k in ("etag", "last-modified", "url") and isinstance(v, str)
    }


def prepare_validators(
    path: str, url: str, etag: str | None, last_modified: str | None
) -> Replacement | None:
    """
    The validators record of the file about to be put at ``path``, written now to a
    locked temporary file (:class:`Replacement`) and put in place by its ``commit`` once
    the file itself is; ``None`` when ``path`` is not a regular file (``-o /dev/null``, a
    FIFO, standard output: nothing to remember beside it).

    :raises FileError: when the record cannot be written (a full disk): before anything
        is renamed.
    """
    record = {"url": url}
    if etag:
        record["etag"] = etag
    if last_modified:
        record["last-modified"] = last_modified
    if path == STDOUT or (os.path.lexists(path) and not is_regular(path)):
        return None
    return Replacement(validators_path(path), json.dumps(record).encode("utf-8"))


def save_validators(path: str, url: str, etag: str | None, last_modified: str | None) -> None:
    """
    Remember the validators of the file just written at ``path`` (atomically, never
    through a link planted at the record's name); nothing when ``path`` is not a regular
    file.
    """
    pending = prepare_validators(path, url, etag, last_modified)
    if pending is not None:
        pending.commit()


def conditional_headers(path: str) -> dict[str, str]:
    """
    ``If-None-Match``/``If-Modified-Since`` for refreshing the file at ``path``: from its
    remembered validators, else its modification time.  Empty unless ``path`` is a
    regular file.
    """
    if not is_regular(path):
        return {}
    remembered = load_validators(path)
    headers = {}
    if "etag" in remembered:
        headers["If-None-Match"] = remembered["etag"]
    if "last-modified" in remembered:
        headers["If-Modified-Since"] = remembered["last-modified"]
    elif "etag" not in remembered:
        headers["If-Modified-Since"] = email.utils.formatdate(os.path.getmtime(path), usegmt=True)
    return headers


def range_condition(part: str) -> dict[str, str]:
    """
    ``If-Range`` for continuing the partial file ``part``: its remembered strong ETag,
    else its Last-Modified, so that a server whose file has changed since sends the whole
    new body (200) instead of the rest of a different one.  Empty when nothing is known.
    """
    remembered = load_validators(part)
    etag = remembered.get("etag", "")
    if etag and not etag.startswith("W/"):
        return {"If-Range": etag}
    if "last-modified" in remembered:
        return {"If-Range": remembered["last-modified"]}
    return {}


def range_validator_changed(
    condition: str | None, etag: str | None, last_modified: str | None
) -> bool:
    """
    Whether a ``206`` carrying ``etag``/``last_modified`` is of another version than the
    one our ``If-Range: CONDITION`` named (a server that ignores ``If-Range``): appending
    it would splice two versions.  A validator the answer does not carry cannot differ.
    """
    if not condition:
        return False
    if condition.startswith(('"', "W/")):
        return etag is not None and etag.strip() != condition
    return last_modified is not None and last_modified.strip() != condition


def refuse_server_name(path: str) -> None:
    """
    Raise :class:`FileError` when something is at ``path``, a name the server chose
    (``Content-Disposition``): such a name never replaces an existing file.
    """
    if os.path.lexists(path):
        raise FileError(_server_named(path))


def _server_named(path: str) -> str:
    return (
        f"{path!r} already exists and the server chose that name; not replaced "
        "(use -o to choose the name yourself)."
    )


def forget_validators(path: str) -> None:
    """
    Remove the remembered validators of ``path``, if any.
    """
    try:
        os.unlink(validators_path(path))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise FileError(f"cannot remove {validators_path(path)!r}: {e.strerror or e}.") from None


def _shown_url(url: str) -> str:
    """
    ``url`` for a message: no password, at most 200 characters, even when malformed.
    """
    try:
        shown = describe_url(url)
    except ValueError:
        shown = url.rpartition("@")[2] if "@" in url else url
    return shown if len(shown) <= 200 else shown[:200] + "..."


def parse_url_list(text: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """
    Read a mirror's URL file: one URL per line, optionally followed by whitespace and a
    local name; blank lines and ``#`` comments ignored.

    :return: ``(entries, problems)``: ``(url, name or None)`` pairs, and one sentence per
        line that was skipped (a bad URL, or a name that is not a plain file name).  No
        input raises.
    """
    entries: list[tuple[str, str | None]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        for i, field in enumerate(fields):
            if field.startswith("#"):
                del fields[i:]
                break
        if len(fields) > 2:
            problems.append(f"line {number}: expected 'URL [NAME]', got {line.strip()!r}.")
            continue
        url = fields[0]
        shown = _shown_url(url)
        if any(unicodedata.category(c)[0] == "C" for c in url):
            problems.append(f"line {number}: {shown!r} has control characters.")
            continue
        try:
            check_url(url)
        except UnsupportedURL as e:
            problems.append(f"line {number}: {str(e)[:300]}")
            continue
        except ValueError as e:  # urlsplit: a broken IPv6 literal, say
            problems.append(f"line {number}: {shown!r} is not a valid URL: {e}.")
            continue
        name = None
        if len(fields) == 2:
            name = safe_basename(fields[1])
            if name != fields[1]:
                problems.append(f"line {number}: {fields[1]!r} is not a plain file name.")
                continue
        entries.append((url, name))
    return entries, problems


# --- the .part file --------------------------------------------------------------------------


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
        for chunk in chunks:
            self.written += len(chunk)
            if self.digest is not None:
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
    :param sha256: keep a SHA-256 of everything written (including a resumed start, read
        on the first write or :meth:`verify`, off the caller's thread when it writes from
        another).
    :param server_named: the server chose ``path``: like ``no_clobber``, with a sentence
        that says so.
    """

    part: str

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
        self._unread = self.offset if self.digest is not None else 0

    def _catchUp(self) -> None:
        """
        Hash the resumed start of the ``.part`` (once).
        """
        if not self._unread:
            return
        assert self._fd is not None
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            left = self._unread
            while left and (block := os.read(self._fd, min(left, 1 << 20))):
                self.digest.update(block)
                left -= len(block)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as e:
            raise FileError(f"cannot read {self.part!r}: {e.strerror or e}.") from None
        self._unread = 0

    def write_many(self, chunks: list[bytes]) -> None:
        """
        Append every chunk (see :meth:`Sink.write_many`).
        """
        self._catchUp()
        super().write_many(chunks)

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
        self.offset = self.written = self._unread = 0
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


def streams_into(path: str) -> bool:
    """
    Whether a body for ``path`` (a name the user chose) is streamed into it rather than
    written to a ``.part`` and renamed: ``-``, or (following links, as the user named
    it) a FIFO, a character device, a terminal or a socket.
    """
    if path == STDOUT:
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


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
