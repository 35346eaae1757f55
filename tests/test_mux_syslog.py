"""
journey-mux as a syslog receiver (``--framing syslog``), tested once against both engines
as real processes on loopback, with real senders: util-linux ``logger``, a private
``rsyslogd``, and Python's ``SysLogHandler``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import signal
import socket
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    ServerProcess,
    connect,
    environment,
    fallbackArgv,
    freePort,
    startServer,
    twistdArgv,
)
from tests.test_mux_contract import parse, waitFor
from twisted_journey.records import PARTIAL


def records(output: Path) -> list[dict[str, object]]:
    """
    The JSON records of a data log.
    """
    return [json.loads(line) for line in output.read_bytes().splitlines()]


class SyslogContract:
    """
    What every journey-mux engine does with ``--framing syslog``.  Subclasses define
    :meth:`argv` and ``env``.
    """

    env: dict[str, str] | None = None
    stoppedStatus = 0

    def argv(self, *options: str) -> list[str]:
        """
        The command line for this engine with ``options``.
        """
        raise NotImplementedError

    def start(self, *options: str) -> tuple[ServerProcess, tuple[str, int], Path]:
        """
        Start the engine with ``--framing syslog`` on a free loopback port writing to a
        fresh data log; the probe connection is connection 1.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        address = ("127.0.0.1", port)
        server = startServer(
            self,
            self.argv(
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
                "--output",
                str(output),
                "--framing",
                "syslog",
                "--flush-interval",
                "0.05",
                *options,
            ),
            address,
            env=self.env,
        )
        return server, address, output

    def stopped(self, server: ServerProcess, output: Path) -> bytes:
        """
        Stop ``server`` with SIGTERM; check how it exited; return the data log.
        """
        status = server.stop(signal.SIGTERM)
        self.assertEqual(status, self.stoppedStatus, server.output())  # type: ignore[attr-defined]
        return output.read_bytes()

    def test_mixedFramingsByteAtATime(self) -> None:
        """
        Octet-counted, LF, CR LF and NUL frames mixed on one connection, sent a byte at a
        time, are one record each, in order; NUL floods make none.
        """
        server, address, output = self.start()
        wire = (
            b"5 hello<13>lf 1\n<13>crlf 2\r\n"
            + b"\x00" * 5000
            + b"<12>app5: nul 3\x0014 with\nnewline 4<9>tail"
        )
        with connect(address) as sock:
            for i in range(len(wire)):
                sock.send(wire[i : i + 1])
        waitFor(lambda: b"partial" in output.read_bytes(), "the partial record")
        self.assertEqual(
            parse(self.stopped(server, output))[2],
            [
                (b"hello", b""),
                (b"<13>lf 1", b""),
                (b"<13>crlf 2", b""),
                (b"<12>app5: nul 3", b""),
                (b"with\nnewline 4", b""),
                (b"<9>tail", PARTIAL),
            ],
        )

    def test_framingErrorClosesOneConnection(self) -> None:
        """
        A lying count (not a number) records the messages before it and what follows as
        one partial record, logs one event, and closes that connection only; a huge count
        is refused the same way without allocating it; other clients carry on.
        """
        server, address, output = self.start()
        other = connect(address)
        self.addCleanup(other.close)
        other.sendall(b"<1>before\n")
        for bad, reason in [(b"12a <1>x\n", b"is not a number"), (b"1000000000 ", b"longer")]:
            with connect(address) as sock:
                sock.sendall(b"6 <1>one<1>two\n" + bad)
                sock.settimeout(10)
                self.assertEqual(sock.recv(10), b"", "the connection was not closed")
            waitFor(lambda r=reason: r in server.stdout + server.stderr, "the framing error event")  # type: ignore[misc]
        other.sendall(b"<1>after\n")
        waitFor(lambda: b"after" in output.read_bytes(), "the other client's message")
        byConn = parse(self.stopped(server, output))
        self.assertEqual(byConn[2], [(b"<1>before", b""), (b"<1>after", b"")])
        self.assertEqual(byConn[3], [(b"<1>one", b""), (b"<1>two", b""), (b"12a <1>x\n", PARTIAL)])
        self.assertEqual(byConn[4], [(b"<1>one", b""), (b"<1>two", b""), (b"1000000000 ", PARTIAL)])
        self.assertEqual(
            (server.stdout + server.stderr).count(b"broke syslog framing"), 2, server.output()
        )

    def sysLogHandler(self, address: tuple[str, int], socktype: int) -> logging.Logger:
        """
        A logger that sends through a real ``SysLogHandler`` to ``address`` as Python's
        users configure it: ``APP: MESSAGE`` (closed after the test).
        """
        handler = logging.handlers.SysLogHandler(address=address, socktype=socktype)
        handler.setFormatter(logging.Formatter("app5: %(message)s"))
        self.addCleanup(handler.close)  # type: ignore[attr-defined]
        logger = logging.getLogger(f"journey-test-{id(self)}-{socktype}")
        logger.propagate = False
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        return logger

    def assertNumbered(
        self, found: list[dict[str, object]], count: int, app: str, text: str, **fields: object
    ) -> None:
        """
        ``found`` is ``count`` parsed records, message ``text`` numbered 1 to ``count``
        in order, from ``app``, each with ``fields`` among its parsed fields.
        """
        syslog = [record["syslog"] for record in found]
        self.assertEqual(  # type: ignore[attr-defined]
            [(s["app_name"], s["msg"]) for s in syslog],  # type: ignore[index]
            [(app, f"{text} {i}") for i in range(1, count + 1)],
        )
        for name, value in fields.items():
            self.assertEqual({s[name] for s in syslog}, {value}, name)  # type: ignore[attr-defined,index]

    def test_pythonSysLogHandlerTCP(self) -> None:
        """
        Python's ``SysLogHandler`` over TCP ends each message with NUL: every one is a
        record, parsed (``app5: nul 1`` is app ``app5``, message ``nul 1``), in order.
        """
        server, address, output = self.start("--format", "json")
        logger = self.sysLogHandler(address, socket.SOCK_STREAM)
        for i in range(1, 2001):
            logger.warning("nul %d", i)
        logger.handlers[0].close()
        waitFor(lambda: len(records(output)) >= 2000, "2000 records")
        found = [r for r in records(output) if r["conn"] == 2]
        self.stopped(server, output)
        self.assertEqual(found[0]["line"], "<12>app5: nul 1")
        self.assertNumbered(
            found, 2000, "app5", "nul", facility="user", severity="warning", hostname=None
        )


class TwistedSyslogTests(SyslogContract, SynchronousTestCase):
    """
    The syslog contract for ``twistd -n journey-mux``.
    """

    stoppedStatus = -signal.SIGTERM

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-mux", *options)


class FallbackSyslogTests(SyslogContract, SynchronousTestCase):
    """
    The syslog contract for the stdlib twin.
    """

    env = environment(stdlibOnly=True)

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("mux", *options)
