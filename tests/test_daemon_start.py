"""
Tests for a journey server that cannot start under a real ``twistd``: in daemon mode (the
default) and in the foreground (``-n``), with and without ``--workers``, the command ends
with status 1, prints the one-sentence reason on its standard error and leaves no pid
file behind (:mod:`twisted_journey.startup`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    PATIENCE,
    environment,
    freePort,
    selfSignedCertificate,
    waitFor,
)
from twisted_journey import startup


class StartErrorTests(SynchronousTestCase):
    """
    :class:`StartError` is what twistd's status pipe carries and what ends the process.
    """

    def test_bothKinds(self) -> None:
        """
        A ``StartError`` is an ``Exception`` (twistd reports those through its status pipe
        and removes the pid file) and a ``SystemExit`` with the sentence as its code (so
        the process then ends with status 1 and no traceback).
        """
        error = startup.StartError("cannot listen on tcp:1: Permission denied.")
        self.assertIsInstance(error, Exception)
        self.assertIsInstance(error, SystemExit)
        self.assertEqual(error.code, "cannot listen on tcp:1: Permission denied.")


class DaemonStartTests(SynchronousTestCase):
    """
    Real ``twistd`` processes that cannot start.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.pidfile = os.path.join(self.directory, "j.pid")
        self.busy = socket.socket()
        self.addCleanup(self.busy.close)
        self.busy.bind(("127.0.0.1", 0))
        self.busy.listen()
        self.busyEndpoint = f"tcp:{self.busy.getsockname()[1]}:interface=127.0.0.1"

    def twistd(self, *arguments: str, daemon: bool = True) -> subprocess.CompletedProcess[str]:
        """
        Run ``twistd [-n] --pidfile --logfile TAPNAME OPTIONS`` in the test's directory and
        wait (boundedly) for the command to end.
        """
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
        if not daemon:
            argv.append("--nodaemon")
        argv += [f"--pidfile={self.pidfile}", "--logfile=j.log", *arguments]
        try:
            return subprocess.run(
                argv,
                cwd=self.directory,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=PATIENCE,
            )
        except subprocess.TimeoutExpired:
            self.fail(f"twistd did not end: {argv}")

    def assertCannotStart(self, sentence: str, *arguments: str, daemon: bool = True) -> None:
        """
        twistd with ``arguments`` ends with status 1, prints ``sentence`` as a line of
        its standard error, and leaves no pid file.

        twistd's daemon writes the failure to the waiting command before it removes the
        pid file, so the file may outlive the command by a moment: wait for it to go.
        """
        result = self.twistd(*arguments, daemon=daemon)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(sentence, result.stderr.splitlines())
        self.assertNotIn("Traceback", result.stderr)
        waitFor(lambda: not os.path.exists(self.pidfile), "the pid file to be removed")

    def busySentence(self) -> str:
        """
        What a server says about the port the test holds.
        """
        return f"cannot listen on {self.busyEndpoint}: Address already in use."

    def test_busyPort(self) -> None:
        """
        A port in use: the daemon's parent prints why and exits 1.
        """
        self.assertCannotStart(self.busySentence(), "journey-greet", "--listen", self.busyEndpoint)

    def test_busyPortForeground(self) -> None:
        """
        Under ``-n`` with a ``--logfile``, the sentence reaches standard error too, not
        only the log.
        """
        self.assertCannotStart(
            self.busySentence(), "journey-greet", "--listen", self.busyEndpoint, daemon=False
        )

    def test_busyPortWorkers(self) -> None:
        """
        With ``--workers``, the supervisor binds the ports and reports the same way.
        """
        self.assertCannotStart(
            self.busySentence(), "journey-greet", "--workers", "2", "--listen", self.busyEndpoint
        )
        self.assertCannotStart(
            self.busySentence(),
            "journey-greet",
            "--workers",
            "2",
            "--listen",
            self.busyEndpoint,
            daemon=False,
        )

    def test_portOutOfRange(self) -> None:
        """
        A port past 65535 is refused when the server listens: the sentence ends with one
        full stop, though the reason it quotes already has one.
        """
        endpoint = "tcp:99999:interface=127.0.0.1"
        self.assertCannotStart(
            f"cannot listen on {endpoint}: bind(): port must be 0-65535.",
            "journey-greet",
            "--listen",
            endpoint,
            daemon=False,
        )

    def test_busyMetrics(self) -> None:
        """
        A ``--metrics`` endpoint that cannot listen stops the start, with and without
        ``--workers``.
        """
        for extra in ([], ["--workers", "2"]):
            self.assertCannotStart(
                self.busySentence(),
                "journey-mux",
                "--output",
                "data.log",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--metrics",
                self.busyEndpoint,
                *extra,
            )

    def test_unwritableOutput(self) -> None:
        """
        ``journey-mux --output`` in a directory that does not exist, with and without
        ``--workers``, in daemon mode and under ``-n``.
        """
        missing = os.path.join(self.directory, "missing", "data.log")
        for extra, name in (([], missing), (["--workers", "2"], missing + ".w0")):
            for daemon in (True, False):
                self.assertCannotStart(
                    f"cannot open --output {name!r}: No such file or directory.",
                    "journey-mux",
                    "--output",
                    missing,
                    "--listen",
                    "tcp:0:interface=127.0.0.1",
                    *extra,
                    daemon=daemon,
                )

    def test_busyDatagramPort(self) -> None:
        """
        ``journey-mux --listen udp:`` on a UDP port in use, with and without
        ``--workers``, in daemon mode and under ``-n``.
        """
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        endpoint = f"udp:{busy.getsockname()[1]}:interface=127.0.0.1"
        for extra in ([], ["--workers", "2"]):
            for daemon in (True, False):
                self.assertCannotStart(
                    f"cannot listen on {endpoint}: Address already in use.",
                    "journey-mux",
                    "--output",
                    "data.log",
                    "--listen",
                    endpoint,
                    "--listen",
                    "tcp:0:interface=127.0.0.1",
                    *extra,
                    daemon=daemon,
                )

    def test_uncreatableOutputDirectory(self) -> None:
        """
        ``journey-fetch --output-dir`` that cannot be created (its parent is a file), in
        daemon mode and under ``-n``: the mirror would fail every URL at every pass.
        """
        with open(os.path.join(self.directory, "urls.txt"), "w") as f:
            f.write("http://127.0.0.1:1/x\n")
        open(os.path.join(self.directory, "afile"), "w").close()
        for daemon in (True, False):
            self.assertCannotStart(
                "--output-dir: cannot create the directory 'afile/sub': Not a directory.",
                "journey-fetch",
                "--urls",
                "urls.txt",
                "--output-dir",
                "afile/sub",
                daemon=daemon,
            )

    def test_badCertificate(self) -> None:
        """
        A certificate that does not go with the key is a usage error, found before twistd
        daemonizes; twistd prints usage errors (its help, then the sentence) on standard
        output.
        """
        key, _ = selfSignedCertificate(os.path.join(self.directory, "one"))
        _, certificate = selfSignedCertificate(os.path.join(self.directory, "two"))
        description = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={certificate}"
        for daemon in (True, False):
            result = self.twistd("journey-greet", "--listen", description, daemon=daemon)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn(
                f"--listen {description!r} is not a usable endpoint: "
                "Certificate public and private keys do not match.",
                result.stdout.splitlines()[-1],
            )
            self.assertFalse(os.path.exists(self.pidfile))


