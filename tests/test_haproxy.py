"""
journey-mux behind a real HAProxy (the Debian package's ``/usr/sbin/haproxy``) on loopback:
two ``twistd journey-mux`` instances listening on ``haproxy:`` endpoints, one reached with
``send-proxy`` (PROXY version 1) and one with ``send-proxy-v2``.  Clients connect from
known source addresses and ports (127.0.0.2, 127.0.0.3); the records must name exactly
those, and ``--max-per-peer`` must count each client, not the proxy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE, ServerProcess, freePort, startServer, twistdArgv

HAPROXY = "/usr/sbin/haproxy"


def waitFor(condition: object, what: str, timeout: float = PATIENCE) -> None:
    """
    Poll ``condition()`` until it is true, or fail saying ``what`` never happened.
    """
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def clientFrom(host: str, address: tuple[str, int]) -> socket.socket:
    """
    A client bound to ``host`` (a port the kernel picks, read back with
    ``getsockname``) and connected to ``address``.
    """
    sock = socket.socket()
    sock.settimeout(PATIENCE)
    sock.bind((host, 0))
    sock.connect(address)
    return sock


def peerName(sock: socket.socket) -> str:
    """
    ``host:port`` of ``sock``'s own end, as the records name it.
    """
    host, port = sock.getsockname()
    return f"{host}:{port}"


def closedByServer(sock: socket.socket) -> bool:
    """
    Whether the other end closed ``sock`` (end of stream or reset) within the patience.
    """
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


class HAProxyTests(SynchronousTestCase):
    """
    HAProxy in front of two journey-mux instances.
    """

    def setUp(self) -> None:
        if not os.access(HAPROXY, os.X_OK):
            raise SkipTest(f"{HAPROXY} is not installed (Debian package haproxy)")
        directory = Path(self.mktemp()).absolute()
        directory.mkdir()
        self.backends = {}
        config = textwrap.dedent(
            """\
            global
                maxconn 200
            defaults
                mode tcp
                timeout connect 5s
                timeout client 60s
                timeout server 60s
            """
        )
        for name, option in (("v1", "send-proxy"), ("v2", "send-proxy-v2")):
            port, front = freePort(), freePort()
            output = directory / f"{name}.log"
            server = startServer(
                self,
                twistdArgv(
                    "journey-mux",
                    "--listen",
                    f"haproxy:tcp:{port}:interface=127.0.0.1",
                    "--output",
                    str(output),
                    "--format",
                    "json",
                    "--max-per-peer",
                    "2",
                    "--flush-interval",
                    "0.05",
                ),
                ("127.0.0.1", port),
            )
            self.backends[name] = (server, output, ("127.0.0.1", front))
            config += textwrap.dedent(
                f"""\
                frontend front_{name}
                    bind 127.0.0.1:{front}
                    default_backend back_{name}
                backend back_{name}
                    server mux_{name} 127.0.0.1:{port} {option}
                """
            )
        path = directory / "haproxy.cfg"
        path.write_text(config)
        self.haproxy = ServerProcess([HAPROXY, "-f", str(path), "-db"])
        self.addCleanup(self.haproxy.stop)
        for _, _, front in self.backends.values():
            self.haproxy.waitForListening(front)

    def records(self, output: Path) -> list[dict[str, object]]:
        """
        The JSON records written so far.
        """
        if not output.exists():
            return []
        return [json.loads(line) for line in output.read_bytes().splitlines()]

    def check(self, name: str) -> None:
        """
        Through the backend ``name``: records name each client's own address and port;
        the third connection from 127.0.0.2 is refused by ``--max-per-peer 2`` while
        127.0.0.3 still gets in; the events name the clients.
        """
        server, output, front = self.backends[name]
        clients = []
        for host in ("127.0.0.2", "127.0.0.2", "127.0.0.3"):
            sock = clientFrom(host, front)
            self.addCleanup(sock.close)
            local = peerName(sock)
            sock.sendall(f"hello from {local}\n".encode())
            clients.append((sock, local))
            line = f"hello from {local}"
            waitFor(
                lambda line=line: any(r["line"] == line for r in self.records(output)),  # type: ignore[misc]
                f"the record of {local}",
            )
        third = clientFrom("127.0.0.2", front)
        self.addCleanup(third.close)
        refusedPeer = peerName(third)
        third.sendall(b"refused line\n")
        self.assertTrue(closedByServer(third), server.output())
        fourth = clientFrom("127.0.0.3", front)
        self.addCleanup(fourth.close)
        fourthPeer = peerName(fourth)
        fourth.sendall(b"still in\n")
        waitFor(
            lambda: any(r["line"] == "still in" for r in self.records(output)),
            "the second client of 127.0.0.3",
        )
        self.assertEqual(server.stop(signal.SIGTERM), -signal.SIGTERM, server.output())
        found = [(r["peer"], r["line"]) for r in self.records(output)]
        expected = [(local, f"hello from {local}") for _, local in clients]
        self.assertEqual(found, [*expected, (fourthPeer, "still in")])
        log = server.stdout.decode()
        for _, local in clients:
            self.assertIn(f"Got connection from {local}", log)
        self.assertIn(f"Refused connection from {refusedPeer}: 2 connections open", log)

    def test_sendProxyVersion1(self) -> None:
        """
        ``send-proxy``: records and ``--max-per-peer`` see the true clients.
        """
        self.check("v1")

    def test_sendProxyVersion2(self) -> None:
        """
        ``send-proxy-v2``: records and ``--max-per-peer`` see the true clients.
        """
        self.check("v2")
