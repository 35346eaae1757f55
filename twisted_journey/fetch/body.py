# -*- test-case-name: tests.test_fetch_api,tests.test_fetch_answers -*-
"""
Receiving one response body for :mod:`twisted_journey.fetch`: timers, decoding, writing.

- :class:`Deadline`: the idle timer (reset by every byte) and the total time limit, which
  Agent lacks for bodies; either stops the transfer.
- :class:`Decoder`: gzip/deflate decoding in bounded pieces, refusing to inflate past a
  size or a ratio (Twisted's ``ContentDecoderAgent`` has no cap).
- :class:`Spool`: hands bytes to a writer thread and pauses the transport while the disk
  is behind, so memory stays bounded whatever the file size.
- :class:`BodyReceiver`: the ``deliverBody`` protocol tying them together; a large
  identity body over plain TCP into a file is spliced by the kernel instead
  (:mod:`twisted_journey.fetch.splicing`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorThreads, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.iweb import IResponse

from twisted_journey.fetch.errors import (
    FetchError,
    FileError,
    ProtocolError,
    Timeout,
    TooLarge,
    TruncatedBody,
    max_time_exceeded,
)
from twisted_journey.fetch.sinks import Sink
from twisted_journey.fetch.splicing import Splicer

__all__ = ["BodyReceiver", "Deadline", "Decoder", "Spool", "abandon"]

MiB = 1 << 20
_DONE = Failure(ResponseDone())


class Deadline:
    """
    The idle and total timers of one attempt; when either fires, ``stop`` is called and
    :attr:`expired` says which.
    """

    def __init__(self, clock: IReactorTime, idle: float | None, total: float | None) -> None:
        self.expired: str | None = None
        self.idle = idle
        self.total = total
        self._stop: Callable[[], object] = lambda: None
        self._calls: list[IDelayedCall] = []
        self._idleCall: IDelayedCall | None = None
        if total is not None:
            self._calls.append(clock.callLater(total, self._fire, "total"))
        if idle is not None:
            self._idleCall = clock.callLater(idle, self._fire, "idle")
            self._calls.append(self._idleCall)

    def watch(self, stop: Callable[[], object]) -> None:
        """
        Call ``stop`` (cancel the request, stop the body) when a timer fires.
        """
        self._stop = stop

    def poke(self) -> None:
        """
        Something arrived: restart the idle timer.
        """
        if self._idleCall is not None and self._idleCall.active() and self.idle is not None:
            self._idleCall.reset(self.idle)

    def _fire(self, kind: str) -> None:
        """
        A timer fired: remember which, stop both, stop the transfer.
        """
        self.expired = kind
        self.cancel()
        self._stop()

    def cancel(self) -> None:
        """
        Stop both timers (idempotent).
        """
        for call in self._calls:
            if call.active():
                call.cancel()

    def error(self, url: str) -> Timeout:
        """
        The :class:`Timeout` for the timer that fired.
        """
        if self.expired == "total":
            return max_time_exceeded(self.total or 0.0, url)
        return Timeout(f"no data for {self.idle:g} seconds (--idle-timeout).", url)


class Decoder:
    """
    gzip/deflate (and, with the ``brotli`` package, br) decoding that refuses to inflate
    past a size or a ratio.

    A gzip body of several members (``cat a.gz b.gz``) decodes whole, as ``gzip -d``
    does.  After the last member, zero bytes (padding) are ignored, as ``gzip -d`` does;
    any other trailing bytes are a :class:`ProtocolError` and nothing is saved: they are
    either a damaged member or not gzip at all, and a file silently missing its end is
    worse than an error.  The same holds for bytes after a deflate stream.

    :ivar next: the decoder the output goes through next (stacked codings), or ``None``.
    """

    def __init__(
        self, encoding: str, maxSize: int, maxRatio: float, next: Decoder | None = None
    ) -> None:
        self.encoding = "gzip" if encoding == "x-gzip" else encoding
        self.maxSize = maxSize
        self.maxRatio = maxRatio
        self.next = next
        self.encoded = self.decoded = 0
        self._raw = False
        self._tail = b""
        self._padding = False
        self._z = self._decompressor()

    @classmethod
    def chain(cls, codings: list[str], maxSize: int, maxRatio: float) -> Decoder:
        """
        Decoders undoing ``codings`` (in the order they were applied), last one first.
        """
        decoder: Decoder | None = None
        for coding in codings:
            decoder = cls(coding, maxSize, maxRatio, decoder)
        assert decoder is not None
        return decoder

    def _decompressor(self) -> Any:
        """
        A fresh decompressor for this coding (``zlib``'s, or ``brotli``'s for br).
        """
        if self.encoding == "br":
            import brotli

            return brotli.Decompressor()
        if self.encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw else zlib.MAX_WBITS)

    def decode(self, data: bytes, write: Callable[[bytes], object]) -> None:
        """
        Decode ``data``, handing the output to ``write`` 64 KiB at a time (through
        :attr:`next` first, when stacked).

        :raises TooLarge: past the size or ratio cap.
        :raises ProtocolError: when the data is not valid gzip/deflate.
        """
        if self.next is not None:
            following, sink = self.next, write
            write = lambda piece: following.decode(piece, sink)  # noqa: E731
        self.encoded += len(data)
        if self.encoding == "br":
            self._decodeBrotli(data, write)
            return
        while data:
            if self._z.eof:
                data = self._afterEnd(data)
                if not data:
                    return
            try:
                piece = self._z.decompress(data, 1 << 16)
            except zlib.error:
                if self.encoding == "deflate" and not self._raw and self.decoded == 0:
                    # "deflate" is meant to be zlib-wrapped, but some servers send raw.
                    self._raw = True
                    self._z = self._decompressor()
                    continue
                raise ProtocolError(f"the body is not valid {self.encoding} data.") from None
            self._count(piece)
            if piece:
                write(piece)
            data = self._z.unused_data if self._z.eof else self._z.unconsumed_tail

    def _count(self, piece: bytes) -> None:
        """
        Count decoded bytes; raise :class:`TooLarge` past the size or ratio cap.
        """
        self.decoded += len(piece)
        if self.decoded > self.maxSize:
            raise TooLarge(
                f"the {self.encoding} body decodes to more than {self.maxSize} bytes "
                "(--max-decoded-size); nothing saved."
            )
        if self.decoded > self.maxRatio * self.encoded + MiB:
            raise TooLarge(
                f"the {self.encoding} body inflates more than {self.maxRatio:g} times "
                "(a decompression bomb?); nothing saved."
            )

    def _decodeBrotli(self, data: bytes, write: Callable[[bytes], object]) -> None:
        """
        :meth:`decode` for br: output is drawn 64 KiB at a time (``output_buffer_limit``),
        so a bomb is stopped at the cap, not after inflating in memory.
        """
        import brotli

        z = self._z
        if z.is_finished():
            if data:
                raise ProtocolError(
                    f"the {self.encoding} body has data after its end; nothing saved."
                )
            return
        try:
            while True:
                piece = z.process(data, output_buffer_limit=1 << 16)
                data = b""
                self._count(piece)
                if piece:
                    write(piece)
                if z.is_finished() or (not piece and z.can_accept_more_data()):
                    return
        except brotli.error:
            raise ProtocolError(f"the body is not valid {self.encoding} data.") from None

    def _afterEnd(self, data: bytes) -> bytes:
        """
        Bytes after a complete stream: the start of another gzip member (returned, to be
        fed to a fresh decompressor), zero padding (dropped), or an error.
        """
        if self._padding or (data[:1] == b"\0" and not self._tail):
            if data.strip(b"\0"):
                raise ProtocolError(
                    f"the {self.encoding} body has data after its end; nothing saved."
                )
            self._padding = True
            return b""
        self._tail += data
        if self.encoding == "gzip" and b"\x1f\x8b"[: len(self._tail)] == self._tail[:2]:
            if len(self._tail) < 2:
                return b""  # half a magic number: wait for the next byte
            data, self._tail = self._tail, b""
            self._z = self._decompressor()
            return data
        raise ProtocolError(f"the {self.encoding} body has data after its end; nothing saved.")

    def finish(self) -> None:
        """
        :raises TruncatedBody: when the compressed stream (or a stacked one) did not end.
        """
        ended = self._z.is_finished() if self.encoding == "br" else self._z.eof
        if not ended or self._tail:
            raise TruncatedBody(f"the {self.encoding} body ended before its end marker.")
        if self.next is not None:
            self.next.finish()


class Spool:
    """
    Writes body bytes on a thread, so the reactor keeps receiving while the disk writes;
    the transport is paused while more than ``highWater`` bytes wait.

    Bytes are handed over in batches of ``batch`` bytes (as a list of chunks, for
    ``writev``); :meth:`finish` runs the last write and a final call (close, verify,
    rename) in one trip to the thread.  A body of at most ``inline`` bytes never reaches
    the thread: :meth:`finish` writes it and makes the final call on the reactor thread,
    which for small files costs less than the trip (and the lock contention) it saves.
    Without a thread pool (an in-memory test reactor), writes happen at once.

    :ivar sink: the file the body is going to, when the body may be spliced into it
        (:class:`~twisted_journey.fetch.splicing.Splicer` decides), else ``None``.
    """

    batch = 512 * 1024
    highWater = 2 * MiB
    #: A body this small, finished before any batch went to the thread, is written on the
    #: reactor thread: one open, write and rename costs less than the trip to the thread
    #: and back (measured: see docs/benchmarks/fetch.rst).
    inline = 64 * 1024

    def __init__(self, reactor: object, write: Callable[[list[bytes]], None]) -> None:
        self._write = write
        self._threads = reactor if IReactorThreads.providedBy(reactor) else None
        self._pending: list[bytes] = []
        self._pendingSize = 0
        self._busy = False
        self._closing: Deferred[None] | None = None
        self._then: Callable[[], object] | None = None
        self._finalSent = False
        self._sent = False
        self._error: BaseException | None = None
        self.producer: Any = None
        self._paused = False
        self.sink: Sink | None = None

    @property
    def error(self) -> BaseException | None:
        """
        The writer thread's error (a full disk, say), or ``None``.
        """
        return self._error

    def write(self, data: bytes) -> None:
        """
        Queue ``data``; raise the writer thread's error, if it had one.
        """
        if self._error is not None:
            raise self._error
        if self._threads is None:
            self._write([data])
            return
        self._pending.append(data)
        self._pendingSize += len(data)
        if not self._busy and self._pendingSize >= self.batch:
            self._flush()
        if self._pendingSize >= self.highWater and not self._paused and self.producer:
            self._paused = True
            self.producer.pauseProducing()

    def _flush(self) -> None:
        """
        Hand the queued chunks (and, when finishing, the final call) to the thread.
        """
        data, self._pending = self._pending, []
        self._pendingSize = 0
        self._busy = True
        self._sent = True
        then = None
        if self._closing is not None:
            self._finalSent = True
            then = self._then
        threads = self._threads
        assert threads is not None
        deferToThreadPool(
            threads,
            threads.getThreadPool(),
            self._writeThen,
            data,
            then,
        ).addCallbacks(self._written, self._failed)

    def writeNow(self) -> bool:
        """
        Write what is queued at once, on this thread, so that the file's offset is the end
        of everything received (bytes may then go into it another way); the final call of
        :meth:`finish` will run on the thread.  ``False`` (nothing done) while a batch is
        on the thread.

        :raises: the writer thread's error, or the write's.
        """
        if self._error is not None:
            raise self._error
        if self._busy:
            return False
        if self._pending:
            data, self._pending = self._pending, []
            self._pendingSize = 0
            self._write(data)
        self._sent = True
        return True

    def _writeThen(self, data: list[bytes], then: Callable[[], object] | None) -> None:
        """
        On the thread: write ``data``, then call ``then``.
        """
        if data:
            self._write(data)
        if then is not None:
            then()

    def _written(self, _: object) -> None:
        """
        A batch was written: resume the transport, send the next batch or finish.
        """
        self._busy = False
        if self._paused and self.producer:
            self._paused = False
            self.producer.resumeProducing()
        if self._closing is not None:
            if self._finalSent and not self._pending:
                closing, self._closing = self._closing, None
                closing.callback(None)
            else:
                self._flush()
        elif self._pendingSize >= self.batch:
            self._flush()

    def _failed(self, failure: Failure) -> None:
        """
        A write failed: remember the error, stop the transfer, fail :meth:`finish`.
        """
        self._busy = False
        self._error = failure.value
        if self.producer:
            self.producer.stopProducing()
        if self._closing is not None:
            closing, self._closing = self._closing, None
            closing.errback(failure)

    def finish(self, then: Callable[[], object] | None = None) -> Deferred[None]:
        """
        Write what is queued, then call ``then`` (on the same thread); fire when done, or
        fail with the first error.
        """
        self.producer = None
        if self._error is not None:
            return fail(self._error)
        if self._threads is None or (
            not self._busy and not self._sent and self._pendingSize <= self.inline
        ):
            if self._pending:
                data, self._pending = self._pending, []
                self._pendingSize = 0
                try:
                    self._write(data)
                except Exception as e:
                    return fail(e)
            try:
                if then is not None:
                    then()
            except Exception as e:
                return fail(e)
            return succeed(None)
        self._then = then
        self._closing = Deferred()
        closing = self._closing
        if not self._busy:
            self._flush()
        return closing


class BodyReceiver(Protocol):
    """
    Receives one response body: feeds the timers, the decoder and the sink, and fires
    ``done`` with whether the body was framed (``False``: close-delimited).

    :ivar done: a ``Deferred`` firing with ``True`` for a body whose end the server
        marked (length or chunks), ``False`` for one that ended when the connection
        closed, or failing with why the transfer stopped; cancelling it stops the
        transfer.
    """

    def __init__(
        self,
        write: Callable[[bytes], None],
        deadline: Deadline,
        decoder: Decoder | None,
        progress: Callable[[int], object],
        spool: Spool | None = None,
    ) -> None:
        self.write = write
        self.deadline = deadline
        self.decoder = decoder
        self.progress = progress
        self.spool = spool
        self.received = 0
        self.error: FetchError | None = None
        self.splicer: Splicer | None = None
        # Cancelling (an interrupted run) stops the transfer; connectionLost follows.
        self.done: Deferred[bool] = Deferred(lambda _: self._cancel())

    def _cancel(self) -> None:
        """
        Stop the transfer (the caller cancelled ``done``).
        """
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:
        """
        The body starts: the timers and the spool may now stop or pause it.
        """
        self.deadline.watch(self.transport.stopProducing)  # type: ignore[union-attr]
        spool = self.spool
        if spool is not None:
            spool.producer = self.transport
            if spool.sink is not None and self.decoder is None:
                self.splicer = Splicer.attach(
                    self.transport, spool.sink, self._spliced, self._stop, spool.writeNow
                )

    def _spliced(self, size: int) -> None:
        """
        ``size`` body bytes went into the file by splicing: count them as received.
        """
        self.received += size
        self.deadline.poke()
        self.progress(size)

    def dataReceived(self, data: bytes) -> None:
        """
        Body bytes: restart the idle timer, decode, queue for the disk, report.
        """
        self.received += len(data)
        self.deadline.poke()
        try:
            if self.decoder is not None:
                self.decoder.decode(data, self.write)
            else:
                self.write(data)
        except FetchError as e:
            self._stop(e)
            return
        except Exception as e:  # a write error from the spool thread
            self._stop(FileError(f"cannot write the file: {e}."))
            return
        self.progress(len(data))

    def _stop(self, error: FetchError) -> None:
        """
        Stop the transfer because of ``error`` (the first one wins).
        """
        if self.error is None:
            self.error = error
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """
        The body ended: fire ``done`` with the outcome.
        """
        from twisted.web.http import PotentialDataLoss

        if self.splicer is not None:
            self.splicer.release()
        if self.done.called:  # cancelled
            return
        if self.deadline.expired:
            # Whatever the framing: a close-delimited body stopped by the clock would
            # otherwise look complete.
            self.done.errback(self.deadline.error(""))
        elif self.spool is not None and self.spool.error is not None and self.error is None:
            # The writer thread failed (a full disk) and stopped the transfer: a file
            # error, not a cut body, and not worth retrying.
            self.done.errback(FileError(f"cannot write the file: {self.spool.error}."))
        elif self.error is not None:
            self.done.errback(self.error)
        elif reason.check(ResponseDone, PotentialDataLoss):
            try:
                if self.decoder is not None:
                    self.decoder.finish()
            except FetchError as e:
                self.done.errback(e)
                return
            self.done.callback(reason.check(ResponseDone) is not None)
        else:
            self.done.errback(reason)


class Discard(Protocol):
    """
    Throws a response body away: reads a small one to its end (so the connection can be
    reused), stops a large or unknown one at once; ``done`` fires when it is over.

    :ivar done: a ``Deferred`` firing with ``None`` when the body is read or dropped.
    """

    def __init__(self, length: object) -> None:
        self.length = length
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        """
        The body starts: the timers and the spool may now stop or pause it.
        """
        if not (isinstance(self.length, int) and self.length <= 65536):
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """
        The body ended: fire ``done`` with the outcome.
        """
        self.done.callback(None)


def abandon(response: IResponse) -> Deferred[None]:
    """
    Drop a response's body; fire when the connection is done with it.
    """
    discard = Discard(response.length)
    response.deliverBody(discard)
    return discard.done
