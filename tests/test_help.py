"""
``--help`` explains every option of every tool, on both engines, and the Twisted forms
leave twistd's own short options alone.
"""

from __future__ import annotations

import argparse
import re

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import twisted_journey.fallback.fetch
import twisted_journey.fallback.greet
import twisted_journey.fallback.mux
import twisted_journey.tap.fetch
import twisted_journey.tap.greet
import twisted_journey.tap.mux

fallback, tap = twisted_journey.fallback, twisted_journey.tap

#: the stdlib twins' parsers, by program name
TWIN_PARSERS = {
    "greet": fallback.greet._parser,
    "mux": fallback.mux._parser,
    "fetch": fallback.fetch.parser,
}

#: the twistd plugins' Options classes, by tool
TAP_OPTIONS: dict[str, type[usage.Options]] = {
    "greet": tap.greet.Options,
    "mux": tap.mux.Options,
    "fetch": tap.fetch.Options,
}


def explanation(text: str | None) -> str:
    """
    A help string without its ``[default]`` note: what is left explains the option.
    """
    return re.sub(r"\[[^]]*\]", "", text or "").strip()


class TwinHelpTests(SynchronousTestCase):
    """
    Every option of every stdlib twin has help text, as the Twisted forms do.
    """

    def test_everyOptionExplained(self) -> None:
        """
        Each option's help says more than its default: at least two words.
        """
        missing = []
        for name, makeParser in TWIN_PARSERS.items():
            for action in makeParser()._actions:
                if isinstance(action, argparse._HelpAction):
                    continue
                if len(explanation(action.help).split()) < 2:
                    missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        self.assertEqual(missing, [])


class TapShortOptionTests(SynchronousTestCase):
    """
    The plugins define no ``-l``: under twistd, ``-l`` is ``--logfile``.
    """

    def test_noShortListen(self) -> None:
        """
        ``-l`` is refused by every plugin's options, and ``--listen`` still works.
        """
        for name, options in TAP_OPTIONS.items():
            self.assertRaises(usage.UsageError, options().parseOptions, ["-l", "tcp:1"])
            if name != "fetch":
                parsed = options()
                parsed.parseOptions(["--listen", "tcp:1"])
                self.assertEqual(parsed["listen"], ["tcp:1"], name)

    def test_everyOptionExplained(self) -> None:
        """
        Every plugin option has a description in ``--help``.
        """
        for name, options in TAP_OPTIONS.items():
            for row in [*options.optParameters, *options.optFlags]:
                self.assertTrue(explanation(row[-1]), f"{name} --{row[0]}")
