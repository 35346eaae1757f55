"""
Every step of the greeting tutorial (``docs/tutorial/greet/``) runs and greets.
"""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import REPO, connect, freePort, readAll, run, startServer

STEPS = REPO / "docs" / "tutorial" / "greet"


class TutorialStepTests(SynchronousTestCase):
    """
    Each server step serves the chapter's greeting; the client step prints it.
    """

    def test_serverSteps(self) -> None:
        """
        Each server program of chapters 1, 3, 4 and 6 serves ``Thank you for
        connecting\\r\\n`` to two clients in turn, and writes no traceback or warning.
        """
        for step in [
            "ch1_server.py",
            "ch3_socketserver.py",
            "ch4_threading.py",
            "ch4_forking.py",
            "ch6_twisted.py",
        ]:
            port = freePort()
            server = startServer(
                self, [sys.executable, str(STEPS / step), str(port)], ("127.0.0.1", port)
            )
            for _ in range(2):
                self.assertEqual(
                    readAll(connect(("127.0.0.1", port))), b"Thank you for connecting\r\n", step
                )
            server.stop()
            self.assertIn(b"Got connection from", server.stdout, step)
            for word in (b"Traceback", b"Warning"):
                self.assertNotIn(word, server.stderr, step)

    def test_twistedClientStep(self) -> None:
        """
        Chapter 6's Twisted client prints what the server sends and exits 0.
        """
        port = freePort()
        startServer(
            self,
            [sys.executable, str(STEPS / "ch1_server.py"), str(port)],
            ("127.0.0.1", port),
        )
        result = run([sys.executable, str(STEPS / "ch6_twisted_client.py"), "127.0.0.1", str(port)])
        self.assertEqual((result.returncode, result.stdout), (0, b"Thank you for connecting\r\n"))
        self.assertEqual(result.stderr, b"")

    def test_endpointStep(self) -> None:
        """
        Chapter 6's endpoint program listens on the endpoint string it is given and
        serves the greeting.
        """
        port = freePort()
        server = startServer(
            self,
            [sys.executable, str(STEPS / "ch6_endpoints.py"), f"tcp:{port}:interface=127.0.0.1"],
            ("127.0.0.1", port),
        )
        self.assertEqual(readAll(connect(("127.0.0.1", port))), b"Thank you for connecting\r\n")
        server.stop()
        self.assertNotIn(b"Traceback", server.stderr)

    def test_clientStep(self) -> None:
        """
        Chapter 1's client prints what the server sends.
        """
        port = freePort()
        startServer(
            self,
            [sys.executable, str(STEPS / "ch1_server.py"), str(port)],
            ("127.0.0.1", port),
        )
        result = run([sys.executable, str(STEPS / "ch1_client.py"), "127.0.0.1", str(port)])
        self.assertEqual(result.stdout, b"Thank you for connecting\r\n")
        self.assertEqual(result.stderr, b"")
