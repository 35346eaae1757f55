"""
The example programs of the how-to guides (``docs/howto/examples/``) run and do what the
guides say.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import REPO, connect, environment, freePort, readAll, startServer

EXAMPLES = REPO / "docs" / "howto" / "examples"


def runExample(*argv: str, cwd: str) -> subprocess.CompletedProcess[bytes]:
    """
    Run ``python ARGV`` against this checkout from ``cwd``.
    """
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=environment(), capture_output=True, timeout=120
    )


class EmbeddingExampleTests(SynchronousTestCase):
    """
    ``docs/howto/embedding.rst``'s programs.
    """

    def test_embed(self) -> None:
        """
        ``embed.py`` greets and fetches over loopback and exits 0.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        result = runExample(str(EXAMPLES / "embed.py"), cwd=directory)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"greeting: Hello from an embedded server", result.stdout)
        self.assertIn(b"fetched: hello, fetcher", result.stdout)

    def test_tac(self) -> None:
        """
        ``twistd -ny journey.tac`` serves three ports: the greeting, the data log, and the
        factory built in Python.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        ports = set()
        while len(ports) < 3:
            ports.add(freePort())
        greet, mux, own = sorted(ports)
        argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "-y",
            str(EXAMPLES / "journey.tac"),
        ]
        server = startServer(
            self,
            argv,
            ("127.0.0.1", greet),
            cwd=directory,
            env=environment(GREET_PORT=str(greet), MUX_PORT=str(mux), OWN_PORT=str(own)),
        )
        for port in (mux, own):
            server.waitForListening(("127.0.0.1", port))
        self.assertEqual(readAll(connect(("127.0.0.1", greet))), b"Hello\r\n")
        self.assertEqual(readAll(connect(("127.0.0.1", own))), b"Hello from my own service\r\n")


class TestingExampleTests(SynchronousTestCase):
    """
    ``docs/howto/testing.rst``'s test modules pass under the runners it names.
    """

    def test_trial(self) -> None:
        """
        ``python -m twisted.trial test_greeting`` passes.
        """
        result = runExample("-m", "twisted.trial", "--temp-directory", os.path.abspath(self.mktemp()),
                            "test_greeting", cwd=str(EXAMPLES))  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_pytest(self) -> None:
        """
        pytest passes each of the two example modules, run separately as the page says.
        """
        for module in ["test_greeting.py", "test_greeting_pytest.py"]:
            result = runExample("-m", "pytest", "-q", "-p", "no:cacheprovider", module,
                                cwd=str(EXAMPLES))  # fmt: skip
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
