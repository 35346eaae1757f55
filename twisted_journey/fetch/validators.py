# -*- test-case-name: tests.test_fetch_files,tests.test_fetch_download -*-
"""
The remembered validators (ETag / Last-Modified) beside a downloaded file, stdlib only:
``DIR/.NAME.http.json``, read for conditional GETs (``--newer``, the mirror) and for
``If-Range`` when a ``.part`` is continued.
"""

from __future__ import annotations

import email.utils
import json
import os
from typing import Any

from twisted_journey.fetch.errors import FileError
from twisted_journey.fetch.naming import STDOUT
from twisted_journey.fetch.safefiles import Replacement, is_regular, read_regular

__all__ = [
    "conditional_headers",
    "forget_validators",
    "load_validators",
    "prepare_validators",
    "range_condition",
    "range_validator_changed",
    "save_validators",
    "validators_path",
]


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
