"""
Tests for :mod:`twisted_journey.datagrams` (journey-mux's ``udp:`` listeners) on real
loopback UDP sockets, and the counters ``--metrics`` shows for them.
"""

from __future__ import annotations

import json
import select
import socket

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE
from twisted_journey.datagrams import (
    SO_RXQ_OVFL,
    DatagramReceiver,
    bind_udp,
    message,
    socket_drops,
)
from twisted_journey.datalog import DataLog
from twisted_journey.listen import ListenError, parse_udp
from twisted_journey.metrics import snapshot
from twisted_journey.mux import DatagramService, MuxFactory

NOW = 1795745859.123456


class MessageTests(SynchronousTestCase):
    """
    :func:`message` removes what ends a datagram, nothing else.
    """

    def test_strip(self) -> None:
        """
        Trailing LF and NUL bytes, and a CR before an LF, go; leading and inner ones stay.
        """
        self.assertEqual(message(b"<1>a\n"), b"<1>a")
        self.assertEqual(message(b"<1>a\r\n\x00\x00"), b"<1>a")
        self.assertEqual(message(b"\n<1>a\nb\x00c\r"), b"\n<1>a\nb\x00c\r")
        self.assertEqual(message(b"\x00\n"), b"")


class ParseUDPTests(SynchronousTestCase):
    """
    ``udp:PORT[:interface=ADDR]`` descriptions.
    """

    def test_parse(self) -> None:
        """
        A port and an optional interface; anything else is refused in a sentence.
        """
        spec = parse_udp("udp:514:interface=127.0.0.1")
        self.assertEqual((spec.kind, spec.port, spec.interface), ("udp", 514, "127.0.0.1"))
        self.assertEqual(parse_udp("udp:0:interface=\\:\\:1").interface, "::1")
        for bad in ["udp:", "udp:x", "udp:1:backlog=5", "tcp:1"]:
            with self.assertRaises(ListenError):
                parse_udp(bad)


