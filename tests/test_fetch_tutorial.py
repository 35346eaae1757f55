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

#: The programs that take ``URL FILENAME``, in the chapter's order.
SINGLE = [
    "ch2_urlopen.py",
    "ch2_urlretrieve.py",
    "ch8_fallback.py",
    "ch6_readbody.py",
    "ch6_stream.py",
    "ch8_retrieve.py",
]


def assertQuiet(testCase: SynchronousTestCase, stderr: bytes, step: str) -> None:
    """
    A tutorial program's standard error holds no traceback and no warning.
    """
    for word in (b"Traceback", b"Warning"):
        testCase.assertNotIn(word, stderr, (step, stderr))


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
        Steps 1 to 6 each save ``data.bin`` byte for byte and exit 0, with no traceback
        or warning on standard error.
        """
        for step in SINGLE:
            target = os.path.join(self.root, f"out-{step}")
            result = run(
                [sys.executable, str(STEPS / step), f"{self.base}/data.bin", target],
                env=childEnvironment(),
            )
            self.assertEqual(result.returncode, 0, (step, result.stderr))
            assertQuiet(self, result.stderr, step)
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
                str(STEPS / "ch8_fetcher.py"),
                directory,
                f"{self.base}/data.bin",
                f"{self.base}/missing",
            ],
            env=childEnvironment(),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        assertQuiet(self, result.stderr, "ch8_fetcher.py")
        self.assertIn(b"HTTP 404", result.stdout)
        self.assertEqual(os.listdir(directory), ["data.bin"])

    def test_fallbackStepFailure(self) -> None:
        """
        Step 3 turns a 404 into the documented exit status and leaves no file.
        """
        target = os.path.join(self.root, "nothing")
        result = run(
            [sys.executable, str(STEPS / "ch8_fallback.py"), f"{self.base}/missing", target],
            env=childEnvironment(),
        )
        self.assertEqual(result.returncode, 8)
        self.assertFalse(os.path.exists(target))


class WrongUsageTests(SynchronousTestCase):
    """
    A tutorial program called the wrong way says how to call it, in one line.
    """

    def assertUsage(self, argv: list[str], expected: bytes) -> None:
        """
        The program exits non-zero with one line of standard error naming its usage.
        """
        result = run([sys.executable, *argv], env=childEnvironment())
        self.assertNotEqual(result.returncode, 0, argv)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, (argv, result.stderr))
        self.assertTrue(lines[0].startswith(b"usage: "), lines)
        self.assertIn(expected, lines[0])

    def test_fetcherGivenUrlFirst(self) -> None:
        """
        ``ch8_fetcher.py URL out7`` (a URL where the directory goes) names the usage.
        """
        self.assertUsage(
            [str(STEPS / "ch8_fetcher.py"), "http://127.0.0.1:9/f", "out7"],
            b"DIRECTORY URL...",
        )

    def test_noArguments(self) -> None:
        """
        Every ``URL FILENAME`` program run with no argument names its usage.
        """
        for step in SINGLE:
            self.assertUsage([str(STEPS / step)], b"URL FILENAME")
