# -*- test-case-name: tests.test_fetch_download -*-
"""
Where downloads go on disk, stdlib only: safe local names, the ``.part`` file renamed into
place when complete, the remembered validators (ETag / Last-Modified) beside a file, and
the mirror's URL list.

Both fetchers (:mod:`twisted_journey.fetch`, :mod:`twisted_journey.fallback.fetch`) and
the mirror (:mod:`twisted_journey.fetch.mirror`) name files here, so a URL gets the same local
name whichever of them fetched it.  A name chosen by someone else (the server's
``Content-Disposition``, a line of the URL list) is reduced to a safe basename: no
directory parts, no ``..``, no control characters, a bounded length.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import json
import os
import unicodedata
import urllib.parse
from typing import Any

from twisted_journey.fetch.errors import ChecksumMismatch, FileError, UnsupportedURL
from twisted_journey.fetch.semantics import check_url

__all__ = [
    "DEFAULT_NAME",
    "MAX_NAME_BYTES",
    "PartFile",
    "conditional_headers",
    "disposition_name",
    "forget_validators",
    "load_validators",
    "name_from_url",
    "parse_url_list",
    "range_condition",
    "safe_basename",
    "same_content",
    "save_validators",
    "target_path",
    "validators_path",
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
    directory = output_dir or "."
    if output is not None:
        return os.path.join(directory, output)
    name = server_name or name_from_url(url)
    path = os.path.join(directory, name)
    # The name has no separator and is not "..": it is inside the directory.  A symlink
    # planted there cannot redirect the write either: the .part is opened without
    # following links, and the final rename replaces a link rather than writing through.
    return path


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
    or its record is missing or unreadable).
    """
    if not os.path.exists(path):
        return {}
    try:
        with open(validators_path(path), encoding="utf-8") as f:
            data: Any = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if k in ("etag", "last-modified", "url") and isinstance(v, str)
    }


def save_validators(path: str, url: str, etag: str | None, last_modified: str | None) -> None:
    """
    Remember the validators of the file just written at ``path`` (atomically).
    """
    record = {"url": url}
    if etag:
        record["etag"] = etag
    if last_modified:
        record["last-modified"] = last_modified
    target = validators_path(path)
    temporary = target + ".part"
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(temporary, target)
    except OSError as e:
        raise FileError(f"cannot write {target!r}: {e.strerror or e}.", url) from None


def conditional_headers(path: str) -> dict[str, str]:
    """
    ``If-None-Match``/``If-Modified-Since`` for refreshing the file at ``path``: from its
    remembered validators, else its modification time.
    """
    if not os.path.exists(path):
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


def parse_url_list(text: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """
    Read a mirror's URL file: one URL per line, optionally followed by whitespace and a
    local name; blank lines and ``#`` comments ignored.

    :return: ``(entries, problems)``: ``(url, name or None)`` pairs, and one sentence per
        line that was skipped (a bad URL, or a name that is not a plain file name).
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
        try:
            check_url(url)
        except UnsupportedURL as e:
            problems.append(f"line {number}: {e}")
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


class PartFile:
    """
    A body being written to ``PATH.part``, renamed to ``PATH`` by :meth:`commit`.

    :param path: the final name.
    :param resume: append to an existing ``.part`` (for ``--continue``).
    :param no_clobber: make :meth:`commit` fail rather than replace an existing file.
    :param sha256: keep a SHA-256 of everything written (including a resumed start).

    :ivar offset: bytes already in the ``.part`` when it was opened.
    :ivar written: bytes in the ``.part`` now.
    """

    def __init__(
        self, path: str, resume: bool = False, no_clobber: bool = False, sha256: bool = False
    ) -> None:
        self.path = path
        self.part = path + ".part"
        self.no_clobber = no_clobber
        self.digest = hashlib.sha256() if sha256 else None
        self.offset = 0
        self._file: Any = None
        try:
            nofollow = getattr(os, "O_NOFOLLOW", 0)
            if resume and os.path.exists(self.part):
                fd = os.open(self.part, os.O_RDWR | nofollow)
                self._file = open(fd, "r+b", buffering=0)  # noqa: SIM115
                self._file.seek(0, os.SEEK_END)
                self.offset = self._file.tell()
                if self.digest is not None:
                    self._file.seek(0)
                    while block := self._file.read(1 << 20):
                        self.digest.update(block)
                    self._file.seek(0, os.SEEK_END)
            else:
                fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | nofollow, 0o666)
                self._file = open(fd, "wb", buffering=0)  # noqa: SIM115
        except OSError as e:
            raise FileError(f"cannot write {self.part!r}: {e.strerror or e}.") from None
        self.written = self.offset

    def write(self, data: bytes) -> None:
        """
        Append ``data``; raises :class:`FileError` when the disk refuses it.
        """
        self.write_many([data])

    def write_many(self, chunks: list[bytes]) -> None:
        """
        Append every chunk with as few system calls as possible (``writev``), without
        joining them first; raises :class:`FileError` when the disk refuses them.
        """
        assert self._file is not None
        fd = self._file.fileno()
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
            raise FileError(f"cannot write {self.part!r}: {e.strerror or e}.") from None
        for chunk in chunks:
            self.written += len(chunk)
            if self.digest is not None:
                self.digest.update(chunk)

    def restart(self) -> None:
        """
        Throw away what was written (the server ignored our ``Range``): start at 0.
        """
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self.offset = self.written = 0
        if self.digest is not None:
            self.digest = hashlib.sha256()

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
        Close the ``.part`` (idempotent).
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    def commit(self) -> None:
        """
        Close and move the complete ``.part`` to the final name.
        """
        try:
            self.close()
            if self.no_clobber:
                os.link(self.part, self.path)
                os.unlink(self.part)
            else:
                os.replace(self.part, self.path)
        except FileExistsError:
            self.discard()
            raise FileError(
                f"{self.path!r} appeared meanwhile; not replaced (--no-clobber)."
            ) from None
        except OSError as e:
            self.discard()
            raise FileError(f"cannot rename {self.part!r}: {e.strerror or e}.") from None

    def discard(self, keep: bool = False) -> None:
        """
        Close, and remove the ``.part`` unless ``keep`` (for a later ``--continue``).
        """
        self.close()
        if not keep:
            try:
                os.unlink(self.part)
            except FileNotFoundError:
                pass


def same_content(path: str, sha256: str, size: int) -> bool:
    """
    Whether the file at ``path`` has ``size`` bytes with this SHA-256 (hex).
    """
    try:
        if os.path.getsize(path) != size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256
