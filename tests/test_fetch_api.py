"""
In-memory tests of :mod:`twisted_journey.fetch` and its parts: the fetcher with treq's
``RequestTraversalAgent`` injected and a fake clock (no sockets, no real time), the body
decoder, the disk spool, settings validation and failure classification.
"""

from __future__ import annotations

import gzip
import os
import zlib

from treq.testing import RequestTraversalAgent
from twisted.internet import error
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests import fetchservers as servers
from twisted_journey.fetch import Fetcher, FetchSettings, Retrieved, classify
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch.body import Decoder, Spool


class InMemoryFetcherTests(unittest.SynchronousTestCase):
    """
    :class:`Fetcher` with an injected in-memory agent and a :class:`Clock`.
    """

    def setUp(self) -> None:
        self.root = servers.webRoot()
        self.agent = RequestTraversalAgent(self.root)
        self.clock = Clock()
        self.out = self.mktemp()
        os.makedirs(self.out)

    def fetcher(self, **settings: object) -> Fetcher:
        return Fetcher(self.clock, self.agent, FetchSettings(**settings))  # type: ignore[arg-type]

    def test_retrieve(self) -> None:
        """
        The body lands in the file named from the URL; the result carries the status,
        size and headers.
        """
        d = self.fetcher().retrieve("http://example.invalid/blob", outputDir=self.out)
        self.agent.flush()
        result = self.successResultOf(d)
        self.assertIsInstance(result, Retrieved)
        self.assertEqual((result.status, result.size), (200, len(servers.BODY)))
        self.assertEqual(os.listdir(self.out), ["blob"])

    def test_statusError(self) -> None:
        """
        A 500 fails with :class:`HTTPStatusError` and leaves no file.
        """
        d = self.fetcher().retrieve("http://example.invalid/status/500", outputDir=self.out)
        self.agent.flush()
        failure = self.failureResultOf(d, fetch_errors.HTTPStatusError)
        self.assertEqual(failure.value.status, 500)
        self.assertEqual(os.listdir(self.out), [])

    def test_fetchBytes(self) -> None:
        """
        :meth:`Fetcher.fetchBytes` returns the body; past ``maxSize``, :class:`TooLarge`.
        """
        fetcher = self.fetcher()
        d = fetcher.fetchBytes("http://example.invalid/blob")
        self.agent.flush()
        self.assertEqual(self.successResultOf(d).content, servers.BODY)
        d = fetcher.fetchBytes("http://example.invalid/blob", maxSize=10)
        self.agent.flush()
        self.failureResultOf(d, fetch_errors.TooLarge)

    def test_retryAfterHonoured(self) -> None:
        """
        After a 429 with ``Retry-After: 30`` the retry waits exactly 30 clock seconds.
        """
        flaky = servers.Flaky(1, code=429, retryAfter=b"30")
        self.root.putChild(b"flaky", flaky)
        d = self.fetcher(retries=1).retrieve("http://example.invalid/flaky", outputDir=self.out)
        self.agent.flush()
        self.assertEqual(flaky.calls, 1)
        self.clock.advance(29.9)
        self.agent.flush()
        self.assertNoResult(d)
        self.assertEqual(flaky.calls, 1)
        self.clock.advance(0.1)
        self.agent.flush()
        self.successResultOf(d)
        self.assertEqual(flaky.calls, 2)

    def test_exponentialBackoff(self) -> None:
        """
        Without ``Retry-After`` the waits are ``retryDelay`` doubled each time: 2, 4.
        """
        flaky = servers.Flaky(2, retryAfter=b"")
        self.root.putChild(b"flaky", flaky)
        d = self.fetcher(retries=2, retryDelay=2.0).retrieve(
            "http://example.invalid/flaky", outputDir=self.out
        )
        self.agent.flush()
        for wait, calls in [(2.0, 2), (4.0, 3)]:
            self.clock.advance(wait - 0.01)
            self.agent.flush()
            self.assertEqual(flaky.calls, calls - 1)
            self.clock.advance(0.01)
            self.agent.flush()
            self.assertEqual(flaky.calls, calls)
        self.successResultOf(d)

    def test_idleTimeoutWaitingForHeaders(self) -> None:
        """
        A server that never answers trips the idle timer: :class:`Timeout`, no file.
        """
        self.root.putChild(b"hold", servers.Hold())
        d = self.fetcher(idleTimeout=5.0).retrieve(
            "http://example.invalid/hold", outputDir=self.out
        )
        self.agent.flush()
        self.assertNoResult(d)
        self.clock.advance(5.0)
        self.agent.flush()
        failure = self.failureResultOf(d, fetch_errors.Timeout)
        self.assertIn("no data for 5 seconds", str(failure.value))
        self.assertEqual(os.listdir(self.out), [])

    def test_parallelQueues(self) -> None:
        """
        With ``parallel=1`` the second retrieval waits for the first.
        """
        hold = servers.Hold()
        self.root.putChild(b"hold", hold)
        fetcher = self.fetcher(parallel=1, idleTimeout=None)
        first = fetcher.retrieve("http://example.invalid/hold", os.path.join(self.out, "1"))
        second = fetcher.retrieve("http://example.invalid/hold", os.path.join(self.out, "2"))
        self.agent.flush()
        self.assertEqual(len(hold.waiting), 1)
        hold.release()
        self.agent.flush()
        self.successResultOf(first)
        self.assertEqual(len(hold.waiting), 1)
        hold.release()
        self.agent.flush()
        self.successResultOf(second)
        self.assertEqual(hold.most, 1)


