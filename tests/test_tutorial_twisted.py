"""
The Twisted programs of the tutorial's chapters 6 and 7 (``docs/tutorial/deferred/``,
``docs/tutorial/greet/ch6_*``, ``docs/tutorial/plugin/``) run and do what their pages say.
"""

from __future__ import annotations

import re
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    REPO,
    connect,
    environment,
    freePort,
    readAll,
    run,
    startServer,
    twistdArgv,
)

TUTORIAL = REPO / "docs" / "tutorial"
DEFERRED = TUTORIAL / "deferred"
GREET = TUTORIAL / "greet"
PLUGIN = TUTORIAL / "plugin"


def assertQuiet(testCase: SynchronousTestCase, stderr: bytes, what: str) -> None:
    """
    A tutorial program's standard error holds no traceback and no warning.
    """
    for word in (b"Traceback", b"Warning"):
        testCase.assertNotIn(word, stderr, (what, stderr))


def runStep(testCase: SynchronousTestCase, path: str, *arguments: str) -> list[str]:
    """
    Run a tutorial program to completion; it exits 0 with a clean standard error.

    :return: the lines it printed.
    """
    result = run([sys.executable, str(path), *arguments])
    testCase.assertEqual(result.returncode, 0, result.stderr)
    assertQuiet(testCase, result.stderr, str(path))
    return result.stdout.decode().splitlines()


class DeferredStepTests(SynchronousTestCase):
    """
    The Deferred programs show a chain's two paths, the coroutine form and the rule
    about blocking.
    """

    def test_callbacks(self) -> None:
        """
        A good value goes through every callback; a bad one skips ``double`` and lands
        in the errback, whose return value resumes the callbacks; the second chain runs
        only after the first has finished.
        """
        lines = [line.strip() for line in runStep(self, DEFERRED / "ch6_callbacks.py")]
        first = lines[: lines.index("chain for 'ten':")]
        second = lines[lines.index("chain for 'ten':") :]
        self.assertEqual(first[1:], ["parse('21')", "double(21)", "result: 42"])
        self.assertEqual(second[1], "parse('ten')")
        self.assertTrue(second[2].startswith("errback got ValueError: "), second)
        self.assertEqual(second[3:], ["result: -1"])

    def test_coroutine(self) -> None:
        """
        The coroutine version reaches the same results, the failure caught as an
        exception.
        """
        lines = runStep(self, DEFERRED / "ch6_coroutine.py")
        self.assertEqual(lines[-1], "both done: 42, -1")
        self.assertTrue(any(line.strip().startswith("failed: ") for line in lines), lines)

    def test_blocking(self) -> None:
        """
        No timer fires while the reactor's thread sleeps; some do while a thread sleeps.
        """
        text = "\n".join(runStep(self, DEFERRED / "ch6_blocking.py"))
        inReactor = re.search(r"reactor's thread: (\d+) ticks", text)
        inThread = re.search(r"another thread: (\d+) ticks", text)
        assert inReactor is not None and inThread is not None, text
        self.assertEqual(int(inReactor.group(1)), 0)
        self.assertGreater(int(inThread.group(1)), 0)


