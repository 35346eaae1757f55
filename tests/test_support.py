"""
Tests for the helpers of :mod:`tests.support` that the other tests' reliability rests on.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import PATIENCE, REPO, environment

#: A test process that picks a port the way every test does, from the same random start
#: as any other copy of it, says which, and keeps running until its input ends.
_PICKER = """
import random, sys
random.seed(15)
from tests import support
print(support.freePort(), flush=True)
sys.stdin.read()
"""


class FreePortTests(SynchronousTestCase):
    """
    :func:`tests.support.freePort` across test processes.
    """

    def pick(self) -> tuple[subprocess.Popen[bytes], int]:
        """
        Start a process that picks a port and holds on to it; return it and the port.
        """
        picker = subprocess.Popen(
            [sys.executable, "-c", _PICKER],
            cwd=REPO,
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.addCleanup(picker.wait, PATIENCE)
        assert picker.stdin is not None and picker.stdout is not None
        self.addCleanup(picker.stdin.close)
        self.addCleanup(picker.stdout.close)
        return picker, int(picker.stdout.readline())

    def test_twoRunsNeverShareAPort(self) -> None:
        """
        Two test processes numbered alike (two suites run side by side on one machine)
        that start their turn at the same port never both get it, though neither has
        bound it yet: the first one's server may be about to.
        """
        _, first = self.pick()
        _, second = self.pick()
        self.assertNotEqual(first, second)
