# -*- test-case-name: tests.test_tap_greet -*-
"""
Options and service assembly shared by the journey servers' service makers.

:class:`ServerOptions` holds what every journey server takes (``--listen``,
``--max-connections``, ``--max-per-peer``, ``--per-peer-prefix``, ``--timeout``,
``--quiet``); a tool's ``Options`` subclasses it, sets ``defaultListen`` and adds its own
options, and its ``makeService`` ends with :func:`listeningService`.

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

from twisted_journey import _twisted, service, settings
from twisted_journey.eventlog import AcceptFailures
from twisted_journey.policies import LimitedFactory
from twisted_journey.workers import worker

__all__ = ["ServerOptions", "listeningService"]

T = TypeVar("T")


class ServerOptions(usage.Options):
    """
    The options every journey server shares.

    ``self["listen"]`` is the list of endpoint strings to listen on (``defaultListen``
    when none is given); ``max-connections``, ``max-per-peer`` and ``timeout`` are
    validated numbers or ``None``.
    """

    defaultListen = "tcp:1234"
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

    def postOptions(self) -> None:
        """
        Fill in the default endpoint and validate the shared numbers.
        """
        if not self["listen"]:
            self["listen"] = [self.defaultListen]
        self.setdefault("timeout", None)
        proxyTimeout = self._setting(settings.seconds, "--proxy-timeout", self["proxy-timeout"])
        assert proxyTimeout is not None
        self["proxy"] = settings.ProxySettings(proxyTimeout, tuple(self["proxy-from"]))
        self._checkWorkers()
        for name in ("max-connections", "max-per-peer"):
            self[name] = self._setting(settings.limit, f"--{name}", self[name])
        self["per-peer-prefix"] = self._setting(
            settings.peer_prefix, "--per-peer-prefix", self["per-peer-prefix"]
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


def listeningService(
    options: ServerOptions,
    factory: IProtocolFactory,
    reactor: IReactorCore | None = None,
) -> IService:
    """
    The service tree of one serving process: a
    :class:`~twisted_journey.service.ListeningService` for every endpoint in
    ``options["listen"]`` serving ``factory``, and beside them what the options ask for
    (the ``--metrics`` endpoint of a single process; in a worker of ``--workers N``, its
    adopted sockets and the sync of its counters).
    """
    if reactor is None:
        service.nonBlockingEventLog()
        from twisted.internet import reactor as global_reactor

        reactor = cast(IReactorCore, global_reactor)
    if isinstance(factory, LimitedFactory):
        factory.limits.prefixes = options["per-peer-prefix"]
    _twisted.throttleAcceptFailures(AcceptFailures().failed)
    parent = MultiService()
    context = worker.workerContext(options)
    if context is not None:
        reactor = worker.adoptingReactor(context, reactor)
        worker.workerExtras(context, factory, parent)
    elif options.get("metrics") and options.get("workers", 1) <= 1:
        # Imported only when asked for: it loads twisted.web and prometheus_client.
        from twisted_journey import metrics

        metrics.processService(options, factory).setServiceParent(parent)
    for listening in service.listeningServices(
        options["listen"], factory, reactor, options["proxy"]
    ):
        listening.setServiceParent(parent)
    return parent
