# -*- test-case-name: tests.test_mux_contract -*-
# ruff: noqa: E402
"""
The multiplexing logging server on the standard library alone: the chapter's ``select``
and ``poll`` servers done right (the stdlib ``journey send`` client is in
:mod:`twisted_journey.fallback.client`).

Run it as ``python -m twisted_journey.fallback.mux --backend select|poll|epoll|auto``.
It writes the same records as ``twistd journey-mux`` (:mod:`twisted_journey.mux`), byte for
byte apart from the time and the peer's port, because both feed the same
:class:`twisted_journey.records.Framer` and :class:`twisted_journey.datalog.DataLog`.

One :mod:`selectors` loop; each registered socket's ``key.data`` is the callback that
handles its readiness (``accept`` for listeners, ``read``/``write`` for clients), as in
the :mod:`selectors` documentation.  Sockets are non-blocking; a client that closes is
recorded (its unterminated line marked partial) and unregistered.  ``select()`` cannot
watch a descriptor of 1024 or above (``FD_SETSIZE``): with ``--backend select`` such a
client is refused with a message saying to use ``poll`` or ``epoll``.

Signals: ``SIGTERM``/``SIGINT`` stop accepting (removing the files of ``unix:`` sockets),
record what was received, flush and close the data log, exit 0; ``SIGUSR1`` reopens the
data log.  ``SIGUSR1`` is caught from the first line this module runs (before the rest of
it is imported), so a logrotate run while the server starts does not kill it.

The data log never blocks the loop: when it falls behind a slow output (a pipe nobody
reads), the loop stops reading from the clients and accepting new ones until it catches
up (see :class:`twisted_journey.datalog.DataLog`).  Near the descriptor limit
(``ulimit -n``) the loop stops accepting, leaving new clients in the listen backlog, until
a client leaves: an accepted client is always read.
"""

from __future__ import annotations

import signal  # first: see _catch_early

#: signals that arrived before :func:`main` installed its handlers
_early_signals: list[int] = []


def _catch_early(number: int, frame: object) -> None:
    """
    Remember a signal that arrived while the server was starting.
    """
    _early_signals.append(number)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _catch_early)

import argparse
import errno
import selectors
import socket
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

from twisted_journey import __version__, records
from twisted_journey.datagrams import DatagramReceiver, bind_udp
from twisted_journey.datalog import DataLog, check_output, keep_count
from twisted_journey.errors import plural
from twisted_journey.eventlog import event_stream
from twisted_journey.listen import (
    ListenError,
    ListenSpec,
    bind_all,
    format_peer,
    parse_listen,
    parse_udp,
    remove_socket_files,
)
from twisted_journey.settings import (
    DEFAULT_BROADCAST_BUFFER,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_ROTATE_KEEP,
    READ_SIZE,
    SettingError,
    argparse_type,
    limit,
    seconds,
)
from twisted_journey.sockets import RESERVED_DESCRIPTORS, descriptor_ceiling
from twisted_journey.syslogframe import FRAMINGS, check_framing, new_framer

__all__ = ["BACKENDS", "FD_SETSIZE", "MuxServer", "main"]

#: ``select()``'s descriptor ceiling.
FD_SETSIZE = 1024

BACKENDS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "select": selectors.SelectSelector,
    "poll": getattr(selectors, "PollSelector", selectors.SelectSelector),
    "epoll": getattr(selectors, "EpollSelector", selectors.SelectSelector),
    "auto": selectors.DefaultSelector,
}


def _event_line(message: str) -> str:
    """
    ``message`` as a line of the event log, timestamped like the records.
    """
    return f"{records.timestamp(time.time()).decode()} {message}\n"


def log(message: str) -> None:
    """
    An event (not data) on stderr, timestamped like the records.  :func:`main` makes
    stderr an :class:`~twisted_journey.eventlog.EventStream`: never blocking.
    """
    sys.stderr.write(_event_line(message))
    sys.stderr.flush()


class Connection:
    """
    One client: its socket, its framer, what is waiting to be relayed to it, and the
    events the selector watches for it (``0``: not registered).
    """

    __slots__ = ("conn", "events", "framer", "out", "peer", "sock")

    def __init__(self, sock: socket.socket, peer: str, conn: int) -> None:
        self.sock = sock
        self.peer = peer
        self.conn = conn
        self.framer: records.Framer | None = None
        self.out = bytearray()
        self.events = 0


