# -*- test-case-name: tests.test_tap_mux -*-
"""
``twistd journey-mux``: the multiplexing logging server as a twistd plugin.

On ``SIGTERM``/``SIGINT`` twistd stops the service: the ports stop accepting, every
client's unterminated line is recorded (marked partial), and the data log is flushed and
closed (a stalled output is waited for a few seconds, then what it did not take is
reported).  ``SIGUSR1`` reopens the data log (for logrotate); it is caught from the moment
twistd parses this plugin's options, so a logrotate run while the server starts does not
kill it.

Near the descriptor limit (``ulimit -n``) the ports stop accepting until a client leaves
(see :meth:`twisted_journey.mux.MuxFactory.checkDescriptors`), and Twisted's own
``EMFILE`` recovery, which accepts every waiting client and closes it unread, is turned
off for this process: waiting clients stay in the listen backlog and are served later.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python import usage

from twisted_journey import _twisted, records, settings
from twisted_journey.datalog import DataLog, check_output, keep_count
from twisted_journey.listen import ListenError, parse_udp
from twisted_journey.mux import DatagramService, DataLogService, MuxFactory, catchEarlySignals
from twisted_journey.settings import ServerSettings
from twisted_journey.syslogframe import check_framing
from twisted_journey.tap.common import ServerOptions, holdEarlyStops, listeningService
from twisted_journey.workers.supervisor import supervise
from twisted_journey.workers.worker import WorkerContext

__all__ = ["Options", "makeService"]

log = Logger()


class Options(ServerOptions):
    """
    Options for ``twistd journey-mux``.
    """

    synopsis = "[--listen ENDPOINT]... [--output PATH] [--format text|json] [options]"
    longdesc = (
        "Record every line every client sends, one record per line (TIME PEER CONN LINE, "
        "escaped), in the data log given by --output (standard output by default). Listens on "
        "tcp:1235 unless --listen is given. SIGUSR1 reopens the data log; SIGTERM records "
        "what was received, flushes and closes it."
    )
    defaultListen = "tcp:1235"

    def __init__(self) -> None:
        # As early as twistd lets a plugin run: logrotate's SIGUSR1 must not kill a
        # server that is starting.
        catchEarlySignals()
        super().__init__()
        #: the ``udp:`` listeners, parsed; the others are in ``self["listen"]``
        self["udp"] = []

    optFlags: list[list[Any]] = [
        ["broadcast", None, "Also relay every line to every other connected client (chat mode)."],
    ]
    optParameters: list[list[Any]] = [
        ["output", "o", "-", "Data log file; - is standard output."],
        ["format", None, "text", "Record format: text or json."],
        ["mode", None, "line", "line: a record per line; raw: a record per received chunk."],
        [
            "framing",
            None,
            "lines",
            "lines: a line ends at LF; syslog: RFC 6587 frames (octet counted, or ending at "
            "LF or NUL), a record per message.",
        ],
        [
            "max-line-length",
            None,
            str(settings.DEFAULT_MAX_LINE_LENGTH),
            "Record longer lines cut to this many bytes, marked.",
        ],
        [
            "flush-interval",
            None,
            f"{settings.DEFAULT_FLUSH_INTERVAL:g}",
            "Write buffered records at least this often (seconds).",
        ],
        ["rotate-bytes", None, None, "Start a new data log before it grows past this size."],
        [
            "rotate-keep",
            None,
            str(settings.DEFAULT_ROTATE_KEEP),
            "Rotated data logs (PATH-TIMEZ) to keep; the oldest go.",
        ],
        [
            "broadcast-buffer",
            None,
            str(settings.DEFAULT_BROADCAST_BUFFER),
            "Drop a broadcast client with this many bytes unread.",
        ],
    ]

    def opt_listen(self, description: str) -> None:
        """
        Listen on this endpoint (tcp:PORT, tcp6:, unix:, ssl:, tls:, systemd:, haproxy:..., or udp:PORT[:interface=ADDR] for a datagram per message); repeatable.
        """
        if description.partition(":")[0] == "udp":
            try:
                self["udp"].append(parse_udp(description))
            except ListenError as e:
                raise usage.UsageError(str(e)) from None
        else:
            super().opt_listen(description)

    def opt_timeout(self, value: str) -> None:
        """
        Drop a client that sends nothing for this many seconds [default: never].
        """
        super().opt_timeout(value)

    def defaultEndpoints(self) -> list[str]:
        """
        No default TCP port when only ``udp:`` listeners are asked for.
        """
        return [] if self["udp"] else super().defaultEndpoints()

    def checkOptions(self) -> None:
        """
        Validate journey-mux's own options, in the same words as the stdlib twin.
        """
        for name, choices in (("format", records.FORMATS), ("mode", records.MODES)):
            if self[name] not in choices:
                raise usage.UsageError(
                    f"--{name} must be one of {', '.join(choices)}, not {self[name]!r}."
                )
        self._setting(check_framing, self["framing"], self["mode"])
        for name in ("max-line-length", "rotate-bytes", "broadcast-buffer"):
            self[name] = self._setting(settings.limit, f"--{name}", self[name])
        self["rotate-keep"] = self._setting(keep_count, "--rotate-keep", self["rotate-keep"])
        self["flush-interval"] = self._setting(
            settings.seconds, "--flush-interval", self["flush-interval"]
        )
        self._setting(check_output, self["output"], self["rotate-bytes"])
        self._checkMuxWorkers()

    def serverSettings(self) -> ServerSettings:
        """
        The shared settings, with the data log every worker of ``--workers N`` writes
        its own ``PATH.wI`` of.
        """
        return replace(super().serverSettings(), output=self["output"])

    def _checkMuxWorkers(self) -> None:
        """
        Refuse what cannot work with several workers: each writes its own ``PATH.wN``,
        and relays only to its own clients.
        """
        if self["workers"] <= 1:
            return
        if self["output"] == "-":
            raise usage.UsageError(
                "--workers needs --output PATH: each worker writes its own PATH.wN, "
                "and standard output cannot be shared without mixing records."
            )
        if self["broadcast"]:
            raise usage.UsageError(
                "--broadcast cannot be used with --workers: a worker relays only to its own clients."
            )


def _logToStandardError() -> None:
    """
    The data log is standard output: send twistd's own log (which, with ``-n`` and no
    ``--logfile``, goes to ``sys.stdout``) to standard error instead, as the stdlib twin
    does, so events are not mixed into the records, and a stalled reader of the records
    cannot block the logger (the data log itself never blocks).

    twistd opens its log after ``makeService``, on whatever ``sys.stdout`` is then.
    """
    sys.stdout = sys.stderr


def makeService(
    options: Options, reactor: IReactorCore | None = None, worker: WorkerContext | None = None
) -> IService:
    """
    The data log, flushed and closed by a :class:`DataLogService`, and a :class:`MuxFactory`
    listening on every endpoint.

    With ``--output -`` under twistd (no ``reactor`` given), twistd's own log goes to
    standard error.

    :param worker: in a worker process of ``--workers N``, its place (given by
        :func:`twisted_journey.workers.worker.main`): it serves its adopted sockets and
        writes its own data log.
    :raises SystemExit: with one sentence, when the data log cannot be opened (twistd
        prints it and exits 1; a ``UsageError`` here would be a traceback).
    """
    settings = options.settings
    if settings.workers > 1 and worker is None:
        return holdEarlyStops(
            supervise(settings, __name__, options.argv, reactor, datagrams=options["udp"]), reactor
        )
    output = settings.output
    assert output is not None
    try:
        datalog = DataLog(
            output,
            rotate_bytes=options["rotate-bytes"],
            rotate_keep=options["rotate-keep"],
            report=lambda sentence: log.critical("{sentence}", sentence=sentence),
            notice=lambda sentence: log.info("{sentence}", sentence=sentence),
        )
    except OSError as e:
        raise SystemExit(f"cannot open --output {output!r}: {e.strerror or e}.") from None
    _twisted.stopAcceptShedding()
    if output == "-" and reactor is None:
        _logToStandardError()
    factory = MuxFactory(
        datalog,
        recordFormat=options["format"],
        mode=options["mode"],
        framing=options["framing"],
        maxLineLength=options["max-line-length"],
        timeout=settings.timeout,
        broadcast=options["broadcast"],
        broadcastBuffer=options["broadcast-buffer"],
        maxConnections=settings.maxConnections,
        maxPerPeer=settings.maxPerPeer,
        quiet=settings.quiet,
        clock=reactor,  # type: ignore[arg-type]
    )
    parent = MultiService()
    DataLogService(factory, options["flush-interval"], clock=reactor).setServiceParent(parent)  # type: ignore[arg-type]
    # The udp: sockets are bound first: once a TCP port accepts, every listener is ready.
    # A worker of --workers N reads the sockets the supervisor bound, shared by all.
    shared = worker.datagrams if worker is not None else [None] * len(options["udp"])
    for spec, fileno in zip(options["udp"], shared, strict=True):
        DatagramService(factory, spec, fileno).setServiceParent(parent)
    listeningService(settings, factory, reactor, worker).setServiceParent(parent)
    return holdEarlyStops(parent, reactor, worker)
