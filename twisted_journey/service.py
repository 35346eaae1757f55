# -*- test-case-name: tests.test_tap_greet,tests.test_policies -*-
"""
The services a journey server runs its listening ports with, built from settings the
plugin layer (``twisted_journey.tap``) has already parsed; nothing here reads options.

:class:`ListeningService` listens on one endpoint and reports, in one sentence, an endpoint
it cannot listen on; :func:`listeningServices` makes one per endpoint string, with the
connection limits and the PROXY header reader outermost; :func:`nonBlockingEventLog` keeps
an unread event log from stopping the server.  The ``--workers`` supervisor
(:mod:`twisted_journey.workers`) and the metrics endpoint (:mod:`twisted_journey.metrics`)
build on these, so they never import the plugin layer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory, IStreamServerEndpoint

from twisted_journey import _twisted, startup
from twisted_journey.eventlog import classic_line, event_stream
from twisted_journey.listen import with_backlog
from twisted_journey.policies import LimitedFactory, ListeningReactor, proxied
from twisted_journey.settings import ProxySettings

__all__ = [
    "ListeningService",
    "endpointDescription",
    "listeningServices",
    "nonBlockingEventLog",
]


def endpointDescription(description: str) -> str:
    """
    The endpoint string a journey server listens with for ``description``: the user's,
    with ``backlog=`` set to the system maximum when it gives none and its type has a
    listen queue (``tcp:``, ``tcp6:``, ``unix:``, ``ssl:``, ``tls:``, also wrapped in
    ``haproxy:``), not Twisted's 50; ``systemd:`` and other types are left as they are.
    """
    return with_backlog(description)


def listeningServices(
    descriptions: Iterable[str],
    factory: IProtocolFactory,
    reactor: object,
    proxy: ProxySettings | None = None,
) -> list[ListeningService]:
    """
    One :class:`ListeningService` per endpoint string in ``descriptions``, serving
    ``factory`` through ``reactor``.

    A ``haproxy:`` endpoint is read by our own strict PROXY header reader (with
    ``proxy``'s timeout and trusted networks), outermost, before TLS; and when
    ``factory`` is a :class:`~twisted_journey.policies.LimitedFactory` its limits decide
    before TLS or the header reader build anything, so a refused connection costs nothing.
    """
    services = []
    for description in descriptions:
        inner = proxied(description)
        listening = reactor
        if isinstance(factory, LimitedFactory):
            listening = ListeningReactor(reactor, factory, proxy if inner is not None else None)
        endpoint = serverFromString(listening, endpointDescription(inner or description))
        services.append(ListeningService(description, endpoint, factory))
    return services


def nonBlockingEventLog() -> None:
    """
    Under twistd: make ``sys.stdout`` an :class:`~twisted_journey.eventlog.EventStream`,
    so that the log twistd opens there (``-n`` with no ``--logfile``) drops events, and
    says how many, rather than stop the server when nobody reads it.

    twistd opens its log after ``makeService``, on whatever ``sys.stdout`` is then, and
    ends by raising the signal that stopped it (no ``atexit``): once the reactor has
    stopped, what is queued gets a bounded wait.
    """
    sys.stdout = event_stream(sys.stdout, classic_line)
    drain = getattr(sys.stdout, "drain", None)
    if drain is not None:
        from twisted.internet import reactor

        reactor.addSystemEventTrigger("after", "shutdown", drain)


class ListeningService(_twisted.SynchronousEndpointService):
    """
    A ``StreamServerEndpointService`` that reports an endpoint it cannot listen on (a port
    in use, a missing certificate...) in one sentence and ends twistd with status 1,
    rather than with a traceback, in daemon mode too (see :mod:`twisted_journey.startup`).

    :ivar description: the endpoint string, for the sentence.
    """

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: IProtocolFactory
    ) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        startup.keepStandardError()

    def privilegedStartService(self) -> None:
        """
        Listen now, or raise :class:`~twisted_journey.startup.StartError` with one
        sentence saying why not.
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or e.socketError
            raise startup.StartError(f"cannot listen on {self.description}: {reason}.") from None
        except Exception as e:
            reason = str(e).rstrip(".") or type(e).__name__
            raise startup.StartError(f"cannot listen on {self.description}: {reason}.") from None

    def startService(self) -> None:
        """
        Start, and let go of the standard error kept for reporting a failure: twistd
        starts services once every one has listened.
        """
        startup.started()
        super().startService()
