"""
Tests for ``--metrics`` (:mod:`twisted_journey.metrics`): the counters the servers keep,
their exposition, and real servers scraped over loopback under load, with one process
and with two workers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from tests.support import PATIENCE, connect, freePort, readAll, startServer, twistdArgv, waitFor
from twisted_journey.datalog import DataLog
from twisted_journey.greet import GreetFactory
from twisted_journey.metrics import ProcessCollector, snapshot
from twisted_journey.mux import MuxFactory
from twisted_journey.workers.worker import workerOutput

GREETING = b"Thank you for connecting\r\n"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parseExposition(text: str) -> Samples:
    """
    The samples of a Prometheus text exposition, by name and sorted labels.
    """
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def address(port: int = 5555, host: str = "127.0.0.1") -> IPv4Address:
    """
    A client address.
    """
    return IPv4Address("TCP", host, port)


class SnapshotTests(SynchronousTestCase):
    """
    :func:`snapshot` reads the counters the factories and the data log keep.
    """

    def test_greetCounters(self) -> None:
        """
        Accepted, open, refused by reason, bytes in and out.
        """
        factory = GreetFactory(quiet=True, maxConnections=2, maxPerPeer=1, timeout=None,
                               clock=MemoryReactorClock())  # fmt: skip
        first = factory.buildProtocol(address(1))
        assert first is not None
        first.makeConnection(StringTransport())
        self.assertIsNone(factory.buildProtocol(address(2)))  # same host: limit-peer
        second = factory.buildProtocol(address(3, "127.0.0.2"))
        assert second is not None
        second.makeConnection(StringTransport())
        self.assertIsNone(factory.buildProtocol(address(4, "127.0.0.3")))  # limit-total
        first.dataReceived(b"12345")
        values = snapshot(factory)
        self.assertEqual(values["journey_connections_accepted", ()], 2)
        self.assertEqual(values["journey_connections_refused", (("reason", "limit-peer"),)], 1)
        self.assertEqual(values["journey_connections_refused", (("reason", "limit-total"),)], 1)
        self.assertEqual(values["journey_received_bytes", ()], 5)
        self.assertEqual(values["journey_sent_bytes", ()], 2 * len(GREETING))
        self.assertNotIn(("journey_records_written", ()), values)

    def test_muxCounters(self) -> None:
        """
        Records written and bytes received; a failed write counts an error and the
        records it lost.
        """
        path = self.mktemp()
        datalog = DataLog(path)
        factory = MuxFactory(datalog, quiet=True, clock=MemoryReactorClock())
        protocol = factory.buildProtocol(address())
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"one\ntwo\nthr")
        datalog.flush()
        values = snapshot(factory)
        self.assertEqual(values["journey_received_bytes", ()], 11)
        self.assertEqual(values["journey_records_written", ()], 2)
        self.assertEqual(values["journey_connections_open", ()], 1)
        self.assertEqual(values["journey_datalog_written_bytes", ()], os.path.getsize(path))
        if not os.path.exists("/dev/full"):
            return
        full = DataLog("/dev/full")
        factory.datalog = full
        full.write(b"a\nb\n")
        full.flush()
        values = snapshot(factory)
        self.assertEqual(values["journey_datalog_write_errors", ()], 1)
        self.assertEqual(values["journey_records_dropped", ()], 2)
        self.assertEqual(values["journey_records_written", ()], 0)


class GuardedFactoryTests(SynchronousTestCase):
    """
    :class:`twisted_journey.metrics.GuardedFactory`: at most ``maxConnections`` metrics
    connections, a newer one closing the one idle longest.
    """

    def guarded(self, site: Any) -> tuple[Any, list[StringTransport], Callable[[], None]]:
        """
        A :class:`GuardedFactory` of two connections around ``site`` (its idle timeouts on
        a memory clock, off the global reactor), the transports of the connections made,
        and a function that makes one more.
        """
        from twisted_journey.metrics import GuardedFactory

        site.reactor = MemoryReactorClock()
        factory = GuardedFactory(site, maxConnections=2)
        transports: list[StringTransport] = []

        def connect() -> None:
            protocol = factory.buildProtocol(address())
            transport = StringTransport()
            protocol.makeConnection(transport)
            transports.append(transport)

        return factory, transports, connect

    def test_newestClosesTheIdlest(self) -> None:
        """
        With two open, a third closes the one that did something least recently (not
        the one made first), and a fourth the next idlest, never one already closing.
        """
        from twisted.web.resource import Resource

        from twisted_journey.metrics import MetricsSite

        class Page(Resource):
            isLeaf = True

            def render_GET(self, request: object) -> bytes:
                return b"ok"

        site = MetricsSite(Page())
        factory, transports, connect = self.guarded(site)
        connect()
        connect()
        transports[0].clear()
        # the first sends a request and is answered: it is the active one
        [first] = [p for p in factory.protocols if p.transport is transports[0]]
        first.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transports[0].value())
        connect()
        self.assertEqual([t.disconnecting for t in transports], [False, True, False])
        connect()
        self.assertEqual([t.disconnecting for t in transports], [True, True, False, False])
        self.assertEqual(factory.evicted, 2)

    def test_writeSequenceIsActivity(self) -> None:
        """
        Bytes the site writes with ``writeSequence`` (as ``twisted.web`` writes a
        response's head and body) are activity too: the connection writing them is not
        the idlest one.
        """
        from twisted.web.resource import Resource

        from twisted_journey.metrics import MetricsSite

        site = MetricsSite(Resource())
        factory, transports, connect = self.guarded(site)
        connect()
        connect()
        [first] = [p for p in factory.protocols if p.transport is transports[0]]
        # the first is still answering (a slow response): the second is the idlest
        first.writeSequence([b"HTTP/1.1 200 OK\r\n"])  # as the site writes to it
        connect()
        self.assertEqual([t.disconnecting for t in transports], [False, True, False])


class ExpositionTests(SynchronousTestCase):
    """
    :class:`ProcessCollector` exposes each family as a total and per worker.
    """

    def test_totalAndPerWorker(self) -> None:
        """
        ``journey_X`` and ``journey_worker_X{worker="0"}`` carry the same value.
        """
        factory = GreetFactory(quiet=True, clock=MemoryReactorClock())
        for port in range(3):
            protocol = factory.buildProtocol(address(port))
            assert protocol is not None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ProcessCollector(factory))
        samples = parseExposition(generate_latest(registry).decode())
        self.assertEqual(samples["journey_connections_accepted_total", ()], 3)
        self.assertEqual(
            samples["journey_worker_connections_accepted_total", (("worker", "0"),)], 3
        )
        self.assertEqual(samples["journey_connections_open", ()], 3)
        self.assertEqual(
            samples["journey_connections_refused_total", (("reason", "limit-total"),)], 0
        )


class LoadMixin:
    """
    Scrape a real server under load; :attr:`workers` says how many processes serve.
    """

    workers = 1

    def startWithMetrics(self, tapname: str, *options: str) -> tuple[int, int]:
        """
        Start ``twistd TAPNAME`` with ``--metrics``; return its port and its metrics port.
        """
        port, metricsPort = freePort(), freePort()
        server = startServer(
            self,
            twistdArgv(
                tapname,
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--quiet",
                "--workers",
                str(self.workers),
                "--metrics",
                f"tcp:{metricsPort}:interface=127.0.0.1",
                *options,
            ),
            ("127.0.0.1", port),
        )
        # With --workers the supervisor binds the server's port before the metrics one.
        server.waitForListening(("127.0.0.1", metricsPort))
        self.server = server
        return port, metricsPort

    def scrape(self, metricsPort: int) -> Samples:
        """
        One scrape of ``/metrics``.
        """
        url = f"http://127.0.0.1:{metricsPort}/metrics"
        with urllib.request.urlopen(url, timeout=PATIENCE) as response:
            return parseExposition(response.read().decode())

    def waitForValues(self, metricsPort: int, expected: Samples) -> Samples:
        """
        Scrape until every sample in ``expected`` has its value (workers sync their
        counters every half second), or fail showing the last scrape.
        """
        deadline = time.monotonic() + PATIENCE
        while True:
            samples = self.scrape(metricsPort)
            if all(samples.get(key) == value for key, value in expected.items()):
                return samples
            if time.monotonic() > deadline:
                wrong = {k: (samples.get(k), v) for k, v in expected.items() if samples.get(k) != v}
                raise AssertionError(f"(got, expected): {wrong}\n{self.server.output()}")
            time.sleep(0.2)

    def perWorkerSumsToTotal(self, samples: Samples, name: str) -> None:
        """
        ``journey_worker_NAME`` summed over the workers is ``journey_NAME``.
        """
        each = [
            value
            for (sample, labels), value in samples.items()
            if sample == name.replace("journey_", "journey_worker_", 1)
        ]
        self.assertEqual(len(each), self.workers)  # type: ignore[attr-defined]
        self.assertEqual(sum(each), samples[name, ()])  # type: ignore[attr-defined]

    def test_greetUnderLoad(self) -> None:
        """
        200 greetings from 8 threads, scraped while they run and after: the totals are
        exactly what was served (plus the probe that saw the server start).
        """
        port, metricsPort = self.startWithMetrics("journey-greet")
        failures: list[BaseException] = []

        def client() -> None:
            try:
                for _ in range(25):
                    assert readAll(connect(("127.0.0.1", port))) == GREETING
            except BaseException as e:  # reported below
                failures.append(e)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        during = self.scrape(metricsPort)
        for thread in threads:
            thread.join()
        self.assertEqual(failures, [])  # type: ignore[attr-defined]
        self.assertLessEqual(during.get(("journey_connections_accepted_total", ()), 0), 201)  # type: ignore[attr-defined]
        samples = self.waitForValues(
            metricsPort,
            {
                ("journey_connections_accepted_total", ()): 201,
                ("journey_sent_bytes_total", ()): 201 * len(GREETING),
                ("journey_connections_open", ()): 0,
                ("journey_connections_refused_total", (("reason", "limit-total"),)): 0,
            },
        )
        self.perWorkerSumsToTotal(samples, "journey_connections_accepted_total")

    def test_muxUnderLoad(self) -> None:
        """
        5,000 lines from 5 clients: records written, bytes received and connections
        accepted are exactly what was sent, and every line is in the data files.
        """
        output = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        port, metricsPort = self.startWithMetrics(
            "journey-mux", "--output", output, "--flush-interval", "0.2"
        )
        sent = 0
        clients = [connect(("127.0.0.1", port)) for _ in range(5)]
        for number in range(1000):
            for index, sock in enumerate(clients):
                line = b"c%d n%d %s\n" % (index, number, b"x" * 30)
                sock.sendall(line)
                sent += len(line)
            if number == 500:
                during = self.scrape(metricsPort)
        for sock in clients:
            sock.close()
        self.assertLessEqual(during.get(("journey_records_written_total", ()), 0), 5000)  # type: ignore[attr-defined]
        samples = self.waitForValues(
            metricsPort,
            {
                ("journey_records_written_total", ()): 5000,
                ("journey_received_bytes_total", ()): sent,
                ("journey_connections_accepted_total", ()): 6,
                ("journey_connections_open", ()): 0,
                ("journey_records_dropped_total", ()): 0,
                ("journey_datalog_write_errors_total", ()): 0,
            },
        )
        self.perWorkerSumsToTotal(samples, "journey_records_written_total")
        if self.workers == 1:
            files = [Path(output)]
        else:
            files = [Path(workerOutput(output, i)) for i in range(self.workers)]
        lines = sum(len(path.read_bytes().splitlines()) for path in files)
        self.assertEqual(lines, 5000)  # type: ignore[attr-defined]


class OneProcessTests(LoadMixin, SynchronousTestCase):
    """
    ``--metrics`` served by the server process itself.
    """

    workers = 1


class TwoWorkersTests(LoadMixin, SynchronousTestCase):
    """
    ``--metrics`` served by the supervisor of two workers.
    """

    workers = 2

    def test_supervisorFamilies(self) -> None:
        """
        The supervisor says how many workers run.
        """
        _, metricsPort = self.startWithMetrics("journey-greet")
        samples = self.waitForValues(metricsPort, {("journey_workers", ()): 2})
        self.assertEqual(samples["journey_worker_restarts_total", ()], 0)

    def test_restartKeepsCounting(self) -> None:
        """
        A worker killed with SIGKILL is counted as restarted, and what it had counted
        (once synced) stays in the totals: counters never go down.
        """
        port, metricsPort = self.startWithMetrics("journey-greet")
        for _ in range(10):
            self.assertEqual(readAll(connect(("127.0.0.1", port))), GREETING)
        self.waitForValues(metricsPort, {("journey_connections_accepted_total", ()): 11})
        supervisor = self.server.process.pid
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        os.kill(int(min(children, key=int)), signal.SIGKILL)
        for _ in range(10):
            self.assertEqual(readAll(connect(("127.0.0.1", port))), GREETING)
        self.waitForValues(
            metricsPort,
            {
                ("journey_connections_accepted_total", ()): 21,
                ("journey_worker_restarts_total", ()): 1,
                ("journey_workers", ()): 2,
            },
        )


#: the descriptor limit of the servers attacked through their metrics endpoint, and how
#: many idle connections the attacker opens to it
ATTACKED_LIMIT, IDLE_ATTACKERS = 64, 100


def _lowDescriptorLimit() -> None:
    """
    Run in the child before exec: lower its descriptor limit to :data:`ATTACKED_LIMIT`.
    """
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (ATTACKED_LIMIT, ATTACKED_LIMIT))


class IdleMetricsConnectionsTests(SynchronousTestCase):
    """
    :data:`IDLE_ATTACKERS` idle connections to ``--metrics`` under ``ulimit -n``
    :data:`ATTACKED_LIMIT`: the main port keeps serving, and a scrape succeeds while they
    are held (it closes the longest idle of the :data:`twisted_journey.metrics.MAX_CONNECTIONS`
    the endpoint keeps).
    """

    def attack(self, tapname: str, *options: str) -> tuple[int, int]:
        """
        Start ``twistd TAPNAME`` with ``--metrics`` and a low descriptor limit, and hold
        :data:`IDLE_ATTACKERS` idle connections to its metrics port.

        :return: its port and its metrics port.
        """
        port, metricsPort = freePort(), freePort()
        self.server = startServer(
            self,
            twistdArgv(
                tapname,
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--quiet",
                "--metrics",
                f"tcp:{metricsPort}:interface=127.0.0.1",
                *options,
            ),
            ("127.0.0.1", port),
            preexec_fn=_lowDescriptorLimit,
        )
        idle = []
        for _ in range(IDLE_ATTACKERS):
            try:
                idle.append(connect(("127.0.0.1", metricsPort), timeout=5))
            except OSError:
                break  # the backlog is full too: also an attack that succeeded
        self.addCleanup(lambda: [sock.close() for sock in idle])
        return port, metricsPort

    def scrapeNow(self, metricsPort: int) -> Samples:
        """
        One scrape, which must succeed at the first try.
        """
        url = f"http://127.0.0.1:{metricsPort}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=PATIENCE) as response:
                return parseExposition(response.read().decode())
        except OSError as e:
            self.fail(f"the scrape failed: {e}\n{self.server.output()}")

    def test_greet(self) -> None:
        """
        journey-greet greets while its metrics port is attacked.
        """
        port, metricsPort = self.attack("journey-greet")
        for _ in range(3):
            self.assertEqual(
                readAll(connect(("127.0.0.1", port), timeout=PATIENCE)),
                GREETING,
                self.server.output(),
            )
        samples = self.scrapeNow(metricsPort)
        self.assertGreaterEqual(samples["journey_connections_accepted_total", ()], 3)

    def test_mux(self) -> None:
        """
        journey-mux records a client's line while its metrics port is attacked.
        """
        output = os.path.abspath(self.mktemp())
        port, metricsPort = self.attack(
            "journey-mux", "--output", output, "--flush-interval", "0.1"
        )
        with connect(("127.0.0.1", port), timeout=PATIENCE) as client:
            client.sendall(b"still served\n")
            client.shutdown(socket.SHUT_WR)
            client.recv(1)
        waitFor(
            lambda: b"still served" in Path(output).read_bytes(),
            "the line to be recorded",
            server=self.server,
        )
        samples = self.scrapeNow(metricsPort)
        self.assertGreaterEqual(samples["journey_records_written_total", ()], 1)
