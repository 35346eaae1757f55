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


#: A test process started with SIGINT ignored (as a script's background job is) that
#: loads the helpers, then says whether a process it starts ignores SIGINT too.
_BACKGROUNDED = """
import subprocess, sys
from tests import support
child = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
sys.stdout.write(subprocess.check_output([sys.executable, "-c", child], text=True))
"""


class SignalTests(SynchronousTestCase):
    """
    The signal dispositions the servers a test starts inherit.
    """

    def test_sigintNotIgnoredInServers(self) -> None:
        """
        A test run that ignores SIGINT (started in the background by a script) still
        starts its servers with SIGINT's default action, so that they stop on the
        SIGINT a test sends them.
        """
        import signal

        output = subprocess.check_output(
            [sys.executable, "-c", _BACKGROUNDED],
            cwd=REPO,
            env=environment(),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            timeout=PATIENCE,
        )
        self.assertEqual(output, b"False\n")


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
