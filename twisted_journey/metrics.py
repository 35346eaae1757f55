# -*- test-case-name: tests.test_metrics -*-
"""
``--metrics ENDPOINT``: the servers' counters in the Prometheus text format, served with
``twisted.web`` and ``prometheus_client``.

Nothing is counted twice on the data path: the servers keep plain integer attributes
(:class:`twisted_journey.policies.LimitedFactory`'s ``served``, ``bytesReceived``...,
:class:`twisted_journey.datalog.DataLog`'s ``written``...), and a collector reads
them when Prometheus scrapes (:func:`snapshot`).

- One process (``--workers 1``): the process serves the endpoint, and a scrape reads its
  live counters: exact at the moment of the scrape.
- ``--workers N``: the supervisor serves the endpoint.  It owns a private directory
  (``mkdtemp``, mode 0700) that it hands to every worker as ``PROMETHEUS_MULTIPROC_DIR``;
  each worker copies its counters into ``prometheus_client``'s multiprocess files every
  half second (:class:`WorkerMetrics`; and once more when it stops), labelled with its
  number; a scrape of the supervisor aggregates the files (``MultiProcessCollector``).
  So a scrape lags the workers by at most half a second.  A worker that is killed loses
  at most its last half second of counts; a restarted worker's counts add to its
  predecessor's, so every counter only grows.  The kernel's drops on journey-mux's
  ``udp:`` sockets, which every worker shares, are the sockets' own count: the supervisor
  asks the kernel for it at each scrape (``journey_datagrams_dropped`` then has no
  per-worker family).

Every family is exposed twice: ``journey_X`` holds the server's total, and
``journey_worker_X{worker="N"}`` each worker's share (``worker="0"`` alone with one
process), so that ``sum(journey_worker_X) == journey_X`` and neither double-counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, cast

from twisted.application.service import IService, Service
from twisted.internet.endpoints import serverFromString
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.server import Site

from twisted_journey import _twisted
from twisted_journey.eventlog import AcceptFailures
from twisted_journey.service import ListeningService

__all__ = [
    "FAMILIES",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "GuardedFactory",
    "MetricsSite",
    "ProcessCollector",
    "SupervisorCollector",
    "WorkerMetrics",
    "processService",
    "snapshot",
    "supervisorService",
]

#: ``(name, type, help, label names)`` of every family a server exposes; counters get
#: ``_total`` appended by the exposition.
FAMILIES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("journey_connections_accepted", "counter", "Connections accepted and served.", ()),
    ("journey_connections_open", "gauge", "Connections open now.", ()),
    (
        "journey_connections_refused",
        "counter",
        "Connections refused at accept, by reason (limit-total: --max-connections, "
        "limit-peer: --max-per-peer, proxy-invalid: a missing or invalid PROXY header, "
        "proxy-untrusted: a peer outside --proxy-from).",
        ("reason",),
    ),
    (
        "journey_health_checks",
        "counter",
        "A proxy's health checks (PROXY LOCAL connections), not counted as accepted.",
        (),
    ),
    (
        "journey_connections_dropped",
        "counter",
        "Connections the server dropped, by reason (timeout: --timeout, slow-reader: "
        "--broadcast-buffer, framing: a bad syslog octet count).",
        ("reason",),
    ),
    ("journey_received_bytes", "counter", "Bytes received from clients.", ()),
    (
        "journey_datagrams_received",
        "counter",
        "Datagrams received on udp: listeners (journey-mux).",
        (),
    ),
    (
        "journey_datagrams_dropped",
        "counter",
        "Datagrams the kernel dropped on udp: listeners because their receive buffer was "
        "full (SO_RXQ_OVFL, Linux; journey-mux).",
        (),
    ),
    ("journey_sent_bytes", "counter", "Bytes written to clients.", ()),
    ("journey_records_written", "counter", "Records written to the data log (journey-mux).", ()),
    (
        "journey_records_dropped",
        "counter",
        "Records lost because the data log could not be written (journey-mux).",
        (),
    ),
    ("journey_datalog_write_errors", "counter", "Failed writes of the data log (journey-mux).", ()),
    (
        "journey_datalog_written_bytes",
        "counter",
        "Bytes written to the data log (journey-mux).",
        (),
    ),
]

#: The supervisor's own families.
SUPERVISOR_FAMILIES: list[tuple[str, str, str]] = [
    ("journey_workers", "gauge", "Worker processes running."),
    ("journey_worker_restarts", "counter", "Workers restarted after they exited."),
]

_TYPES = {name: kind for name, kind, _, _ in FAMILIES}
_HELP = {name: documentation for name, _, documentation, _ in FAMILIES}

#: The family that, under ``--workers``, belongs to the shared ``udp:`` sockets rather than
#: to any worker: the supervisor reads it from the kernel, and it has no per-worker twin.
_SHARED_DROPS = "journey_datagrams_dropped"

#: A value's key: its family and its labels (other than ``worker``), sorted.
Key = tuple[str, tuple[tuple[str, str], ...]]


def snapshot(factory: Any) -> dict[Key, float]:
    """
    The counters of a server's factory (and its data log, if it has one) now.
    """
    limits = factory.limits
    greeting = getattr(factory, "greeting", None)
    sent = factory.bytesSent + (factory.served * len(greeting) if greeting is not None else 0)
    values: dict[Key, float] = {
        ("journey_connections_accepted", ()): factory.served,
        ("journey_connections_open", ()): limits.open,
        ("journey_connections_refused", (("reason", "limit-total"),)): limits.refusedTotal,
        ("journey_connections_refused", (("reason", "limit-peer"),)): limits.refusedPerPeer,
        ("journey_connections_refused", (("reason", "proxy-invalid"),)): limits.refusedProxy,
        ("journey_connections_refused", (("reason", "proxy-untrusted"),)): limits.refusedUntrusted,
        ("journey_health_checks", ()): factory.healthChecks,
        ("journey_connections_dropped", (("reason", "timeout"),)): factory.timedOut,
        ("journey_received_bytes", ()): factory.bytesReceived,
        ("journey_sent_bytes", ()): sent,
    }
    if hasattr(factory, "droppedSlow"):
        values["journey_connections_dropped", (("reason", "slow-reader"),)] = factory.droppedSlow
    if hasattr(factory, "framingErrors"):
        values["journey_connections_dropped", (("reason", "framing"),)] = factory.framingErrors
    readers = getattr(factory, "datagramReaders", None)
    if readers is not None:
        receivers = [reader.receiver for reader in readers]
        values["journey_datagrams_received", ()] = sum(r.received for r in receivers)
        values["journey_datagrams_dropped", ()] = sum(r.drops() for r in receivers)
    datalog = getattr(factory, "datalog", None)
    if datalog is not None:
        values.update(_datalogValues(datalog))
    return values


def _datalogValues(datalog: Any) -> dict[Key, float]:
    """
    The counters of a :class:`twisted_journey.datalog.DataLog`: ``written`` (records),
    ``written_bytes``, ``dropped`` and ``writeErrors``.
    """
    records, size = datalog.written, datalog.written_bytes
    dropped, errors = datalog.dropped, datalog.writeErrors
    return {
        ("journey_records_written", ()): records,
        ("journey_records_dropped", ()): dropped,
        ("journey_datalog_write_errors", ()): errors,
        ("journey_datalog_written_bytes", ()): size,
    }


def _families(perWorker: dict[str, dict[Key, float]]) -> Iterator[Any]:
    """
    Each family twice: the total over the workers, and per worker.
    """
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
    for name, kind, documentation, labels in FAMILIES:
        total = kinds[kind](name, documentation, labels=labels)
        each = kinds[kind](
            name.replace("journey_", "journey_worker_", 1),
            documentation + " Per worker.",
            labels=("worker", *labels),
        )
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for worker, values in sorted(perWorker.items(), key=lambda item: int(item[0])):
            for (family, labelPairs), value in values.items():
                if family != name:
                    continue
                labelValues = tuple(v for _, v in labelPairs)
                sums[labelValues] += value
                each.add_metric([worker, *labelValues], value)
        if not sums:
            continue
        for labelValues, value in sums.items():
            total.add_metric(list(labelValues), value)
        yield total
        yield each


class ProcessCollector:
    """
    The collector of a single-process server: reads its factory's live counters.
    """

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Any]:
        """
        The families, from the counters as they are now.
        """
        return _families({"0": snapshot(self.factory)})


class SupervisorCollector:
    """
    The collector of a ``--workers N`` supervisor: aggregates what the workers wrote into
    the multiprocess directory, plus the supervisor's own counts.
    """

    def __init__(self, directory: str, pool: Any) -> None:
        self.directory = directory
        self.pool = pool

    def collect(self) -> Iterator[Any]:
        """
        The families, from the workers' latest syncs.
        """
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from prometheus_client.multiprocess import MultiProcessCollector

        perWorker: dict[str, dict[Key, float]] = defaultdict(dict)
        for metric in MultiProcessCollector(None, self.directory).collect():
            if metric.name not in _TYPES:
                continue
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue
                if metric.name == _SHARED_DROPS:
                    continue  # The supervisor asks the kernel (below).
                labels = dict(sample.labels)
                labels.pop("pid", None)
                worker = labels.pop("worker", "0")
                key = (metric.name, tuple(sorted(labels.items())))
                perWorker[worker][key] = perWorker[worker].get(key, 0.0) + sample.value
        yield from _families(perWorker)
        if getattr(self.pool, "datagramSockets", None):
            # Every worker reads the same udp: sockets, and each sees the socket's
            # count of drops: summing them would count each drop once per worker.
            yield CounterMetricFamily(
                _SHARED_DROPS, _HELP[_SHARED_DROPS], value=self.pool.datagramDrops()
            )
        (name, _, documentation), (restartsName, _, restartsHelp) = SUPERVISOR_FAMILIES
        yield GaugeMetricFamily(name, documentation, value=len(self.pool.workers))
        yield CounterMetricFamily(restartsName, restartsHelp, value=self.pool.restarts)


class WorkerMetrics(Service):
    """
    In a worker: copies its factory's counters into ``prometheus_client``'s multiprocess
    files every ``interval`` seconds, and once more when it stops.

    :param factory: the worker's server factory.
    :param index: the worker's number (the ``worker`` label).
    """

    def __init__(self, factory: Any, index: int, interval: float = 0.5) -> None:
        self.factory = factory
        self.index = str(index)
        self.interval = interval
        self._last: dict[Key, float] = {}
        self._metrics: dict[str, Any] = {}
        self._loop: Any = None

    def _metric(self, name: str, labels: tuple[str, ...]) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            from prometheus_client import Counter, Gauge

            labelnames = ("worker", *labels)
            if _TYPES[name] == "counter":
                metric = Counter(name, name, labelnames, registry=None)
            else:
                metric = Gauge(name, name, labelnames, registry=None, multiprocess_mode="livesum")
            self._metrics[name] = metric
        return metric

    def sync(self) -> None:
        """
        Add what each counter grew by since the last sync; set the gauges.
        """
        for (name, labelPairs), value in snapshot(self.factory).items():
            key = (name, labelPairs)
            child = self._metric(name, tuple(k for k, _ in labelPairs)).labels(
                self.index, *(v for _, v in labelPairs)
            )
            if _TYPES[name] == "counter":
                grown = value - self._last.get(key, 0)
                if grown > 0:
                    child.inc(grown)
            else:
                child.set(value)
            self._last[key] = value

    def startService(self) -> None:
        """
        Sync now and every ``interval`` seconds, and once more after the reactor has
        stopped (so that the data log's last flush at stop is counted).
        """
        from twisted.internet import reactor
        from twisted.internet.task import LoopingCall

        super().startService()
        self._loop = LoopingCall(self.sync)
        self._loop.clock = self.factory.clock
        self._loop.start(self.interval, now=True)
        reactor.addSystemEventTrigger("after", "shutdown", self.sync)

    def stopService(self) -> None:
        """
        Stop the periodic sync.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()


#: Connections the metrics endpoint holds at once; past it, a new one closes the idlest.
MAX_CONNECTIONS = 16

#: Seconds a metrics connection may sit idle (no request arriving) before it is closed.
IDLE_TIMEOUT = 10.0


class MetricsSite(Site):
    """
    The metrics web site: quiet (no access log line per scrape); a connection idle for
    :data:`IDLE_TIMEOUT` seconds is closed.
    """

    noisy = False

    def __init__(self, resource: Any, timeout: float = IDLE_TIMEOUT) -> None:
        super().__init__(resource, timeout=timeout)

    def log(self, request: Any) -> None:
        """
        Scrapes are not logged.
        """


class _MetricsConnection(ProtocolWrapper):
    """
    A metrics connection that notes when it last did something (was made, received
    bytes, wrote some), in the order of :meth:`GuardedFactory.tick`.

    :ivar lastActive: the factory's tick of its last activity.
    :ivar evicted: whether it is being closed to make room for a newer connection.
    """

    factory: GuardedFactory

    def __init__(self, factory: GuardedFactory, wrappedProtocol: Any) -> None:
        super().__init__(cast(Any, factory), wrappedProtocol)
        self.lastActive = factory.tick()
        self.evicted = False

    def dataReceived(self, data: bytes) -> None:
        """
        Note the activity, then pass ``data`` on to the site's protocol.
        """
        self.lastActive = self.factory.tick()
        super().dataReceived(data)

    def write(self, data: bytes) -> None:
        """
        Note the activity, then write ``data`` (the site's response).
        """
        self.lastActive = self.factory.tick()
        super().write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Note the activity, then write ``data`` (``twisted.web`` writes a response's head
        and body this way).
        """
        self.lastActive = self.factory.tick()
        super().writeSequence(data)


class GuardedFactory(WrappingFactory):
    """
    At most ``maxConnections`` connections of ``site`` at once: the metrics endpoint is a
    second server in the process, and must not take the descriptors the main one needs.
    A connection past the limit closes the one that has been idle longest, so that
    connections held open and silent (an attacker's, or forgotten ones) never keep a
    scrape out.

    :ivar evicted: connections closed to make room for a newer one.
    """

    noisy = False
    protocol = _MetricsConnection

    def __init__(self, site: Site, maxConnections: int = MAX_CONNECTIONS) -> None:
        super().__init__(site)
        self.maxConnections = maxConnections
        self.evicted = 0
        self._ticks = 0

    def tick(self) -> int:
        """
        The next number in the order in which connections do things.
        """
        self._ticks += 1
        return self._ticks

    def buildProtocol(self, addr: Any) -> Any:
        """
        The site's protocol, after closing the longest idle connection when
        ``maxConnections`` are open (counting none already being closed: those hold
        their descriptors only until the reactor's next turn).
        """
        live = [p for p in self.protocols if not p.evicted]
        if live and len(live) >= self.maxConnections:
            idlest = min(live, key=lambda p: p.lastActive)
            idlest.evicted = True
            self.evicted += 1
            idlest.transport.abortConnection()
        return super().buildProtocol(addr)


class _FewAcceptsReactor:
    """
    The reactor the metrics endpoint listens through: its TCP ports (TLS or not) accept
    one connection per turn of the reactor (:func:`twisted_journey._twisted.acceptFew`),
    so that a burst of connections to it, each of which closes the idlest one held, holds
    at most a couple of descriptors beyond :data:`MAX_CONNECTIONS` at any moment.
    Everything else is the ``reactor``'s.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
        """
        Listen as the reactor does, accepting one connection per turn.
        """
        port = self._reactor.listenTCP(*args, **kwargs)
        _twisted.acceptFew(port)
        return port

    def listenSSL(self, *args: Any, **kwargs: Any) -> Any:
        """
        Listen with TLS as the reactor does, accepting one connection per turn.
        """
        port = self._reactor.listenSSL(*args, **kwargs)
        _twisted.acceptFew(port)
        return port


def _metricsService(description: str, collectors: Iterable[Any], reactor: Any = None) -> IService:
    """
    A service serving ``collectors`` in the Prometheus text format on ``description``.
    """
    from prometheus_client import CollectorRegistry

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    # The supervisor of --workers N listens only here: its failed accepts are throttled too.
    _twisted.throttleAcceptFailures(AcceptFailures().failed)
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    from prometheus_client.twisted import MetricsResource

    site = GuardedFactory(MetricsSite(MetricsResource(registry)))
    endpoint = serverFromString(_FewAcceptsReactor(reactor), description)
    return ListeningService(description, endpoint, site)


def processService(description: str, factory: Any, reactor: Any = None) -> IService:
    """
    The ``--metrics`` endpoint ``description`` of a single-process server, reading
    ``factory``.

    A server that stops accepting at a descriptor ceiling (journey-mux's
    ``descriptorCeiling``) keeps :data:`MAX_CONNECTIONS` descriptors free below it for
    the metrics connections.
    """
    if isinstance(getattr(factory, "descriptorCeiling", None), int):
        factory.descriptorCeiling = max(factory.descriptorCeiling - MAX_CONNECTIONS, 1)
    return _metricsService(description, [ProcessCollector(factory)], reactor)


def supervisorService(description: str, pool: Any, reactor: Any = None) -> IService:
    """
    The ``--metrics`` endpoint ``description`` of a ``--workers N`` supervisor, and the multiprocess
    directory that ``pool`` makes (:meth:`~twisted_journey.workers.supervisor.WorkerPool.makeMetricsDirectory`),
    hands its workers, and removes once they have all exited.
    """
    pool.makeMetricsDirectory()
    collector = SupervisorCollector(pool.metricsDirectory, pool)
    return _metricsService(description, [collector], reactor)