class ReceiverTests(SynchronousTestCase):
    """
    :class:`DatagramReceiver` on a real socket.
    """

    def receiver(self, **kwargs: object) -> tuple[DatagramReceiver, socket.socket]:
        """
        A receiver on a fresh loopback port and a socket connected to it.
        """
        sock = bind_udp(parse_udp("udp:0:interface=127.0.0.1"), **kwargs)  # type: ignore[arg-type]
        self.addCleanup(sock.close)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.connect(sock.getsockname())
        return (
            DatagramReceiver(sock, framing="syslog", record_format="json", max_line_length=100),
            sender,
        )

    def receiveAll(self, receiver: DatagramReceiver, count: int) -> list[dict[str, object]]:
        """
        Wait for ``count`` datagrams; their records.
        """
        out = b""
        while receiver.received < count:
            readable, _, _ = select.select([receiver.sock], [], [], PATIENCE)
            self.assertTrue(readable, "no datagram came")
            out += receiver.receive(NOW)
        return [json.loads(line) for line in out.splitlines()]

    def test_oneRecordPerDatagram(self) -> None:
        """
        Each datagram is one record, connection 0, whatever it holds (LF, NUL, an octet
        count), cut at the limit; an empty one makes no record.
        """
        receiver, sender = self.receiver()
        datagrams = [b"<12>app5: one\n", b"<13>two\nlines\x00", b"", b"5 <1>x", b"a" * 150]
        for datagram in datagrams:
            sender.send(datagram)
        found = self.receiveAll(receiver, 5)
        self.assertEqual(
            [r["line"] for r in found], ["<12>app5: one", "<13>two\nlines", "5 <1>x", "a" * 100]
        )
        self.assertEqual({r["conn"] for r in found}, {0})
        self.assertEqual(found[0]["peer"], f"127.0.0.1:{sender.getsockname()[1]}")
        self.assertEqual(found[0]["syslog"]["app_name"], "app5")  # type: ignore[index]
        self.assertTrue(found[3]["truncated"])
        self.assertEqual(receiver.received_bytes, sum(map(len, datagrams)))

    def test_keptForBroadcast(self) -> None:
        """
        With ``keep_messages``, :attr:`DatagramReceiver.complete` holds the messages of the
        last :meth:`DatagramReceiver.receive`, cut at the limit, framed as a TCP client's
        are relayed: octet counted with ``syslog`` framing, newline-ended with ``lines``.
        """
        datagrams = [b"<13>two\nlines\x00", b"", b"a" * 150]
        for framing, expected in [
            ("syslog", b"13 <13>two\nlines100 " + b"a" * 100),
            ("lines", b"<13>two\nlines\n" + b"a" * 100 + b"\n"),
        ]:
            receiver, sender = self.receiver()
            kept = DatagramReceiver(
                receiver.sock, framing=framing, max_line_length=100, keep_messages=True
            )
            for datagram in datagrams:
                sender.send(datagram)
            relayed = b""
            while kept.received < 3:
                readable, _, _ = select.select([kept.sock], [], [], PATIENCE)
                self.assertTrue(readable, "no datagram came")
                kept.receive(NOW)
                relayed += kept.complete
            self.assertEqual(relayed, expected)
            self.assertEqual(kept.receive(NOW), b"")
            self.assertEqual(kept.complete, b"")
        self.assertEqual(receiver.complete, b"")

    def test_errorAfterDatagramsLosesNone(self) -> None:
        """
        A socket error after some datagrams were read returns their records; one before
        any is raised.
        """
        import errno

        class ErringSocket:
            def __init__(self) -> None:
                self.results: list[object] = [
                    (b"<13>one\n", [], 0, ("192.0.2.1", 514)),
                    OSError(errno.ECONNREFUSED, "Connection refused"),
                ]

            def recvmsg(self, size: int, space: int) -> object:
                result = self.results.pop(0)
                if isinstance(result, OSError):
                    raise result
                return result

        erring = ErringSocket()
        receiver = DatagramReceiver(erring, keep_messages=True)  # type: ignore[arg-type]
        self.assertRegex(receiver.receive(NOW).decode(), r" 192\.0\.2\.1:514 0 <13>one\n$")
        self.assertEqual(receiver.complete, b"<13>one\n")
        erring.results.append(OSError(errno.ECONNREFUSED, "Connection refused"))
        with self.assertRaises(ConnectionRefusedError):
            receiver.receive(NOW)

    def test_kernelDropsCounted(self) -> None:
        """
        Datagrams the kernel drops because nobody read them are counted.
        """
        if SO_RXQ_OVFL is None:
            raise SkipTest("SO_RXQ_OVFL is Linux's")
        receiver, sender = self.receiver(receive_buffer=4096)
        for i in range(500):
            sender.send(b"<13>flood %d " % i + b"x" * 900)
        sender.send(b"<13>last")
        self.receiveAll(receiver, 1)
        while receiver.receive(NOW):
            pass
        self.assertGreater(receiver.dropped, 0)
        self.assertEqual(receiver.received + receiver.dropped, 501)
        self.assertEqual(socket_drops(receiver.sock), receiver.dropped)

    def test_socketDropsAskedOfTheKernel(self) -> None:
        """
        :func:`socket_drops` is the socket's count of drops without a datagram read:
        what the supervisor of ``--workers`` reports for a socket its workers share.
        """
        if SO_RXQ_OVFL is None:
            raise SkipTest("the drop counts are Linux's")
        receiver, sender = self.receiver(receive_buffer=4096)
        self.assertEqual(socket_drops(receiver.sock), 0)
        for i in range(500):
            sender.send(b"<13>flood %d " % i + b"x" * 900)
        self.assertGreater(socket_drops(receiver.sock), 0)


class MetricsTests(SynchronousTestCase):
    """
    ``--metrics`` shows the datagrams and the kernel's drops.
    """

    def test_snapshot(self) -> None:
        """
        The factory's ``udp:`` readers are summed into two families; framing errors are
        a drop reason.
        """
        factory = MuxFactory(DataLog(self.mktemp()), quiet=True, clock=MemoryReactorClock())
        service = DatagramService(factory, parse_udp("udp:0:interface=127.0.0.1"))
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        assert service.reader is not None
        service.reader.receiver.received = 7
        service.reader.receiver.dropped = 3
        factory.framingErrors = 2
        values = snapshot(factory)
        self.assertEqual(values["journey_datagrams_received", ()], 7)
        self.assertEqual(values["journey_datagrams_dropped", ()], 3)
        self.assertEqual(values["journey_connections_dropped", (("reason", "framing"),)], 2)

    def test_dropsBeforeTheNextDatagram(self) -> None:
        """
        Drops show as soon as the kernel makes them, not only once a later datagram is
        read (which is when ``SO_RXQ_OVFL`` would tell of them).
        """
        if SO_RXQ_OVFL is None:
            raise SkipTest("the drop counts are Linux's")
        factory = MuxFactory(DataLog(self.mktemp()), quiet=True, clock=MemoryReactorClock())
        sock = bind_udp(parse_udp("udp:0:interface=127.0.0.1"), receive_buffer=4096)
        service = DatagramService(factory, parse_udp("udp:0"), sock.detach())
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        assert service.reader is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(500):
                sender.sendto(
                    b"<13>flood %d " % i + b"x" * 900, service.reader.receiver.sock.getsockname()
                )
        self.assertEqual(service.reader.receiver.received, 0)
        self.assertGreater(snapshot(factory)["journey_datagrams_dropped", ()], 0)
