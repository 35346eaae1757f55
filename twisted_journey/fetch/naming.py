# -*- test-case-name: tests.test_fetch_files,tests.test_fetch_download -*-
"""
Which local file a download goes to, stdlib only: safe names, the target path, and the
run's registry of claimed names.

Both fetchers (:mod:`twisted_journey.fetch.client`, :mod:`twisted_journey.fallback.fetch`)
and the mirror (:mod:`twisted_journey.fetch.mirror`) name files here, so a URL gets the
same local name whichever of them fetched it.  A name chosen by someone else (the
server's ``Content-Disposition``, a line of the URL list) is reduced to a safe basename:
no directory parts, no ``..``, no control characters, a bounded length, and it never
replaces an existing file (:func:`refuse_server_name`).
"""

from __future__ import annotations

import email.message
import email.utils
import os
import stat
import unicodedata
import urllib.parse

from twisted_journey.fetch.errors import FileError, describe_url
from twisted_journey.fetch.safefiles import make_directories

__all__ = [
    "STDOUT",
    "NameRegistry",
    "choose_target",
    "disposition_name",
    "disposition_target",
    "name_from_url",
    "refuse_server_name",
    "safe_basename",
    "streams_into",
    "target_path",
]


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