class MuxServer:
    """
    The ``selectors`` loop.

    :param listeners: bound, listening sockets.
    :param datalog: where records go.
    :param selector: a fresh selector (one of :data:`BACKENDS`).
    :param datagrams: bound UDP sockets (:func:`twisted_journey.datagrams.bind_udp`):
        each datagram is one message.

    :ivar reading: whether clients are read (``False`` while the data log's output is
        behind).
    :ivar accepting: whether the listeners are watched (``False`` while the data log is
        behind, or near the descriptor limit).
    :ivar pauses: how many times the clients were paused for the data log.
    :ivar deferred_accepts: how many times accepting stopped near the descriptor limit.
    """

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        datalog: DataLog,
        selector: selectors.BaseSelector,
        *,
        record_format: str = "text",
        mode: str = "line",
        framing: str = "lines",
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        broadcast: bool = False,
        broadcast_buffer: int = DEFAULT_BROADCAST_BUFFER,
        quiet: bool = False,
        datagrams: Sequence[socket.socket] = (),
    ) -> None:
        self.listeners = list(listeners)
        self.receivers = [
            DatagramReceiver(
                sock,
                framing=framing,
                record_format=record_format,
                max_line_length=max_line_length,
                keep_messages=broadcast,
            )
            for sock in datagrams
        ]
        self.datalog = datalog
        self.selector = selector
        self.record_format = record_format
        self.mode = mode
        self.framing = framing
        self.framing_errors = 0
        self.max_line_length = max_line_length
        self.flush_interval = flush_interval
        self.broadcast = broadcast
        self.broadcast_buffer = broadcast_buffer
        self.quiet = quiet
        self.clients: dict[socket.socket, Connection] = {}
        self.served = 0
        self.refused = 0
        self.pauses = 0
        self.deferred_accepts = 0
        self.reading = True
        self.accepting = False
        self._limited = isinstance(selector, selectors.SelectSelector)
        self._ceiling = descriptor_ceiling()
        self._exhausted = False
        self._retry_accept = 0.0
        self._last_deferred_report = -float("inf")
        self._stopping = False
        self._reopen = False
        self._watched_output = -1
        for listener in self.listeners:
            listener.setblocking(False)
        datalog.pause = self._pause_reading
        datalog.resume = self._resume_reading
        datalog.watch = self._watch_output
        self._update_accepting()
        for receiver in self.receivers:
            self.selector.register(receiver.sock, selectors.EVENT_READ, self._datagrams)

    # --- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """
        Serve until :meth:`stop` is called (from a signal handler), then finish.
        """
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.selector.register(wake_r, selectors.EVENT_READ, self._drain)
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        next_flush = time.monotonic() + self.flush_interval
        try:
            while not self._stopping:
                wake = next_flush
                if self._exhausted and not self.clients:
                    wake = min(wake, self._retry_accept)
                timeout = max(0.0, wake - time.monotonic())
                for key, mask in self.selector.select(timeout):
                    key.data(key.fileobj, mask)
                if self._reopen:
                    self._reopen = False
                    self.datalog.reopen()
                    log(f"Reopened data log {self.datalog.path}")
                now = time.monotonic()
                if self._exhausted and not self.clients and now >= self._retry_accept:
                    self._exhausted = False
                    self._update_accepting()
                if now >= next_flush:
                    self.datalog.flush()
                    next_flush = time.monotonic() + self.flush_interval
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            self.selector.unregister(wake_r)
            wake_r.close()
            wake_w.close()
            self.finish()

    def _drain(self, wake: socket.socket, mask: int) -> None:
        """
        Empty the signal wake-up socket (the handlers set the flags).
        """
        try:
            while wake.recv(512):
                pass
        except BlockingIOError:
            pass

    def stop(self, *ignored: object) -> None:
        """
        Ask the loop to finish (a signal handler).
        """
        self._stopping = True

    def reopen(self, *ignored: object) -> None:
        """
        Ask the loop to reopen the data log (a signal handler).
        """
        self._reopen = True

    def finish(self) -> None:
        """
        Stop listening, record every client's pending line, flush and close the data log
        (waiting a few seconds at most for a stalled output).
        """
        self.reading = False
        self._watch_output(False)
        for receiver in self.receivers:
            self._datagrams(receiver.sock, selectors.EVENT_READ)
            if self.selector.get_map().get(receiver.sock) is not None:  # not while paused
                self.selector.unregister(receiver.sock)
            receiver.sock.close()
        for listener in self.listeners:
            if self.accepting:
                self.selector.unregister(listener)
            listener.close()
        self.accepting = False
        for connection in list(self.clients.values()):
            self.close(connection, "server stopping")
        self.datalog.close()
        log(
            f"Served {plural(self.served, 'connection')}, refused {self.refused}; data log "
            f"{self.datalog.path}: {self.datalog.written} records "
            f"({self.datalog.written_bytes} bytes) written, {self.datalog.dropped} records lost"
        )

    # --- back-pressure ---------------------------------------------------------------------

    def _interest(self, connection: Connection) -> None:
        """
        Watch ``connection`` for what it needs now: reading unless the clients are
        paused, writing while relayed bytes wait.
        """
        events = (selectors.EVENT_READ if self.reading else 0) | (
            selectors.EVENT_WRITE if connection.out else 0
        )
        if events == connection.events:
            return
        if not connection.events:
            self.selector.register(connection.sock, events, self.ready)
        elif not events:
            self.selector.unregister(connection.sock)
        else:
            self.selector.modify(connection.sock, events, self.ready)
        connection.events = events

    def _update_accepting(self) -> None:
        """
        Watch the listeners unless the data log is behind or descriptors are short.
        """
        wanted = self.reading and not self._exhausted and not self._stopping
        if wanted == self.accepting:
            return
        for listener in self.listeners:
            if wanted:
                self.selector.register(listener, selectors.EVENT_READ, self.accept)
            else:
                self.selector.unregister(listener)
        self.accepting = wanted

    def _pause_reading(self) -> None:
        """
        The data log's output is behind: read from no client, accept none, until it
        catches up.  Nothing is lost: the clients wait.
        """
        self.reading = False
        self.pauses += 1
        for connection in self.clients.values():
            self._interest(connection)
        for receiver in self.receivers:
            self.selector.unregister(receiver.sock)
        self._update_accepting()
        log(
            f"Data log {self.datalog.path} is {self.datalog.backlog} bytes behind its "
            f"output: reading no client until it catches up"
        )

    def _resume_reading(self) -> None:
        """
        The data log caught up: read and accept again.
        """
        self.reading = True
        for connection in self.clients.values():
            self._interest(connection)
        for receiver in self.receivers:
            self.selector.register(receiver.sock, selectors.EVENT_READ, self._datagrams)
        self._update_accepting()
        log(f"Data log {self.datalog.path} caught up: reading clients again")

    def _watch_output(self, waiting: bool) -> None:
        """
        Watch the data log's output for writability while it is full.
        """
        if self._watched_output >= 0:
            self.selector.unregister(self._watched_output)
            self._watched_output = -1
        if waiting and self.datalog.fileno() >= 0:
            self._watched_output = self.datalog.fileno()
            self.selector.register(self._watched_output, selectors.EVENT_WRITE, self._writable)

    def _writable(self, fd: int, mask: int) -> None:
        """
        The data log's output has room: write what waits.
        """
        self.datalog.flush()

    # --- callbacks -------------------------------------------------------------------------

    def accept(self, listener: socket.socket, mask: int) -> None:
        """
        Accept every waiting client (up to a batch), stopping short of the descriptor
        limit: the rest stay in the listen backlog until a client leaves.
        """
        for _ in range(100):
            if not self.accepting:
                return
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._defer_accepting(e.strerror or str(e))
                else:
                    log(f"cannot accept a connection: {e.strerror or e}")
                return
            if isinstance(address, tuple):
                peer = format_peer(address[0], address[1])
            else:
                peer = format_peer(None, None)
            if self._limited and sock.fileno() >= FD_SETSIZE:
                self.refused += 1
                log(
                    f"Refused connection from {peer}: descriptor {sock.fileno()} is beyond "
                    f"select()'s limit of {FD_SETSIZE - 1}; run with --backend poll or epoll "
                    f"to serve more clients."
                )
                sock.close()
                continue
            sock.setblocking(False)
            self.served += 1
            connection = Connection(sock, peer, self.served)
            self.clients[sock] = connection
            self._interest(connection)
            if not self.quiet:
                log(f"Got connection from {peer}")
            if sock.fileno() >= self._ceiling:
                self._defer_accepting(f"descriptor {sock.fileno()} is near the limit")

    def _defer_accepting(self, reason: str) -> None:
        """
        Out of descriptors: stop accepting until a client leaves (or a second passes,
        when none is connected); waiting clients stay in the listen backlog.
        """
        self.deferred_accepts += 1
        self._exhausted = True
        now = time.monotonic()
        self._retry_accept = now + 1.0
        self._update_accepting()
        if now - self._last_deferred_report < 10:
            return
        self._last_deferred_report = now
        log(
            f"Accepting no more clients for now ({reason}, ulimit -n "
            f"{self._ceiling + RESERVED_DESCRIPTORS}; {len(self.clients)} clients connected): "
            f"new clients wait in the listen backlog until one leaves "
            f"({self.deferred_accepts} times so far)"
        )

    def _datagrams(self, sock: socket.socket, mask: int) -> None:
        """
        A ``udp:`` socket is readable: record its datagrams.
        """
        receiver = next(r for r in self.receivers if r.sock is sock)
        try:
            out = receiver.receive(time.time())
        except OSError as e:
            log(f"cannot read datagrams on {sock.getsockname()!r}: {e.strerror or e}")
            return
        if out:
            self.datalog.write(out)
            if receiver.complete:
                self.relay(None, receiver.complete)

    def ready(self, sock: socket.socket, mask: int) -> None:
        """
        A client's socket is readable and/or writable.
        """
        connection = self.clients.get(sock)
        if connection is None:  # closed earlier in this round (dropped by a relay)
            return
        if mask & selectors.EVENT_WRITE:
            self.write(connection)
            if sock not in self.clients:
                return
        if mask & selectors.EVENT_READ and self.reading:
            self.read(connection)

    def read(self, connection: Connection) -> None:
        """
        Record what the client sent; close on end of stream or error.
        """
        try:
            data = connection.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(connection, e.strerror or str(e))
            return
        if not data:
            self.close(connection, "closed by the client")
            return
        framer = connection.framer
        if framer is None:
            framer = connection.framer = new_framer(
                self.framing,
                self.record_format,
                connection.peer,
                connection.conn,
                mode=self.mode,
                max_line_length=self.max_line_length,
                keep_lines=self.broadcast,
            )
        made = framer.lines
        out = framer.feedPieces(data, time.time())
        if out:
            self.datalog.extend(out, framer.lines - made)
            if framer.complete:
                self.relay(connection, framer.complete)
        if framer.error is not None and connection.sock in self.clients:
            self.framing_errors += 1
            log(framer.error)
            self.close(connection, "framing error")

    def relay(self, sender: Connection | None, lines: bytes) -> None:
        """
        Queue ``lines`` for every client but ``sender`` (for all of them for a datagram's),
        dropping any that has stopped reading.
        """
        for other in list(self.clients.values()):
            if other is sender:
                continue
            pending = lines
            if not other.out:
                # Offer it to the kernel at once; queue (and watch for writability) the rest.
                try:
                    sent = other.sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as e:
                    self.close(other, e.strerror or str(e))
                    continue
                if sent == len(pending):
                    continue
                pending = pending[sent:]
            other.out += pending
            self._interest(other)
            if len(other.out) > self.broadcast_buffer:
                log(
                    f"Dropped {other.peer}: it stopped reading, and {len(other.out)} relayed "
                    f"bytes were waiting"
                )
                self.close(other, "dropped: not reading")

    def write(self, connection: Connection) -> None:
        """
        Send what is queued for the client.
        """
        try:
            sent = connection.sock.send(connection.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(connection, e.strerror or str(e))
            return
        del connection.out[:sent]
        if not connection.out:
            self._interest(connection)

    def close(self, connection: Connection, reason: str) -> None:
        """
        Record the pending partial line, unregister and close the client.
        """
        del self.clients[connection.sock]
        framer = connection.framer
        if framer is not None:
            self.datalog.write(framer.finish(time.time()))
        if connection.events:
            self.selector.unregister(connection.sock)
        connection.sock.close()
        if self._exhausted and not self._stopping:
            # A descriptor is free: accept again (stopping again if it is the last).
            self._exhausted = False
            self._update_accepting()
        if not self.quiet:
            log(
                f"Connection {connection.conn} from {connection.peer} closed "
                f"({reason}): {framer.received if framer else 0} bytes, "
                f"{framer.lines if framer else 0} records"
            )


# --- the command -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twisted_journey.fallback.mux",
        description=(
            "Record every line every client sends (stdlib twin of twistd journey-mux). "
            "SIGUSR1 reopens the data log; SIGTERM records what was received and closes it."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--listen", "-l", action="append", default=[], metavar="ENDPOINT",
        help="tcp:PORT[:interface=ADDR], tcp6:..., unix:PATH, udp:PORT[:interface=ADDR] "
        "(a datagram per message); repeatable [tcp:1235]",
    )  # fmt: skip
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="auto",
        help="readiness API: select, poll, epoll or auto (the best there is) [auto]",
    )
    parser.add_argument("--output", "-o", default="-", help="data log file; - is stdout [-]")
    parser.add_argument(
        "--format",
        choices=records.FORMATS,
        default="text",
        help="record format: text or json [text]",
    )
    parser.add_argument(
        "--mode",
        choices=records.MODES,
        default="line",
        help="line: a record per line; raw: a record per received chunk [line]",
    )
    parser.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="lines",
        help="lines: a line ends at LF; syslog: RFC 6587 frames (octet counted, or ending "
        "at LF or NUL), a record per message [lines]",
    )
    parser.add_argument(
        "--max-line-length",
        type=argparse_type(partial(limit, "")),
        default=DEFAULT_MAX_LINE_LENGTH,
        help=f"record longer lines cut to this many bytes, marked [{DEFAULT_MAX_LINE_LENGTH}]",
    )  # fmt: skip
    parser.add_argument(
        "--flush-interval", type=argparse_type(partial(seconds, "")), default=DEFAULT_FLUSH_INTERVAL,
        help="write buffered records at least this often, in seconds "
        f"[{DEFAULT_FLUSH_INTERVAL:g}]",
    )  # fmt: skip
    parser.add_argument(
        "--rotate-bytes", type=argparse_type(partial(limit, "")), default=None,
        help="start a new data log before it grows past this size; the full one becomes "
        "PATH-YYYYMMDDTHHMMSS.ffffffZ",
    )  # fmt: skip
    parser.add_argument(
        "--rotate-keep", type=argparse_type(partial(keep_count, "")), default=DEFAULT_ROTATE_KEEP,
        help=f"rotated data logs to keep; the oldest go [{DEFAULT_ROTATE_KEEP}]",
    )  # fmt: skip
    parser.add_argument("--broadcast", action="store_true", help="relay every line to the others")
    parser.add_argument(
        "--broadcast-buffer",
        type=argparse_type(partial(limit, "")),
        default=DEFAULT_BROADCAST_BUFFER,
        help=f"drop a broadcast client with this many bytes unread [{DEFAULT_BROADCAST_BUFFER}]",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-connection events")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the server until ``SIGTERM``/``SIGINT``; return the exit status.
    """
    if signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL:
        signal.signal(signal.SIGUSR1, _catch_early)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_output(args.output, args.rotate_bytes)
        check_framing(args.framing, args.mode)
        udp = [parse_udp(d) for d in args.listen if d.partition(":")[0] == "udp"]
        specs = [parse_listen(d) for d in args.listen if d.partition(":")[0] != "udp"]
        if not args.listen:
            specs = [parse_listen("tcp:1235")]
    except (SettingError, ListenError) as e:
        parser.error(str(e))
    # Events never block the loop: those a stalled reader cannot take are dropped, counted.
    sys.stderr = event_stream(sys.stderr, _event_line)
    try:
        datalog = DataLog(
            args.output,
            rotate_bytes=args.rotate_bytes,
            rotate_keep=args.rotate_keep,
            report=lambda sentence: log(f"CRITICAL {sentence}"),
            notice=log,
        )
    except OSError as e:
        parser.error(f"cannot open --output {args.output!r}: {e.strerror or e}.")
    # A stop that arrives once the sockets are bound, before the loop's handlers are in
    # place, is kept and acted on (a client may connect, and a SIGTERM arrive, at once).
    signal.signal(signal.SIGTERM, _catch_early)
    signal.signal(signal.SIGINT, _catch_early)
    # The udp: sockets are bound first: once a TCP port accepts, every listener is ready.
    datagrams: list[socket.socket] = []
    try:
        try:
            for spec in udp:
                datagrams.append(bind_udp(spec))
            listeners = bind_all(specs)
        except ListenError:
            for sock in datagrams:
                sock.close()
            raise
    except ListenError as e:
        datalog.close()
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 1
    server = MuxServer(
        listeners,
        datalog,
        BACKENDS[args.backend](),
        record_format=args.format,
        mode=args.mode,
        framing=args.framing,
        max_line_length=args.max_line_length,
        flush_interval=args.flush_interval,
        broadcast=args.broadcast,
        broadcast_buffer=args.broadcast_buffer,
        quiet=args.quiet,
        datagrams=datagrams,
    )
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    signal.signal(signal.SIGUSR1, server.reopen)
    if signal.SIGUSR1 in _early_signals:
        server.reopen()
    if signal.SIGTERM in _early_signals or signal.SIGINT in _early_signals:
        server.stop()
    bound: list[tuple[ListenSpec, socket.socket]] = [
        *zip(specs, listeners, strict=True),
        *zip(udp, datagrams, strict=True),
    ]
    for spec, listener in bound:
        log(f"Listening on {spec} ({args.backend} backend) as {listener.getsockname()!r}")
    try:
        server.serve_forever()
    finally:
        remove_socket_files(specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