class DecoderTests(unittest.SynchronousTestCase):
    """
    :class:`Decoder`: gzip/deflate with caps.
    """

    def decode(self, decoder: Decoder, data: bytes) -> bytes:
        out: list[bytes] = []
        for i in range(0, len(data), 1000):
            decoder.decode(data[i : i + 1000], out.append)
        decoder.finish()
        return b"".join(out)

    def test_formats(self) -> None:
        """
        gzip, zlib-wrapped deflate and raw deflate all decode.
        """
        data = os.urandom(5000) * 3
        raw = zlib.compressobj(wbits=-15)
        rawDeflate = raw.compress(data) + raw.flush()
        for encoding, encoded in [
            ("gzip", gzip.compress(data)),
            ("deflate", zlib.compress(data)),
            ("deflate", rawDeflate),
        ]:
            self.assertEqual(self.decode(Decoder(encoding, 1 << 30, 100), encoded), data)

    def test_ratioCap(self) -> None:
        """
        A bomb is stopped by the ratio cap before much is decoded.
        """
        bomb = servers.gzipBomb(64 << 20)
        decoder = Decoder("gzip", 1 << 40, 100)
        with self.assertRaises(fetch_errors.TooLarge):
            self.decode(decoder, bomb)
        self.assertLess(decoder.decoded, 8 << 20)

    def test_sizeCap(self) -> None:
        """
        The size cap holds whatever the ratio.
        """
        with self.assertRaises(fetch_errors.TooLarge):
            self.decode(Decoder("gzip", 1000, 1e9), gzip.compress(bytes(5000)))

    def test_truncatedAndInvalid(self) -> None:
        """
        A stream without its end is :class:`TruncatedBody`; garbage :class:`ProtocolError`.
        """
        with self.assertRaises(fetch_errors.TruncatedBody):
            self.decode(Decoder("gzip", 1 << 30, 100), gzip.compress(os.urandom(4000))[:-100])
        with self.assertRaises(fetch_errors.ProtocolError):
            self.decode(Decoder("gzip", 1 << 30, 100), b"not gzip at all")


class SpoolTests(unittest.SynchronousTestCase):
    """
    :class:`Spool` without a thread pool writes at once.
    """

    def test_synchronous(self) -> None:
        """
        Writes pass straight through; :meth:`Spool.finish` fires at once.
        """
        written: list[bytes] = []
        spool = Spool(None, written.extend)
        spool.write(b"ab")
        spool.write(b"c")
        self.assertEqual(written, [b"ab", b"c"])
        self.successResultOf(spool.finish())
        finished: list[bool] = []
        self.successResultOf(spool.finish(lambda: finished.append(True)))
        self.assertEqual(finished, [True])


