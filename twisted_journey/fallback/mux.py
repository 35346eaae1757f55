# -*- test-case-name: tests.test_mux_contract -*-
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
data log.
"""

from __future__ import annotations

import argparse
import errno
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

from twisted_journey import records
from twisted_journey.datalog import DataLog, check_output, keep_count
from twisted_journey.listen import (
    ListenError,
    bind_all,
    format_peer,
    parse_listen,
    remove_socket_files,
)
from twisted_journey.settings import SettingError, limit, seconds

__all__ = ["BACKENDS", "FD_SETSIZE", "MuxServer", "main"]

#: ``select()``'s descriptor ceiling.
FD_SETSIZE = 1024

BACKENDS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "select": selectors.SelectSelector,
    "poll": getattr(selectors, "PollSelector", selectors.SelectSelector),
    "epoll": getattr(selectors, "EpollSelector", selectors.SelectSelector),
    "auto": selectors.DefaultSelector,
}

READ_SIZE = 65536


def log(message: str) -> None:
    """
    An event (not data) on stderr, timestamped like the records.
    """
    sys.stderr.write(f"{records.timestamp(time.time()).decode()} {message}\n")
    sys.stderr.flush()


class Connection:
    """
    One client: its socket, its framer, and what is waiting to be relayed to it.
    """

    __slots__ = ("conn", "framer", "out", "peer", "sock")

    def __init__(self, sock: socket.socket, peer: str, conn: int) -> None:
        self.sock = sock
        self.peer = peer
        self.conn = conn
        self.framer: records.Framer | None = None
        self.out = bytearray()


class MuxServer:
    """
    The ``selectors`` loop.

    :param listeners: bound, listening sockets.
    :param datalog: where records go.
    :param selector: a fresh selector (one of :data:`BACKENDS`).
    """

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        datalog: DataLog,
        selector: selectors.BaseSelector,
        *,
        record_format: str = "text",
        mode: str = "line",
        max_line_length: int = 65536,
        flush_interval: float = 1.0,
        broadcast: bool = False,
        broadcast_buffer: int = 1 << 20,
        quiet: bool = False,
    ) -> None:
        self.listeners = list(listeners)
        self.datalog = datalog
        self.selector = selector
        self.record_format = record_format
        self.mode = mode
        self.max_line_length = max_line_length
        self.flush_interval = flush_interval
        self.broadcast = broadcast
        self.broadcast_buffer = broadcast_buffer
        self.quiet = quiet
        self.clients: dict[socket.socket, Connection] = {}
        self.served = 0
        self.refused = 0
        self._limited = isinstance(selector, selectors.SelectSelector)
        self._stopping = False
        self._reopen = False
        for listener in self.listeners:
            listener.setblocking(False)
            selector.register(listener, selectors.EVENT_READ, self.accept)

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
                timeout = max(0.0, next_flush - time.monotonic())
                for key, mask in self.selector.select(timeout):
                    key.data(key.fileobj, mask)
                if self._reopen:
                    self._reopen = False
                    self.datalog.reopen()
                    log(f"Reopened data log {self.datalog.path}")
                if time.monotonic() >= next_flush:
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
        Stop listening, record every client's pending line, flush and close the data log.
        """
        for listener in self.listeners:
            self.selector.unregister(listener)
            listener.close()
        for connection in list(self.clients.values()):
            self.close(connection, "server stopping")
        self.datalog.close()
        log(
            f"Served {self.served} connections, refused {self.refused}; data log "
            f"{self.datalog.path}: {self.datalog.written} bytes written, "
            f"{self.datalog.dropped_records} records lost"
        )

    # --- callbacks -------------------------------------------------------------------------

    def accept(self, listener: socket.socket, mask: int) -> None:
        """
        Accept every waiting client (up to a batch).
        """
        for _ in range(100):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # EMFILE and friends: say so, and shed what waits rather than spin.
                log(f"cannot accept a connection: {e.strerror or e}")
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.01)
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
            self.selector.register(sock, selectors.EVENT_READ, self.ready)
            if not self.quiet:
                log(f"Got connection from {peer}")

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
        if mask & selectors.EVENT_READ:
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
            framer = connection.framer = records.Framer(
                self.record_format,
                connection.peer,
                connection.conn,
                mode=self.mode,
                max_line_length=self.max_line_length,
                keep_lines=self.broadcast,
            )
        out = framer.feed(data, time.time())
        if out:
            self.datalog.write(out)
            if framer.complete:
                self.relay(connection, framer.complete)

    def relay(self, sender: Connection, lines: bytes) -> None:
        """
        Queue ``lines`` for every other client, dropping any that has stopped reading.
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
                self.selector.modify(
                    other.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self.ready
                )
            other.out += pending
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
            self.selector.modify(connection.sock, selectors.EVENT_READ, self.ready)

    def close(self, connection: Connection, reason: str) -> None:
        """
        Record the pending partial line, unregister and close the client.
        """
        del self.clients[connection.sock]
        framer = connection.framer
        if framer is not None:
            self.datalog.write(framer.finish(time.time()))
        self.selector.unregister(connection.sock)
        connection.sock.close()
        if not self.quiet:
            log(
                f"Connection {connection.conn} from {connection.peer} closed "
                f"({reason}): {framer.received if framer else 0} bytes, "
                f"{framer.lines if framer else 0} records"
            )


# --- the command -------------------------------------------------------------------------


def _setting(check: Callable[[str, str], object]) -> Callable[[str], object]:
    """
    An argparse type from a :mod:`twisted_journey.settings`-style check.
    """

    def convert(value: str) -> object:
        try:
            return check("", value)
        except SettingError as e:
            raise argparse.ArgumentTypeError(str(e).strip().rstrip(".")) from None

    return convert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twisted_journey.fallback.mux",
        description=(
            "Record every line every client sends (stdlib twin of twistd journey-mux). "
            "SIGUSR1 reopens the data log; SIGTERM records what was received and closes it."
        ),
    )
    parser.add_argument(
        "--listen", "-l", action="append", default=[], metavar="ENDPOINT",
        help="tcp:PORT[:interface=ADDR], tcp6:..., unix:PATH; repeatable [tcp:1235]",
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
        "--max-line-length", type=_setting(limit), default=65536,
        help="record longer lines cut to this many bytes, marked [65536]",
    )  # fmt: skip
    parser.add_argument(
        "--flush-interval", type=_setting(seconds), default=1.0,
        help="write buffered records at least this often, in seconds [1]",
    )  # fmt: skip
    parser.add_argument(
        "--rotate-bytes",
        type=_setting(limit),
        default=None,
        help="start a new data log before it grows past this size [never]",
    )
    parser.add_argument(
        "--rotate-keep",
        type=_setting(keep_count),
        default=10,
        help="rotated data logs to keep (PATH.1 is the newest) [10]",
    )
    parser.add_argument("--broadcast", action="store_true", help="relay every line to the others")
    parser.add_argument(
        "--broadcast-buffer",
        type=_setting(limit),
        default=1 << 20,
        help="drop a broadcast client with this many bytes unread [1048576]",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-connection events")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the server until ``SIGTERM``/``SIGINT``; return the exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_output(args.output, args.rotate_bytes)
        specs = [parse_listen(d) for d in args.listen or ["tcp:1235"]]
    except (SettingError, ListenError) as e:
        parser.error(str(e))
    try:
        datalog = DataLog(
            args.output,
            rotate_bytes=args.rotate_bytes,
            rotate_keep=args.rotate_keep,
            report=lambda sentence: log(f"CRITICAL {sentence}"),
        )
    except OSError as e:
        parser.error(f"cannot open --output {args.output!r}: {e.strerror or e}.")
    try:
        listeners = bind_all(specs)
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
        max_line_length=args.max_line_length,
        flush_interval=args.flush_interval,
        broadcast=args.broadcast,
        broadcast_buffer=args.broadcast_buffer,
        quiet=args.quiet,
    )
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    signal.signal(signal.SIGUSR1, server.reopen)
    for spec, listener in zip(specs, listeners, strict=True):
        log(f"Listening on {spec} ({args.backend} backend) as {listener.getsockname()!r}")
    try:
        server.serve_forever()
    finally:
        remove_socket_files(specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
