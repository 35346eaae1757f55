"""
Numbers in the benchmark pages' prose, read from the same JSON as their tables and charts.

A page writes ``:bench:`mux/tables/lines/rows/journey-mux-text/cpu_us|.3f``` and the built
page shows ``0.345``: the value at that path in ``bench/results/mux.json``, formatted with
the spec after ``|`` (:func:`format`'s mini-language; none prints the value as it is).  A
path is ``/``-separated: the first part names the results file, each next part a key of a
mapping or, in a list of rows, the row whose ``name``, ``server`` or ``tool`` is that part,
or the row matching every ``key=value`` of a comma-separated list (a key holding ``/``,
like ``server_us/conn``, is written as it is)
(``rows/tool=journey-mux,workers=2``).  Paths and numbers joined by `` * `` or `` / ``
multiply or divide, left to right (CPU per line times lines per second gives cores).  A path that leads nowhere fails the
build, so prose cannot quote a number that no run produced; when a benchmark is rerun, the
prose follows its JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: The keys that name a row in a results list.
ROW_NAMES = ("name", "server", "tool")


class BenchPathError(LookupError):
    """
    A ``:bench:`` path names no value in the results.
    """


def _step(value: Any, part: str, path: str) -> Any:
    """
    Follow one part of a path from ``value``.
    """
    if isinstance(value, dict):
        if part in value:
            return value[part]
    elif isinstance(value, list):
        if "=" in part:
            wanted = dict(pair.split("=", 1) for pair in part.split(","))
            rows = [
                row
                for row in value
                if isinstance(row, dict)
                and all(str(row.get(key)) == text for key, text in wanted.items())
            ]
        else:
            rows = [
                row
                for row in value
                if isinstance(row, dict) and any(row.get(key) == part for key in ROW_NAMES)
            ]
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise BenchPathError(f"{path}: {part!r} matches {len(rows)} rows")
    raise BenchPathError(f"{path}: nothing at {part!r}")


def lookup(results: Path, path: str) -> Any:
    """
    The value at ``path``: its first part names ``results/PART.json``.

    :raises BenchPathError: when a part of the path leads nowhere.
    """
    first, *parts = path.strip().split("/")
    source = results / f"{first}.json"
    if not source.is_file():
        raise BenchPathError(f"{path}: no results file {source}")
    value = json.loads(source.read_text())
    while parts:
        part = parts.pop(0)
        # a key holding "/" ("server_us/conn"): take as many parts as make a key
        while isinstance(value, dict) and part not in value and parts:
            joined = part + "/" + parts[0]
            if not any(key == joined or key.startswith(joined + "/") for key in value):
                break
            part = joined
            parts.pop(0)
        value = _step(value, part, path)
    return value


def benchValue(results: Path, text: str) -> str:
    """
    The text a ``:bench:`` role shows for ``text``: ``PATH[ * FACTOR | / FACTOR ...][|SPEC]``,
    where a factor is a path or a number.

    :raises BenchPathError: when a path leads nowhere, or a factor of a product or a
        quotient is not a number.
    """
    expression, _, spec = text.partition("|")
    tokens = re.split(r" ([*/]) ", expression.strip())
    if len(tokens) == 1:
        return format(lookup(results, tokens[0]), spec)
    result = 1.0
    for operator, factor in zip(["*", *tokens[1::2]], tokens[0::2], strict=True):
        try:
            number: Any = float(factor)
        except ValueError:
            number = lookup(results, factor)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise BenchPathError(f"{factor}: {number!r} is not a number")
        result = result * number if operator == "*" else result / number
    return format(result, spec)


def setup(app: Any) -> dict[str, Any]:
    """
    Register the ``bench`` role, reading ``bench/results`` beside ``docs/``.
    """
    from docutils import nodes

    results = Path(app.confdir).parent / "bench" / "results"

    def role(
        name: str,
        rawtext: str,
        text: str,
        lineno: int,
        inliner: Any,
        options: Any = None,
        content: Any = None,
    ) -> tuple[list[Any], list[Any]]:
        env = getattr(inliner.document.settings, "env", None)
        if env is not None:  # rebuild the page when the results change
            for source in sorted(results.glob("*.json")):
                env.note_dependency(str(source))
        try:
            shown = benchValue(results, text)
        except (BenchPathError, ValueError) as e:
            message = inliner.reporter.error(f"bench: {e}", line=lineno)
            return [inliner.problematic(rawtext, rawtext, message)], [message]
        return [nodes.Text(shown)], []

    app.add_role("bench", role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
