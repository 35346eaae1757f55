"""
The rows of the generated reference tables, read from the code (no Sphinx needed, so the
suite can check them without the docs tools): a plugin's options from its
:class:`twisted.python.usage.Options`, a twin's from its :mod:`argparse` parser.
``journey_reference`` renders them.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any


def _load(path: str) -> Any:
    """
    The object at ``package.module.name`` or ``package.module:name``.
    """
    if ":" in path:
        module, name = path.split(":", 1)
    else:
        module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def tapOptionRows(optionsClass: type) -> list[list[str]]:
    """
    ``[--long, -s, default, help]`` for every option a ``usage.Options`` class takes.
    """
    options = optionsClass()
    synonyms = options.synonyms  # every name (long and short) -> its long name
    rows = []
    for long in sorted(set(synonyms.values())):
        if long in ("help", "version"):
            continue
        shorts = sorted(n for n, target in synonyms.items() if target == long and len(n) == 1)
        takesValue = f"{long}=" in options.longOpt
        value = "=VALUE" if takesValue else ""
        default = options.defaults.get(long) if takesValue else None
        if long == "listen":
            default = getattr(options, "defaultListen", None)
        doc = " ".join((options.docs.get(long) or "").split())
        rows.append(
            [
                f"--{long}{value}",
                ", ".join(f"-{s}" for s in shorts),
                "" if default is None else str(default),
                doc,
            ]
        )
    return rows


def twinOptionRows(parser: argparse.ArgumentParser) -> list[list[str]]:
    """
    ``[--long, -s, default, help]`` for every option of an argparse parser.
    """
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        shorts = [s for s in action.option_strings if not s.startswith("--")]
        value = f"={action.metavar or action.dest.upper()}" if action.nargs != 0 else ""
        default = action.default
        shown = "" if default in (None, False, [], argparse.SUPPRESS) else str(default)
        rows.append(
            [
                ", ".join(longs) + value,
                ", ".join(shorts),
                shown,
                " ".join((action.help or "").split()),
            ]
        )
    return rows


def subcommandParser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """
    The parser of the sub-command ``name`` of ``parser`` (``journey fetch``'s, say).

    :raises KeyError: when ``parser`` has no such sub-command.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)
