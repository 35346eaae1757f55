# -*- test-case-name: tests.test_mux -*-
"""
The multiplexing logging server, on Twisted (its client, ``journey send``, is in
:mod:`twisted_journey.client`).

Wire contract: a client connects and sends lines (``\\n``-terminated; one ``\\r`` before
the ``\\n`` is dropped), or with ``framing="syslog"`` syslog messages, each framed as
:mod:`twisted_journey.syslogframe` says (a :class:`DatagramService` takes them over UDP).
The server sends nothing back, except with ``broadcast``: then every complete line a
client sends is relayed, as it was received, to every other client (a syslog message,
octet counted), and so is every datagram's message, to every client.
Every line is written to the data log as one record (see :mod:`twisted_journey.records`);
a line still unterminated when the connection ends is recorded marked partial.  A client
that half-closes is finished: the server records what it sent and closes.

Use the server in your own application::

    from twisted.application import strports
    from twisted_journey.datalog import DataLog
    from twisted_journey.mux import MuxFactory

    factory = MuxFactory(DataLog("data.log"))
    strports.service("tcp:1235", factory)

``twistd -n journey-mux`` (:mod:`twisted_journey.tap.mux`) builds that, plus the timer that
flushes the data log and the stop that flushes and closes it (:class:`DataLogService`).

The data path costs a Python call per received chunk, not per line: a chunk's complete
lines are escaped and formatted with a few ``bytes`` operations under one timestamp, and
connection events (not data) go through :mod:`twisted.logger`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
from collections.abc import Callable
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IPushProducer,
    IReactorFDSet,
    IReactorTime,
    IReadDescriptor,
    IWriteDescriptor,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_journey import records, startup
from twisted_journey.datagrams import DatagramReceiver, bind_udp
from twisted_journey.datalog import DataLog
from twisted_journey.listen import ListenError, ListenSpec
from twisted_journey.policies import LimitedFactory, LimitedProtocol, peerOf
from twisted_journey.settings import (
    DEFAULT_BROADCAST_BUFFER,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_LINE_LENGTH,
)
from twisted_journey.sockets import RESERVED_DESCRIPTORS, descriptor_ceiling
from twisted_journey.syslogframe import new_framer

__all__ = [
    "RESERVED_DESCRIPTORS",
    "DataLogService",
    "DatagramService",
    "MuxFactory",
    "MuxProtocol",
    "catchEarlySignals",
    "descriptorCeiling",
]


#: signals that arrived before a :class:`DataLogService` started (see
#: :func:`catchEarlySignals`)
signalsBeforeStart: list[int] = []


#: the highest descriptor number a client may get before accepting stops (see
#: :func:`twisted_journey.sockets.descriptor_ceiling`)
descriptorCeiling = descriptor_ceiling


class _EarlySignalCatcher:
    """
    The ``SIGUSR1`` handler from twistd's option parsing until the data log service
    starts: it remembers the signal, for the service to reopen the data log then.

    It is false (``bool(catcher) is False``) on purpose: twistd installs its own
    ``SIGUSR1`` handler (which rotates ``--logfile``) only when ``signal.getsignal``
    returns something false, and this catcher must not stop it.
    """

    def __call__(self, number: int, frame: Any) -> None:
        signalsBeforeStart.append(number)

    def __bool__(self) -> bool:
        return False


def catchEarlySignals() -> None:
    """
    Catch ``SIGUSR1`` from now on, if nothing does yet: its default action kills the
    process, and logrotate may send it while the server is starting.  Call it as early as
    possible (``twistd journey-mux`` does when it parses its options).
    """
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGUSR1, _EarlySignalCatcher())


@implementer(IPushProducer)
class MuxProtocol(LimitedProtocol):
    """
    Records every line its client sends; relays them to the other clients when the
    factory broadcasts.

    :ivar conn: this connection's number, unique for the life of the server.
    :ivar lastActive: the factory's sweep generation when data last arrived (for the idle
        timeout): a small shared integer rather than a float per connection.
    """

    factory: MuxFactory
    transport: Any
    conn = 0
    lastActive = 0
    framer: records.Framer | None = None
    _finished = False
    _paused = False
    _queuedWhilePaused = 0

    @property
    def peer(self) -> str:
        """
        The printable peer name, worked out on first use from the address, or once
        :meth:`connectionMade` has dropped that, from the transport: an idle connection
        keeps neither an address object nor a name.
        """
        if self._peer is None:
            address = self.address if self.address is not None else self.transport.getPeer()
            self._peer = peerOf(address)[1]
        return self._peer

    def connectionMade(self) -> None:
        """
        Join the factory's clients; with broadcast, watch this client's write buffer.
        """
        factory = self.factory
        # The transport knows the address (see peer).  Not via self.__dict__, which would
        # give every instance a dictionary object of its own.
        with contextlib.suppress(AttributeError):
            del self.address
        self.conn = factory.connectionNumber(factory.served)
        factory.clients[self] = None
        if factory.timeout is not None:
            self.lastActive = factory.generation
        if factory.broadcast:
            self.transport.registerProducer(self, True)
        if factory.outputPaused:
            self.transport.pauseProducing()
        factory.checkDescriptors(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Record the chunk's complete lines under one timestamp; relay them if broadcasting.
        """
        if self._finished:
            return
        factory = self.factory
        factory.bytesReceived += len(data)
        now = factory.clock.seconds()
        self.lastActive = factory.generation
        framer = self.framer
        if framer is None:
            framer = self.framer = factory.newFramer(self)
        made = framer.lines
        out = framer.feedPieces(data, now)
        if out:
            factory.datalog.extend(out, framer.lines - made)
            if framer.complete:
                factory.relay(self, framer.complete)
        if framer.error is not None:
            factory.framingErrors += 1
            factory.log.warn("{sentence}", sentence=framer.error)
            self.finishRecording()
            self.transport.loseConnection()

    def relayed(self, data: bytes) -> None:
        """
        Send another client's lines to this one, dropping this client if it lets more than
        the factory's ``broadcastBuffer`` bytes pile up unread.
        """
        if self._paused:
            self._queuedWhilePaused += len(data)
            if self._queuedWhilePaused > self.factory.broadcastBuffer:
                self.factory.log.warn(
                    "Dropped {peer}: it stopped reading, and {size} relayed bytes were waiting",
                    peer=self.peer,
                    size=self._queuedWhilePaused,
                )
                self.factory.droppedSlow += 1
                self.finishRecording()
                self.transport.abortConnection()
                return
        self.factory.bytesSent += len(data)
        self.transport.write(data)

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: count what is relayed from now on.
        """
        # The transport calls this on every write while its buffer is full.
        if not self._paused:
            self._paused = True
            self._queuedWhilePaused = 0

    def resumeProducing(self) -> None:
        """
        The client has caught up.
        """
        self._paused = False
        self._queuedWhilePaused = 0

    def stopProducing(self) -> None:
        """
        Nothing to stop: the transport is going away.
        """

    def finishRecording(self) -> None:
        """
        Record a pending unterminated line (marked partial) and record nothing more from
        this connection.  Called at disconnection, and for every client at shutdown.
        """
        if self._finished:
            return
        self._finished = True
        factory = self.factory
        factory.clients.pop(self, None)
        framer = self.framer
        if framer is not None:
            factory.datalog.write(framer.finish(factory.clock.seconds()))
        if not self.quiet:
            factory.log.info(
                "Connection {conn} from {peer} closed: {bytes} bytes, {lines} records",
                conn=self.conn,
                peer=self.peer,
                bytes=framer.received if framer else 0,
                lines=framer.lines if framer else 0,
            )

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        """
        Record the partial last line, log the connection's totals, give back its place.
        """
        self.finishRecording()
        super().connectionLost(reason)
        self.factory.descriptorFreed()


class MuxFactory(LimitedFactory):
    """
    Builds a :class:`MuxProtocol` for each client; holds the data log and the settings.

    :param datalog: where records go.
    :param recordFormat: ``"text"`` or ``"json"``.
    :param mode: ``"line"`` or ``"raw"``.
    :param framing: ``"lines"`` or ``"syslog"`` (see :mod:`twisted_journey.syslogframe`).
    :param maxLineLength: longer lines are recorded truncated.
    :param timeout: drop a client idle this many seconds (``None``: never).
    :param broadcast: relay every line to every other client.
    :param broadcastBuffer: drop a client with more relayed bytes than this waiting.
    :param clock: time source and timer; the global reactor when ``None``.

    :ivar clients: the connections open now, in the order they opened (a ``dict`` with
        ``None`` values: about 30 bytes a connection, where a ``set`` takes 26 to 100).
    :ivar timedOut: clients dropped for idleness.
    :ivar droppedSlow: broadcast clients dropped for not reading.
    :ivar framingErrors: clients closed for breaking syslog framing.
    :ivar outputPaused: whether the clients are paused because the data log's output is
        behind (see :meth:`pauseClients`).
    :ivar pauses: how many times the clients were paused for the data log.
    :ivar descriptorCeiling: the highest descriptor number a client may get before the
        listening ports stop accepting (``ulimit -n`` less :data:`RESERVED_DESCRIPTORS`).
    :ivar deferredAccepts: how many times accepting stopped near the descriptor limit.
    :ivar connectionNumber: gives the ``served``-th connection its ``CONN``: ``served``
        itself, unless ``--workers`` gives each worker numbers of its own
        (:class:`twisted_journey.workers.worker.ConnectionNumbers`).
    """

    protocol = MuxProtocol
    connectionNumber: Callable[[int], int] = int

    def __init__(
        self,
        datalog: DataLog,
        *,
        recordFormat: str = "text",
        mode: str = "line",
        framing: str = "lines",
        maxLineLength: int = DEFAULT_MAX_LINE_LENGTH,
        timeout: float | None = None,
        broadcast: bool = False,
        broadcastBuffer: int = DEFAULT_BROADCAST_BUFFER,
        maxConnections: int | None = None,
        maxPerPeer: int | None = None,
        quiet: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(maxConnections, maxPerPeer, quiet, clock)
        self.datalog = datalog
        self.recordFormat = recordFormat
        self.mode = mode
        self.framing = framing
        self.maxLineLength = maxLineLength
        self.timeout = timeout
        self.broadcast = broadcast
        self.broadcastBuffer = broadcastBuffer
        self.clients: dict[MuxProtocol, None] = {}
        self.timedOut = 0
        self.droppedSlow = 0
        self.framingErrors = 0
        self.outputPaused = False
        self.pauses = 0
        self.descriptorCeiling = descriptorCeiling()
        self.deferredAccepts = 0
        #: the readers of the ``udp:`` listeners (see :class:`DatagramService`), kept
        #: after they stop for their counts
        self.datagramReaders: list[_DatagramReader] = []
        self._pausedPorts: list[Any] = []
        self._lastDeferredReport = -math.inf
        datalog.pause = self.pauseClients
        datalog.resume = self.resumeClients
        self._sweeper: IDelayedCall | None = None
        #: sweeps so far; a connection notes the current one when data arrives
        self.generation = 0
        self._sweepInterval = 1.0
        self._idleSweeps = 0
        if timeout is not None:
            self._sweepInterval = min(timeout / 4, 1.0)
            # Idle for at least ``timeout``: no data in the last ``ceil(timeout / interval)``
            # whole sweep intervals, so at least that many sweeps, plus the partial one.
            self._idleSweeps = math.ceil(timeout / self._sweepInterval - 1e-9) + 1

    def newFramer(self, protocol: MuxProtocol) -> records.Framer:
        """
        The framer for a connection's first data (idle connections never get one).
        """
        return new_framer(
            self.framing,
            self.recordFormat,
            protocol.peer,
            protocol.conn,
            mode=self.mode,
            max_line_length=self.maxLineLength,
            keep_lines=self.broadcast,
        )

    def relay(self, sender: MuxProtocol | None, lines: bytes) -> None:
        """
        Send ``lines`` to every client but ``sender`` (to all of them for a datagram's).
        """
        for client in list(self.clients):
            if client is not sender:
                client.relayed(lines)

    def startFactory(self) -> None:
        """
        Start the idle sweep when there is a timeout.
        """
        if self.timeout is not None:
            self._scheduleSweep()

    def stopFactory(self) -> None:
        """
        Stop the idle sweep and log the totals.
        """
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        super().stopFactory()

    def _scheduleSweep(self) -> None:
        self._sweeper = self.clock.callLater(self._sweepInterval, self.sweep)

    def sweep(self) -> None:
        """
        Drop every client idle for longer than ``timeout`` seconds.

        One timer for all connections, rather than one per connection, and a sweep
        counter (``generation``) rather than a time per connection, keep an idle
        connection's memory small.  The sweep runs every ``min(timeout / 4, 1)`` seconds;
        a client is dropped between ``timeout`` and ``timeout`` plus one sweep interval
        after its last data.
        """
        assert self.timeout is not None
        self.generation += 1
        if self.outputPaused:
            # Not reading them: nobody is idle by choice.  resumeClients marks them active.
            self._scheduleSweep()
            return
        oldest = self.generation - self._idleSweeps
        for client in [c for c in self.clients if c.lastActive <= oldest]:
            self.timedOut += 1
            if not self.quiet:
                self.log.info(
                    "Dropped {peer}: idle for {timeout} seconds",
                    peer=client.peer,
                    timeout=self.timeout,
                )
            client.finishRecording()
            client.transport.abortConnection()
        self._scheduleSweep()

    def pauseClients(self) -> None:
        """
        The data log's output is behind (a pipe nobody reads): read from no client until
        it catches up.  Nothing is lost; the clients wait, and so do new ones.
        """
        self.outputPaused = True
        self.pauses += 1
        for client in self.clients:
            client.transport.pauseProducing()
        for reader in self.datagramReaders:
            reader.pause()
        self.log.warn(
            "Data log {path} is {backlog} bytes behind its output: reading no client "
            "until it catches up",
            path=self.datalog.path,
            backlog=self.datalog.backlog,
        )

    def resumeClients(self) -> None:
        """
        The data log caught up: read every client again.
        """
        self.outputPaused = False
        for client in self.clients:
            client.lastActive = self.generation
            client.transport.resumeProducing()
        for reader in self.datagramReaders:
            reader.resume()
        self.log.info("Data log {path} caught up: reading clients again", path=self.datalog.path)

    def _ourPorts(self) -> list[Any]:
        """
        The listening ports that accept for this factory (directly, or through a wrapping
        factory such as TLS's or the PROXY protocol's), as the reactor watches them.
        """
        ports = []
        getReaders = getattr(self.clock, "getReaders", None)
        for reader in getReaders() if getReaders is not None else ():
            factory = getattr(reader, "factory", None)
            while factory is not None and factory is not self:
                factory = getattr(factory, "wrappedFactory", None)
            if factory is self and IListeningPort.providedBy(reader):
                ports.append(reader)
        return ports

    def checkDescriptors(self, transport: Any) -> None:
        """
        A client got a descriptor: when it is near the limit, stop accepting until a
        client leaves, so that waiting clients stay in the listen backlog (served later)
        rather than being accepted and closed unread.
        """
        while not hasattr(transport, "fileno") and hasattr(transport, "transport"):
            transport = transport.transport  # TLS, PROXY: the socket is underneath
        try:
            fileno = transport.fileno()
        except Exception:
            return
        if not isinstance(fileno, int) or fileno < self.descriptorCeiling:
            return
        ports = self._ourPorts()
        for port in ports:
            port.stopReading()
        self._pausedPorts.extend(ports)
        self.deferredAccepts += 1
        now = self.clock.seconds()
        if now - self._lastDeferredReport >= 10:
            self._lastDeferredReport = now
            self.log.warn(
                "Accepting no more clients for now (descriptor {fileno} is near the limit, "
                "ulimit -n {limit}; {open} clients connected): new clients wait in the listen "
                "backlog until one leaves ({times} times so far)",
                fileno=fileno,
                limit=self.descriptorCeiling + RESERVED_DESCRIPTORS,
                open=len(self.clients),
                times=self.deferredAccepts,
            )

    def descriptorFreed(self) -> None:
        """
        A client left: accept again if accepting had stopped near the descriptor limit.
        """
        if not self._pausedPorts:
            return
        ports, self._pausedPorts = self._pausedPorts, []
        for port in ports:
            if getattr(port, "connected", False) and not getattr(port, "disconnecting", False):
                port.startReading()

    def finishAll(self) -> None:
        """
        Record every client's pending partial line and stop recording; used at shutdown,
        before the data log is closed.
        """
        for client in list(self.clients):
            # Read no more: what is read must be recorded, and the data log is closing.
            client.transport.pauseProducing()
            client.finishRecording()


@implementer(IReadDescriptor)
class _DatagramReader:
    """
    Reads a ``udp:`` listener's datagrams into the factory's data log whenever the
    reactor finds its socket readable (see :mod:`twisted_journey.datagrams`).
    """

    def __init__(self, receiver: DatagramReceiver, factory: MuxFactory) -> None:
        self.receiver = receiver
        self.factory = factory
        self.reading = False
        self.closed = False
        self._reportedError = False

    def fileno(self) -> int:
        """
        The socket's descriptor.
        """
        return self.receiver.sock.fileno()

    def doRead(self) -> None:
        """
        Record the waiting datagrams.
        """
        factory = self.factory
        before = self.receiver.received_bytes
        try:
            out = self.receiver.receive(factory.clock.seconds())
        except OSError as e:
            if not self._reportedError:
                self._reportedError = True
                factory.log.warn(
                    "Cannot read datagrams on {address}: {reason}",
                    address=self.receiver.sock.getsockname(),
                    reason=e.strerror or str(e),
                )
            return
        factory.bytesReceived += self.receiver.received_bytes - before
        if out:
            factory.datalog.write(out)
            if self.receiver.complete:
                factory.relay(None, self.receiver.complete)

    def pause(self) -> None:
        """
        Read nothing while the data log is behind (the kernel drops, counted).
        """
        if self.reading:
            cast(IReactorFDSet, self.factory.clock).removeReader(self)
            self.reading = False

    def resume(self) -> None:
        """
        Read again (unless the listener is closed).
        """
        if not self.reading and not self.closed:
            cast(IReactorFDSet, self.factory.clock).addReader(self)
            self.reading = True

    def connectionLost(self, reason: Failure) -> None:
        """
        The reactor stopped watching the socket.
        """
        self.reading = False

    def logPrefix(self) -> str:
        """
        What the reactor's log says this descriptor is.
        """
        return "journey-mux udp"


class DatagramService(Service):
    """
    A ``udp:`` listener of a :class:`MuxFactory`: binds its socket when the service starts
    (before twistd drops privileges, so port 514 works), records every datagram as one
    message, and closes the socket at stop.

    :param spec: from :func:`twisted_journey.listen.parse_udp`.
    :param fileno: the descriptor of a socket already bound as ``spec`` says (a worker's
        of ``--workers N``, shared with the others), to read instead of binding one.
    """

    def __init__(self, factory: MuxFactory, spec: ListenSpec, fileno: int | None = None) -> None:
        self.factory = factory
        self.spec = spec
        self.fileno = fileno
        self.reader: _DatagramReader | None = None
        startup.keepStandardError()

    def privilegedStartService(self) -> None:
        """
        Bind, or raise :class:`~twisted_journey.startup.StartError` with one sentence
        saying why not (as a stream listener does, in daemon mode too).
        """
        super().privilegedStartService()
        if self.fileno is not None:
            sock = socket.socket(fileno=self.fileno)
            sock.setblocking(False)
        else:
            try:
                sock = bind_udp(self.spec)
            except ListenError as e:
                raise startup.StartError(str(e)) from None
        factory = self.factory
        receiver = DatagramReceiver(
            sock,
            framing=factory.framing,
            record_format=factory.recordFormat,
            max_line_length=factory.maxLineLength,
            keep_messages=factory.broadcast,
        )
        self.reader = _DatagramReader(receiver, factory)

    def startService(self) -> None:
        """
        Start reading (unless the data log is behind), and let go of the standard error
        kept for reporting a failure to bind.
        """
        super().startService()
        if self.reader is None:
            self.privilegedStartService()
        assert self.reader is not None
        startup.started()
        self.factory.datagramReaders.append(self.reader)
        if not self.factory.outputPaused:
            self.reader.resume()
        if not self.factory.quiet:
            self.factory.log.info(
                "Listening for datagrams on {address}",
                address=self.reader.receiver.sock.getsockname(),
            )

    def stopService(self) -> None:
        """
        Record what is waiting, stop reading and close the socket.
        """
        super().stopService()
        reader = self.reader
        if reader is None:
            return
        reader.doRead()
        reader.pause()
        reader.closed = True
        reader.receiver.sock.close()
        self.reader = None


@implementer(IWriteDescriptor)
class _OutputWatcher:
    """
    Watches a data log's output for writability while it is full, and flushes it then.

    :param datalog: the data log; :meth:`doWrite` calls its ``flush``.
    """

    def __init__(self, datalog: DataLog) -> None:
        self.datalog = datalog
        self.fd = datalog.fileno()

    def fileno(self) -> int:
        """
        The output's descriptor, as it was when the watch began.
        """
        return self.fd

    def doWrite(self) -> None:
        """
        The output has room: write what waits (the data log stops the watch once done).
        """
        self.datalog.flush()

    def connectionLost(self, reason: Failure) -> None:
        """
        The reactor gave up on the descriptor (the reader went away): one last flush
        reports the error and drops what waits, counted.
        """
        self.datalog.flush()

    def logPrefix(self) -> str:
        """
        What the reactor's log says this descriptor is.
        """
        return "journey-mux data log"


class DataLogService(Service):
    """
    Flushes a data log every ``flushInterval`` seconds, flushes it again whenever a
    non-blocking output (a pipe) has room, reopens it on ``SIGUSR1``, and at stop records
    every client's partial line, flushes and closes it.

    Put it in a ``MultiService`` before the listening services: a ``MultiService`` stops its
    children in reverse order, so the ports stop accepting first.
    """

    log = Logger()

    def __init__(
        self,
        factory: MuxFactory,
        flushInterval: float = DEFAULT_FLUSH_INTERVAL,
        clock: IReactorTime | None = None,
        installSignalHandler: bool = True,
    ) -> None:
        self.factory = factory
        self.flushInterval = flushInterval
        self.clock = clock
        self.installSignalHandler = installSignalHandler
        self._loop: LoopingCall | None = None
        self._previousHandler: Any = None
        self._watcher: _OutputWatcher | None = None
        factory.datalog.watch = self._watchOutput

    @property
    def reactor(self) -> Any:
        """
        The clock given, else the factory's (the global reactor by default).
        """
        return self.clock or self.factory.clock

    def _watchOutput(self, waiting: bool) -> None:
        """
        Watch the data log's output for writability while it would block.
        """
        reactor = cast(IReactorFDSet, self.reactor)
        if self._watcher is not None:
            reactor.removeWriter(self._watcher)
            self._watcher = None
        if waiting and self.factory.datalog.fileno() >= 0:
            self._watcher = _OutputWatcher(self.factory.datalog)
            reactor.addWriter(self._watcher)

    def startService(self) -> None:
        """
        Start the flush timer and the ``SIGUSR1`` handler; reopen the data log if
        ``SIGUSR1`` came while the server was starting.
        """
        super().startService()
        self._loop = LoopingCall(self.factory.datalog.flush)
        self._loop.clock = self.reactor
        self._loop.start(self.flushInterval, now=False)
        if self.installSignalHandler:
            self._previousHandler = signal.signal(signal.SIGUSR1, self._reopenSignal)
            if signal.SIGUSR1 in signalsBeforeStart:
                signalsBeforeStart.clear()
                self.reopen()

    def _reopenSignal(self, number: int, frame: Any) -> None:
        """
        ``SIGUSR1``: reopen the data log from the reactor thread; chain to the handler
        that was there (twistd's, which rotates its own log file).
        """
        from twisted.internet import reactor

        reactor.callFromThread(self.reopen)  # type: ignore[attr-defined]
        if callable(self._previousHandler) and not isinstance(
            self._previousHandler, _EarlySignalCatcher
        ):
            self._previousHandler(number, frame)

    def reopen(self) -> None:
        """
        Reopen the data log (logrotate moved it away).
        """
        self.factory.datalog.reopen()
        self.log.info("Reopened data log {path}", path=self.factory.datalog.path)

    def stopService(self) -> None:
        """
        Record what every client sent, flush and close the data log (waiting a few
        seconds at most for a stalled output, then reporting what it did not take).
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.installSignalHandler and self._previousHandler is not None:
            # Back to what was there, but never to the default, which kills: the
            # reactor may still run a while.
            previous = self._previousHandler
            if previous in (signal.SIG_DFL, None):
                previous = signal.SIG_IGN
            signal.signal(signal.SIGUSR1, previous)
            self._previousHandler = None
        self.factory.finishAll()
        self._watchOutput(False)
        datalog = self.factory.datalog
        datalog.close()
        self.log.info(
            "Data log {path} closed: {written} records ({bytes} bytes) written, "
            "{dropped} records lost",
            path=datalog.path,
            written=datalog.written,
            bytes=datalog.written_bytes,
            dropped=datalog.dropped,
        )