class ProtocolStepTests(SynchronousTestCase):
    """
    The lifecycle server, its endpoint client and the ClientFactory client.
    """

    def test_lifecycle(self) -> None:
        """
        The echo client gets its lines back; the server prints each event in order for a
        connection, and refuses a third connection while two are open.
        """
        port = freePort()
        server = startServer(
            self,
            [sys.executable, str(GREET / "ch6_lifecycle.py"), f"tcp:{port}:interface=127.0.0.1"],
            ("127.0.0.1", port),
        )
        lines = runStep(self, GREET / "ch6_echo_client.py", f"tcp:127.0.0.1:{port}", "one", "two")
        self.assertEqual(lines, ["one", "two"])
        first, second = connect(("127.0.0.1", port)), connect(("127.0.0.1", port))
        third = connect(("127.0.0.1", port))
        self.assertEqual(readAll(third), b"")  # closed at once, nothing sent
        first.close()
        second.close()
        server.stop()
        out = server.stdout.decode()
        self.assertIn("buildProtocol: refusing 127.0.0.1, 2 already open", out)
        echoed = re.search(r"dataReceived: client (\d+), 8 bytes", out)
        assert echoed is not None, out
        number = echoed.group(1)
        events = [
            out.index(f"connectionMade: client {number} "),
            echoed.start(),
            out.index(f"connectionLost: client {number}: "),
        ]
        self.assertEqual(events, sorted(events))
        assertQuiet(self, server.stderr, "ch6_lifecycle.py")

    def test_clientFactory(self) -> None:
        """
        The ClientFactory client prints the greeting of chapter 6's server, and says in
        one line on standard error, exiting 1, when nothing listens.
        """
        port = freePort()
        startServer(
            self, [sys.executable, str(GREET / "ch6_twisted.py"), str(port)], ("127.0.0.1", port)
        )
        lines = runStep(self, GREET / "ch6_clientfactory.py", "127.0.0.1", str(port))
        self.assertEqual(lines, ["Thank you for connecting"])
        result = run(
            [sys.executable, str(GREET / "ch6_clientfactory.py"), "127.0.0.1", str(freePort())]
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertTrue(result.stderr.startswith(b"cannot connect: "), result.stderr)


def pluginEnvironment() -> dict[str, str]:
    """
    The environment that puts the tutorial's plugin directory on ``PYTHONPATH``, as the
    page tells the reader to.
    """
    env = environment()
    env["PYTHONPATH"] = f"{PLUGIN}:{env['PYTHONPATH']}"
    return env


class PluginStepTests(SynchronousTestCase):
    """
    Chapter 7's plugin, run by ``twistd`` as a ``.tac`` file and as a plugin.
    """

    def echo(self, port: int) -> bytes:
        """
        What the server at ``port`` answers to ``hi\\n``, once it has answered.
        """
        with connect(("127.0.0.1", port)) as sock:
            sock.sendall(b"hi\n")
            received = b""
            while not received.endswith(b"\n"):
                chunk = sock.recv(100)
                if not chunk:
                    break
                received += chunk
        return received

    def test_tac(self) -> None:
        """
        ``twistd -n -y ch7_echo.tac`` serves the echo with the file's prefix.
        """
        port = freePort()
        env = pluginEnvironment()
        env["ECHO_LISTEN"] = f"tcp:{port}:interface=127.0.0.1"
        argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon",
            "--pidfile=",
            "-y",
            str(PLUGIN / "ch7_echo.tac"),
        ]
        server = startServer(self, argv, ("127.0.0.1", port), env=env)
        self.assertEqual(self.echo(port), b"echo: hi\n")
        server.stop()
        assertQuiet(self, server.stderr, "ch7_echo.tac")

    def test_plugin(self) -> None:
        """
        ``twistd --help`` lists the plugin, ``twistd -n echo-tutorial`` serves with the
        options given, and a bad option is one sentence and a non-zero exit.
        """
        env = pluginEnvironment()
        listed = run([*twistdArgv("--help")[:3], "--help"], env=env)
        self.assertIn(b"echo-tutorial", listed.stdout)
        port = freePort()
        argv = twistdArgv(
            "echo-tutorial", "--listen", f"tcp:{port}:interface=127.0.0.1", "--prefix", "> "
        )
        server = startServer(self, argv, ("127.0.0.1", port), env=env)
        self.assertEqual(self.echo(port), b"> hi\n")
        server.stop()
        bad = run(twistdArgv("echo-tutorial", "--prefix", "a\nb"), env=env)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"--prefix must be a single line.", bad.stderr + bad.stdout)
        assertQuiet(self, bad.stderr, "echo-tutorial --prefix")
