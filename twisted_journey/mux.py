# -*- test-case-name: tests.test_mux -*-
"""
The multiplexing logging server and its client (``journey send``), on Twisted.

Wire contract: a client connects and sends lines (``\\n``-terminated; one ``\\r`` before
the ``\\n`` is dropped).  The server sends nothing back, except with ``broadcast``: then
every complete line a client sends is relayed, as it was received, to every other client.
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
import fcntl
import math
import os
import signal
import stat
from collections.abc import Callable
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet import fdesc
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IDelayedCall,
    IPullProducer,
    IPushProducer,
    IReactorFDSet,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_journey import records
from twisted_journey.datalog import DataLog
from twisted_journey.policies import LimitedFactory, LimitedProtocol, peerOf

__all__ = [
    "DataLogService",
    "InputReader",
    "InputSender",
    "MuxFactory",
    "MuxProtocol",
    "SendProtocol",
    "sendStream",
]


@implementer(IPushProducer)
class MuxProtocol(LimitedProtocol):
    """
    Records every line its client sends; relays them to the other clients when the
    factory broadcasts.

    :ivar conn: this connection's number since the server started.
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
        self.conn = factory.served
        factory.clients[self] = None
        if factory.timeout is not None:
            self.lastActive = factory.generation
        if factory.broadcast:
            self.transport.registerProducer(self, True)

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
        out = framer.feed(data, now)
        if out:
            factory.datalog.write(out)
            if framer.complete:
                factory.relay(self, framer.complete)

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
        if not factory.quiet:
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


