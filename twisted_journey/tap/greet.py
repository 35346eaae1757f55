# -*- test-case-name: tests.test_tap_greet -*-
"""
``twistd journey-greet``: the greeting server as a twistd plugin.
"""

from __future__ import annotations

from typing import cast

from twisted.application.service import IService
from twisted.internet.interfaces import IReactorCore, IReactorTime

from twisted_journey import settings
from twisted_journey.greet import GreetFactory
from twisted_journey.tap.common import ServerOptions, holdEarlyStops, listeningService
from twisted_journey.workers.supervisor import supervise
from twisted_journey.workers.worker import WorkerContext

__all__ = ["Options", "makeService"]


class Options(ServerOptions):
    """
    Options for ``twistd journey-greet``.
    """

    synopsis = "[--listen ENDPOINT]... [--message TEXT | --message-file PATH] [options]"
    longdesc = (
        "Send every client a greeting ('Thank you for connecting' by default), then close "
        "the connection. Listens on tcp:1234 unless --listen is given."
    )
    defaultListen = "tcp:1234"
    defaultTimeout = settings.DEFAULT_GREET_TIMEOUT

    optParameters = [
        ["message", "m", None, "Greeting text; sent UTF-8 encoded with CRLF appended."],
        ["message-file", None, None, "Send this file's bytes exactly as the greeting."],
    ]

    def opt_timeout(self, value: str) -> None:
        """
        Drop a client that has not taken the whole greeting in this many seconds [default: 30].
        """
        super().opt_timeout(value)

    def checkOptions(self) -> None:
        """
        Load the greeting.
        """
        self["greeting"] = self._setting(settings.greeting, self["message"], self["message-file"])


def makeService(
    options: Options, reactor: IReactorCore | None = None, worker: WorkerContext | None = None
) -> IService:
    """
    The listening service for ``options``: a :class:`GreetFactory` on every endpoint
    (with ``--workers N``, the supervisor of ``N`` processes that each serve one).

    :param worker: in a worker process of ``--workers N``, its place (given by
        :func:`twisted_journey.workers.worker.main`): it serves its adopted sockets.
    """
    settings = options.settings
    if settings.workers > 1 and worker is None:
        return holdEarlyStops(supervise(settings, __name__, options.argv, reactor), reactor)
    factory = GreetFactory(
        options["greeting"],
        timeout=settings.timeout,
        maxConnections=settings.maxConnections,
        maxPerPeer=settings.maxPerPeer,
        quiet=settings.quiet,
        clock=cast(IReactorTime, reactor),
    )
    return holdEarlyStops(listeningService(settings, factory, reactor, worker), reactor, worker)
