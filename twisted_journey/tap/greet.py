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
from twisted_journey.tap.common import ServerOptions, listeningService
from twisted_journey.workers import supervisor, worker

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

    optParameters = [
        ["message", "m", None, "Greeting text; sent UTF-8 encoded with CRLF appended."],
        ["message-file", None, None, "Send this file's bytes exactly as the greeting."],
    ]

    def opt_timeout(self, value: str) -> None:
        """
        Drop a client that has not taken the whole greeting in this many seconds [default: 30].
        """
        super().opt_timeout(value)

    def postOptions(self) -> None:
        """
        Validate the shared options and load the greeting.
        """
        super().postOptions()
        if self["timeout"] is None:
            self["timeout"] = settings.DEFAULT_GREET_TIMEOUT
        self["greeting"] = self._setting(settings.greeting, self["message"], self["message-file"])


def makeService(options: Options, reactor: IReactorCore | None = None) -> IService:
    """
    The listening service for ``options``: a :class:`GreetFactory` on every endpoint
    (with ``--workers N``, the supervisor of ``N`` processes that each serve one).
    """
    if options["workers"] > 1 and not worker.isWorker(options):
        return supervisor.supervise(options, __name__, reactor)
    factory = GreetFactory(
        options["greeting"],
        timeout=options["timeout"],
        maxConnections=options["max-connections"],
        maxPerPeer=options["max-per-peer"],
        quiet=options["quiet"],
        clock=cast(IReactorTime, reactor),
    )
    return listeningService(options, factory, reactor)
