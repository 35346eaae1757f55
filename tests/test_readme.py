"""
The README's two set-up commands are what CI runs and what a new user types.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase

from tests.support import REPO


def setupCommands() -> list[str]:
    """
    The literal blocks of the README's "Set up" section that start with ``python3 -m venv``.
    """
    text = (REPO / "README.rst").read_text()
    section = text.split("Set up\n------", 1)[1].split("\n-----", 1)[0]
    return re.findall(r"^    (python3 -m venv .+)$", section, re.MULTILINE)


class ReadmeTests(SynchronousTestCase):
    """
    The README and ``.ci/run`` agree.
    """

    def test_twoCommands(self) -> None:
        """
        There are exactly two set-up commands: one ends by running journey-greet, the
        other by running the suite.
        """
        install, test = setupCommands()
        self.assertTrue(install.endswith("twistd -n journey-greet"), install)
        self.assertIn("pip install .", install)
        self.assertTrue(test.endswith("python -m pytest -n auto"), test)
        self.assertIn('".[test]"', test)

    def test_ciRunsTheTestCommand(self) -> None:
        """
        ``.ci/run`` runs the README's test command (up to pip's ``-q``), so a missing
        install step in the README fails CI.
        """
        _, test = setupCommands()
        ci = (REPO / ".ci" / "run").read_text()
        self.assertIn(test.replace("pip install ", "pip install -q "), ci)
        self.assertIn('python -m twisted.trial -j "$((2 * $(nproc)))" tests', ci)