class SettingsAndClassifyTests(unittest.SynchronousTestCase):
    """
    Settings validation and failure classification.
    """

    def test_settingsValidated(self) -> None:
        """
        Nonsense settings are refused when the value is built.
        """
        for bad in [{"parallel": 0}, {"retries": -1}, {"idleTimeout": 0}, {"maxRedirects": -1}]:
            with self.assertRaises(ValueError):
                FetchSettings(**bad)  # type: ignore[arg-type]

    def test_classify(self) -> None:
        """
        Connection failures become the matching :class:`FetchError` with a sentence.
        """
        url = "http://h.invalid:81/x"
        cases = [
            (error.DNSLookupError("h.invalid"), fetch_errors.NetworkError, "cannot resolve"),
            (error.ConnectionRefusedError(), fetch_errors.NetworkError, "refused"),
            (error.TimeoutError(), fetch_errors.Timeout, "--connect-timeout"),
            (ValueError("odd"), fetch_errors.FetchError, "odd"),
        ]
        for exception, kind, phrase in cases:
            result = classify(Failure(exception), url)
            self.assertIsInstance(result, kind)
            self.assertIn(phrase, str(result))

    def test_badCacert(self) -> None:
        """
        A ``cacert`` that is not a PEM certificate is a :class:`TLSError` sentence.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate")
        with self.assertRaises(fetch_errors.TLSError):
            Fetcher(Clock(), settings=FetchSettings(cacert=path))


class _Producer:
    """
    Records what a :class:`Spool` asks of the transport.
    """

    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


class ThreadedSpoolTests(unittest.TestCase):
    """
    :class:`Spool` on the real reactor's thread pool.
    """

    def sleep(self, seconds: float) -> object:
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        return deferLater(reactor, seconds)  # type: ignore[arg-type]

    async def _pausesWhileDiskBehind(self) -> None:
        import threading

        from twisted.internet import reactor

        gate = threading.Event()
        written: list[bytes] = []

        def slowWrite(chunks: list[bytes]) -> None:
            gate.wait(30)
            written.extend(chunks)

        spool = Spool(reactor, slowWrite)
        producer = _Producer()
        spool.producer = producer
        chunk = b"x" * 65536
        count = Spool.highWater // len(chunk) + 20
        for _ in range(count):
            spool.write(chunk)
        self.assertEqual(producer.events, ["pause"])
        gate.set()
        for _ in range(1000):
            if "resume" in producer.events:
                break
            await self.sleep(0.01)
        self.assertEqual(producer.events, ["pause", "resume"])
        finished: list[int] = []
        await spool.finish(lambda: finished.append(len(written)))
        self.assertEqual(b"".join(written), chunk * count)
        self.assertEqual(finished, [count])

    def test_pausesWhileDiskBehind(self) -> object:
        """
        While the writer thread is stuck, queued bytes past ``highWater`` pause the
        transport; once it catches up the transport resumes; :meth:`Spool.finish` runs
        its final call after every byte is written.
        """
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._pausesWhileDiskBehind())

    async def _writeError(self) -> None:
        from twisted.internet import reactor

        def broken(chunks: list[bytes]) -> None:
            raise fetch_errors.FileError("cannot write 'x.part': No space left on device.")

        spool = Spool(reactor, broken)
        producer = _Producer()
        spool.producer = producer
        spool.write(b"y" * Spool.batch)
        for _ in range(1000):
            if "stop" in producer.events:
                break
            await self.sleep(0.01)
        self.assertEqual(producer.events, ["stop"])
        with self.assertRaises(fetch_errors.FileError):
            spool.write(b"more")
        with self.assertRaises(fetch_errors.FileError):
            await spool.finish()

    def test_writeError(self) -> object:
        """
        A write error on the thread stops the transfer and is raised to the writer and
        by :meth:`Spool.finish`.
        """
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._writeError())


class InlineSpoolTests(unittest.SynchronousTestCase):
    """
    A small body is written on the reactor thread, a large one on the writer thread.
    """

    def test_smallBodyInline(self) -> None:
        """
        At most :attr:`Spool.inline` bytes, finished before any batch left: written and
        finished at once on the calling thread (no thread pool needed).
        """
        import threading

        from twisted.internet import reactor

        threads: list[str] = []
        spool = Spool(reactor, lambda chunks: threads.append(threading.current_thread().name))
        spool.write(b"z" * Spool.inline)
        d = spool.finish(lambda: threads.append(threading.current_thread().name))
        self.successResultOf(d)
        self.assertEqual(threads, [threading.current_thread().name] * 2)

    def test_inlineWriteError(self) -> None:
        """
        An inline write error fails :meth:`Spool.finish`.
        """
        from twisted.internet import reactor

        def broken(chunks: list[bytes]) -> None:
            raise fetch_errors.FileError("cannot write: No space left on device.")

        spool = Spool(reactor, broken)
        spool.write(b"small")
        self.failureResultOf(spool.finish(), fetch_errors.FileError)


class NotInlineSpoolTests(unittest.TestCase):
    """
    A body past :attr:`Spool.inline` bytes is written on the writer thread.
    """

    def test_largeBodyNotInline(self) -> object:
        """
        Past :attr:`Spool.inline` bytes, the writes and the final call run on another
        thread, so :meth:`Spool.finish` has no result at once.
        """
        import threading

        from twisted.internet import reactor

        threads: list[str] = []
        spool = Spool(reactor, lambda chunks: threads.append(threading.current_thread().name))
        spool.write(b"z" * (Spool.inline + 1))
        d = spool.finish(lambda: threads.append(threading.current_thread().name))
        self.assertNoResult(d)
        here = threading.current_thread().name
        return d.addCallback(lambda _: self.assertNotIn(here, threads))
