"""
Unit tests for :mod:`twisted_journey.mux`: the protocol and factory on
``StringTransport`` and ``MemoryReactorClock``, and the data-log service.  Nothing here
touches the network.  (The ``journey send`` client's tests are in :mod:`tests.test_client`.)
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.datalog import DataLog
from twisted_journey.mux import (
    DataLogService,
    MuxFactory,
    MuxProtocol,
)

#: 2026-11-27T02:17:39.123456Z
NOW = 1795745859.123456


class MuxTestCase(SynchronousTestCase):
    """
    Builds factories writing to a temporary data log on a fake clock.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(NOW)
        self.path = Path(self.mktemp()).absolute()
        self.datalog = DataLog(str(self.path))
        self.addCleanup(self.datalog.close)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def factory(self, **kwargs: object) -> MuxFactory:
        """
        A started factory on the fake clock.
        """
        factory = MuxFactory(self.datalog, clock=self.clock, **kwargs)  # type: ignore[arg-type]
        factory.doStart()
        self.addCleanup(factory.doStop)
        return factory

    def connect(
        self, factory: MuxFactory, port: int = 5000, host: str = "127.0.0.1"
    ) -> tuple[MuxProtocol, StringTransport]:
        """
        A protocol from ``factory`` connected to a ``StringTransport``.
        """
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
        protocol = factory.buildProtocol(address)
        assert isinstance(protocol, MuxProtocol)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def records(self) -> bytes:
        """
        The data log so far (flushed).
        """
        self.datalog.flush()
        return self.path.read_bytes()


