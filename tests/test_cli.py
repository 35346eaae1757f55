"""
Tests for the ``journey`` command's shared behaviour and ``journey greet``'s failures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests.support import PATIENCE, REPO, environment, fallbackArgv, freePort, journeyArgv, run
from twisted_journey import __version__, errors
from twisted_journey.cli import _writeAll
from twisted_journey.errors import REFUSED, RESOLVE, TIMEOUT, UNREACHABLE, connect_failure


class ConnectFailureTests(SynchronousTestCase):
    """
    ``connect_failure`` gives one sentence per kind of failure.
    """

    def test_sentences(self) -> None:
        """
        Each kind names the host, the port and what to do or what happened.
        """
        self.assertEqual(connect_failure(RESOLVE, "h", 1), "cannot resolve host name 'h'.")
        self.assertEqual(
            connect_failure(REFUSED, "h", 1),
            "connection to h port 1 refused: is the server running?",
        )
        self.assertEqual(
            connect_failure(TIMEOUT, "h", 1, timeout=2.5),
            "no complete answer from h port 1 within 2.5 seconds.",
        )
        self.assertEqual(
            connect_failure(UNREACHABLE, "h", 1, "No route to host"),
            "cannot reach h port 1: No route to host.",
        )


class TLSFailureTests(SynchronousTestCase):
    """
    ``tls_failure`` and ``certificate_problem``: one sentence per certificate problem,
    the same from both engines.
    """

    def test_sentences(self) -> None:
        """
        Each kind names the server and the problem; a unix socket is named as one.
        """
        where = "refused the TLS certificate of h port 1"
        self.assertEqual(
            errors.tls_failure(errors.UNTRUSTED, "h", 1),
            f"{where}: it is not signed by a trusted authority "
            "(give the authority's certificate with --cacert FILE).",
        )
        self.assertEqual(
            errors.tls_failure(errors.MISMATCH, "h", 1),
            f"{where}: it is not valid for the name 'h'.",
        )
        self.assertEqual(errors.tls_failure(errors.EXPIRED, "h", 1), f"{where}: it has expired.")
        self.assertEqual(
            errors.tls_failure(errors.NOT_YET_VALID, "h", 1), f"{where}: it is not valid yet."
        )
        self.assertEqual(
            errors.tls_failure(errors.HANDSHAKE, "h", 1, "bad"), "TLS with h port 1 failed: bad."
        )
        self.assertEqual(
            connect_failure(REFUSED, "/j.sock", None),
            "connection to unix socket /j.sock refused: is the server running?",
        )

    def test_problems(self) -> None:
        """
        OpenSSL's verification codes, else the certificate's dates, say what is wrong.
        """
        import datetime

        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        self.assertEqual(errors.certificate_problem(10), errors.EXPIRED)
        self.assertEqual(errors.certificate_problem(62), errors.MISMATCH)
        self.assertEqual(errors.certificate_problem(19), errors.UNTRUSTED)
        self.assertEqual(errors.certificate_problem(None, now - day, now - day), errors.EXPIRED)
        self.assertEqual(
            errors.certificate_problem(None, now + day, now + 2 * day), errors.NOT_YET_VALID
        )
        self.assertEqual(errors.certificate_problem(None, now - day, now + day), errors.UNTRUSTED)


class GreetCommandTests(SynchronousTestCase):
    """
    ``journey greet`` with each engine, against servers that fail in each way.
    """

    engines = {"twisted": environment(), "stdlib": environment(JOURNEY_ENGINE="stdlib")}

    def test_refused(self) -> None:
        """
        Nothing listening: exit 1, one sentence, no traceback.
        """
        port = freePort()
        for name, env in self.engines.items():
            result = run(journeyArgv("greet", "127.0.0.1", str(port)), env=env)
            self.assertEqual(result.returncode, 1, name)
            self.assertEqual(result.stdout, b"", name)
            self.assertEqual(
                result.stderr,
                f"journey greet: connection to 127.0.0.1 port {port} refused: "
                "is the server running?\n".encode(),
                name,
            )

    def test_withoutTwisted(self) -> None:
        """
        Run from a checkout on a Python without Twisted (``python -S``: no
        site-packages), ``journey greet`` uses the twin, though the checkout's own
        ``twisted/plugins`` directory is importable as a namespace package ``twisted``.
        """
        port = freePort()
        argv = journeyArgv("greet", "127.0.0.1", str(port))
        result = run([argv[0], "-S", *argv[1:]], env=environment(), cwd=str(REPO))
        self.assertEqual(
            (result.returncode, result.stderr),
            (
                1,
                f"journey greet: connection to 127.0.0.1 port {port} refused: "
                "is the server running?\n".encode(),
            ),
        )

    def test_timeout(self) -> None:
        """
        A server that accepts but never closes: exit 1 after ``--timeout``, with what was
        received already printed.
        """
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            for name, env in self.engines.items():
                result = run(
                    journeyArgv("greet", "127.0.0.1", str(port), "--timeout", "0.3"), env=env
                )
                self.assertEqual(result.returncode, 1, name)
                self.assertEqual(
                    result.stderr,
                    f"journey greet: no complete answer from 127.0.0.1 port {port} "
                    "within 0.3 seconds.\n".encode(),
                    name,
                )

    def test_partialThenTimeout(self) -> None:
        """
        Bytes that arrived before the timeout are on stdout.
        """
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            for name, env in self.engines.items():
                argv = journeyArgv("greet", "127.0.0.1", str(port), "--timeout", "2")
                process = subprocess.Popen(
                    argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                conn, _ = server.accept()
                conn.sendall(b"half a gree")
                out, err = process.communicate(timeout=30)
                conn.close()
                self.assertEqual((process.returncode, out), (1, b"half a gree"), name)
                self.assertIn(b"no complete answer", err, name)

    def test_usageErrors(self) -> None:
        """
        Bad arguments are argparse errors: exit 2, a usage line and one sentence.
        """
        for argv, expected in [
            (["greet", "h", "99999"], b"'99999' is not a port number from 1 to 65535"),
            (["greet", "h", "--timeout", "0"], b"--timeout must be a number of seconds above 0"),
            (["greet"], b"the following arguments are required: host"),
            ([], b"the following arguments are required: COMMAND"),
        ]:
            result = run(journeyArgv(*argv))
            self.assertEqual(result.returncode, 2, argv)
            self.assertIn(expected, result.stderr, argv)
            self.assertNotIn(b"Traceback", result.stderr)

    def test_version(self) -> None:
        """
        ``journey --version`` prints the package version; so does each stdlib twin.
        """
        result = run(journeyArgv("--version"))
        self.assertEqual(result.stdout.strip(), f"journey {__version__}".encode())
        for tool in ("greet", "mux", "fetch"):
            result = run(fallbackArgv(tool, "--version"))
            self.assertEqual(
                (result.returncode, result.stdout.strip()),
                (0, f"python -m twisted_journey.fallback.{tool} {__version__}".encode()),
            )

    def test_subcommandUsage(self) -> None:
        """
        An unknown option after a sub-command is that sub-command's usage error (its
        usage line), with the option it most looks like.
        """
        for argv, usage, expected in [
            (
                ["greet", "127.0.0.1", "1234", "--timout", "3"],
                b"usage: journey greet ",
                b"journey greet: error: unrecognized arguments: --timout 3 "
                b"(did you mean --timeout?)",
            ),
            (
                ["send", "127.0.0.1", "--tsl"],
                b"usage: journey send ",
                b"journey send: error: unrecognized arguments: --tsl (did you mean --tls?)",
            ),
            (
                ["fetch", "--bogus", "http://127.0.0.1:1/"],
                b"usage: journey fetch ",
                b"journey fetch: error: unrecognized arguments: --bogus\n",
            ),
        ]:
            result = run(journeyArgv(*argv))
            self.assertEqual(result.returncode, 2, argv)
            self.assertTrue(result.stderr.startswith(usage), result.stderr)
            self.assertIn(expected, result.stderr)

    def test_emptyHost(self) -> None:
        """
        An empty HOST is a usage error in one sentence, from both engines.
        """
        for engine in ("twisted", "stdlib"):
            for command in ("greet", "send"):
                result = run(
                    journeyArgv(command, "", "1234"), env=environment(JOURNEY_ENGINE=engine)
                )
                self.assertEqual(
                    (result.returncode, result.stderr),
                    (
                        2,
                        f"journey {command}: HOST is empty: give a host name, an IP address "
                        "or a unix socket path.\n".encode(),
                    ),
                )

    def test_plural(self) -> None:
        """
        ``plural`` says "1 connection" and "2 connections".
        """
        self.assertEqual(
            [errors.plural(n, "URL") for n in (0, 1, 2)], ["0 URLs", "1 URL", "2 URLs"]
        )


class WriteAllTests(SynchronousTestCase):
    """
    ``journey send`` prints through ``_writeAll``, which must not lose output when stdout
    is non-blocking (a terminal shared with a non-blocking terminal input).
    """

    def test_waitsWhileFull(self) -> None:
        """
        Everything is written to a non-blocking pipe that fills up, as it drains.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        os.set_blocking(write, False)
        data = b"".join(b"line %06d\n" % n for n in range(100_000))
        received = bytearray()

        def drain() -> None:
            while chunk := os.read(read, 65536):
                received.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        try:
            _writeAll(write, data)
        finally:
            os.close(write)
            reader.join(PATIENCE)
        self.assertEqual(bytes(received), data)
