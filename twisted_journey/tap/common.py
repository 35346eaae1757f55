# -*- test-case-name: tests.test_tap_greet -*-
"""
Options and service assembly shared by the journey servers' service makers.

:class:`ServerOptions` holds what every journey server takes (``--listen``,
``--max-connections``, ``--max-per-peer``, ``--per-peer-prefix``, ``--timeout``,
``--quiet``, ``--workers``, ``--metrics``...); a tool's ``Options`` subclasses it, sets
``defaultListen`` and adds its own options and checks (:meth:`ServerOptions.checkOptions`).
Parsing ends with the typed :class:`~twisted_journey.settings.ServerSettings` in
``options.settings``: a tool's ``makeService`` hands that, never the options, to the
services below (:func:`listeningService`, the ``--workers`` supervisor, the metrics).

Every endpoint gets the system's maximum listen backlog
(:data:`twisted_journey.listen.DEFAULT_BACKLOG`) unless its string gives ``backlog=``: see
:func:`twisted_journey.service.endpointDescription`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory, IReactorCore
from twisted.python import usage

from twisted_journey import _twisted, service, settings, startup
from twisted_journey.eventlog import AcceptFailures
from twisted_journey.policies import LimitedFactory
from twisted_journey.settings import ServerSettings
from twisted_journey.workers.worker import WorkerContext

__all__ = ["ServerOptions", "holdEarlyStops", "listeningService"]

T = TypeVar("T")


class ServerOptions(usage.Options):
    """
    The options every journey server shares.

    ``self["listen"]`` is the list of endpoint strings to listen on (``defaultListen``
    when none is given); ``max-connections``, ``max-per-peer`` and ``timeout`` are
    validated numbers or ``None``.  Once parsed, ``self.settings`` holds them all, typed.

    :ivar settings: what the options say, for the services (set by :meth:`postOptions`).
    :ivar argv: the arguments parsed, which each worker of ``--workers N`` parses again.
    """

    argv: list[str]
    defaultListen = "tcp:1234"
    #: ``--timeout`` when none is given: ``None`` is never.
    defaultTimeout: float | None = None
    timeoutHelp = "Drop a client after this many seconds."

    optFlags = [
        ["quiet", "q", "Do not log an event for every connection (refusals are still counted)."],
    ]
    optParameters: list[list[Any]] = [
        ["max-connections", None, None, "Refuse clients while this many connections are open."],
        ["max-per-peer", None, None, "Refuse a host's clients while it has this many open."],
        [
            "per-peer-prefix",
            None,
            "32,64",
            "V4,V6: --max-per-peer counts each IPv4 /V4 and IPv6 /V6 network as one host.",
        ],
        [
            "proxy-timeout",
            None,
            settings.DEFAULT_PROXY_TIMEOUT,
            "Drop a connection to a haproxy: listener without its whole PROXY header after "
            "this many seconds (it holds a place in --max-connections meanwhile).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["proxy-from"] = []

    def opt_proxy_from(self, value: str) -> None:
        """
        haproxy: listeners take connections only from proxies in this network (CIDR or address), not from anyone; repeatable.
        """
        self["proxy-from"].append(self._setting(settings.proxy_network, "--proxy-from", value))

    def opt_listen(self, description: str) -> None:
        """
        Listen on this endpoint (tcp:PORT, tcp6:, unix:, ssl:, tls:, systemd:, haproxy:...); repeatable.
        """
        _checkEndpoint("--listen", description, service.endpointDescription(description))
        self["listen"].append(description)

    def opt_timeout(self, value: str) -> None:
        """
        Drop a client after this many seconds (see the tool's description).
        """
        self["timeout"] = self._setting(settings.seconds, "--timeout", value)

    # --- --workers and --metrics (twisted_journey.workers, twisted_journey.metrics) ---

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse, and keep the arguments: ``--workers`` hands them to each worker.
        """
        self.argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def opt_workers(self, value: str) -> None:
        """
        Serve with this many worker processes sharing the listening sockets (auto: one per core) [default: 1].
        """
        self["workers"] = self._setting(settings.worker_count, "--workers", value)

    def opt_metrics(self, description: str) -> None:
        """
        Serve Prometheus metrics on this endpoint; tcp:9100 is every interface, tcp:9100:interface=127.0.0.1 keeps it private (at most 16 connections, idle ones closed after 10 s).
        """
        _checkEndpoint("--metrics", description, description)
        self["metrics"] = description

    def _checkWorkers(self) -> None:
        """
        Default ``--workers`` and ``--metrics``; every worker needs a connection.
        """
        self.setdefault("workers", 1)
        self.setdefault("metrics", None)
        limit = self._setting(settings.limit, "--max-connections", self["max-connections"])
        if limit is not None and limit < self["workers"]:
            raise usage.UsageError(
                f"--max-connections ({limit}) must be at least --workers ({self['workers']}): "
                "it is shared out among the workers."
            )

    # --- end of --workers and --metrics ---

    def defaultEndpoints(self) -> list[str]:
        """
        The endpoints to listen on when no ``--listen`` is given: ``defaultListen``.
        """
        return [self.defaultListen]

    def postOptions(self) -> None:
        """
        Fill in the defaults, validate the shared options, then the tool's own
        (:meth:`checkOptions`), and parse them all into ``self.settings``.
        """
        if not self["listen"]:
            self["listen"] = self.defaultEndpoints()
        self.setdefault("timeout", self.defaultTimeout)
        proxyTimeout = self._setting(settings.seconds, "--proxy-timeout", self["proxy-timeout"])
        assert proxyTimeout is not None
        self["proxy"] = settings.ProxySettings(proxyTimeout, tuple(self["proxy-from"]))
        self._checkWorkers()
        for name in ("max-connections", "max-per-peer"):
            self[name] = self._setting(settings.limit, f"--{name}", self[name])
        self["per-peer-prefix"] = self._setting(
            settings.peer_prefix, "--per-peer-prefix", self["per-peer-prefix"]
        )
        self.checkOptions()
        self.settings: ServerSettings = self.serverSettings()

    def checkOptions(self) -> None:
        """
        Validate the tool's own options, once the shared ones are: nothing here.

        :raises usage.UsageError: with one sentence, for an option that cannot be used.
        """

    def serverSettings(self) -> ServerSettings:
        """
        The settings the validated options give, for the services.
        """
        return ServerSettings(
            listen=tuple(self["listen"]),
            maxConnections=self["max-connections"],
            maxPerPeer=self["max-per-peer"],
            perPeerPrefix=self["per-peer-prefix"],
            timeout=self["timeout"],
            quiet=bool(self["quiet"]),
            proxy=self["proxy"],
            workers=self["workers"],
            metrics=self["metrics"],
        )

    @staticmethod
    def _setting(check: Callable[..., T], *arguments: Any) -> T:
        """
        Call a :mod:`twisted_journey.settings` check with ``arguments``; its
        ``SettingError`` becomes a usage error with the same sentence.
        """
        try:
            return check(*arguments)
        except settings.SettingError as e:
            raise usage.UsageError(str(e)) from None


class _UnstartedReactor:
    """
    Stands in for the reactor while an endpoint string is only being checked: Twisted's
    endpoint parsers keep a reference to the reactor they are given and call nothing on
    it until the endpoint listens.
    """


def _checkEndpoint(option: str, description: str, parsed: str) -> None:
    """
    Parse the endpoint string ``parsed`` (given as ``description``) now, so that a typo is
    a usage error naming ``option`` rather than a traceback once twistd has started.
    """
    try:
        serverFromString(_UnstartedReactor(), parsed)
    except Exception as e:
        reason = str(e).rstrip(".") or type(e).__name__
        raise usage.UsageError(
            f"{option} {description!r} is not a usable endpoint: {reason}."
        ) from None


def holdEarlyStops(
    built: IService, reactor: object | None, worker: WorkerContext | None = None
) -> IService:
    """
    A service maker's last step, given the service it ``built``, which it returns.

    For twistd (no ``reactor`` given: the global one, which runs once the services have
    started), and not in a worker of ``--workers N`` (which holds its own): from now on,
    keep a ``SIGTERM`` or ``SIGINT`` that arrives before the reactor runs and stop once
    it does (:func:`twisted_journey.startup.holdStopSignals`), instead of dying by it with
    a stale pid file.  Not before: while the service is built (a FIFO ``--output`` waits
    for its reader) Ctrl-C still interrupts.
    """
    if reactor is None and worker is None:
        from twisted.internet import reactor as global_reactor

        startup.holdStopSignals(global_reactor)
    return built


def listeningService(
    settings: ServerSettings,
    factory: IProtocolFactory,
    reactor: IReactorCore | None = None,
    worker: WorkerContext | None = None,
) -> IService:
    """
    The service tree of one serving process: a
    :class:`~twisted_journey.service.ListeningService` for every endpoint in
    ``settings.listen`` serving ``factory``, and beside them what the settings ask for
    (the ``--metrics`` endpoint of a single process; in ``worker``, a worker process of
    ``--workers N``, its adopted sockets and the sync of its counters).
    """
    if reactor is None:
        service.nonBlockingEventLog()
        from twisted.internet import reactor as global_reactor

        reactor = cast(IReactorCore, global_reactor)
    if isinstance(factory, LimitedFactory):
        factory.limits.prefixes = settings.perPeerPrefix
    _twisted.throttleAcceptFailures(AcceptFailures().failed)
    parent = MultiService()
    listening: object = reactor
    if worker is not None:
        listening = worker.adoptingReactor(reactor)
        worker.addExtras(factory, parent)
    elif settings.metrics and settings.workers <= 1:
        # Imported only when asked for: it loads twisted.web and prometheus_client.
        from twisted_journey import metrics

        metrics.processService(settings.metrics, factory).setServiceParent(parent)
    for each in service.listeningServices(settings.listen, factory, listening, settings.proxy):
        each.setServiceParent(parent)
    return parent