class MuxFactory(LimitedFactory):
    """
    Builds a :class:`MuxProtocol` for each client; holds the data log and the settings.

    :param datalog: where records go.
    :param recordFormat: ``"text"`` or ``"json"``.
    :param mode: ``"line"`` or ``"raw"``.
    :param maxLineLength: longer lines are recorded truncated.
    :param timeout: drop a client idle this many seconds (``None``: never).
    :param broadcast: relay every line to every other client.
    :param broadcastBuffer: drop a client with more relayed bytes than this waiting.
    :param clock: time source and timer; the global reactor when ``None``.

    :ivar clients: the connections open now, in the order they opened (a ``dict`` with
        ``None`` values: about 30 bytes a connection, where a ``set`` takes 26 to 100).
    :ivar timedOut: clients dropped for idleness.
    :ivar droppedSlow: broadcast clients dropped for not reading.
    """

    protocol = MuxProtocol

    def __init__(
        self,
        datalog: DataLog,
        *,
        recordFormat: str = "text",
        mode: str = "line",
        maxLineLength: int = 65536,
        timeout: float | None = None,
        broadcast: bool = False,
        broadcastBuffer: int = 1 << 20,
        maxConnections: int | None = None,
        maxPerPeer: int | None = None,
        quiet: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(maxConnections, maxPerPeer, quiet, clock)
        self.datalog = datalog
        self.recordFormat = recordFormat
        self.mode = mode
        self.maxLineLength = maxLineLength
        self.timeout = timeout
        self.broadcast = broadcast
        self.broadcastBuffer = broadcastBuffer
        self.clients: dict[MuxProtocol, None] = {}
        self.timedOut = 0
        self.droppedSlow = 0
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
        return records.Framer(
            self.recordFormat,
            protocol.peer,
            protocol.conn,
            mode=self.mode,
            max_line_length=self.maxLineLength,
            keep_lines=self.broadcast,
        )

    def relay(self, sender: MuxProtocol, lines: bytes) -> None:
        """
        Send ``lines`` to every client but ``sender``.
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

    def finishAll(self) -> None:
        """
        Record every client's pending partial line and stop recording; used at shutdown,
        before the data log is closed.
        """
        for client in list(self.clients):
            # Read no more: what is read must be recorded, and the data log is closing.
            client.transport.pauseProducing()
            client.finishRecording()


class DataLogService(Service):
    """
    Flushes a data log every ``flushInterval`` seconds, reopens it on ``SIGUSR1``, and at
    stop records every client's partial line, flushes and closes it.

    Put it in a ``MultiService`` before the listening services: a ``MultiService`` stops its
    children in reverse order, so the ports stop accepting first.
    """

    log = Logger()

    def __init__(
        self,
        factory: MuxFactory,
        flushInterval: float = 1.0,
        clock: IReactorTime | None = None,
        installSignalHandler: bool = True,
    ) -> None:
        self.factory = factory
        self.flushInterval = flushInterval
        self.clock = clock
        self.installSignalHandler = installSignalHandler
        self._loop: LoopingCall | None = None
        self._previousHandler: Any = None

    def startService(self) -> None:
        """
        Start the flush timer and the ``SIGUSR1`` handler.
        """
        super().startService()
        self._loop = LoopingCall(self.factory.datalog.flush)
        self._loop.clock = self.clock or self.factory.clock
        self._loop.start(self.flushInterval, now=False)
        if self.installSignalHandler:
            self._previousHandler = signal.signal(signal.SIGUSR1, self._reopenSignal)

    def _reopenSignal(self, number: int, frame: Any) -> None:
        """
        ``SIGUSR1``: reopen the data log from the reactor thread; chain to the handler
        that was there (twistd's, which rotates its own log file).
        """
        from twisted.internet import reactor

        reactor.callFromThread(self.reopen)  # type: ignore[attr-defined]
        if callable(self._previousHandler):
            self._previousHandler(number, frame)

    def reopen(self) -> None:
        """
        Reopen the data log (logrotate moved it away).
        """
        self.factory.datalog.reopen()
        self.log.info("Reopened data log {path}", path=self.factory.datalog.path)

    def stopService(self) -> None:
        """
        Record what every client sent, flush and close the data log.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.installSignalHandler and self._previousHandler is not None:
            signal.signal(signal.SIGUSR1, self._previousHandler)
            self._previousHandler = None
        self.factory.finishAll()
        datalog = self.factory.datalog
        datalog.close()
        self.log.info(
            "Data log {path} closed: {written} bytes written, {dropped} records lost",
            path=datalog.path,
            written=datalog.written,
            dropped=datalog.dropped_records,
        )


# --- journey send ------------------------------------------------------------------------


def _isWatchable(fd: int) -> bool:
    """
    Whether the reactor can wait for ``fd`` to be readable: a pipe, a socket or a
    terminal.  ``epoll`` refuses regular files, directories and devices such as
    ``/dev/null`` (they are always readable, and a read of them does not wait).  A
    descriptor that cannot be examined is not watchable: reading it reports the error.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class _Input:
    """
    What both ``journey send`` input producers do with their descriptor: read a chunk and
    tell the protocol of it, of the end of the input or of a read error.
    """

    chunkSize = 65536
    fd: int
    protocol: SendProtocol

    @property
    def sent(self) -> int:
        """
        The bytes sent so far (counted by the protocol).
        """
        return self.protocol.sent

    def readChunk(self) -> None:
        """
        Read the next chunk and pass it on; a non-blocking input with nothing to read
        yet passes nothing.
        """
        try:
            data = os.read(self.fd, self.chunkSize)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.protocol.inputFailed(e)
            return
        if data:
            self.protocol.inputReceived(data)
        else:
            self.protocol.inputEnded()


@implementer(IPullProducer)
class InputSender(_Input):
    """
    Feeds a regular file's bytes to a transport as fast as it takes them (a pull
    producer: the transport asks for more when its buffer has room).

    Reads block, which for a file (or ``/dev/null``) means only the disk: a file is
    always readable, and the reactor cannot watch one.  Input that can keep the reader
    waiting (a pipe, a terminal, a socket) goes through :class:`InputReader` instead.

    :param fd: the input, open for reading.
    :param protocol: told of each chunk, of the end of the input and of a read error.
    """

    def __init__(self, fd: int, protocol: SendProtocol) -> None:
        self.fd = fd
        self.protocol = protocol

    def start(self) -> None:
        """
        Register with the transport; it pulls the first chunk.
        """
        self.protocol.transport.registerProducer(self, False)

    def stop(self) -> None:
        """
        Nothing to release: the transport asks for no more once it is unregistered.
        """

    def resumeProducing(self) -> None:
        """
        Send the next chunk, or half-close at end of input.
        """
        self.readChunk()

    def stopProducing(self) -> None:
        """
        The connection is gone.
        """


class InputReader(_Input, FileDescriptor):
    """
    Feeds a pipe's, a terminal's or a socket's bytes to a transport as they arrive,
    read when the reactor says the input is readable, so that the reactor keeps running
    (printing what the server relays, noticing it close) while the input is quiet.

    It is the transport's push producer: a full write buffer pauses it
    (:meth:`pauseProducing` stops reading), and resumes it once drained.  While it reads,
    the descriptor is non-blocking; its flags are put back as they were when it stops, for
    a terminal's are shared with the shell that started ``journey send``.

    :param fd: the input, open for reading.
    :param protocol: told of each chunk, of the end of the input and of a read error.
    :param reactor: the reactor to watch ``fd`` with; the global one when ``None``.
    """

    _flags: int | None = None

    def __init__(
        self, fd: int, protocol: SendProtocol, reactor: IReactorFDSet | None = None
    ) -> None:
        FileDescriptor.__init__(self, reactor)
        self.fd = fd
        self.protocol = protocol

    def fileno(self) -> int:
        """
        The input descriptor, for the reactor to watch.
        """
        return self.fd

    def logPrefix(self) -> str:
        """
        What the reactor's log says this descriptor is.
        """
        return "journey send input"

    def start(self) -> None:
        """
        Make the input non-blocking (remembering its flags), register with the transport
        as a push producer and start reading.
        """
        self._flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fdesc.setNonBlocking(self.fd)
        self.connected = 1
        self.protocol.transport.registerProducer(self, True)
        self.startReading()

    def stop(self) -> None:
        """
        Read no more, and give the input back its original flags; safe to call twice.
        """
        self.connected = 0
        self.disconnected = 1
        self.stopReading()
        if self._flags is not None:
            flags, self._flags = self._flags, None
            # The descriptor is the caller's, and outlives us; if it was closed under us
            # there is nothing left to restore.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)

    def doRead(self) -> None:
        """
        The input is readable: send what it holds, or half-close at its end.
        """
        self.readChunk()

    def stopProducing(self) -> None:
        """
        The connection is gone: stop reading.
        """
        self.stop()

    def connectionLost(self, reason: Failure) -> None:
        """
        The reactor dropped the input: at its end (``epoll`` reports a pipe whose writer
        has gone as hung up, without calling :meth:`doRead`), when :meth:`doRead` failed,
        or at shutdown.  Stop reading; tell the protocol of the end or the failure.
        """
        reading = self._flags is not None
        self.stop()
        super().connectionLost(reason)
        if not reading:
            return
        if reason.check(ConnectionDone):
            self.protocol.inputEnded()
        elif not reason.check(ConnectionLost):
            # ConnectionLost is the reactor shutting down: the connection goes with it.
            assert reason.value is not None
            self.protocol.inputFailed(reason.value)


class SendProtocol(Protocol):
    """
    The client side of ``journey send``: streams input, prints what the server sends,
    fires ``done`` when the server closes (with the number of bytes sent) or fails if it
    closed before all the input was sent.

    A regular file (or a device such as ``/dev/null``) is read by an :class:`InputSender`;
    a pipe, a terminal or a socket by an :class:`InputReader`, through the reactor.

    :param fd: the input, open for reading; left open, with its flags as they were.
    :param write: called with each chunk the server sends.
    :param reactor: the reactor that watches a pipe, terminal or socket input; the global
        one when ``None``.

    :ivar sender: the producer reading the input.
    :ivar sent: the bytes of input written to the connection so far.
    """

    transport: Any
    inputDone = False
    inputError = ""
    sent = 0

    def __init__(
        self,
        fd: int,
        write: Callable[[bytes], object],
        reactor: IReactorFDSet | None = None,
    ) -> None:
        self.fd = fd
        self.write = write
        self.done: Deferred[int] = Deferred()
        self.sender: InputSender | InputReader
        if _isWatchable(fd):
            self.sender = InputReader(fd, self, reactor)
        else:
            self.sender = InputSender(fd, self)

    def connectionMade(self) -> None:
        """
        Start streaming the input.
        """
        self.sender.start()

    def inputReceived(self, data: bytes) -> None:
        """
        Send a chunk of input.
        """
        self.sent += len(data)
        self.transport.write(data)

    def inputEnded(self) -> None:
        """
        The input is finished: half-close, and wait for the server to close.
        """
        self.sender.stop()
        self.transport.unregisterProducer()
        self.inputDone = True
        self.transport.loseWriteConnection()

    def inputFailed(self, error: BaseException) -> None:
        """
        The input cannot be read: drop the connection (``done`` fails saying why).
        """
        self.sender.stop()
        self.inputError = getattr(error, "strerror", None) or str(error)
        self.transport.unregisterProducer()
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        """
        Print what the server relays.
        """
        self.write(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The server closed: done, if all the input went out.
        """
        self.sender.stop()
        if self.inputError:
            self.done.errback(ConnectionError(f"cannot read the input: {self.inputError}"))
        elif self.inputDone:
            self.done.callback(self.sent)
        else:
            self.done.errback(
                ConnectionError("the server closed the connection before all input was sent")
            )


def sendStream(
    reactor: IReactorTCP,
    host: str,
    port: int,
    fd: int,
    write: Callable[[bytes], object],
    timeout: float = 10.0,
) -> Deferred[int]:
    """
    Connect to a journey-mux server, send everything readable from ``fd`` with
    back-pressure, half-close, pass what the server sends to ``write``, and fire with the
    number of bytes sent when the server closes the connection.

    A pipe, terminal or socket input is read through ``reactor`` (which must also provide
    ``IReactorFDSet``, as every POSIX reactor does), so what the server relays is printed
    while the input is quiet; a regular file is read as fast as the connection takes it.

    :param reactor: connects, and watches the input.
    :param host: the server's host name or address.
    :param port: the server's port.
    :param fd: the input, open for reading.
    :param write: called with each chunk the server sends.
    :param timeout: seconds to connect.
    """
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    protocol = SendProtocol(fd, write, cast(IReactorFDSet, reactor))

    async def exchange() -> int:
        await endpoint.connect(Factory.forProtocol(lambda: protocol))
        return await protocol.done

    return Deferred.fromCoroutine(exchange())
