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
        Steps 1 to 4 each serve ``Thank you for connecting\\r\\n`` to two clients in turn.
        """
        for step in [
            "step1_socket_server.py",
            "step2_socketserver.py",
            "step3_threading.py",
            "step4_twisted.py",
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

    def test_twistedClientStep(self) -> None:
        """
        Step 4's Twisted client prints what the server sends and exits 0.
        """
        port = freePort()
        startServer(
            self,
            [sys.executable, str(STEPS / "step1_socket_server.py"), str(port)],
            ("127.0.0.1", port),
        )
        result = run(
            [sys.executable, str(STEPS / "step4_twisted_client.py"), "127.0.0.1", str(port)]
        )
        self.assertEqual((result.returncode, result.stdout), (0, b"Thank you for connecting\r\n"))

    def test_endpointStep(self) -> None:
        """
        Step 5 listens on the endpoint string it is given and serves the greeting.
        """
        port = freePort()
        startServer(
            self,
            [sys.executable, str(STEPS / "step5_endpoints.py"), f"tcp:{port}:interface=127.0.0.1"],
            ("127.0.0.1", port),
        )
        self.assertEqual(readAll(connect(("127.0.0.1", port))), b"Thank you for connecting\r\n")

    def test_clientStep(self) -> None:
        """
        Step 1's client prints what the server sends.
        """
        port = freePort()
        startServer(
            self,
            [sys.executable, str(STEPS / "step1_socket_server.py"), str(port)],
            ("127.0.0.1", port),
        )
        result = run(
            [sys.executable, str(STEPS / "step1_socket_client.py"), "127.0.0.1", str(port)]
        )
        self.assertEqual(result.stdout, b"Thank you for connecting\r\n")
