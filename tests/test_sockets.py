"""
Tests for :mod:`twisted_journey.sockets`' drain, which both greeting engines call before
closing a connection whose client may have spoken first, on real connected sockets.
(The descriptor ceiling is tested with the multiplexer, in ``tests/test_mux_server.py``.)
"""

from __future__ import annotations

import os
import select
import socket
import struct

from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.settings import GREET_DRAIN_LIMIT
from twisted_journey.sockets import discard_unread, drain_unread, unread_count


class Recording:
    """
    A connected socket whose ``recv`` calls are counted.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.recvs += 1
        return self.sock.recv(size, flags)


class DrainTests(SynchronousTestCase):
    """
    :func:`unread_count`, :func:`discard_unread` and :func:`drain_unread` on a loopback
    TCP connection (blocking sockets: nothing here may wait).
    """

    def setUp(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        self.client = socket.create_connection(listener.getsockname())
        self.addCleanup(self.client.close)
        self.server, _ = listener.accept()
        self.addCleanup(self.server.close)

    def waitFor(self, count: int) -> None:
        """
        Wait (bounded) until ``count`` bytes the client sent have reached the server.
        """
        for _ in range(1000):  # 10 s at most
            if unread_count(self.server.fileno()) >= count:
                return
            select.select([], [], [], 0.01)
        raise AssertionError(f"{count} bytes never arrived")

    def test_nothingWaiting(self) -> None:
        """
        With nothing sent, nothing is counted, and the drain asks the kernel without
        reading: no ``recv`` at all.
        """
        recording = Recording(self.server)
        self.assertEqual(unread_count(self.server.fileno()), 0)
        self.assertEqual(drain_unread(recording, GREET_DRAIN_LIMIT), (0, True))
        self.assertEqual(recording.recvs, 0)

    def test_drainsWhatWasSent(self) -> None:
        """
        What the client sent is counted, then read and discarded by the drain, which
        returns its length and leaves nothing waiting; the blocking socket's last
        ``recv`` does not wait (``MSG_DONTWAIT``).
        """
        self.client.sendall(b"hello\r\n")
        self.waitFor(7)
        self.assertEqual(unread_count(self.server.fileno()), 7)
        recording = Recording(self.server)
        self.assertEqual(drain_unread(recording, GREET_DRAIN_LIMIT), (7, True))
        self.assertEqual(recording.recvs, 2)
        self.assertEqual(unread_count(self.server.fileno()), 0)

    def test_closeIsNotAByte(self) -> None:
        """
        A client that closed without sending has nothing waiting: the drain reads
        nothing (the close is only seen by reading, which :func:`discard_unread` does and
        reports as not ``open``).  A UNIX socket pair, where the close arrives as it is made.
        """
        server, client = socket.socketpair()
        self.addCleanup(server.close)
        client.close()
        self.assertEqual(drain_unread(server, GREET_DRAIN_LIMIT), (0, True))
        self.assertEqual(discard_unread(server, GREET_DRAIN_LIMIT), (0, False))

    def test_sentThenClosed(self) -> None:
        """
        Bytes followed by the client's close: all are discarded and counted, and the
        close reported.
        """
        server, client = socket.socketpair()
        self.addCleanup(server.close)
        client.sendall(b"bye")
        client.close()
        self.assertEqual(unread_count(server.fileno()), 3)
        self.assertEqual(drain_unread(server, GREET_DRAIN_LIMIT), (3, False))
        self.assertEqual(unread_count(server.fileno()), 0)

    def test_limit(self) -> None:
        """
        Reading stops once more than ``limit`` bytes were discarded, leaving the rest.
        """
        self.client.sendall(b"x" * 200_000)
        self.waitFor(100_000)
        drained = drain_unread(self.server, 10)
        self.assertTrue(drained.open)
        self.assertGreater(drained.discarded, 10)
        self.assertGreater(unread_count(self.server.fileno()), 0)

    def test_reset(self) -> None:
        """
        A connection the client reset is reported as not ``open`` by reading, and counts
        as nothing waiting.
        """
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.close()
        self.assertEqual(unread_count(self.server.fileno()), 0)
        select.select([self.server], [], [], 10)
        self.assertEqual(discard_unread(self.server, GREET_DRAIN_LIMIT), (0, False))

    def test_failedAskIsNothing(self) -> None:
        """
        A descriptor the ioctl fails on (closed) counts as nothing waiting.
        """
        fd = os.dup(self.server.fileno())
        os.close(fd)
        self.assertEqual(unread_count(fd), 0)
