"""
journey-mux's memory under clients that trickle: many connections each sending one long
unterminated line a byte at a time, run against every engine as a real process.  The
server's resident memory must grow by about what the pending bytes weigh (the docs
promise under ``--max-line-length`` plus one read per connection), not by a Python object
per received byte.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    connect,
    environment,
    fallbackArgv,
    freePort,
    startServer,
    twistdArgv,
)

#: Connections trickling at once.
CONNECTIONS = 50
#: Bytes each trickles, one per ``send``.
TRICKLE = 4000


def residentBytes(pid: int) -> int:
    """
    The resident set size of process ``pid``, in bytes.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def unreadBytes(port: int) -> int:
    """
    The bytes waiting, unread, in the receive queues of the server's connections on
    ``port`` (from ``/proc/net/tcp``).
    """
    total = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if int(local.split(":")[1], 16) == port and state == "01":  # ESTABLISHED
                total += int(queues.split(":")[1], 16)
    return total


class TrickleContract:
    """
    What every engine must do with trickled lines.  Subclasses define :meth:`argv`.
    """

    def argv(self, *options: str) -> list[str]:
        """
        The command line for this engine with ``options``.
        """
        raise NotImplementedError

    def test_trickledLinesCostWhatTheyWeigh(self) -> None:
        """
        50 connections each trickling 4,000 bytes of one line, a byte per ``send`` (so the
        server reads them in tiny pieces): the server's RSS grows by less than 8 bytes per
        pending byte (it grew by about 50 per byte when every read was kept as its own
        ``bytes`` object); every line is then recorded whole.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        address = ("127.0.0.1", port)
        server: ServerProcess = startServer(
            self,
            self.argv(
                "--listen", f"tcp:{port}:interface=127.0.0.1", "--output", str(output), "--quiet"
            ),
            address,
            env=environment(),
        )
        clients = [connect(address) for _ in range(CONNECTIONS)]
        for sock in clients:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.addCleanup(sock.close)  # type: ignore[attr-defined]

        def settle() -> int:
            deadline = time.monotonic() + PATIENCE
            while unreadBytes(port):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server stopped reading\n{server.output()}")
                time.sleep(0.01)
            time.sleep(0.2)
            return residentBytes(server.process.pid)

        for sock in clients:  # every connection has a framer and a pending line
            sock.sendall(b"x" * 100)
        before = settle()
        for _ in range(TRICKLE):
            for sock in clients:
                sock.send(b"x")
        growth = settle() - before
        pending = CONNECTIONS * TRICKLE
        self.assertLess(  # type: ignore[attr-defined]
            growth, 8 * pending, f"RSS grew by {growth} bytes for {pending} pending bytes"
        )
        for sock in clients:
            sock.sendall(b"\n")
            sock.close()
        deadline = time.monotonic() + PATIENCE
        while not output.exists() or output.read_bytes().count(b"\n") < CONNECTIONS:
            if time.monotonic() > deadline:
                raise AssertionError(f"records missing\n{server.output()}")
            time.sleep(0.05)
        server.stop()
        lines = [r.split(b" ", 3)[3] for r in output.read_bytes().splitlines()]
        self.assertEqual(lines, [b"x" * (100 + TRICKLE)] * CONNECTIONS)  # type: ignore[attr-defined]


class TwistedTrickleTests(TrickleContract, SynchronousTestCase):
    """
    ``twistd -n journey-mux``.
    """

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-mux", *options)


class FallbackTrickleTests(TrickleContract, SynchronousTestCase):
    """
    ``python -m twisted_journey.fallback.mux`` (epoll).
    """

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("mux", "--backend", "epoll", *options)
