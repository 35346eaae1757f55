"""
The greeting tools with Twisted absent: the fallback server and the ``journey greet``
client must run on the standard library alone.
"""

from __future__ import annotations

import socket
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    environment,
    fallbackArgv,
    freePort,
    journeyArgv,
    readAll,
    run,
    startServer,
)


class StdlibOnlyTests(SynchronousTestCase):
    """
    Children whose ``import twisted`` fails.
    """

    def test_blockerWorks(self) -> None:
        """
        The environment really does make ``import twisted`` fail, so the tests below
        prove something.
        """
        result = run([sys.executable, "-c", "import twisted"], env=environment(stdlibOnly=True))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"import of twisted halted", result.stderr)

    def test_fallbackServerAndClient(self) -> None:
        """
        The fallback server runs, and ``journey greet`` (falling back to its stdlib client)
        prints the greeting, both without Twisted.
        """
        env = environment(stdlibOnly=True)
        port = freePort()
        startServer(
            self,
            fallbackArgv("greet", "--listen", f"tcp:{port}:interface=127.0.0.1", "-m", "hi"),
            ("127.0.0.1", port),
            env=env,
        )
        self.assertEqual(readAll(socket.create_connection(("127.0.0.1", port))), b"hi\r\n")
        result = run(journeyArgv("greet", "127.0.0.1", str(port)), env=env)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b"hi\r\n", b""))

    def test_stdlibClientErrors(self) -> None:
        """
        The stdlib client reports a refused connection in one sentence, exit status 1.
        """
        port = freePort()
        result = run(journeyArgv("greet", "127.0.0.1", str(port)), env=environment(stdlibOnly=True))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            f"journey greet: connection to 127.0.0.1 port {port} refused: "
            "is the server running?\n".encode(),
        )
