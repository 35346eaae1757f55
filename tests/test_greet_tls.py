"""
journey-greet over TLS with a client that only reads: ``ncat --ssl --recv-only`` sends no
``close_notify`` back, and the server closes the TCP connection itself shortly after the
greeting and its own ``close_notify`` (:data:`twisted_journey.greet.CLOSE_GRACE`), rather
than holding it until ``--timeout``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE, freePort, selfSignedCertificate, startServer, twistdArgv

GREETING = b"Thank you for connecting\r\n"


class ReceiveOnlyClientTests(SynchronousTestCase):
    """
    A real ``ncat --ssl --recv-only`` against a real ``twistd journey-greet`` on ``ssl:``.
    """

    def test_closedAfterGrace(self) -> None:
        """
        With a ``--timeout`` far longer than the test's patience, ncat still receives the
        greeting and ends (the server closed the connection), and the server logs no
        greeting as "not taken".
        """
        if shutil.which("ncat") is None:
            raise SkipTest("ncat (from nmap) is not installed")
        key, certificate = selfSignedCertificate(os.path.abspath(self.mktemp()))
        port = freePort()
        server = startServer(
            self,
            twistdArgv(
                "journey-greet",
                "--listen",
                f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
                "--timeout",
                str(100 * PATIENCE),
            ),
            ("127.0.0.1", port),
        )
        try:
            result = subprocess.run(
                ["ncat", "--ssl", "--recv-only", "127.0.0.1", str(port)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PATIENCE,
            )
        except subprocess.TimeoutExpired:
            self.fail("the server held the TLS connection open after the greeting")
        self.assertEqual(result.stdout, GREETING)
        self.assertEqual(result.returncode, 0, result.stderr)
        server.stop()
        self.assertNotIn("not taken", server.output())
