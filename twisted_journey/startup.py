# -*- test-case-name: tests.test_daemon_start -*-
"""
How a journey server that cannot start says so, under ``twistd`` in daemon mode as well as
in the foreground (``-n``); stdlib only.

twistd daemonizes before it starts the services: the process that will serve forks twice,
points its standard streams at ``/dev/null``, and reports to the waiting parent through a
status pipe.  Only an :class:`Exception` raised by ``privilegedStartService`` or
``startService`` is written to that pipe (and the pid file removed); the parent then
prints ``An error has occurred: ...`` and exits 1.  Anything else -- a ``SystemExit`` above
all -- leaves the parent blocked on the pipe for ever, with a stale pid file.

So a service that cannot start raises :class:`StartError`, which is both: an
``Exception`` for twistd's status pipe and pid-file clean-up, and a ``SystemExit`` once
twistd lets it go on, so the process ends with status 1 and the sentence in its log
instead of a traceback.  Because the status pipe carries only 100 bytes, and the parent
frames them as a ``repr``, the sentence itself is also written whole to the standard error
the command was started with, which :func:`keepStandardError` kept (before twistd
daemonized) for exactly that, until :func:`started` lets it go.

Nor does twistd handle ``SIGTERM`` or ``SIGINT`` while it starts: it writes the pid file,
starts the services and lets the waiting parent return, all before the reactor runs and
installs its handlers.  A stop in that moment (a ``kill $(cat twistd.pid)`` right after
the command returns, a systemd ``Type=forking`` unit stopped while it starts) would kill
the daemon outright, leaving its pid file, or leave the waiting command blocked for ever.
:func:`holdStopSignals`, called once the services are built, keeps such a signal until
the reactor runs and then hands it to the reactor's own handler: the server starts, stops
at once, and removes its pid file.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

__all__ = ["StartError", "holdStopSignals", "keepStandardError", "started"]

_kept: int | None = None
_STOPS = (signal.SIGTERM, signal.SIGINT)
_holding: _StopHold | None = None


def keepStandardError() -> None:
    """
    Keep a duplicate of standard error (the terminal or journal the command was started
    from), to report a start-up failure on after twistd has daemonized.  Call it while
    building the services; calling it again keeps nothing more.
    """
    global _kept
    if _kept is None:
        try:
            _kept = os.dup(2)
        except OSError:
            _kept = None


def started() -> None:
    """
    Everything started: let go of the standard error :func:`keepStandardError` kept, so
    a daemon holds no descriptor of the terminal or the ``ssh`` session that started it.
    """
    global _kept
    if _kept is not None:
        kept, _kept = _kept, None
        try:
            os.close(kept)
        except OSError:
            pass


class StartError(SystemExit, Exception):
    """
    A server cannot start; ``str()`` is one sentence saying why.

    Raise it from ``privilegedStartService`` or ``startService`` (see the module
    docstring): creating one writes the sentence to the kept standard error.
    """

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        if _kept is not None:
            try:
                os.write(_kept, sentence.encode("utf-8", "backslashreplace") + b"\n")
            except OSError:
                pass
        started()


def holdStopSignals(reactor: Any) -> None:
    """
    Keep a ``SIGTERM`` or ``SIGINT`` that arrives before ``reactor`` runs, and deliver it
    to the reactor's handlers once it does (see the module docstring).  Call it once the
    services of the process that will run ``reactor`` are built (until then, a stop
    interrupts as it always does); calling it again does nothing more.

    A process that forks before the reactor runs (twistd's waiting parent) lets go at
    once: there a stop means what it always did.

    :param reactor: the reactor this process will run (``callWhenRunning``,
        ``callLater``, ``sigInt``, ``sigTerm``, ``running``).
    """
    global _holding
    if _holding is None:
        _holding = _StopHold(reactor)
        _holding.hold()


class _StopHold:
    """
    The handlers :func:`holdStopSignals` installs, and what they kept.

    :ivar held: the signals received while holding, in order.
    :ivar previous: the handler each signal had before.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.held: list[int] = []
        self.previous: dict[int, Any] = {}
        self.holding = False

    def hold(self) -> None:
        """
        Install the handlers; hand over once the reactor runs.
        """
        for number in _STOPS:
            self.previous[number] = signal.signal(number, self.signalled)
        self.holding = True
        os.register_at_fork(after_in_parent=self.forked)
        self.reactor.callWhenRunning(self.handOver)

    def signalled(self, number: int, frame: FrameType | None) -> None:
        """
        Keep ``number`` for the reactor.
        """
        self.held.append(number)

    def release(self, handlers: dict[int, Any]) -> None:
        """
        Give each signal still held its handler in ``handlers``.
        """
        self.holding = False
        for number in _STOPS:
            if signal.getsignal(number) == self.signalled:
                signal.signal(number, handlers[number])

    def forked(self) -> None:
        """
        In the parent of a fork made while holding (twistd daemonizing): the previous
        handlers again, and a signal received meanwhile delivered to them now.
        """
        if not self.holding:
            return
        self.release(self.previous)
        if self.held:
            os.kill(os.getpid(), self.held[0])

    def handOver(self) -> None:
        """
        The reactor runs: give each signal the handler it has now (a ``SIGINT`` the
        reactor left alone because ours was there gets the reactor's), then deliver a
        signal received while starting, after the handlers other services install once
        the reactor runs (the ``--workers`` supervisor's).
        """
        if not self.holding:
            return
        handlers = dict(self.previous)
        reactorTook = signal.getsignal(signal.SIGTERM) != self.signalled
        if reactorTook and handlers[signal.SIGINT] is signal.default_int_handler:
            handlers[signal.SIGINT] = self.reactor.sigInt
        self.release(handlers)
        if self.held:
            self.reactor.callLater(0, signal.raise_signal, self.held[0])
