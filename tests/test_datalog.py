"""
Tests for :mod:`twisted_journey.datalog` on a failing disk (injected short writes and a
real, tiny ``tmpfs``), on a pipe that stops being read, and under rotation with files
moved away by someone else.  (Buffering, reopening and settings are tested in
``tests/test_records.py``.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import mountTmpfs
from twisted_journey import datalog
from twisted_journey.datalog import DataLog, rotated_name

#: Rotated file names: PATH-YYYYMMDDTHHMMSS.ffffffZ
ROTATED = re.compile(r"-\d{8}T\d{6}\.\d{6}Z$")


def record(n: int, size: int = 20) -> bytes:
    """
    Record number ``n``, ``size`` bytes long with its newline.
    """
    head = b"record %06d " % n
    return head + b"x" * (size - len(head) - 1) + b"\n"


def numbers(content: bytes, size: int = 20) -> list[int]:
    """
    The numbers of the records in ``content``, checking that every one is whole.
    """
    found = []
    for line in content.split(b"\n")[:-1]:
        assert len(line) == size - 1 and line.startswith(b"record "), line
        found.append(int(line.split()[1]))
    assert content.endswith(b"\n") or not content, content[-40:]
    return found


class FailingWrites:
    """
    An ``os.write`` stand-in that writes for real until ``room`` bytes have gone, with a
    short write at the boundary, then fails with ``ENOSPC`` until given more room.
    """

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, fd: int, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = os.write(fd, bytes(data[: self.room]))
        self.room -= done
        return done


class FullDiskTests(SynchronousTestCase):
    """
    A record is on disk whole or not at all, and the count of records dropped is exact.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        self.reports: list[str] = []

    def test_shortWriteIsTakenBack(self) -> None:
        """
        A write cut short by a full disk leaves no torn record: the file is truncated back
        to the last whole record, the rest of the flush is dropped and counted, and once
        there is room again, writing resumes with whole records.
        """
        log = DataLog(self.path, report=self.reports.append)
        self.addCleanup(log.close)
        writes = FailingWrites(room=20 * 3 + 7)  # three records and part of a fourth
        log._os_write = writes  # type: ignore[method-assign]
        for n in range(10):
            log.write(record(n))
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), [0, 1, 2])
        self.assertEqual((log.written, log.dropped, log.dropped_bytes), (3, 7, 140))
        self.assertEqual(log.writeErrors, 1)
        self.assertRegex(self.reports[-1], r"No space left on device; 7 records \(140 bytes\)")
        writes.room = 10**6
        for n in range(10, 15):
            log.write(record(n))
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), [0, 1, 2, 10, 11, 12, 13, 14])
        self.assertEqual((log.written, log.dropped), (8, 7))
        self.assertRegex(self.reports[-1], r"being written again; 7 records")

    def test_realFullFilesystem(self) -> None:
        """
        On a real, tiny ``tmpfs`` filled up: every record in the file is whole, the
        records written plus those dropped are all the records, and when space comes back
        the next records land whole after the last whole one.
        """
        directory = mountTmpfs(self, "64k")
        path = os.path.join(directory, "data.log")
        log = DataLog(path, report=self.reports.append, buffer_bytes=1000)
        total = 0
        for n in range(5000):  # 100 kB: past the 64 kB
            log.write(record(n, 33))
            total += 1
        log.flush()
        self.assertGreater(log.dropped, 0)
        before = numbers(Path(path).read_bytes(), 33)
        self.assertEqual(len(before), log.written)
        self.assertEqual(log.written + log.dropped, total)
        self.assertEqual(before, sorted(before))
        # Space comes back: a file beside it is removed... there is none, so truncate ours.
        os.truncate(path, 0)
        log.write(record(9000, 33))
        log.close()
        self.assertEqual(numbers(Path(path).read_bytes(), 33), [9000])
        self.assertRegex(self.reports[0], r"cannot write data log .*: No space left on device")

    def test_devFullCountsEveryRecord(self) -> None:
        """
        ``/dev/full`` takes nothing: every record is counted dropped, once.
        """
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        log = DataLog("/dev/full", report=self.reports.append, buffer_bytes=50)
        for n in range(10):
            log.write(record(n))
        log.close()
        self.assertEqual((log.written, log.dropped, log.dropped_bytes), (0, 10, 200))


