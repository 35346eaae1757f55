# -*- test-case-name: tests.test_completion -*-
"""
Shell completion scripts for a command built with :mod:`argparse`, generated from its
parsers: ``journey completion bash`` and ``journey completion zsh`` print them.

Nothing in a script is written by hand for one command: the sub-commands, their options,
which options take a value, and the words an option or argument accepts (``choices``) all
come from the parsers, so a new option completes as soon as it exists.  A value whose
metavar says it is a file or a directory (``FILE``, ``DIR``, ``PATH``) completes file or
directory names; other values complete nothing.  Stdlib only.

argparse has no public API to walk a parser: the actions are read from ``_actions`` and the
sub-commands from the ``_SubParsersAction`` among them, which every Python 3 since 3.2 has.

Install::

    journey completion bash > /etc/bash_completion.d/journey      # or: source <(journey completion bash)
    journey completion zsh > "${fpath[1]}/_journey"               # a directory on $fpath
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["SHELLS", "Command", "Option", "Positional", "bash", "commands", "script", "zsh"]

#: The shells ``journey completion`` writes scripts for.
SHELLS = ("bash", "zsh")

_FILE_METAVARS = re.compile(r"\b(FILE|PATH)\b")
_DIRECTORY_METAVARS = re.compile(r"\bDIR\b")


@dataclass(frozen=True)
class Option:
    """
    One option: its spellings, whether it takes a value, and how that value completes.

    :ivar completes: ``"file"``, ``"directory"``, ``"choices"`` or ``""`` (nothing).
    """

    strings: tuple[str, ...]
    help: str
    takesValue: bool
    metavar: str
    completes: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Positional:
    """
    One positional argument: its name, argparse's ``nargs``, and how it completes.
    """

    name: str
    nargs: str | int | None
    completes: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    """
    A parser's completion data: its options, and its positional arguments' ``choices``.

    :ivar name: the sub-command's name (``""`` for the top level).
    :ivar positionals: each positional argument, in order.
    """

    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...] = field(default=())


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """
    ``action``'s help as ``--help`` prints it (``%(default)s`` expanded), on one line.
    """
    if not action.help:
        return ""
    text = parser._get_formatter()._expand_help(action)
    return " ".join(text.split())


def _completes(action: argparse.Action) -> str:
    """
    How the value of ``action`` completes.
    """
    if action.choices is not None:
        return "choices"
    metavar = str(action.metavar or action.dest).upper()
    if _DIRECTORY_METAVARS.search(metavar):
        return "directory"
    if _FILE_METAVARS.search(metavar):
        return "file"
    return ""


def _command(name: str, help: str, parser: argparse.ArgumentParser) -> Command:
    """
    The :class:`Command` for ``parser``, sub-commands left out.
    """
    options = []
    positionals = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        choices = tuple(str(choice) for choice in action.choices or ())
        if action.option_strings:
            options.append(
                Option(
                    tuple(action.option_strings),
                    _help(parser, action),
                    action.nargs != 0,
                    str(action.metavar or action.dest.upper()),
                    _completes(action) if action.nargs != 0 else "",
                    choices,
                )
            )
        else:
            positionals.append(
                Positional(
                    str(action.metavar or action.dest),
                    action.nargs,
                    _completes(action),
                    choices,
                )
            )
    return Command(name, help, tuple(options), tuple(positionals))


def commands(parser: argparse.ArgumentParser) -> Iterator[Command]:
    """
    The top-level :class:`Command` (name ``""``), then one per sub-command.
    """
    yield _command("", parser.description or "", parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield _command(name, helps.get(name, ""), subparser)


# --- bash ----------------------------------------------------------------------------------


def _words(items: Iterator[str] | tuple[str, ...] | list[str]) -> str:
    """
    Words for ``compgen -W`` (option names and choices have no spaces or quotes).
    """
    return " ".join(items)


def bash(parser: argparse.ArgumentParser) -> str:
    """
    A bash completion script for ``parser``'s program: ``source`` it, or install it where
    bash-completion looks (``/etc/bash_completion.d/``).
    """
    prog = parser.prog
    function = "_" + re.sub(r"\W", "_", prog)
    top, *subcommands = commands(parser)
    lines = [
        f"# bash completion for {prog}, generated from its argparse parsers",
        f"# by '{prog} completion bash'.",
        f"{function}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local command="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        "            -*) ;;",
        '            *) command="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    local options="" choices=""',
        '    case "$command" in',
    ]
    for command in [top, *subcommands]:
        pattern = command.name or '""'
        valued = [s for o in command.options if o.takesValue for s in o.strings]
        positional = [c for p in command.positionals for c in p.choices]
        if not command.name:
            positional = [c.name for c in subcommands]
        lines += [
            f"        {pattern})",
            f'            options="{_words(s for o in command.options for s in o.strings)}"',
            f'            choices="{_words(positional)}"',
        ]
        if valued:
            lines.append('            case "$prev" in')
            for option in command.options:
                if not option.takesValue:
                    continue
                if option.completes == "choices":
                    reply = f'$(compgen -W "{_words(option.choices)}" -- "$cur")'
                elif option.completes == "directory":
                    reply = '$(compgen -d -- "$cur")'
                elif option.completes == "file":
                    reply = '$(compgen -f -- "$cur")'
                else:
                    reply = ""
                lines.append(f"                {'|'.join(option.strings)})")
                lines.append(f"                    COMPREPLY=({reply}); return ;;")
            lines.append("            esac")
        lines.append("            ;;")
    lines += [
        "    esac",
        "    if [[ $cur == -* ]]; then",
        '        COMPREPLY=($(compgen -W "$options" -- "$cur"))',
        "    elif [[ -n $choices ]]; then",
        '        COMPREPLY=($(compgen -W "$choices" -- "$cur"))',
        "    else",
        "        COMPREPLY=()",
        "    fi",
        "}",
        f"complete -o bashdefault -o default -F {function} {prog}",
        "",
    ]
    return "\n".join(lines)


# --- zsh -----------------------------------------------------------------------------------


def _zshQuote(text: str) -> str:
    """
    ``text`` in single quotes for zsh.
    """
    return "'" + text.replace("'", "'\\''") + "'"


def _zshDescription(text: str) -> str:
    """
    ``text`` safe inside an ``_arguments`` ``[...]`` description.
    """
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zshOption(option: Option) -> list[str]:
    """
    The ``_arguments`` specs of one option (each spelling; the value's completion).
    """
    exclusive = f"({' '.join(option.strings)})" if len(option.strings) > 1 else ""
    action = ""
    if option.takesValue:
        action = {
            "choices": f"({' '.join(option.choices)})",
            "directory": "_directories",
            "file": "_files",
        }.get(option.completes, " ")
        action = f":{_zshDescription(option.metavar.lower())}:{action}"
    specs = []
    for string in option.strings:
        suffix = "=" if option.takesValue and string.startswith("--") else ""
        specs.append(
            _zshQuote(f"{exclusive}{string}{suffix}[{_zshDescription(option.help)}]{action}")
        )
    return specs


def _zshPositionals(command: Command) -> list[str]:
    """
    The ``_arguments`` specs of a sub-command's positional arguments.
    """
    specs = []
    for index, positional in enumerate(command.positionals, start=1):
        action = {
            "choices": f"({' '.join(positional.choices)})",
            "directory": "_directories",
            "file": "_files",
        }.get(positional.completes, " ")
        name = _zshDescription(positional.name.lower())
        if positional.nargs in ("*", "+", argparse.REMAINDER):
            specs.append(_zshQuote(f"*:{name}:{action}"))
        elif positional.nargs == "?":
            specs.append(_zshQuote(f"{index}::{name}:{action}"))
        else:
            specs.append(_zshQuote(f"{index}:{name}:{action}"))
    return specs


def zsh(parser: argparse.ArgumentParser) -> str:
    """
    A zsh completion script for ``parser``'s program: put it in a directory on ``$fpath``
    as ``_PROG``, or ``source`` it after ``compinit``.
    """
    prog = parser.prog
    function = "_" + re.sub(r"\W", "_", prog)
    top, *subcommands = commands(parser)
    specs = [spec for option in top.options for spec in _zshOption(option)]
    lines = [
        f"#compdef {prog}",
        f"# zsh completion for {prog}, generated from its argparse parsers",
        f"# by '{prog} completion zsh'.",
        f"{function}() {{",
        '    local curcontext="$curcontext" state line',
        "    typeset -A opt_args",
        "    _arguments -C \\",
        *(f"        {spec} \\" for spec in specs),
        "        '1:command:->command' \\",
        "        '*::argument:->argument'",
        "    case $state in",
        "    command)",
        "        local -a commands",
        "        commands=(",
        *(
            f"            {_zshQuote(c.name + ':' + c.help.replace(':', chr(92) + ':'))}"
            for c in subcommands
        ),
        "        )",
        f"        _describe -t commands {_zshQuote(prog + ' command')} commands",
        "        ;;",
        "    argument)",
        "        case $line[1] in",
    ]
    for command in subcommands:
        specs = [spec for option in command.options for spec in _zshOption(option)]
        specs += _zshPositionals(command)
        lines.append(f"        {command.name})")
        lines.append("            _arguments \\")
        lines += [f"                {spec} \\" for spec in specs[:-1]]
        lines.append(f"                {specs[-1]}")
        lines.append("            ;;")
    lines += [
        "        esac",
        "        ;;",
        "    esac",
        "}",
        "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then",
        f'    {function} "$@"',
        "else",
        f"    compdef {function} {prog}",
        "fi",
        "",
    ]
    return "\n".join(lines)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """
    The completion script for ``shell`` (one of :data:`SHELLS`).
    """
    return {"bash": bash, "zsh": zsh}[shell](parser)
