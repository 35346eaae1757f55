"""
Connection limits on wrapped listeners, attacked by real clients of real twistd
processes: ``ssl:``, ``tls:DIRECTORY`` and ``haproxy:ssl:`` listeners with
``--max-connections``, in one process and with ``--workers``, under a crowd of raw TCP
connections that never start a handshake (or never send a PROXY header).  A refused
connection must be closed at once, counted in the metrics, and hold no descriptor; the
log must hold no traceback.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE, ServerProcess, freePort, startServer, twistdArgv, waitFor
from tests.test_metrics import Samples, parseExposition
from tests.tlssupport import makeCertificates

#: connections the server may keep open (--max-connections)
LIMIT = 4
#: connections beyond the limit, each of which must be refused
EXTRA = 30


def descriptors(pid: int) -> int:
    """
    How many descriptors process ``pid`` and its children (workers) hold now.
    """
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            total += len(os.listdir(f"/proc/{current}/fd"))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(child) for child in children)
    return total


def closedByPeer(sock: socket.socket) -> bool:
    """
    Whether the server has closed ``sock`` (end of file or a reset); waits at most a
    moment for it.
    """
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False


class WrappedListenerLimitTests(SynchronousTestCase):
    """
    ``--max-connections`` in front of TLS and of PROXY headers read before TLS.
    """

    def setUp(self) -> None:
        if not Path("/proc/self/fd").is_dir():
            raise SkipTest("needs /proc to count descriptors")
        self.certificates = makeCertificates(os.path.abspath(self.mktemp()))
        self.clients: list[socket.socket] = []
        self.addCleanup(self.closeClients)

    def closeClients(self) -> None:
        for sock in self.clients:
            sock.close()

    def scrape(self, port: int) -> Samples:
        """
        One scrape of the server's ``--metrics`` endpoint.
        """
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=PATIENCE) as response:
            return parseExposition(response.read().decode())

    def refused(self, port: int) -> float:
        """
        ``journey_connections_refused_total{reason="limit-total"}`` now.
        """
        key = ("journey_connections_refused_total", (("reason", "limit-total"),))
        return self.scrape(port).get(key, 0.0)

    def attack(self, listen: str, *options: str) -> None:
        """
        Start journey-greet on ``listen`` (a template with ``{port}``) with a limit of
        :data:`LIMIT`, open that many raw connections and :data:`EXTRA` more that never
        send a byte; every extra one is closed by the server, counted as refused, and
        holds no descriptor afterwards, and nothing logs a traceback.
        """
        port, metricsPort = freePort(), freePort()
        server = startServer(
            self,
            twistdArgv(
                "journey-greet", "--listen", listen.format(port=port),
                "--max-connections", str(LIMIT),
                "--metrics", f"tcp:{metricsPort}:interface=127.0.0.1", *options,
            ),
            ("127.0.0.1", metricsPort),
        )  # fmt: skip
        self.waitForZeroOpen(metricsPort, server)
        if "--workers" in options:
            # A worker's descriptors (its reactor, its adopted socket) exist only once it
            # serves: count the ones at rest after every worker has said so.
            workers = int(options[options.index("--workers") + 1])
            waitFor(
                lambda: (
                    len(re.findall(rb"\[worker-\d+ [^]]*\] .* starting on", server.stdout))
                    >= workers
                ),
                "every worker to serve",
                server=server,
            )
        before = descriptors(server.process.pid)
        for _ in range(LIMIT + EXTRA):
            self.clients.append(socket.create_connection(("127.0.0.1", port), timeout=PATIENCE))
        closed: list[socket.socket] = []

        def accounted() -> bool:
            closed.extend(s for s in self.clients if s not in closed and closedByPeer(s))
            samples = self.scrape(metricsPort)
            open = samples.get(("journey_connections_open", ()), 0)
            return len(closed) + open == LIMIT + EXTRA and self.refused(metricsPort) == len(closed)

        waitFor(accounted, "every connection to be admitted, or refused and closed", server=server)
        # In one process exactly LIMIT are admitted; each worker admits its share.
        self.assertGreaterEqual(len(closed), EXTRA)
        if "--workers" not in options:
            self.assertEqual(len(closed), EXTRA)
        # The admitted connections cost one descriptor each; the refused ones none.
        waitFor(
            lambda: descriptors(server.process.pid) <= before + LIMIT + 2,
            f"the server to hold at most {LIMIT + 2} more descriptors than at rest",
            server=server,
        )
        server.stop()
        self.assertNotIn("Traceback", server.output())
        self.assertNotIn("AttributeError", server.output())

    def waitForZeroOpen(self, metricsPort: int, server: ServerProcess) -> None:
        """
        Wait until the server has no connection open (the start-up probe has gone).
        """
        waitFor(
            lambda: self.scrape(metricsPort).get(("journey_connections_open", ()), 1) == 0,
            "no connection to be open",
            server=server,
        )

    def sslListen(self) -> str:
        good = self.certificates.good
        return "ssl:{port}:interface=127.0.0.1:" + f"privateKey={good.key}:certKey={good.cert}"

    def test_ssl(self) -> None:
        """
        ``ssl:``: a refused connection is closed before its handshake and counted.
        """
        self.attack(self.sslListen())

    def test_tlsDirectory(self) -> None:
        """
        ``tls:DIRECTORY`` likewise.
        """
        directory = Path(self.mktemp()).absolute()
        directory.mkdir()
        good = self.certificates.good
        (directory / "localhost.pem").write_bytes(
            Path(good.key).read_bytes() + Path(good.cert).read_bytes()
        )
        self.attack(f"tls:{directory}:port={{port}}:interface=127.0.0.1")

    def test_haproxySSL(self) -> None:
        """
        ``haproxy:ssl:``: connections waiting for their PROXY header hold places in the
        limit, and the ones past it are closed at once.
        """
        self.attack("haproxy:" + self.sslListen())

    def test_haproxyTCP(self) -> None:
        """
        ``haproxy:tcp:``: connections that never send their PROXY header hold places in
        the limit; the ones past it are closed at once.
        """
        self.attack("haproxy:tcp:{port}:interface=127.0.0.1")

    def test_sslWorkers(self) -> None:
        """
        ``ssl:`` with ``--workers 2``: a limit of 4 is 2 per worker; whichever worker
        the kernel hands a connection past its share, that worker refuses it.
        """
        self.attack(self.sslListen(), "--workers", "2")