class MuxProtocolTests(MuxTestCase):
    """
    :class:`MuxProtocol` and :class:`MuxFactory`.
    """

    def test_records(self) -> None:
        """
        Each line is a record with the chunk's time, the peer and the connection number.
        """
        factory = self.factory(quiet=True)
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"hello\r\nwor")
        self.clock.advance(1)
        protocol.dataReceived(b"ld\n")
        self.assertEqual(
            self.records(),
            b"2026-11-27T02:17:39.123456Z 127.0.0.1:5000 1 hello\n"
            b"2026-11-27T02:17:40.123456Z 127.0.0.1:5000 1 world\n",
        )

    def test_ipv6AndJson(self) -> None:
        """
        IPv6 peers are bracketed; JSON records carry the same fields.
        """
        factory = self.factory(quiet=True, recordFormat="json")
        protocol, _ = self.connect(factory, host="::1")
        protocol.dataReceived(b"{x}\n")
        self.assertEqual(
            self.records(),
            b'{"time":"2026-11-27T02:17:39.123456Z","peer":"[::1]:5000","conn":1,"line":"{x}"}\n',
        )

    def test_partialOnDisconnect(self) -> None:
        """
        The unterminated last line is recorded, marked, when the connection is lost, and
        the close event gives the counts.
        """
        factory = self.factory()
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"a\nhalf")
        protocol.connectionLost(Failure(ConnectionError()))
        self.assertTrue(self.records().endswith(b" 127.0.0.1:5000 1 half\\[partial]\n"))
        closed = [e for e in self.events if "closed" in e["log_format"]]
        self.assertEqual((closed[0]["bytes"], closed[0]["lines"]), (6, 2))
        self.assertEqual(factory.clients, {})
        self.assertEqual(factory.limits.open, 0)

    def test_dataIsNeverAFormatString(self) -> None:
        """
        Received data goes to the data log only: no log event carries it, whatever it holds,
        and lines cost no log event each.
        """
        factory = self.factory()
        protocol, _ = self.connect(factory)
        before = len(self.events)
        protocol.dataReceived(b"{evil} {0.__class__}\n" * 100)
        self.assertEqual(len(self.events), before)
        self.assertEqual(self.records().count(b"{evil}"), 100)

    def test_connectionNumbers(self) -> None:
        """
        Connections are numbered from 1 in the order they arrive.
        """
        factory = self.factory(quiet=True)
        first, _ = self.connect(factory, 1)
        second, _ = self.connect(factory, 2)
        second.dataReceived(b"b\n")
        first.dataReceived(b"a\n")
        lines = self.records().split(b"\n")
        self.assertEqual(
            [line.split(b" ")[1:] for line in lines[:-1]],
            [[b"127.0.0.1:2", b"2", b"b"], [b"127.0.0.1:1", b"1", b"a"]],
        )

    def test_idleTimeout(self) -> None:
        """
        A client silent for the timeout is dropped by the sweep, at most one sweep
        interval (1 second here) late; an active one is not.
        """
        factory = self.factory(timeout=10.0)
        idle, idleTransport = self.connect(factory, 1)
        busy, busyTransport = self.connect(factory, 2)
        for step in range(1, 25):  # half-second steps, to 12 seconds
            self.clock.advance(0.5)
            busy.dataReceived(b"x\n")
            if step == 19:  # 9.5 seconds: not yet
                self.assertFalse(idleTransport.disconnected)
        self.assertTrue(idleTransport.disconnected)
        self.assertEqual(factory.timedOut, 1)
        self.assertFalse(busyTransport.disconnecting)
        self.assertNotIn(idle, factory.clients)
        self.assertIn(busy, factory.clients)

    def test_noTimeoutByDefault(self) -> None:
        """
        Without a timeout nothing is scheduled and nobody is dropped.
        """
        factory = self.factory()
        self.connect(factory)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_broadcast(self) -> None:
        """
        With broadcast, complete lines go to every other client, not back to the sender.
        """
        factory = self.factory(broadcast=True, quiet=True)
        sender, senderTransport = self.connect(factory, 1)
        _, otherTransport = self.connect(factory, 2)
        sender.dataReceived(b"hi\r\nthere\npart")
        self.assertEqual(otherTransport.value(), b"hi\nthere\n")
        self.assertEqual(senderTransport.value(), b"")

    def test_broadcastDropsSlowClient(self) -> None:
        """
        A client whose transport is paused (it stopped reading) is dropped once more than
        the buffer limit is relayed to it; resuming in time resets the count.
        """
        factory = self.factory(broadcast=True, broadcastBuffer=100, quiet=True)
        sender, _ = self.connect(factory, 1)
        slow, slowTransport = self.connect(factory, 2)
        slow.pauseProducing()
        sender.dataReceived(b"x" * 59 + b"\n")
        slow.pauseProducing()  # as the transport does on every write while full
        slow.resumeProducing()
        slow.pauseProducing()
        sender.dataReceived(b"y" * 59 + b"\n")
        self.assertFalse(slowTransport.disconnecting)
        sender.dataReceived(b"z" * 59 + b"\n")
        self.assertEqual(factory.droppedSlow, 1)
        self.assertNotIn(slow, factory.clients)
        self.assertTrue(any("stopped reading" in e["log_format"] for e in self.events))

    def test_finishAll(self) -> None:
        """
        At shutdown every client's pending line is recorded, and later data is not.
        """
        factory = self.factory(quiet=True)
        one, _ = self.connect(factory, 1)
        two, _ = self.connect(factory, 2)
        one.dataReceived(b"p1")
        two.dataReceived(b"p2")
        factory.finishAll()
        one.dataReceived(b"late\n")
        data = self.records()
        self.assertEqual(data.count(b"\\[partial]"), 2)
        self.assertNotIn(b"late", data)


class DataLogServiceTests(MuxTestCase):
    """
    :class:`DataLogService`.
    """

    def test_flushInterval(self) -> None:
        """
        Records reach the file within the flush interval, not before.
        """
        factory = self.factory(quiet=True)
        service = DataLogService(factory, 1.0, clock=self.clock, installSignalHandler=False)
        service.startService()
        self.addCleanup(service.stopService)
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"soon\n")
        self.assertEqual(self.path.read_bytes(), b"")
        self.clock.advance(1.0)
        self.assertIn(b"soon", self.path.read_bytes())

    def test_stopRecordsAndCloses(self) -> None:
        """
        Stopping records pending lines, flushes and closes the data log.
        """
        factory = self.factory(quiet=True)
        service = DataLogService(factory, 1.0, clock=self.clock, installSignalHandler=False)
        service.startService()
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"whole\nhalf")
        service.stopService()
        self.assertEqual(self.path.read_bytes().count(b"\n"), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reopen(self) -> None:
        """
        :meth:`DataLogService.reopen` starts a new file after the old one was moved.
        """
        factory = self.factory(quiet=True)
        service = DataLogService(factory, 1.0, clock=self.clock, installSignalHandler=False)
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"old\n")
        os.rename(self.path, str(self.path) + ".1")
        service.reopen()
        protocol.dataReceived(b"new\n")
        self.assertIn(b"new", self.records())
        self.assertNotIn(b"new", Path(str(self.path) + ".1").read_bytes())
