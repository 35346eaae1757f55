"""
Unit tests for the server side of :mod:`twisted_journey.mux` that keeps it alive under
pressure: clients paused while the data log's output is behind, accepting stopped near the
descriptor limit, the output watched for room, and ``SIGUSR1`` caught from the start.
Nothing here touches the network.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from tests.test_mux import MuxTestCase
from twisted_journey import mux
from twisted_journey.datalog import DataLog
from twisted_journey.mux import DataLogService, MuxFactory, catchEarlySignals


class NumberedTransport(StringTransport):
    """
    A ``StringTransport`` with a descriptor number.
    """

    def __init__(self, fileno: int) -> None:
        super().__init__()
        self._fileno = fileno

    def fileno(self) -> int:
        return self._fileno


@implementer(IListeningPort)
class FakePort:
    """
    A listening port as the reactor sees it: a reader with a factory.
    """

    connected = True
    disconnecting = False

    def __init__(self, factory: Any, reactor: Any) -> None:
        self.factory = factory
        self.reactor = reactor
        reactor.addReader(self)

    def stopReading(self) -> None:
        self.reactor.removeReader(self)

    def startReading(self) -> None:
        self.reactor.addReader(self)

    def startListening(self) -> None:
        """Unused."""

    def stopListening(self) -> None:
        """Unused."""

    def getHost(self) -> Any:
        """Unused."""


class WrappingFactory:
    """
    A factory wrapping another, as TLS's and the PROXY protocol's do.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrappedFactory = wrapped


class BackPressureTests(MuxTestCase):
    """
    The clients are paused, not the server, when the data log's output is behind.
    """

    def test_pauseAndResume(self) -> None:
        """
        The data log's pause stops every client's transport (and new ones as they come),
        its resume restarts them; the event is logged once each way.
        """
        factory = self.factory(quiet=True)
        _, first = self.connect(factory)
        self.datalog.pause()
        self.assertEqual(first.producerState, "paused")
        _, second = self.connect(factory, port=5001)
        self.assertEqual(second.producerState, "paused")
        self.assertTrue(factory.outputPaused)
        self.datalog.resume()
        self.assertEqual((first.producerState, second.producerState), ("producing", "producing"))
        formats = [e["log_format"] for e in self.events]
        self.assertEqual(sum("reading no client" in f for f in formats), 1)
        self.assertEqual(sum("caught up" in f for f in formats), 1)

    def test_pausedClientsAreNotIdle(self) -> None:
        """
        A client the server does not read while paused is not dropped as idle.
        """
        factory = self.factory(quiet=True, timeout=2)
        _, transport = self.connect(factory)
        self.datalog.pause()
        for _ in range(20):
            self.clock.advance(0.5)
        self.assertFalse(transport.disconnected)
        self.datalog.resume()
        self.clock.advance(1)
        self.assertFalse(transport.disconnected)
        for _ in range(8):
            self.clock.advance(0.5)
        self.assertTrue(transport.disconnected)

    def test_pipeOutput(self) -> None:
        """
        With a FIFO nobody reads as the data log, records past the bound pause the
        clients and the service watches the output; reading it resumes them.
        """
        path = os.path.abspath(self.mktemp())
        os.mkfifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        datalog = DataLog(path, buffer_bytes=1 << 14, max_backlog=1 << 18)
        self.addCleanup(datalog.close)
        factory = MuxFactory(datalog, clock=self.clock, quiet=True)
        service = DataLogService(factory, 1.0, clock=self.clock, installSignalHandler=False)
        service.startService()
        self.addCleanup(service.stopService)
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        transport = StringTransport()
        protocol.makeConnection(transport)
        while not factory.outputPaused:
            protocol.dataReceived(b"y" * 999 + b"\n")
        self.assertEqual(transport.producerState, "paused")
        [watcher] = self.clock.getWriters()
        self.assertEqual(watcher.fileno(), datalog.fileno())
        while datalog.backlog:
            while True:
                try:
                    os.read(reader, 1 << 20)
                except BlockingIOError:
                    break
            watcher.doWrite()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(self.clock.getWriters(), [])


class DescriptorTests(MuxTestCase):
    """
    Near the descriptor limit the ports stop accepting until a client leaves.
    """

    def test_stopAndResumeAccepting(self) -> None:
        """
        A client whose descriptor reaches the ceiling stops this factory's ports (direct
        or wrapped), not others'; the next client to leave starts them again.
        """
        factory = self.factory(quiet=True)
        factory.descriptorCeiling = 100
        direct = FakePort(factory, self.clock)
        wrapped = FakePort(WrappingFactory(factory), self.clock)
        other = FakePort(MuxFactory(self.datalog, clock=self.clock), self.clock)
        low = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert low is not None
        low.makeConnection(NumberedTransport(99))
        self.assertEqual(set(self.clock.getReaders()), {direct, wrapped, other})
        high = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert high is not None
        high.makeConnection(NumberedTransport(100))
        self.assertEqual(self.clock.getReaders(), [other])
        self.assertEqual(factory.deferredAccepts, 1)
        warnings = [e for e in self.events if "Accepting no more" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        low.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(set(self.clock.getReaders()), {direct, wrapped, other})

    def test_ceilingFromLimit(self) -> None:
        """
        The ceiling is ``ulimit -n`` less the reserve.
        """
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            self.assertEqual(mux.descriptorCeiling(), 1 << 30)
        else:
            self.assertEqual(mux.descriptorCeiling(), soft - mux.RESERVED_DESCRIPTORS)


class EarlySignalTests(MuxTestCase):
    """
    ``SIGUSR1`` before the service starts is caught, and acted on when it starts.
    """

    def setUp(self) -> None:
        super().setUp()
        previous = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        self.addCleanup(mux.signalsBeforeStart.clear)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    def test_caughtAndReplayed(self) -> None:
        """
        :func:`catchEarlySignals` catches ``SIGUSR1`` (with a handler twistd still takes
        for unset, so it installs its log rotation); the service reopens the data log when
        it starts, and never leaves the default (deadly) action behind when it stops.
        """
        catchEarlySignals()
        handler = signal.getsignal(signal.SIGUSR1)
        self.assertTrue(callable(handler))
        self.assertFalse(handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertEqual(mux.signalsBeforeStart, [signal.SIGUSR1])
        factory = self.factory(quiet=True)
        service = DataLogService(factory, 1.0, clock=self.clock)
        service.startService()
        self.assertEqual(mux.signalsBeforeStart, [])
        self.assertIn("Reopened data log {path}", [e["log_format"] for e in self.events])
        service.stopService()
        self.assertIs(signal.getsignal(signal.SIGUSR1), handler)

    def test_leavesOtherHandlers(self) -> None:
        """
        A handler already there (twistd's) is left alone.
        """
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        catchEarlySignals()
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_IGN)
