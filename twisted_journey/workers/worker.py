# -*- test-case-name: tests.test_workers -*-
"""
A worker process of ``--workers N``: its ``main``, started by the supervisor
(:meth:`twisted_journey.workers.supervisor.WorkerPool.workerArguments`), and what it knows
of its place among the others: its share of ``--max-connections``
(:func:`connectionShare`), its own data file (:func:`workerOutput`, cut back to whole
records by :func:`dropTornRecord`), its connection numbers (:class:`ConnectionNumbers`),
and the reactor that adopts its inherited sockets
(:meth:`WorkerContext.adoptingReactor`).

A worker is a process of its own: it parses the tool's arguments again, as the top of
its own process, and serves as a single-process server does on the sockets it adopted.
It ends with :data:`CANNOT_START` when it cannot start for a reason a restart will not
change, and stops within a second of the supervisor's death.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import sys
import time
from dataclasses import replace
from typing import Any

from twisted.application.service import IService, MultiService

from twisted_journey.datalog import open_output
from twisted_journey.eventlog import event_stream
from twisted_journey.settings import ServerSettings
from twisted_journey.workers.listeners import AdoptingReactor

__all__ = [
    "CANNOT_START",
    "TRANSIENT_ERRNOS",
    "ConnectionNumbers",
    "WorkerContext",
    "connectionShare",
    "dropTornRecord",
    "main",
    "workerOutput",
]

#: The status a worker exits with when it cannot start for a reason that a restart
#: will not change (a link planted at its data file, a missing TLS key...): sysexits'
#: ``EX_CONFIG``.  The supervisor then stops, with the sentence the worker wrote.
CANNOT_START = 78

#: The ``errno`` values of a start failure that may go away by itself (descriptors or
#: memory short for now, a full disk): such a worker is started again.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EAGAIN,
        errno.ENOBUFS,
        errno.EINTR,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EBUSY,
    }
)


def connectionShare(maxConnections: int | None, workers: int, index: int) -> int | None:
    """
    Worker ``index``'s share of ``--max-connections`` among ``workers`` workers: the
    shares add up to ``maxConnections`` exactly.
    """
    if maxConnections is None:
        return None
    return maxConnections // workers + (1 if index < maxConnections % workers else 0)


def workerOutput(path: str, index: int) -> str:
    """
    The data file worker ``index`` writes for ``--output path``: ``PATH.w0``,
    ``PATH.w1``... (rotated as ``PATH.w0-TIMESTAMP``..., like any data log).
    """
    return f"{path}.w{index}"


def dropTornRecord(path: str) -> int:
    """
    Cut a record left unfinished at the end of worker data file ``path`` (its writer was
    killed in the middle of a write), so that the restarted worker appends whole records
    after whole records.

    Anything but a regular file (a FIFO, a device) is left alone: it has no end to cut,
    and opening a FIFO would wake, then end, the reader waiting at its other end.

    :return: the number of bytes cut.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return 0
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        size = info.st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            if end == size and chunk.endswith(b"\n"):
                return 0
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        return size - end
    finally:
        os.close(fd)


class ConnectionNumbers:
    """
    The connection numbers (journey-mux's ``CONN``) of one worker, unique for the life of
    the server across workers and restarts.

    Worker ``index`` of ``count`` numbers its connections ``index + 1``,
    ``index + 1 + count``, ``index + 1 + 2 * count``... (stride ``count``); a restarted
    worker goes on after every number its predecessors in the same slot could have used.
    For that, a worker *reserves* its numbers in blocks of :attr:`block` before using
    them, writing the end of the block (a decimal line) to a pipe the supervisor reads
    (``control``); the supervisor starts the next worker of the slot after it.  So
    numbers are unique and increase within each ``PATH.wI``, and some are skipped at each
    restart.

    :param index: the worker's number.
    :param count: how many workers there are.
    :param start: how many numbers of this slot its predecessors reserved.
    :param control: the descriptor of the pipe to the supervisor, or ``None`` (tests).
    """

    block = 1024

    def __init__(self, index: int, count: int, start: int = 0, control: int | None = None):
        self.index = index
        self.count = count
        self.start = start
        self.control = control
        self.reserved = start

    def __call__(self, served: int) -> int:
        """
        The number of this worker's ``served``-th connection (from 1), reserved first.
        """
        step = self.start + served - 1
        if step >= self.reserved:
            self.reserved = step + self.block
            if self.control is not None:
                try:
                    os.write(self.control, b"%d\n" % self.reserved)
                except OSError:
                    pass  # The supervisor is gone: this worker stops within a second.
        return step * self.count + self.index + 1


