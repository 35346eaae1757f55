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
"""

from __future__ import annotations

import os

__all__ = ["StartError", "keepStandardError", "started"]

_kept: int | None = None


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
