"""
Every step of the multiplexing tutorial (``docs/tutorial/mux/``) runs and prints what two
interleaved clients send.
"""

from __future__ import annotations

import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support import PATIENCE, REPO, connect, freePort, startServer

STEPS = REPO / "docs" / "tutorial" / "mux"


class TutorialStepTests(SynchronousTestCase):
    """
    The select, poll and Twisted steps serve two clients at once.
    """

    def test_steps(self) -> None:
        """
        Two clients connected at once, writing in turn, are both printed, each line with
        its client; the line-based steps join a line sent in pieces and print a partial end.
        """
        for step in ["ch5_select.py", "ch5_poll.py", "ch6_twisted.py"]:
            port = freePort()
            server = startServer(
                self, [sys.executable, str(STEPS / step), str(port)], ("127.0.0.1", port)
            )
            first = connect(("127.0.0.1", port))
            second = connect(("127.0.0.1", port))
            first.sendall(b"one from first\n")
            time.sleep(0.1)
            second.sendall(b"one from second\n")
            time.sleep(0.1)
            first.sendall(b"two \x1b[31m")
            time.sleep(0.1)
            first.sendall(b"from first\nend")
            first.close()
            second.close()
            deadline = time.monotonic() + PATIENCE
            while b"end" not in server.stdout and time.monotonic() < deadline:
                time.sleep(0.05)
            server.stop()
            out = server.stdout
            self.assertIn(b"Got connection from", out, step)
            for word in (b"Traceback", b"Warning"):
                self.assertNotIn(word, server.stderr, step)
            self.assertIn(b"one from first", out, step)
            self.assertIn(b"one from second", out, step)
            self.assertNotIn(b"\x1b", out, step)
            if step != "ch5_select.py":
                self.assertIn(b"'two \\x1b[31mfrom first'", out, step)
                self.assertIn(b"b'end' (partial)", out, step)