class WorkerContext:
    """
    What a worker process knows of its place: made by :func:`main`, which hands it to
    the tool's ``makeService``.

    :ivar index: this worker's number, ``0`` to ``count - 1``.
    :ivar count: how many workers there are.
    :ivar listeners: the inherited sockets, in ``--listen`` order.
    :ivar datagrams: the descriptors of the inherited ``udp:`` sockets, in ``--listen``
        order: each is shared by every worker.
    :ivar metricsInterval: seconds between syncs of the counters for ``--metrics``.
    :ivar numbers: this worker's connection numbers.
    """

    def __init__(
        self,
        index: int,
        count: int,
        listeners: list[dict[str, Any]],
        metricsInterval: float = 0.5,
        numbers: ConnectionNumbers | None = None,
        datagrams: list[int] | None = None,
    ) -> None:
        self.index = index
        self.count = count
        self.listeners = listeners
        self.datagrams = list(datagrams or [])
        self.metricsInterval = metricsInterval
        self.numbers = numbers or ConnectionNumbers(index, count)

    def serverSettings(self, settings: ServerSettings) -> ServerSettings:
        """
        The settings this worker serves with, from the server's: its share of
        ``--max-connections`` (:func:`connectionShare`), and its own data file
        (:func:`workerOutput`) when the server writes one.
        """
        output = settings.output
        if settings.outputPath is not None:
            output = workerOutput(settings.outputPath, self.index)
        maxConnections = connectionShare(settings.maxConnections, self.count, self.index)
        return replace(settings, maxConnections=maxConnections, output=output)

    def adoptingReactor(self, reactor: Any) -> AdoptingReactor:
        """
        The reactor this worker parses its endpoint strings against: one that adopts the
        sockets the supervisor bound instead of binding its own.
        """
        return AdoptingReactor(reactor, self.listeners)

    def addExtras(self, factory: Any, parent: MultiService) -> None:
        """
        Add what a worker runs beside its ports: its share of the connection numbers and,
        under ``--metrics``, the sync of its counters for the supervisor.
        """
        if hasattr(factory, "connectionNumber"):
            factory.connectionNumber = self.numbers
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Imported only when asked for: it loads twisted.web and prometheus_client.
            from twisted_journey import metrics

            metrics.WorkerMetrics(factory, self.index, self.metricsInterval).setServiceParent(
                parent
            )


def _watchParent(reactor: Any, parent: int) -> None:
    """
    Stop the reactor when the supervisor is gone (we have been re-parented).
    """
    from twisted.internet.task import LoopingCall

    def check() -> None:
        if os.getppid() != parent:
            reactor.stop()

    LoopingCall(check).start(1.0, now=False)


def _jsonLine(sentence: str) -> str:
    """
    ``sentence`` as a JSON log event line, as a worker writes its events.
    """
    from twisted.logger import LogLevel, eventAsJSON

    event = {
        "log_format": "{sentence}",
        "sentence": sentence,
        "log_time": time.time(),
        "log_namespace": "twisted_journey.eventlog",
        "log_level": LogLevel.warn,
    }
    return eventAsJSON(event) + "\n"


