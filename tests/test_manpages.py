"""
The manual pages: ``sphinx-build -b man docs OUT`` (the command ``docs/reference/man``
documents) builds ``journey(1)`` and a page per plugin from the reference pages, and
``man -l`` renders each with its sections and the options its parser has.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import REPO, environment
from twisted_journey.cli import _parser
from twisted_journey.completion import commands
from twisted_journey.tap import greet, mux

#: seconds the build may take (it reads every page of the documentation)
BUILD_PATIENCE = 300


class ManualPageTests(SynchronousTestCase):
    """
    One build of the manual pages, rendered by ``man``.
    """

    def test_buildAndRender(self) -> None:
        """
        The four pages build without a warning, and each renders with NAME, SYNOPSIS,
        DESCRIPTION and OPTIONS; journey(1) lists every sub-command's long options, and
        each plugin's page its plugin's.
        """
        if importlib.util.find_spec("sphinx") is None:
            raise SkipTest("Sphinx is not installed (the docs extra)")
        if shutil.which("man") is None:
            raise SkipTest("man is not installed")
        out = os.path.abspath(self.mktemp())
        build = subprocess.run(
            [sys.executable, "-m", "sphinx", "-q", "-W", "-n", "-b", "man", "docs", out],
            cwd=REPO,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=BUILD_PATIENCE,
        )
        self.assertEqual((build.returncode, build.stderr), (0, ""))
        expected = {
            "journey": {s for c in commands(_parser()) for o in c.options for s in o.strings},
            "journey-greet": {f"--{name}" for name in greet.Options().synonyms.values()},
            "journey-mux": {f"--{name}" for name in mux.Options().synonyms.values()},
            "journey-fetch": set(),
        }
        for page, options in expected.items():
            path = os.path.join(out, f"{page}.1")
            rendered = subprocess.run(
                ["man", "-l", path],
                env=environment(MANPAGER="cat", MANWIDTH="100", MAN_KEEP_FORMATTING=""),
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(rendered.returncode, 0, rendered.stderr)
            text = rendered.stdout
            for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"):
                self.assertIn(f"\n{section}\n", text, page)
            self.assertIn(f"{page} - ", text)
            missing = {o for o in options - {"--help", "--version", "-h"} if o not in text}
            self.assertEqual(missing, set(), page)
