"""
Tests for :mod:`twisted_journey.fetch.splicing`: a large identity body over plain TCP goes
from the socket into the ``.part`` by ``splice(2)``, with every framing, timeout, file and
checksum rule of the ordinary path; where splicing does not apply, the ordinary path
still writes the right bytes.

Against scripted raw servers on loopback in the test's reactor (as
``tests/test_fetch_answers.py``); ``sinks.PartFile.spliced`` (bytes moved by splicing in
this process) says whether the fast path was taken.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import subprocess
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support import mountTmpfs
from tests.test_fetch_answers import Answer, ScriptedMixin, ok, partial, raw
from twisted_journey.fallback import fetch as fallback
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import sinks, splicing

MiB = 1 << 20

#: Large enough to be spliced (over :attr:`Splicer.minimum`, several pipes' worth).
BIG = os.urandom(5 * MiB + 12345)


def chunked(body: bytes, size: int = 256 * 1024) -> bytes:
    """
    ``body`` as a chunked 200 response.
    """
    pieces = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return raw(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"".join(pieces) + b"0\r\n\r\n")


class SplicingMixin(ScriptedMixin):
    """
    Skips where splicing is unavailable; :meth:`splicedDuring` measures the fast path.
    """

    def setUp(self) -> None:
        if not sinks.CAN_SPLICE:
            raise unittest.SkipTest("splice(2) is Linux only")
        super().setUp()

    async def splicedDuring(self, d: Any) -> tuple[int, Any]:
        """
        Await ``d``; return the bytes spliced meanwhile and its result.
        """
        before = sinks.PartFile.spliced
        result = await d
        return sinks.PartFile.spliced - before, result


class FastPathTests(SplicingMixin, unittest.TestCase):
    """
    A large ``Content-Length`` body over plain TCP into a file is spliced, and the file
    holds exactly the body.
    """

    async def _spliced(self) -> None:
        server, base = self.serve({b"/big": (ok(BIG), False), b"/small": (ok(b"small"), False)})
        fetcher = self.fetcher()
        blocks: list[tuple[int, int, int]] = []
        moved, result = await self.splicedDuring(
            fetcher.retrieve(
                f"{base}/big",
                reporthook=lambda *block: blocks.append(block),
                outputDir=self.out,
            )
        )
        self.assertGreater(moved, len(BIG) - 2 * MiB)
        self.assertLess(moved, len(BIG))  # the last byte is left to the parser
        self.assertEqual(result.size, len(BIG))
        self.assertEqual(self.read("big"), BIG)
        self.assertEqual(sum(size for _, size, _ in blocks), len(BIG))
        self.assertEqual({total for _, _, total in blocks}, {len(BIG)})
        # The parser ended the response cleanly: the connection is reused.
        await fetcher.retrieve(f"{base}/small", outputDir=self.out)
        self.assertEqual(server.connected, 1)
        self.assertEqual(self.files(), ["big", "small"])

    def test_spliced(self) -> Any:
        """
        The body is spliced (all but its end), the file is byte for byte the body,
        progress adds up to its length, and the connection is reused afterwards.
        """
        return defer.ensureDeferred(self._spliced())

    async def _checksum(self) -> None:
        _, base = self.serve({b"/big": (ok(BIG), False)})
        good = hashlib.sha256(BIG).hexdigest()
        moved, _ = await self.splicedDuring(
            self.fetcher().retrieve(f"{base}/big", outputDir=self.out, sha256=good)
        )
        self.assertGreater(moved, 0)
        self.assertEqual(self.read("big"), BIG)
        os.unlink(os.path.join(self.out, "big"))
        bad = hashlib.sha256(BIG + b"x").hexdigest()
        before = sinks.PartFile.spliced
        await self.fails(
            self.fetcher().retrieve(f"{base}/big", outputDir=self.out, sha256=bad),
            fetch_errors.ChecksumMismatch,
        )
        self.assertGreater(sinks.PartFile.spliced, before)
        self.assertEqual(self.files(), [])

    def test_checksum(self) -> Any:
        """
        ``sha256`` still verifies a spliced body (hashed from the file afterwards): the
        right digest saves it, a wrong one removes it.
        """
        return defer.ensureDeferred(self._checksum())

    async def _resumed(self) -> None:
        start = 1000
        rest = BIG[start:]
        _, base = self.serve({b"/big": (partial(start, len(BIG) - 1, len(BIG), rest), False)})
        with open(os.path.join(self.out, "big.part"), "wb") as f:
            f.write(BIG[:start])
        moved, result = await self.splicedDuring(
            self.fetcher().retrieve(
                f"{base}/big",
                outputDir=self.out,
                resume=True,
                sha256=hashlib.sha256(BIG).hexdigest(),
            )
        )
        self.assertGreater(moved, 0)
        self.assertEqual(result.status, 206)
        self.assertEqual(self.read("big"), BIG)
        self.assertEqual(self.files(), ["big"])

    def test_resumed(self) -> Any:
        """
        A resumed ``.part`` is continued by splicing at its end, and the checksum covers
        the resumed start, the spliced middle and the parsed end.
        """
        return defer.ensureDeferred(self._resumed())


class StrictFramingTests(SplicingMixin, unittest.TestCase):
    """
    The hostile-server rules hold while splicing: a body shorter or longer than its
    ``Content-Length``, a stall, and a full disk are errors with no file left.
    """

    async def _failsSpliced(
        self, url: str, kind: type[fetch_errors.FetchError], **settings: Any
    ) -> fetch_errors.FetchError:
        before = sinks.PartFile.spliced
        error = await self.fails(self.fetcher(**settings).retrieve(url, outputDir=self.out), kind)
        self.assertGreater(sinks.PartFile.spliced, before, "the fast path was not taken")
        self.assertEqual(self.files(), [])
        return error

    async def _short(self) -> None:
        declared = raw(b"200 OK", [(b"Content-Length", b"%d" % (len(BIG) + 10))], BIG)
        _, base = self.serve({b"/short": (declared, True)})
        error = await self._failsSpliced(f"{base}/short", fetch_errors.TruncatedBody)
        self.assertIn("cut short", str(error))

    def test_short(self) -> Any:
        """
        A body ten bytes short of its length, then the connection closed:
        :class:`TruncatedBody`, nothing saved.
        """
        return defer.ensureDeferred(self._short())

    async def _long(self) -> None:
        _, base = self.serve({b"/long": (ok(BIG) + b"SURPLUS", False)})
        error = await self._failsSpliced(f"{base}/long", fetch_errors.TruncatedBody)
        self.assertIn("longer than announced", str(error))

    def test_long(self) -> Any:
        """
        Bytes past the declared length: :class:`TruncatedBody` ("longer than
        announced"), nothing saved.
        """
        return defer.ensureDeferred(self._long())

    async def _stall(self) -> None:
        declared = raw(b"200 OK", [(b"Content-Length", b"%d" % (len(BIG) + 10))], BIG)
        _, base = self.serve({b"/stall": (declared, None)})
        error = await self._failsSpliced(f"{base}/stall", fetch_errors.Timeout, idleTimeout=0.5)
        self.assertIn("--idle-timeout", str(error))

    def test_stall(self) -> Any:
        """
        A server that stops mid-body: the idle timeout still fires (every splice
        restarted it), nothing saved.
        """
        return defer.ensureDeferred(self._stall())

    async def _refusedWrite(self) -> None:
        _, base = self.serve({b"/big": (ok(BIG), False)})
        calls = []

        def failing(self: Any, pipe: int, size: int) -> None:
            calls.append(size)
            raise fetch_errors.FileError(f"cannot write {self.part!r}: {os.strerror(errno.EIO)}.")

        self.patch(sinks.PartFile, "splice_from", failing)
        error = await self.fails(
            self.fetcher(retries=2, retryDelay=0.01).retrieve(f"{base}/big", outputDir=self.out),
            fetch_errors.FileError,
        )
        self.assertEqual(len(calls), 1)
        self.assertIn(os.strerror(errno.EIO), str(error))
        self.assertEqual(self.files(), [])

    def test_refusedWrite(self) -> Any:
        """
        A spliced stretch the file refuses stops the transfer at once with
        :class:`FileError` naming the error, not retried, no file.
        """
        return defer.ensureDeferred(self._refusedWrite())

    async def _fullDisk(self) -> None:
        disk = mountTmpfs(self, "2m")
        _, base = self.serve({b"/big": (ok(BIG), False)})
        before = sinks.PartFile.spliced
        error = await self.fails(
            self.fetcher().retrieve(f"{base}/big", os.path.join(disk, "big")),
            fetch_errors.FileError,
        )
        self.assertGreater(sinks.PartFile.spliced, before)
        self.assertIn("No space left", str(error))
        self.assertEqual(str(error).count("No space left"), 1, str(error))
        self.assertEqual(os.listdir(disk), [])

    def test_fullDisk(self) -> Any:
        """
        A real full disk (a 2 MiB tmpfs) while splicing: :class:`FileError` saying so in
        one sentence, and neither the file nor its ``.part`` left.
        """
        return defer.ensureDeferred(self._fullDisk())


class CancelTests(SplicingMixin, unittest.TestCase):
    """
    Stopping a transfer in the middle of splicing.
    """

    async def _cancelled(self) -> None:
        declared = raw(b"200 OK", [(b"Content-Length", b"%d" % (len(BIG) + 10))], BIG)
        _, base = self.serve({b"/big": (declared, None)})
        before = sinks.PartFile.spliced
        cancelled: list[bool] = []

        def progress(block: int, size: int, total: int) -> None:
            if sinks.PartFile.spliced > before and not cancelled:
                cancelled.append(True)
                d.cancel()

        d = self.fetcher().retrieve(f"{base}/big", reporthook=progress, outputDir=self.out)
        with self.assertRaises(defer.CancelledError):
            await d
        self.assertEqual(cancelled, [True])
        self.assertEqual(self.files(), [])

    def test_cancelled(self) -> Any:
        """
        A transfer cancelled while its body is being spliced (an interrupted run) stops
        with the caller's :class:`~twisted.internet.defer.CancelledError` (not a sentence
        about a connection timeout), and leaves neither file nor ``.part``.
        """
        return defer.ensureDeferred(self._cancelled())

    async def _cancelledOrdinary(self) -> None:
        _, base = self.serve({b"/big": (chunked(BIG), False)})
        seen: list[int] = []

        def progress(block: int, size: int, total: int) -> None:
            if block > 2 and not seen:
                seen.append(block)
                d.cancel()

        d = self.fetcher().retrieve(f"{base}/big", reporthook=progress, outputDir=self.out)
        with self.assertRaises(defer.CancelledError):
            await d
        self.assertEqual(len(seen), 1)
        self.assertEqual(self.files(), [])

    def test_cancelledReadTheOrdinaryWay(self) -> Any:
        """
        A transfer whose body is read through Python (chunked), cancelled mid-body, fails
        with :class:`~twisted.internet.defer.CancelledError` too, and leaves no file.
        """
        return defer.ensureDeferred(self._cancelledOrdinary())


class FallbackTests(SplicingMixin, unittest.TestCase):
    """
    Where splicing does not apply, nothing is spliced and the file is still the body.
    """

    async def _ordinary(
        self, answers: dict[bytes, Answer], expected: bytes, **options: Any
    ) -> None:
        _, base = self.serve(answers)
        fetcher = self.fetcher(**options.pop("settings", {}))
        for path in answers:
            name = path.decode()[1:]
            moved, _ = await self.splicedDuring(
                fetcher.retrieve(f"{base}/{name}", outputDir=self.out, **options)
            )
            self.assertEqual(moved, 0, name)
            self.assertEqual(self.read(name), expected, name)

    def test_chunkedAndCloseDelimited(self) -> Any:
        """
        Chunked and close-delimited bodies are parsed the ordinary way.
        """
        return defer.ensureDeferred(
            self._ordinary(
                {
                    b"/chunked": (chunked(BIG), False),
                    b"/closed": (raw(b"200 OK", [(b"Connection", b"close")], BIG), True),
                },
                BIG,
            )
        )

    def test_decoded(self) -> Any:
        """
        A gzip body with ``compressed`` is decoded the ordinary way.
        """
        packed = gzip.compress(BIG, compresslevel=1)
        return defer.ensureDeferred(
            self._ordinary(
                {b"/packed": (ok(packed, (b"Content-Encoding", b"gzip")), False)},
                BIG,
                settings={"compressed": True},
            )
        )

    def test_small(self) -> Any:
        """
        A body under :attr:`Splicer.minimum` is not worth a pipe.
        """
        body = BIG[: splicing.Splicer.minimum // 2]
        return defer.ensureDeferred(self._ordinary({b"/small": (ok(body), False)}, body))

    def test_notLinux(self) -> Any:
        """
        Without ``splice`` (another system), the same body is read the ordinary way.
        """
        self.patch(sinks, "CAN_SPLICE", False)
        return defer.ensureDeferred(self._ordinary({b"/big": (ok(BIG), False)}, BIG))

    async def _stream(self) -> None:
        _, base = self.serve({b"/big": (ok(BIG), False)})
        target = os.path.join(self.out, "fifo")
        os.mkfifo(target)
        reader = subprocess.Popen(["cat", target], stdout=subprocess.PIPE)
        self.addCleanup(reader.wait)
        before = sinks.PartFile.spliced
        assert reader.stdout is not None
        self.addCleanup(reader.stdout.close)
        reading = threads.deferToThread(reader.stdout.read)
        await self.fetcher().retrieve(f"{base}/big", target)
        data = await reading
        self.assertEqual(sinks.PartFile.spliced, before)
        self.assertEqual(data, BIG)

    def test_stream(self) -> Any:
        """
        A FIFO named as the output is written into the ordinary way.
        """
        return defer.ensureDeferred(self._stream())


def closing(body: bytes, length: int | None = None) -> bytes:
    """
    A 200 of ``body`` declaring ``length`` (default: its own), with ``Connection: close``.
    """
    declared = len(body) if length is None else length
    return raw(b"200 OK", [(b"Content-Length", b"%d" % declared), (b"Connection", b"close")], body)


class TwinTests(SplicingMixin, unittest.TestCase):
    """
    The stdlib twin splices the same bodies, under the same rules (run on a thread while
    the test's reactor serves).
    """

    async def _twin(self, url: str, **options: Any) -> tuple[int, Any]:
        """
        Run the twin's ``fetch`` on a thread; return the bytes spliced meanwhile and its
        result (or the error it raised).
        """
        before = sinks.PartFile.spliced
        try:
            result = await threads.deferToThread(
                fallback.fetch, url, output_dir=self.out, **options
            )
        except fetch_errors.FetchError as e:
            result = e
        return sinks.PartFile.spliced - before, result

    async def _spliced(self) -> None:
        _, base = self.serve({b"/big": (closing(BIG), True)})
        moved, result = await self._twin(f"{base}/big")
        self.assertNotIsInstance(result, Exception)
        self.assertGreater(moved, len(BIG) - MiB)
        self.assertEqual(self.read("big"), BIG)
        self.assertEqual(self.files(), ["big"])

    def test_spliced(self) -> Any:
        """
        A large ``Content-Length`` body the server ends by closing is spliced into the
        file, which is byte for byte the body.
        """
        return defer.ensureDeferred(self._spliced())

    async def _strict(self) -> None:
        _, base = self.serve(
            {
                b"/short": (closing(BIG, len(BIG) + 10), True),
                b"/long": (closing(BIG, len(BIG) - 10), True),
                b"/stall": (closing(BIG, len(BIG) + 10), None),
            }
        )
        for name, kind, words in [
            ("short", fetch_errors.TruncatedBody, "cut short"),
            ("long", fetch_errors.TruncatedBody, "longer than announced"),
            ("stall", fetch_errors.Timeout, "within 0.5 seconds"),
        ]:
            moved, error = await self._twin(f"{base}/{name}", timeout=0.5)
            self.assertIsInstance(error, kind, name)
            self.assertIn(words, str(error), name)
            self.assertGreater(moved, 0, name)
            self.assertEqual(self.files(), [], name)
        moved, error = await self._twin(f"{base}/stall", max_time=1.0)
        self.assertIsInstance(error, fetch_errors.Timeout)
        self.assertIn("--max-time", str(error))
        self.assertGreater(moved, 0)
        self.assertEqual(self.files(), [])

    def test_strict(self) -> Any:
        """
        A body shorter or longer than declared, and a stall past ``--timeout`` or
        ``--max-time``, are the twin's usual errors while splicing, with no file left.
        """
        return defer.ensureDeferred(self._strict())

    async def _ordinary(self) -> None:
        self.patch(sinks, "CAN_SPLICE", False)
        _, base = self.serve({b"/big": (closing(BIG), True)})
        moved, result = await self._twin(f"{base}/big")
        self.assertNotIsInstance(result, Exception)
        self.assertEqual(moved, 0)
        self.assertEqual(self.read("big"), BIG)

    def test_ordinary(self) -> Any:
        """
        Without ``splice`` (another system), the twin reads the same body the ordinary way.
        """
        return defer.ensureDeferred(self._ordinary())