def main(argv: list[str] | None = None) -> None:
    """
    Run one worker: ``argv[1]`` is the JSON configuration the supervisor wrote
    (:meth:`~twisted_journey.workers.supervisor.WorkerPool.workerArguments`).
    """
    configuration = json.loads((sys.argv if argv is None else argv)[1])
    parent = os.getppid()
    # Our own process group: the terminal's Ctrl-C goes to the supervisor, which forwards.
    os.setpgid(0, 0)
    if "LISTEN_FDS" in os.environ:
        # The systemd: sockets are where the supervisor got them; they are ours now.
        os.environ["LISTEN_PID"] = str(os.getpid())
    # SIGUSR1 must not kill a worker that has no use for it (journey-greet).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    # A stop the supervisor forwards while this worker is still starting is kept, and
    # acted on once the reactor runs (see below), instead of meeting Python's defaults:
    # a KeyboardInterrupt traceback in the middle of start-up, or an end without shutdown.
    early: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda number, frame: early.append(number))

    import importlib

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, jsonFileLogObserver

    # The pipe to the supervisor never blocks this worker: events it cannot take are
    # dropped and counted (see eventlog).
    sys.stdout = event_stream(sys.stdout, _jsonLine)
    globalLogBeginner.beginLoggingTo(
        [jsonFileLogObserver(sys.stdout, recordSeparator="")], redirectStandardIO=False
    )
    module = importlib.import_module(configuration["module"])
    options = module.Options()
    index, count = configuration["index"], configuration["count"]
    held: int | None = None
    try:
        options.parseOptions(configuration["argv"])
        numbers = ConnectionNumbers(
            index, count, configuration.get("connStart", 0), configuration.get("control")
        )
        context = WorkerContext(
            index,
            count,
            configuration["listeners"],
            configuration["metricsInterval"],
            numbers,
            configuration.get("datagrams", []),
        )
        # A process of its own, this worker is the top that parses: it serves with its
        # share of the server's settings.
        options.settings = settings = context.serverSettings(options.settings)
        if settings.outputPath is not None:
            held = _holdReader(settings.outputPath, configuration.get("restarted", False))
            dropTornRecord(settings.outputPath)
        service: IService = module.makeService(options, worker=context)
        service.privilegedStartService()
    except (Exception, SystemExit) as e:
        _cannotStart(index, e)
    finally:
        if held is not None:
            os.close(held)
    reactor.callWhenRunning(service.startService)
    reactor.callWhenRunning(_stopHandedOver, reactor, early)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    _watchParent(reactor, parent)
    reactor.run()


def _stopHandedOver(reactor: Any, early: list[int]) -> None:
    """
    Once the reactor runs: give ``SIGINT`` to the reactor (it installs its own ``SIGTERM``
    handler, but leaves ``SIGINT`` alone when it is not Python's default), then act on a
    stop that arrived during start-up as the reactor's handler would have.
    """
    signal.signal(signal.SIGINT, reactor.sigInt)
    if early:
        handler = reactor.sigInt if early[0] == signal.SIGINT else reactor.sigTerm
        handler(early[0], None)


def _holdReader(path: str, restarted: bool) -> int | None:
    """
    For a worker whose data file ``path`` is a FIFO: the first worker waits for the
    FIFO's reader when it opens it, as the single-process server does; a restarted one
    does not wait (its predecessor's end may have ended the reader), and holds the FIFO
    open while it opens its data log, so that its reader sees no end of file between.

    :return: the descriptor to close once the data log is open, or ``None``.
    :raises SystemExit: when a restarted worker's FIFO has no reader.
    """
    try:
        if not restarted or not stat.S_ISFIFO(os.lstat(path).st_mode):
            return None
        return open_output(path, wait=False)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise SystemExit(
                f"cannot open --output {path!r}: it is a FIFO that no process reads."
            ) from None
        raise


def _cannotStart(index: int, error: BaseException) -> None:
    """
    End a worker that could not start, with one sentence on standard error: with
    ``CANNOT_START`` (the supervisor stops the server) unless the cause may go away
    by itself (an ``errno`` in ``TRANSIENT_ERRNOS``: the supervisor tries again).
    """
    cause: BaseException | None = error
    transient = False
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
            transient = True
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}" + (f": {error.filename!r}" if error.filename else "")
    else:
        text = str(error) or type(error).__name__
    sentence = text if text.endswith(".") else text + "."
    sys.stderr.write(f"worker {index} cannot start: {sentence}\n")
    sys.stderr.flush()
    os._exit(1 if transient else CANNOT_START)
