"""
The greeting server when descriptors run out: more clients than its descriptor limit hold
connections open.  It must not crash, must not spin the CPU while it cannot accept, and
must serve new clients once the others leave.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    PATIENCE,
    connect,
    cpuSeconds,
    fallbackArgv,
    freePort,
    readAll,
    startServer,
    twistdArgv,
)
from twisted_journey.eventlog import ACCEPT_REPORT_INTERVAL

#: the server's descriptor limit, and how many clients try to hold a connection
LIMIT, CLIENTS = 64, 120
#: seconds over which failed accepts are counted
WINDOW = 3.0
GREETING_SIZE = 4 * 1024 * 1024


def lowDescriptorLimit() -> None:
    """
    Run in the child before exec: lower its descriptor limit to :data:`LIMIT`.
    """
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class DescriptorExhaustionContract:
    """
    Written once, run against each engine that claims to survive descriptor exhaustion.
    """

    def argv(self, *options: str) -> list[str]:
        raise NotImplementedError

    def test_survivesAndRecovers(self) -> None:
        """
        With :data:`CLIENTS` non-reading clients against a :data:`LIMIT`-descriptor
        server: it stays up, uses well under one CPU core while saturated, and serves a
        new client in full once the holders have gone.
        """
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(os.urandom(GREETING_SIZE))
        port = freePort()
        server = startServer(
            self,
            self.argv(
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--message-file",
                path,
                "--timeout",
                "300",
                "--quiet",
            ),
            ("127.0.0.1", port),
            preexec_fn=lowDescriptorLimit,
        )
        holders: list[socket.socket] = []
        for _ in range(CLIENTS):
            try:
                holders.append(connect(("127.0.0.1", port), timeout=5, receiveBuffer=4096))
            except OSError:
                break  # the backlog is full too: that is also "more clients than descriptors"
        time.sleep(1)
        before = cpuSeconds(server.process.pid)
        time.sleep(3)
        used = cpuSeconds(server.process.pid) - before
        self.assertIsNone(server.process.poll(), server.output())
        self.assertLess(used, 1.5, f"server used {used:.2f} CPU s in 3 s while saturated")
        for sock in holders:
            sock.close()
        deadline = time.monotonic() + PATIENCE
        data = b""
        while len(data) != GREETING_SIZE and time.monotonic() < deadline:
            try:
                data = readAll(connect(("127.0.0.1", port), timeout=5))
            except OSError:
                data = b""
            if len(data) != GREETING_SIZE:
                time.sleep(0.2)
        self.assertEqual(len(data), GREETING_SIZE, server.output())
        self.assertIsNone(server.process.poll(), server.output())

    @staticmethod
    def failures(server: Any) -> list[bytes]:
        """
        The lines of ``server``'s log about failed accepts.
        """
        log = server.stdout + server.stderr
        return [line for line in log.splitlines() if b"accept" in line.lower() or b"EMFILE" in line]

    def test_acceptFailuresRateLimited(self) -> None:
        """
        Out of descriptors, with clients waiting: failed accepts are logged at
        most once per :data:`~twisted_journey.eventlog.ACCEPT_REPORT_INTERVAL` (with a
        count of the others), never one event per attempt, and the server does not spin.
        """
        path = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(os.urandom(GREETING_SIZE))
        port = freePort()
        started = time.monotonic()
        server = startServer(
            self,
            self.argv(
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--message-file",
                path,
                "--timeout",
                "300",
                "--quiet",
            ),
            ("127.0.0.1", port),
            preexec_fn=lowDescriptorLimit,
        )
        holders: list[socket.socket] = []
        for _ in range(CLIENTS):
            try:
                holders.append(connect(("127.0.0.1", port), timeout=5, receiveBuffer=4096))
            except OSError:
                break
        self.addCleanup(lambda: [sock.close() for sock in holders])  # type: ignore[attr-defined]
        # The clients past the limit wait in the backlog: the listening socket stays
        # readable, and every accept fails until a holder leaves.
        deadline = time.monotonic() + PATIENCE
        while not self.failures(server):
            if server.process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"no failed accept was logged\n{server.output()}")  # type: ignore[attr-defined]
            time.sleep(0.1)
        before = cpuSeconds(server.process.pid)
        time.sleep(WINDOW)  # the window over which failures are counted
        used = cpuSeconds(server.process.pid) - before
        elapsed = time.monotonic() - started
        failures = self.failures(server)
        self.assertIsNone(server.process.poll(), server.output())  # type: ignore[attr-defined]
        self.assertLessEqual(  # type: ignore[attr-defined]
            len(failures),
            elapsed / ACCEPT_REPORT_INTERVAL + 2,
            f"{len(failures)} accept failure events in {elapsed:.1f} s:\n"
            + b"\n".join(failures[:20]).decode(errors="replace"),
        )
        self.assertLess(  # type: ignore[attr-defined]
            used,
            WINDOW / 2,
            f"server used {used:.2f} CPU s in {WINDOW} s of failed accepts",
        )


class TwistdDescriptorTests(DescriptorExhaustionContract, SynchronousTestCase):
    """
    ``twistd -n journey-greet`` out of descriptors.
    """

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-greet", *options)


class SelectFallbackDescriptorTests(DescriptorExhaustionContract, SynchronousTestCase):
    """
    The fallback's ``select`` mode out of descriptors.
    """

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("greet", "--mode", "select", *options)


class ThreadingFallbackDescriptorTests(DescriptorExhaustionContract, SynchronousTestCase):
    """
    The fallback's ``threading`` mode out of descriptors.
    """

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("greet", "--mode", "threading", *options)