class FailingWritev(FailingWrites):
    """
    :class:`FailingWrites`, and an ``os.writev`` stand-in sharing its room that writes
    the pieces in order, as the kernel does: cut short at the boundary, then ``ENOSPC``.
    """

    def __init__(self, room: int) -> None:
        super().__init__(room)
        self.calls: list[list[bytes]] = []

    def writev(self, fd: int, pieces: list[bytes]) -> int:
        self.calls.append(list(pieces))
        return self(fd, b"".join(pieces))


class VectoredWriteTests(SynchronousTestCase):
    """
    The records of several writes go out in one ``writev``, as they were given; a
    ``writev`` cut short or failing is finished or taken back like any write.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        self.reports: list[str] = []

    def failing(self, log: DataLog, room: int) -> FailingWritev:
        """
        Give ``log`` writes with ``room`` bytes of room.
        """
        writes = FailingWritev(room)
        log._os_write = writes  # type: ignore[method-assign]
        log._os_writev = writes.writev  # type: ignore[method-assign]
        return writes

    def test_oneWritevPerFlush(self) -> None:
        """
        Ten writes, one flush: one ``writev`` of the ten records as they were given.
        """
        log = DataLog(self.path)
        self.addCleanup(log.close)
        writes = self.failing(log, 10**6)
        given = [record(n) for n in range(10)]
        for data in given:
            log.write(data, 1)
        log.flush()
        self.assertEqual(len(writes.calls), 1)
        self.assertTrue(all(a is b for a, b in zip(writes.calls[0], given, strict=True)))
        self.assertEqual(numbers(Path(self.path).read_bytes()), list(range(10)))
        self.assertEqual((log.written, log.written_bytes, log.backlog), (10, 200, 0))

    def test_cutShortThenFinished(self) -> None:
        """
        A ``writev`` that writes part of a record (and fails no write) is finished by the
        next write: every record whole, each counted once.
        """
        log = DataLog(self.path)
        self.addCleanup(log.close)
        writes = self.failing(log, 20 * 4 + 9)
        for n in range(10):
            log.write(record(n), 1)
        writes.writev = lambda fd, pieces: os.write(fd, b"".join(pieces)[:89])  # type: ignore[method-assign]
        log._os_writev = writes.writev  # type: ignore[method-assign]
        writes.room = 10**6
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), list(range(10)))
        self.assertEqual((log.written, log.dropped, log.backlog), (10, 0, 0))

    def test_fullDiskTakenBack(self) -> None:
        """
        A full disk part-way through a ``writev``: the torn record is taken back, the rest
        dropped and counted, and writing resumes with whole records once there is room.
        """
        log = DataLog(self.path, report=self.reports.append)
        self.addCleanup(log.close)
        writes = self.failing(log, 20 * 3 + 7)
        for n in range(10):
            log.write(record(n), 1)
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), [0, 1, 2])
        self.assertEqual((log.written, log.dropped, log.dropped_bytes), (3, 7, 140))
        self.assertRegex(self.reports[-1], r"No space left on device; 7 records \(140 bytes\)")
        writes.room = 10**6
        for n in range(10, 15):
            log.write(record(n), 1)
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), [0, 1, 2, 10, 11, 12, 13, 14])
        self.assertEqual((log.written, log.dropped), (8, 7))
        self.assertRegex(self.reports[-1], r"being written again; 7 records")

    def test_manyWritesGathered(self) -> None:
        """
        Past ``max_pieces`` writes, the records are gathered into one buffer (so that a
        slow output never holds an object per record), and still written whole, once.
        """
        log = DataLog(self.path, buffer_bytes=1 << 20)
        self.addCleanup(log.close)
        for n in range(log.max_pieces * 3 + 5):
            log.write(record(n), 1)
            self.assertLess(len(log._pieces), log.max_pieces)
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), list(range(log.max_pieces * 3 + 5)))
        self.assertEqual(log.written, log.max_pieces * 3 + 5)


class PipeTests(SynchronousTestCase):
    """
    A FIFO output that stops being read never blocks the writer: the backlog pauses the
    clients, and nothing is lost once the reader reads again.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        os.mkfifo(self.path)
        self.reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, self.reader)
        self.events: list[object] = []
        self.reports: list[str] = []

    def open(self, **kwargs: object) -> DataLog:
        """
        A data log writing to the FIFO, its pause, resume and watch calls in ``events``.
        """
        log = DataLog(self.path, report=self.reports.append, **kwargs)  # type: ignore[arg-type]
        log.pause = lambda: self.events.append("pause")
        log.resume = lambda: self.events.append("resume")
        log.watch = self.events.append
        return log

    def drain(self) -> bytes:
        """
        Everything the FIFO holds now.
        """
        chunks = []
        while True:
            try:
                chunk = os.read(self.reader, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def test_stalledReaderPausesAndNothingIsLost(self) -> None:
        """
        Writing 3 MB to a FIFO nobody reads returns at once; the backlog reaching
        ``max_backlog`` pauses (once), the output is watched; reading it all and flushing
        on each writability gives every record, in order, and resumes.
        """
        log = self.open(max_backlog=1 << 20, buffer_bytes=1 << 16)
        self.addCleanup(log.close)
        sent = [record(n, 100) for n in range(30000)]
        for line in sent:
            log.write(line)
        self.assertEqual(self.events, [True, "pause"])
        self.assertTrue(log.waiting and log.paused)
        # Bounded: the pause came with the record that reached the bound.
        self.assertLess(log.backlog, (1 << 20) + 3_000_000)
        received = bytearray()
        while log.backlog:
            received += self.drain()
            log.flush()
        received += self.drain()
        self.assertEqual(bytes(received), b"".join(sent))
        # Resumed once half the bound is written, before the output is drained.
        self.assertEqual(self.events, [True, "pause", "resume", False])
        self.assertEqual((log.written, log.dropped), (30000, 0))

    def test_closeGivesUpAndCounts(self) -> None:
        """
        At close, a reader that never reads is waited for ``stop_timeout`` seconds; what
        it did not take is counted and reported in one sentence.
        """
        log = self.open(stop_timeout=0.05, buffer_bytes=1 << 16)
        for n in range(10000):
            log.write(record(n, 100))
        log.close()
        received = self.drain()
        complete = received.count(b"\n")
        self.assertEqual(log.written, complete)
        self.assertEqual(log.written + log.dropped, 10000)
        self.assertEqual(len(self.reports), 1)
        self.assertRegex(
            self.reports[0],
            rf"did not take the last {log.dropped} records \(\d+ bytes\) within 0.05 seconds",
        )


class RotationTests(SynchronousTestCase):
    """
    Rotation: named by time, one rename per rotation, logrotate's renames survived.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.path = os.path.join(self.directory, "data.log")
        self.notices: list[str] = []
        self.reports: list[str] = []

    def rotated(self) -> list[str]:
        """
        The rotated files' names, oldest first.
        """
        return sorted(n for n in os.listdir(self.directory) if ROTATED.search(n))

    def test_namesAndKeep(self) -> None:
        """
        Rotated files are named by their time of rotation, sort oldest first, keep their
        name and content once written (no shifting), and only the oldest beyond the count
        kept are deleted.
        """
        log = DataLog(self.path, rotate_bytes=40, rotate_keep=3)
        self.addCleanup(log.close)
        sent = [record(n) for n in range(20)]  # two records a file
        inodes = {}
        for line in sent:
            log.write(line)
            log.flush()
            for name in self.rotated():
                inode = os.stat(os.path.join(self.directory, name)).st_ino
                self.assertEqual(inodes.setdefault(name, inode), inode, name)
        names = self.rotated()
        self.assertEqual(len(names), 3)
        self.assertEqual(len(inodes), 9)
        contents = [Path(self.directory, name).read_bytes() for name in names]
        contents.append(Path(self.path).read_bytes())
        self.assertEqual(b"".join(contents), b"".join(sent[-8:]))

    def test_rotatedName(self) -> None:
        """
        The suffix is the UTC time to the microsecond.
        """
        self.assertEqual(
            rotated_name("/d/data.log", 1795745859_123456),
            "/d/data.log-20261127T021739.123456Z",
        )

    def test_earlierRotatedFilesCount(self) -> None:
        """
        Rotated files left by an earlier run count toward the number kept (the oldest go
        first); logrotate's own files (``PATH.1``) are never touched.
        """
        for stamp in (1, 2, 3):
            Path(rotated_name(self.path, stamp)).write_bytes(b"old\n")
        Path(self.path + ".1").write_bytes(b"logrotate's\n")
        log = DataLog(self.path, rotate_bytes=20, rotate_keep=3)
        log.write(record(0) + record(1))
        log.close()
        names = self.rotated()
        self.assertEqual(len(names), 3)
        self.assertNotIn(os.path.basename(rotated_name(self.path, 1)), names)
        self.assertIn(os.path.basename(rotated_name(self.path, 2)), names)
        self.assertTrue(os.path.exists(self.path + ".1"))

    def test_movedAwayIsReopened(self) -> None:
        """
        When ``PATH`` is renamed away (logrotate without ``SIGUSR1``), the next flush
        writes a new file at ``PATH``; nothing is lost or reported as an error.
        """
        log = DataLog(self.path, report=self.reports.append, notice=self.notices.append)
        log.write(b"old\n")
        log.flush()
        os.rename(self.path, self.path + ".1")
        log.write(b"new\n")
        log.close()
        self.assertEqual(Path(self.path + ".1").read_bytes(), b"old\n")
        self.assertEqual(Path(self.path).read_bytes(), b"new\n")
        self.assertEqual(self.reports, [])
        self.assertEqual(len(self.notices), 1)

    def test_rotationAfterExternalRename(self) -> None:
        """
        Size rotation combined with logrotate renaming the file: every record is in
        exactly one file, none dropped, and logrotate's file is left alone.
        """
        log = DataLog(self.path, rotate_bytes=100, rotate_keep=1000, report=self.reports.append)
        sent = [record(n) for n in range(200)]
        for n, line in enumerate(sent):
            log.write(line)
            if n % 7 == 0:
                log.flush()
            if n % 30 == 29:
                log.flush()
                os.rename(self.path, self.path + f".moved{n}")
                if n % 60 == 59:
                    log.reopen()  # SIGUSR1 sometimes, sometimes not
        log.close()
        every = b"".join(
            Path(self.directory, name).read_bytes() for name in sorted(os.listdir(self.directory))
        )
        self.assertEqual(sorted(numbers(every)), list(range(200)))
        self.assertEqual((log.dropped, self.reports), (0, []))

    def test_rotationCostDoesNotGrowWithKeep(self) -> None:
        """
        A rotation renames one file and deletes at most one, whatever ``rotate_keep``.
        """
        renames = []
        realRename = os.rename

        def rename(source: str, destination: str) -> None:
            renames.append(source)
            realRename(source, destination)

        self.patch(datalog.os, "rename", rename)
        log = DataLog(self.path, rotate_bytes=20, rotate_keep=1000)
        for n in range(50):
            log.write(record(n))
            log.flush()
        log.close()
        self.assertEqual(renames, [self.path] * 49)


class StandardOutputTests(SynchronousTestCase):
    """
    ``--output -``: standard output, whatever it is.
    """

    def test_regularFileIsNeverMovedAway(self) -> None:
        """
        When standard output is a regular file, the data log writes to it and never takes
        ``-`` for a path that was moved away.
        """
        path = os.path.abspath(self.mktemp())
        saved = os.dup(1)
        self.addCleanup(os.close, saved)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, 1)
        os.close(target)
        self.addCleanup(os.dup2, saved, 1)
        notices: list[str] = []
        log = DataLog("-", notice=notices.append)
        for n in range(3):
            log.write(record(n))
            log.flush()
        log.close()
        os.dup2(saved, 1)
        self.assertEqual(numbers(Path(path).read_bytes()), [0, 1, 2])
        self.assertEqual(notices, [])

    def test_pipeKeepsItsFlags(self) -> None:
        """
        When standard output is a pipe, the data log writes without blocking through a
        descriptor of its own: standard output's own flags stay as they were.
        """
        import fcntl

        read, write = os.pipe()
        self.addCleanup(os.close, read)
        saved = os.dup(1)
        self.addCleanup(os.close, saved)
        os.dup2(write, 1)
        os.close(write)
        self.addCleanup(os.dup2, saved, 1)
        before = fcntl.fcntl(1, fcntl.F_GETFL)
        log = DataLog("-")
        self.assertEqual(fcntl.fcntl(1, fcntl.F_GETFL), before)
        self.assertTrue(fcntl.fcntl(log.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
        for n in range(10000):  # 200 kB: more than the pipe holds
            log.write(record(n))
        log.flush()
        self.assertTrue(log.waiting)
        os.set_blocking(read, False)
        received = bytearray()
        while log.backlog:
            try:
                received += os.read(read, 1 << 16)
            except BlockingIOError:
                pass
            log.flush()
        log.close()
        os.dup2(saved, 1)
        while True:
            try:
                chunk = os.read(read, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
        self.assertEqual(numbers(bytes(received)), list(range(10000)))

    def test_socketKeepsItsFlags(self) -> None:
        """
        When standard output is a socket (journald's, under systemd), the data log sends
        without blocking and without changing the socket's flags.
        """
        import socket

        mine, theirs = socket.socketpair()
        self.addCleanup(mine.close)
        saved = os.dup(1)
        self.addCleanup(os.close, saved)
        os.dup2(theirs.fileno(), 1)
        theirs.close()
        self.addCleanup(os.dup2, saved, 1)
        log = DataLog("-")
        for n in range(50000):  # 1 MB: more than the socket buffers hold
            log.write(record(n))
        log.flush()
        self.assertTrue(log.waiting)
        self.assertTrue(os.get_blocking(1))
        mine.setblocking(False)
        received = bytearray()
        while log.backlog:
            try:
                received += mine.recv(1 << 16)
            except BlockingIOError:
                pass
            log.flush()
        log.close()
        os.dup2(saved, 1)
        while True:
            try:
                chunk = mine.recv(1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
        self.assertEqual(numbers(bytes(received)), list(range(50000)))


class FifoReopenTests(SynchronousTestCase):
    """
    Reopening a FIFO while serving never blocks.
    """

    def test_reopenWithoutReader(self) -> None:
        """
        When the FIFO's reader has gone, a reopen does not wait for a new one: the
        records are counted lost and reported, and the data log tries again later.
        """
        path = os.path.abspath(self.mktemp())
        os.mkfifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        reports: list[str] = []
        log = DataLog(path, report=reports.append)
        self.addCleanup(log.close)
        os.close(reader)
        log.reopen()
        log.write(record(0))
        log.flush()
        self.assertEqual(log.dropped, 1)
        self.assertRegex(reports[0], r"No such device or address")
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        log.write(record(1))
        log.flush()
        self.assertEqual(numbers(os.read(reader, 1000)), [1])


def batches(first: int, total: int, size: int = 20, per: int = 7) -> list[tuple[bytes, int]]:
    """
    Records ``first`` to ``first + total - 1`` in batches of up to ``per``, each with its
    record count (as a framer hands them to the data log).
    """
    out = []
    for start in range(first, first + total, per):
        numbers = range(start, min(start + per, first + total))
        out.append((b"".join(record(n, size) for n in numbers), len(numbers)))
    return out


class CountedRecordsTests(SynchronousTestCase):
    """
    Records written with their count (``DataLog.write(records, count)``, as the engines
    do) are counted exactly, written and dropped, on every path a flush can take: whole,
    cut by rotation, cut short by a full disk, taken in part by a pipe, given up at close.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.path = os.path.join(self.directory, "data.log")
        self.reports: list[str] = []

    def test_wholeAndRotated(self) -> None:
        """
        Batches flushed whole, and cut between records by rotation, count every record
        written once.
        """
        log = DataLog(self.path, rotate_bytes=20 * 10, rotate_keep=100, buffer_bytes=20 * 25)
        self.addCleanup(log.close)
        for data, count in batches(0, 100):
            log.write(data, count)
        log.flush()
        self.assertEqual((log.written, log.written_bytes, log.dropped), (100, 2000, 0))
        found = []
        for name in [*sorted(n for n in os.listdir(self.directory) if ROTATED.search(n))]:
            found += numbers(Path(self.directory, name).read_bytes())
        found += numbers(Path(self.path).read_bytes())
        self.assertEqual(found, list(range(100)))

    def test_shortWrite(self) -> None:
        """
        A full disk part-way through a batch: the records out whole are written, every
        other one dropped, each counted once.
        """
        log = DataLog(self.path, report=self.reports.append)
        self.addCleanup(log.close)
        log._os_write = FailingWrites(room=20 * 10 + 7)  # type: ignore[method-assign]
        for data, count in batches(0, 30):
            log.write(data, count)
        log.flush()
        self.assertEqual(numbers(Path(self.path).read_bytes()), list(range(10)))
        self.assertEqual((log.written, log.dropped, log.dropped_bytes), (10, 20, 400))

    def test_pipeInPartsAndClose(self) -> None:
        """
        A pipe that takes batches in parts, then stops being read: what it took whole is
        written, the rest given up at close is dropped, and together they are every record.
        """
        os.mkfifo(self.path)
        reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        log = DataLog(self.path, report=self.reports.append, stop_timeout=0.05)
        for data, count in batches(0, 20000, size=100):
            log.write(data, count)

        def drain() -> bytes:
            chunks = []
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(reader, 1 << 16):
                    chunks.append(chunk)
            return b"".join(chunks)

        received = drain()  # what the first flushes left in the pipe
        log.flush()  # takes another pipeful, in the middle of a batch
        received += drain()
        log.close()  # nobody reads any more: gives up
        received += drain()
        self.assertEqual(log.written, received.count(b"\n"))
        self.assertGreater(log.dropped, 0)
        self.assertEqual(log.written + log.dropped, 20000)
        self.assertIn(f"did not take the last {log.dropped} records", self.reports[-1])
