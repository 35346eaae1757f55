"""
Every step of the fetch tutorial (``docs/tutorial/fetch/``) runs and saves the file.
"""

from __future__ import annotations

import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.fetchservers import childEnvironment
from tests.support import REPO, freePort, run, startServer

STEPS = REPO / "docs" / "tutorial" / "fetch"


class TutorialStepTests(SynchronousTestCase):
    """
    Each step fetches a file from ``twist web`` on loopback.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.data = os.urandom(100_000)
        with open(os.path.join(self.root, "data.bin"), "wb") as f:
            f.write(self.data)
        port = freePort()
        argv = [
            sys.executable,
            "-m",
            "twisted",
            "web",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--path",
            self.root,
        ]
        startServer(self, argv, ("127.0.0.1", port), env=childEnvironment())
        self.base = f"http://127.0.0.1:{port}"

    def test_singleFileSteps(self) -> None:
        """
        Steps 1 to 6 each save ``data.bin`` byte for byte and exit 0.
        """
        for step in [
            "step1_urlopen.py",
            "step2_urlretrieve.py",
            "step3_fallback.py",
            "step4_readbody.py",
            "step5_stream.py",
            "step6_retrieve.py",
        ]:
            target = os.path.join(self.root, f"out-{step}")
            result = run(
                [sys.executable, str(STEPS / step), f"{self.base}/data.bin", target],
                env=childEnvironment(),
            )
            self.assertEqual(result.returncode, 0, (step, result.stderr))
            with open(target, "rb") as f:
                self.assertEqual(f.read(), self.data, step)

    def test_fetcherStep(self) -> None:
        """
        Step 7 saves the good URL and reports the 404 as an HTTP status.
        """
        directory = os.path.join(self.root, "many")
        os.makedirs(directory)
        result = run(
            [
                sys.executable,
                str(STEPS / "step7_fetcher.py"),
                directory,
                f"{self.base}/data.bin",
                f"{self.base}/missing",
            ],
            env=childEnvironment(),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"HTTP 404", result.stdout)
        self.assertEqual(os.listdir(directory), ["data.bin"])

    def test_fallbackStepFailure(self) -> None:
        """
        Step 3 turns a 404 into the documented exit status and leaves no file.
        """
        target = os.path.join(self.root, "nothing")
        result = run(
            [sys.executable, str(STEPS / "step3_fallback.py"), f"{self.base}/missing", target],
            env=childEnvironment(),
        )
        self.assertEqual(result.returncode, 8)
        self.assertFalse(os.path.exists(target))