class DaemonStartedTests(SynchronousTestCase):
    """
    A daemon that starts lets go of the standard error it kept for reporting a failure.
    """

    def test_releasesStandardError(self) -> None:
        """
        ``twistd`` (daemon mode) with its standard error on a pipe returns, and the pipe
        reaches its end while the daemon serves: an ``ssh host twistd ...`` does not hang.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        pidfile = os.path.join(directory, "j.pid")
        argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            f"--pidfile={pidfile}",
            "--logfile=j.log",
            "journey-greet",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ]
        try:
            result = subprocess.run(
                argv,
                cwd=directory,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=PATIENCE,
            )
        except subprocess.TimeoutExpired:
            self.fail("the daemon kept the command's standard error open")
        finally:
            self.addCleanup(self.stopDaemon, pidfile)
        self.assertEqual((result.returncode, result.stderr), (0, ""))

    def stopDaemon(self, pidfile: str) -> None:
        """
        Stop the daemon named by ``pidfile`` and wait for it to remove the file.
        """
        waitFor(lambda: os.path.exists(pidfile), "the pid file")
        with open(pidfile) as f:
            pid = int(f.read())
        # Right away: a SIGTERM that arrives before the daemon's reactor runs is kept
        # until it does (EarlyStopTests).
        os.kill(pid, signal.SIGTERM)
        waitFor(lambda: not os.path.exists(pidfile), "the daemon to stop")


def endCommand(command: subprocess.Popen[bytes]) -> None:
    """
    Kill a ``twistd`` command a failed test left running.
    """
    if command.poll() is None:
        command.kill()
        command.wait()


class EarlyStopTests(SynchronousTestCase):
    """
    A ``SIGTERM`` sent the instant the pid file names the server -- before its reactor
    runs and installs its handlers (twistd writes the pid file, starts the services and
    lets the waiting command return first) -- stops the server cleanly: it does not die
    by the signal's default action, the command that started it returns, and the pid
    file goes (:func:`twisted_journey.startup.holdStopSignals`).
    """

    #: Each case is tried this many times: the moment is short.
    repeat = 3

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.pidfile = os.path.join(self.directory, "j.pid")
        self.logfile = os.path.join(self.directory, "j.log")

    def readPid(self) -> int | None:
        """
        The pid the pid file names, or ``None`` while it is missing or being written.
        """
        try:
            with open(self.pidfile) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return None

    def stopAtOnce(
        self, *arguments: str, daemon: bool = True, number: signal.Signals = signal.SIGTERM
    ) -> None:
        """
        Start ``twistd [-n] TAPNAME OPTIONS``, send signal ``number`` as soon as the pid
        file names a process, and check that the command returns, the pid file goes and the
        log says the server shut down on that signal; ``repeat`` times.
        """
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
        if not daemon:
            argv.append("--nodaemon")
        argv += [f"--pidfile={self.pidfile}", f"--logfile={self.logfile}", *arguments]
        for _attempt in range(self.repeat):
            for name in (self.pidfile, self.logfile):
                if os.path.exists(name):
                    os.remove(name)
            command = subprocess.Popen(
                argv,
                cwd=self.directory,
                env=environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.addCleanup(endCommand, command)
            deadline = time.monotonic() + PATIENCE
            while (pid := self.readPid()) is None:
                if command.poll() is not None and command.returncode != 0:
                    self.fail(f"twistd ended with status {command.returncode}: {argv}")
                if time.monotonic() > deadline:
                    self.fail(f"no pid file from {argv}")
                time.sleep(0.001)
            os.kill(pid, number)
            try:
                command.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.fail(f"twistd did not return after its daemon was stopped: {argv}")
            waitFor(lambda: not os.path.exists(self.pidfile), "the pid file to be removed")
            with open(self.logfile) as f:
                log = f.read()
            self.assertIn(f"Received {number.name}, shutting down.", log)
            self.assertIn("Server Shut Down.", log)
            self.assertNotIn("Traceback", log)

    def test_greet(self) -> None:
        """
        ``journey-greet`` in daemon mode.
        """
        self.stopAtOnce("journey-greet", "--listen", "tcp:0:interface=127.0.0.1")

    def test_greetForeground(self) -> None:
        """
        ``journey-greet`` under ``-n``: the process ends by the signal after shutting
        down, not by its default action (which leaves the pid file).
        """
        self.stopAtOnce("journey-greet", "--listen", "tcp:0:interface=127.0.0.1", daemon=False)

    def test_greetForegroundInterrupt(self) -> None:
        """
        ``SIGINT`` (Ctrl-C) under ``-n`` alike: a clean shutdown, not a
        ``KeyboardInterrupt`` in the middle of start-up.
        """
        self.stopAtOnce(
            "journey-greet",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            daemon=False,
            number=signal.SIGINT,
        )

    def test_greetWorkers(self) -> None:
        """
        The ``--workers`` supervisor, in daemon mode.
        """
        self.stopAtOnce("journey-greet", "--workers", "2", "--listen", "tcp:0:interface=127.0.0.1")

    def test_mux(self) -> None:
        """
        ``journey-mux`` in daemon mode.
        """
        self.stopAtOnce(
            "journey-mux", "--output", "data.log", "--listen", "tcp:0:interface=127.0.0.1"
        )

    def test_fetch(self) -> None:
        """
        ``journey-fetch`` in daemon mode (its one URL refuses the connection).
        """
        with open(os.path.join(self.directory, "urls.txt"), "w") as f:
            f.write(f"http://127.0.0.1:{freePort()}/a\n")
        os.makedirs(os.path.join(self.directory, "mirror"))
        self.stopAtOnce("journey-fetch", "--urls", "urls.txt", "--output-dir", "mirror")


class InterruptWhileBuildingTests(SynchronousTestCase):
    """
    Stops are kept only once the services are built: a server that waits while it is
    built still ends at the first Ctrl-C.
    """

    def test_fifoWithoutReader(self) -> None:
        """
        ``twistd -n journey-mux --output FIFO`` waits for the FIFO's reader while it builds
        its service; ``SIGINT`` then ends the command, as it would any program.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        fifo = os.path.join(directory, "records")
        os.mkfifo(fifo)
        argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon",
            "--pidfile=",
            "journey-mux",
            "--output",
            fifo,
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ]
        command = subprocess.Popen(
            argv,
            cwd=directory,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(endCommand, command)

        def waiting() -> bool:
            try:
                with open(f"/proc/{command.pid}/wchan") as f:
                    return f.read() == "wait_for_partner"
            except OSError:
                return False

        deadline = time.monotonic() + PATIENCE
        while not waiting():
            if command.poll() is not None:
                self.fail(f"twistd ended with status {command.returncode}: {argv}")
            if time.monotonic() > deadline:
                raise SkipTest("cannot see the server wait for the FIFO (/proc/PID/wchan)")
            time.sleep(0.02)
        command.send_signal(signal.SIGINT)
        try:
            command.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.fail("Ctrl-C did not end a server waiting for its FIFO's reader")
