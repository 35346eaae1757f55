"""
journey-mux as a syslog receiver (``--framing syslog``), tested once against both engines
as real processes on loopback, with real senders: util-linux ``logger``, a private
``rsyslogd``, and Python's ``SysLogHandler``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import random
import re
import shutil
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    connect,
    environment,
    fallbackArgv,
    freePort,
    journeyArgv,
    run,
    startServer,
    twistdArgv,
)
from tests.test_mux_contract import parse, waitFor
from twisted_journey.records import PARTIAL


def records(output: Path) -> list[dict[str, object]]:
    """
    The JSON records of a data log, as far as they are written (a record still being
    written is left for the next look).
    """
    data = output.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


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

    def startWithUDP(self, *options: str) -> tuple[ServerProcess, tuple[str, int], Path]:
        """
        :meth:`start` with a ``udp:`` listener too; its address is returned.
        """
        port = freeUDPPort()
        server, _, output = self.start("--listen", f"udp:{port}:interface=127.0.0.1", *options)
        return server, ("127.0.0.1", port), output

    def logger(self, address: tuple[str, int], *options: str, count: int, text: str) -> None:
        """
        Run util-linux ``logger`` sending ``count`` numbered messages (``TEXT 1``...) from
        its standard input to ``address``, tagged ``app1``.
        """
        if shutil.which("logger") is None:
            raise SkipTest("util-linux logger is not installed")
        lines = "".join(f"{text} {i}\n" for i in range(1, count + 1)).encode()
        done = run(
            ["logger", "--server", address[0], "--port", str(address[1]), "-t", "app1",
             "--msgid", "m1", *options],
            input=lines,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)  # type: ignore[attr-defined]

    def test_loggerTCP(self) -> None:
        """
        ``logger -T`` with and without ``--octet-count``, and with ``--rfc3164``: every
        message one record, parsed, in order per connection.
        """
        server, address, output = self.start("--format", "json")
        self.logger(address, "-T", "--octet-count", count=1200, text="oc")
        self.logger(address, "-T", count=1200, text="lf")
        self.logger(address, "-T", "--rfc3164", count=500, text="bsd")
        waitFor(lambda: len(records(output)) >= 2900, "2900 records")
        found = records(output)
        self.stopped(server, output)
        byConn: dict[object, list[dict[str, object]]] = {}
        for record in found:
            byConn.setdefault(record["conn"], []).append(record)
        self.assertEqual(sorted(map(len, byConn.values())), [500, 1200, 1200])
        self.assertNumbered(byConn[2], 1200, "app1", "oc", msgid="m1", facility="user")
        self.assertNumbered(byConn[3], 1200, "app1", "lf", msgid="m1", severity="notice")
        self.assertNumbered(byConn[4], 500, "app1", "bsd", msgid=None, structured_data=None)
        self.assertIsNotNone(byConn[4][0]["syslog"]["timestamp"])  # type: ignore[index]
        self.assertIsNotNone(byConn[4][0]["syslog"]["hostname"])  # type: ignore[index]

    def test_loggerUDP(self) -> None:
        """
        ``logger -d``: each datagram is one record (connection 0), parsed, in order.
        """
        server, address, output = self.startWithUDP("--format", "json")
        self.logger(address, "-d", count=100, text="udp")
        waitFor(lambda: len(records(output)) >= 100, "100 records")
        found = records(output)
        self.stopped(server, output)
        self.assertEqual({r["conn"] for r in found}, {0})
        self.assertNumbered(found, 100, "app1", "udp", msgid="m1")

    def test_pythonSysLogHandlerUDP(self) -> None:
        """
        Python's ``SysLogHandler`` over UDP (its default): every message one record.
        """
        server, address, output = self.startWithUDP("--format", "json")
        logger = self.sysLogHandler(address, socket.SOCK_DGRAM)
        for burst in range(4):
            for i in range(burst * 50 + 1, burst * 50 + 51):
                logger.info("dgram %d", i)
            try:
                waitFor(lambda n=burst: len(records(output)) >= 50 * (n + 1), "a burst")  # type: ignore[misc]
            except AssertionError as e:
                raise AssertionError(
                    f"{e}: {len(records(output))} records\n{server.output()}"
                ) from None
        found = records(output)
        self.stopped(server, output)
        self.assertNumbered(found, 200, "app5", "dgram", severity="info")

    def test_udpOnly(self) -> None:
        """
        With only a ``udp:`` listener, no TCP port is opened by default.
        """
        port = freeUDPPort()
        output = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        server = ServerProcess(
            self.argv("--listen", f"udp:{port}:interface=127.0.0.1", "--output", str(output),
                      "--framing", "syslog", "--flush-interval", "0.05"),
            env=self.env,
        )  # fmt: skip
        self.addCleanup(server.stop)  # type: ignore[attr-defined]
        waitFor(
            lambda: (
                b"udp:" in server.stdout + server.stderr
                or b"datagrams" in server.stdout + server.stderr
            ),
            "listening",
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"<13>only udp\n", ("127.0.0.1", port))
        waitFor(lambda: b"only udp" in output.read_bytes(), "the record")
        self.stopped(server, output)
        self.assertNotIn(b"1235", server.stdout + server.stderr)

    def test_udpPortTaken(self) -> None:
        """
        A ``udp:`` port another socket holds is one sentence and exit status 1.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            done = run(
                self.argv("--listen", f"udp:{port}:interface=127.0.0.1", "--framing", "syslog"),
                env=self.env or environment(),
            )
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, 1, output)  # type: ignore[attr-defined]
        self.assertIn(f"cannot listen on udp:{port}:interface=127.0.0.1: ".encode(), output)  # type: ignore[attr-defined]
        self.assertNotIn(b"Traceback", output)  # type: ignore[attr-defined]

    def test_haproxyLogs(self) -> None:
        """
        HAProxy's ``log`` directive, over UDP (RFC 3164) and through a ``ring`` over TCP
        (RFC 5424, octet counted): every request's log line is one record, parsed.
        """
        if shutil.which("haproxy") is None:
            raise SkipTest("haproxy is not installed")
        udp = freeUDPPort()
        server, address, output = self.start(
            "--format", "json", "--listen", f"udp:{udp}:interface=127.0.0.1"
        )
        web = freePort()
        configuration = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        configuration.write_text(
            f"global\n    log 127.0.0.1:{udp} local0 info\n"
            f"    log ring@journey len 8192 format rfc5424 local0\n"
            f"ring journey\n    format rfc5424\n    maxlen 8192\n"
            f"    server mux 127.0.0.1:{address[1]}\n"
            "defaults\n    mode http\n    log global\n    option httplog\n"
            "    timeout client 5s\n    timeout server 5s\n    timeout connect 5s\n"
            f"frontend web\n    bind 127.0.0.1:{web}\n    default_backend none\n"
            "backend none\n"
        )
        haproxy = startServer(
            self, ["haproxy", "-db", "-f", str(configuration)], ("127.0.0.1", web)
        )
        for i in range(1, 6):
            with contextlib.suppress(urllib.error.HTTPError):  # 503: no server behind
                urllib.request.urlopen(f"http://127.0.0.1:{web}/request/{i}", timeout=10)

        def requests() -> list[dict[str, object]]:
            return [r for r in records(output) if "/request/" in str(r["line"])]

        waitFor(lambda: len(requests()) >= 10, "10 log records")
        found = requests()
        haproxy.stop(signal.SIGTERM)
        self.stopped(server, output)
        for udp in (True, False):
            mine = [r for r in found if (r["conn"] == 0) == udp]
            self.assertEqual(len(mine), 5, found)
            syslog = [r["syslog"] for r in mine]
            self.assertEqual(
                [(s["app_name"], s["facility"], s["severity"]) for s in syslog],  # type: ignore[index]
                [("haproxy", "local0", "info")] * 5,
            )
            self.assertEqual({s["procid"] for s in syslog}, {str(haproxy.process.pid)})  # type: ignore[index]
            # HAProxy logs a request as it ends, on whichever of its threads served it: in
            # any order.
            self.assertEqual(
                sorted(str(s["msg"]).rsplit(" ", 2)[1] for s in syslog),  # type: ignore[index]
                [f"/request/{i}" for i in range(1, 6)],
            )

    def test_sendSyslogFraming(self) -> None:
        """
        ``journey send --framing syslog`` (Twisted client from a file, stdlib client from a
        pipe) sends each line octet counted: lines holding NUL, CR or a leading number
        arrive as one message each, exactly.
        """
        server, address, output = self.start()
        chooser = random.Random(5)
        lines = [b"123 apples", b"<13>nul\x00inside", b"cr\rinside", b"9"] + [
            bytes(chooser.randrange(256) for _ in range(1, 1 + chooser.randrange(300)))
            .replace(b"\n", b"")
            .rstrip(b"\r")
            or b"x"
            for _ in range(1000)
        ]
        content = b"".join(line + b"\r\n" for line in lines[:10]) + b"".join(
            line + b"\n" for line in lines[10:]
        )
        path = Path(self.mktemp())  # type: ignore[attr-defined]
        path.write_bytes(content[:-1])  # the last line unterminated
        twisted = run(
            journeyArgv("send", "--framing", "syslog", "127.0.0.1", str(address[1]), str(path))
        )
        self.assertEqual((twisted.returncode, twisted.stderr), (0, b""))  # type: ignore[attr-defined]
        stdlib = run(
            journeyArgv("send", "--framing", "syslog", "127.0.0.1", str(address[1])),
            input=content,
            env=environment(stdlibOnly=True),
        )
        self.assertEqual((stdlib.returncode, stdlib.stderr), (0, b""))  # type: ignore[attr-defined]
        waitFor(lambda: output.read_bytes().count(b"\n") >= 2 * len(lines), "all records")
        byConn = parse(self.stopped(server, output))
        for conn in (2, 3):
            self.assertEqual(byConn[conn], [(line, b"") for line in lines], f"conn {conn}")

    def rsyslog(self, forwardTo: tuple[str, int], framing: str) -> ServerProcess:
        """
        Start a private ``rsyslogd`` (its own configuration, work directory and pid file;
        no ``imuxsock``): ``imtcp`` on a free loopback port, forwarding everything with
        ``omfwd`` to ``forwardTo`` over TCP with ``TCP_Framing=framing``, as RFC 5424.

        :return: the process; its ``address`` attribute is where it listens.
        """
        rsyslogd = shutil.which("rsyslogd") or (
            "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
        )
        if rsyslogd is None:
            raise SkipTest("rsyslogd is not installed (Debian's rsyslog package)")
        directory = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        directory.mkdir()
        port = freePort()
        configuration = directory / "rsyslog.conf"
        configuration.write_text(
            f'global(workDirectory="{directory}")\n'
            'module(load="imtcp")\n'
            f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
            f'action(type="omfwd" target="{forwardTo[0]}" port="{forwardTo[1]}" protocol="tcp" '
            f'TCP_Framing="{framing}" template="RSYSLOG_SyslogProtocol23Format")\n'
        )
        argv = [rsyslogd, "-n", "-f", str(configuration), "-i", str(directory / "pid")]
        check = run([rsyslogd, "-N1", "-f", str(configuration)])
        if check.returncode != 0:
            raise SkipTest(f"rsyslogd refuses a minimal configuration here: {check.stderr!r}")
        address = ("127.0.0.1", port)
        process = startServer(self, argv, address, cwd=str(directory))
        process.address = address  # type: ignore[attr-defined]
        return process

    def test_rsyslogForwarding(self) -> None:
        """
        A real ``rsyslogd`` forwarding with ``TCP_Framing="octet-counted"`` and with
        ``"traditional"``: every message ``logger`` gave it is one record with its
        fields, in order.
        """
        for framing in ("octet-counted", "traditional"):
            server, address, output = self.start("--format", "json")
            rsyslogd = self.rsyslog(address, framing)
            self.logger(rsyslogd.address, "-T", "--octet-count", count=1200, text=framing)  # type: ignore[attr-defined]

            def forwarded(o: Path = output) -> int:
                return sum(1 for r in records(o) if r["syslog"]["app_name"] == "app1")  # type: ignore[index]

            waitFor(lambda f=forwarded: f() >= 1200, f"1200 records forwarded {framing}")  # type: ignore[misc]
            self.assertEqual(rsyslogd.stop(signal.SIGTERM), 0, rsyslogd.output())
            found = [r for r in records(output) if r["syslog"]["app_name"] == "app1"]  # type: ignore[index]
            self.stopped(server, output)
            self.assertEqual(len({r["conn"] for r in found}), 1)
            self.assertNumbered(
                found, 1200, "app1", framing, msgid="m1", facility="user", severity="notice"
            )
            self.assertIn("timeQuality", found[0]["syslog"]["structured_data"])  # type: ignore[index,operator]

    def test_sigtermRecordsUnfinishedFrame(self) -> None:
        """
        SIGTERM records a connection's unfinished octet-counted frame, marked partial:
        nothing received is lost.
        """
        server, address, output = self.start()
        sock = connect(address)
        self.addCleanup(sock.close)
        sock.sendall(b"<1>done\n20 <13>unfinished")
        waitFor(lambda: b"<1>done" in output.read_bytes(), "the first record")
        self.assertEqual(
            parse(self.stopped(server, output))[2],
            [(b"<1>done", b""), (b"20 <13>unfinished", PARTIAL)],
        )

    def test_broadcastRelaysWholeMessages(self) -> None:
        """
        With ``--broadcast`` each complete message reaches the other clients whole,
        octet counted, whatever framing it came in.
        """
        server, address, output = self.start("--broadcast")
        with connect(address) as listener, connect(address) as sender:
            # Once the listener's own message is recorded, the server relays to it.
            listener.sendall(b"<1>listening\n")
            waitFor(lambda: b"listening" in output.read_bytes(), "the listener's message")
            sender.sendall(b"<1>first\n12 <2>two\nlines<3>nul\x00")
            expected = b"8 <1>first12 <2>two\nlines6 <3>nul"
            listener.settimeout(10)
            received = b""
            while len(received) < len(expected) and (chunk := listener.recv(100)):
                received += chunk
        self.assertEqual(received, expected)
        self.stopped(server, output)

    def relayedOf(self, record: dict[str, object]) -> bytes:
        """
        What ``--broadcast`` relays for a JSON record's message: octet counted.
        """
        line = str(record["line"]).encode("utf-8")
        return b"%d %s" % (len(line), line)

    def test_broadcastRelaysDatagrams(self) -> None:
        """
        With ``--broadcast`` every datagram's message (``logger -d``, ``SysLogHandler``
        over UDP) reaches the TCP clients whole, as the same bytes a TCP sender's message
        is relayed as (octet counted), in the order the data log records them.
        """
        udp = ("127.0.0.1", freeUDPPort())
        server, address, output = self.start(
            "--listen", f"udp:{udp[1]}:interface=127.0.0.1", "--broadcast", "--format", "json"
        )
        listener = connect(address)
        self.addCleanup(listener.close)
        # Once the listener's own message is recorded, the server relays to it.
        listener.sendall(b"<1>listening\n")
        waitFor(lambda: b"listening" in output.read_bytes(), "the listener's message")
        self.logger(udp, "-d", count=50, text="relay")
        logger = self.sysLogHandler(udp, socket.SOCK_DGRAM)
        for i in range(1, 51):
            logger.info("dgram %d", i)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"<13>same\nbytes\x00", udp)
        waitFor(lambda: b"same" in output.read_bytes(), "the datagram")
        with connect(address) as sender:
            sender.sendall(b"14 <13>same\nbytes")
            waitFor(lambda: len(records(output)) >= 103, "103 records", server=server)
        found = records(output)[1:]
        self.assertNumbered(found[:50], 50, "app1", "relay", msgid="m1")
        self.assertNumbered(found[50:100], 50, "app5", "dgram", severity="info")
        expected = b"".join(self.relayedOf(r) for r in found)
        self.assertEqual(expected[-34:], b"14 <13>same\nbytes14 <13>same\nbytes")
        listener.settimeout(10)
        received = b""
        while len(received) < len(expected) and (chunk := listener.recv(65536)):
            received += chunk
        self.assertEqual(received, expected)
        self.stopped(server, output)

    def test_broadcastDropsSlowReaderOfDatagrams(self) -> None:
        """
        A client that does not read what datagrams relay to it is dropped once more than
        ``--broadcast-buffer`` bytes wait for it, as for relayed TCP messages (logged);
        the datagrams are still recorded.
        """
        udp = ("127.0.0.1", freeUDPPort())
        server, address, output = self.start(
            "--listen", f"udp:{udp[1]}:interface=127.0.0.1", "--broadcast",
            "--broadcast-buffer", "1000",
        )  # fmt: skip
        sleeper = connect(address, receiveBuffer=4096)
        self.addCleanup(sleeper.close)
        sleeper.sendall(b"<1>sleeping\n")
        waitFor(lambda: b"sleeping" in output.read_bytes(), "the sleeper's message")
        filler = b"x" * 60000
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while b"stopped reading" not in server.stdout + server.stderr:
                # The kernel holds a few MiB for the sleeper at most: 300 are 18 MB.
                self.assertLess(sent, 300, "the slow client was never dropped")
                sent += 1
                sender.sendto(b"<13>big %d %s" % (sent, filler), udp)
                waitFor(
                    lambda n=sent: b"<13>big %d " % n in output.read_bytes(),  # type: ignore[misc]
                    f"datagram {sent} recorded",
                    server=server,
                )
        sleeper.settimeout(PATIENCE)
        drained = 0
        with contextlib.suppress(OSError):
            while chunk := sleeper.recv(65536):
                drained += len(chunk)
        self.assertLess(drained, sent * len(filler))
        self.assertEqual(self.stopped(server, output).count(b"<13>big"), sent)


def freeUDPPort() -> int:
    """
    A UDP port on 127.0.0.1 that nothing is bound to now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TwistedSyslogTests(SyslogContract, SynchronousTestCase):
    """
    The syslog contract for ``twistd -n journey-mux``.
    """

    stoppedStatus = -signal.SIGTERM

    def argv(self, *options: str) -> list[str]:
        return twistdArgv("journey-mux", *options)

    def test_tlsSyslog(self) -> None:
        """
        An ``ssl:`` listener with ``--framing syslog`` is a TLS syslog receiver (RFC 5425):
        ``journey send --framing syslog --tls`` (both clients) delivers every line as one
        parsed record.
        """
        from tests.tlssupport import makeCertificates

        certificates = makeCertificates(os.path.abspath(self.mktemp()))
        port = freePort()
        output = Path(self.mktemp()).absolute()
        server = startServer(
            self,
            self.argv("-q", "--listen", certificates.good.endpoint(port), "--output",
                      str(output), "--framing", "syslog", "--format", "json",
                      "--flush-interval", "0.05"),
            ("127.0.0.1", port),
        )  # fmt: skip
        content = b"".join(b"<14>1 - host tlsapp - - - tls %d\n" % i for i in range(1, 501))
        for env in (environment(), environment(stdlibOnly=True)):
            done = run(
                journeyArgv("send", "--framing", "syslog", "--tls", "--cacert", certificates.ca,
                            "localhost", str(port)),
                input=content,
                env=env,
            )  # fmt: skip
            self.assertEqual((done.returncode, done.stderr), (0, b""))
        waitFor(lambda: len(records(output)) >= 1000, "1000 records")
        found = records(output)
        self.stopped(server, output)
        for conn in {r["conn"] for r in found}:
            self.assertNumbered(
                [r for r in found if r["conn"] == conn], 500, "tlsapp", "tls", severity="info"
            )

    def test_proxyHeader(self) -> None:
        """
        Behind a balancer (``haproxy:``), the PROXY header is read first and the syslog
        frames after it are recorded under the client it names.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()
        server = startServer(
            self,
            self.argv("--listen", f"haproxy:tcp:{port}:interface=127.0.0.1", "--output",
                      str(output), "--framing", "syslog", "--format", "json",
                      "--flush-interval", "0.05"),
            ("127.0.0.1", port),
        )  # fmt: skip
        with connect(("127.0.0.1", port)) as sock:
            sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 53122 514\r\n")
            sock.sendall(b"12 <13>a: msg 1<13>a: msg 2\x00")
        waitFor(lambda: len(records(output)) >= 2, "2 records")
        found = records(output)
        self.stopped(server, output)
        self.assertEqual([r["peer"] for r in found], ["192.0.2.7:53122"] * 2)
        self.assertNumbered(found, 2, "a", "msg")

    def test_metricsCountDatagrams(self) -> None:
        """
        ``--metrics`` shows the datagrams received on ``udp:`` listeners and the kernel's
        drops (none here).
        """
        metricsPort = freePort()
        server, address, output = self.startWithUDP(
            "--metrics", f"tcp:{metricsPort}:interface=127.0.0.1"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(10):
                sender.sendto(b"<13>app: m %d\n" % i, address)
        url = f"http://127.0.0.1:{metricsPort}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())

        waitFor(lambda: "journey_datagrams_received_total 10.0" in scrape(), "the count")
        self.assertIn("journey_datagrams_dropped_total 0.0", scrape())
        self.stopped(server, output)

    def test_workers(self) -> None:
        """
        With ``--workers 2`` each worker frames syslog: every message one record.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()
        server = startServer(
            self,
            self.argv("--workers", "2", "--listen", f"tcp:{port}:interface=127.0.0.1", "--output",
                      str(output), "--framing", "syslog", "--format", "json",
                      "--flush-interval", "0.05"),
            ("127.0.0.1", port),
        )  # fmt: skip
        address = ("127.0.0.1", port)
        self.logger(address, "-T", "--octet-count", count=500, text="w")
        self.logger(address, "-T", count=500, text="w")

        def found() -> list[dict[str, object]]:
            logs = [Path(f"{output}.w{i}") for i in range(2)]
            return [r for log in logs if log.exists() for r in records(log)]

        waitFor(lambda: len(found()) >= 1000, "1000 records")
        byConn: dict[object, list[dict[str, object]]] = {}
        for record in found():
            byConn.setdefault((record["conn"], record["peer"]), []).append(record)
        server.stop(signal.SIGTERM)
        self.assertEqual(sorted(map(len, byConn.values())), [500, 500])
        for messages in byConn.values():
            self.assertNumbered(messages, 500, "app1", "w")

    def test_workersShareUDP(self) -> None:
        """
        With ``--workers 2`` a ``udp:`` listener is one socket both workers read:
        numbered datagrams (``logger -d``, ``SysLogHandler`` over UDP) are each recorded
        exactly once across the ``PATH.wI`` files, while a worker killed with ``SIGKILL``
        is down and after its restart.  ``--metrics`` sums the workers' counts, and counts
        each datagram the kernel drops once (a flood while both workers are stopped:
        every datagram is either received or dropped).
        """
        from tests.test_workers import _waitForWorkers, _workerOf

        udp = ("127.0.0.1", freeUDPPort())
        port, metricsPort = freePort(), freePort()
        output = Path(self.mktemp()).absolute()
        server = startServer(
            self,
            self.argv("--workers", "2", "--listen", f"tcp:{port}:interface=127.0.0.1",
                      "--listen", f"udp:{udp[1]}:interface=127.0.0.1", "--output", str(output),
                      "--framing", "syslog", "--format", "json", "--flush-interval", "0.05",
                      "--metrics", f"tcp:{metricsPort}:interface=127.0.0.1"),
            ("127.0.0.1", port),
        )  # fmt: skip
        _waitForWorkers(server, 2)

        def found(text: str = "w") -> list[int]:
            logs = [Path(f"{output}.w{i}") for i in range(2)]
            messages = [str(r["syslog"]["msg"]) for log in logs if log.exists()  # type: ignore[index]
                        for r in records(log)]  # fmt: skip
            return sorted(int(m.split()[1]) for m in messages if m.split()[0] == text)

        def counts() -> tuple[int, int]:
            url = f"http://127.0.0.1:{metricsPort}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            self.assertNotIn("journey_worker_datagrams_dropped", text)
            received, dropped = (
                re.search(rf"^journey_datagrams_{name}_total (\d+)\.0$", text, re.M)
                for name in ("received", "dropped")
            )
            assert received is not None and dropped is not None, text
            return int(received.group(1)), int(dropped.group(1))

        self.logger(udp, "-d", count=100, text="w")
        waitFor(lambda: len(found()) >= 100, "100 records", server=server)
        waitFor(lambda: counts() == (100, 0), "100 datagrams counted", server=server)

        def resume(pid: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

        workers = [_workerOf(server, index) for index in range(2)]
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
            self.addCleanup(resume, pid)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
            for i in range(2000):
                flood.sendto(b"<13>flood: f %d %s" % (i, b"x" * 1000), udp)
        for pid in workers:
            resume(pid)
        waitFor(lambda: sum(counts()) == 2100, "every flood datagram counted", server=server)
        received, dropped = counts()
        self.assertGreater(dropped, 0)
        waitFor(lambda: len(found("f")) == received - 100, "the flood recorded", server=server)
        self.assertEqual(len(set(found("f"))), received - 100)

        os.kill(_workerOf(server, 0), signal.SIGKILL)
        logger = self.sysLogHandler(udp, socket.SOCK_DGRAM)
        for i in range(101, 201):
            logger.info("w %d", i)
        waitFor(lambda: len(found()) >= 200, "200 records", server=server)
        _waitForWorkers(server, 2, starts=3)
        waitFor(lambda: counts() == (received + 100, dropped), "counted", server=server)
        os.kill(_workerOf(server, 1), signal.SIGKILL)
        for i in range(201, 301):
            logger.info("w %d", i)
        waitFor(lambda: len(found()) >= 300, "300 records", server=server)
        waitFor(lambda: counts() == (received + 200, dropped), "counted", server=server)
        server.stop(signal.SIGTERM)
        self.assertEqual(found(), list(range(1, 301)))

    def test_workersUDPPortTaken(self) -> None:
        """
        With ``--workers 2``, the supervisor binds the ``udp:`` socket: a port another
        socket holds is one sentence and exit status 1, before any worker starts.
        """
        output = Path(self.mktemp()).absolute()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            done = run(
                self.argv("--workers", "2", "--listen", f"udp:{port}:interface=127.0.0.1",
                          "--output", str(output), "--framing", "syslog"),
                env=environment(),
            )  # fmt: skip
        log = done.stdout + done.stderr
        self.assertEqual(done.returncode, 1, log)
        self.assertIn(f"cannot listen on udp:{port}:interface=127.0.0.1: ".encode(), log)
        self.assertNotIn(b"Traceback", log)
        self.assertNotIn(b"Started worker", log)


class FallbackSyslogTests(SyslogContract, SynchronousTestCase):
    """
    The syslog contract for the stdlib twin.
    """

    env = environment(stdlibOnly=True)

    def argv(self, *options: str) -> list[str]:
        return fallbackArgv("mux", *options)


class OptionsTests(SynchronousTestCase):
    """
    ``--framing`` and ``udp:`` on the command lines of both engines.
    """

    def test_twistdOptions(self) -> None:
        """
        ``udp:`` descriptions are parsed apart, with no TCP default beside them, with
        ``--workers`` too; bad ones are usage errors in one sentence.
        """
        from twisted.python import usage

        from twisted_journey.tap.mux import Options

        options = Options()
        options.parseOptions(["--listen", "udp:0:interface=127.0.0.1", "--framing", "syslog"])
        self.assertEqual(options["listen"], [])
        self.assertEqual([str(s) for s in options["udp"]], ["udp:0:interface=127.0.0.1"])
        self.assertEqual(options["framing"], "syslog")
        workers = Options()
        workers.parseOptions(["--listen", "udp:5140", "--workers", "2", "-o", "x"])
        self.assertEqual((workers["listen"], len(workers["udp"])), ([], 1))
        default = Options()
        default.parseOptions([])
        self.assertEqual((default["framing"], default["listen"]), ("lines", ["tcp:1235"]))
        cases = [
            (["--listen", "udp:x"], "port 'x'"),
            (["--framing", "octet"], "--framing must be one of lines, syslog"),
            (["--framing", "syslog", "--mode", "raw"], "cannot be used with --mode raw"),
        ]
        for argv, sentence in cases:
            with self.assertRaises(usage.UsageError) as e:
                Options().parseOptions(argv)
            self.assertIn(sentence, str(e.exception))

    def test_fallbackOptions(self) -> None:
        """
        The stdlib twin refuses the same things in the same words, exit status 2.
        """
        for argv, sentence in [
            (["--framing", "syslog", "--mode", "raw"], b"cannot be used with --mode raw"),
            (["--listen", "udp:x"], b"port 'x'"),
        ]:
            done = run(fallbackArgv("mux", *argv), env=environment(stdlibOnly=True))
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertIn(sentence, done.stderr)
            self.assertNotIn(b"Traceback", done.stderr)


def codeBlocks(path: Path) -> list[str]:
    """
    The ``.. code-block:: text`` blocks of a reST page, dedented.
    """
    import textwrap

    blocks = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: text":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[number + 2 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


class SenderConfigurationTests(SynchronousTestCase):
    """
    The senders' configurations in the syslog how-to are accepted, without a warning, by
    the real programs' own checks (``rsyslogd -N1``, ``haproxy -c``).
    """

    page = Path(__file__).parent.parent / "docs" / "howto" / "syslog.rst"

    def test_rsyslog(self) -> None:
        """
        Every rsyslog ``omfwd`` snippet passes ``rsyslogd -N1`` (with rsyslog's work
        directory, which a disk queue needs, and a real CA file for the TLS one).
        """
        rsyslogd = shutil.which("rsyslogd") or (
            "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
        )
        if rsyslogd is None:
            raise SkipTest("rsyslogd is not installed (Debian's rsyslog package)")
        from tests.tlssupport import makeCertificates

        directory = Path(self.mktemp()).absolute()
        directory.mkdir()
        ca = makeCertificates(str(directory / "certificates")).ca
        snippets = [block for block in codeBlocks(self.page) if 'type="omfwd"' in block]
        self.assertEqual(len(snippets), 2)
        for snippet in snippets:
            configuration = directory / "rsyslog.conf"
            configuration.write_text(
                f'global(workDirectory="{directory}")\n'
                + snippet.replace("/etc/ssl/certs/journey-ca.pem", ca)
            )
            done = run([rsyslogd, "-N1", "-f", str(configuration)])
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertNotIn(b"error", done.stderr + done.stdout)

    def test_haproxy(self) -> None:
        """
        The HAProxy snippet, with a proxy to log, passes ``haproxy -c`` without a warning.
        """
        if shutil.which("haproxy") is None:
            raise SkipTest("haproxy is not installed")
        [snippet] = [block for block in codeBlocks(self.page) if "ring@journey" in block]
        configuration = Path(self.mktemp()).absolute()
        configuration.write_text(
            snippet
            + "    timeout client 5s\n    timeout server 5s\n    timeout connect 5s\n"
            + "frontend web\n    bind 127.0.0.1:8080\n    default_backend none\n"
            + "backend none\n"
        )
        done = run(["haproxy", "-c", "-f", str(configuration)])
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, 0, output)
        self.assertNotIn(b"WARNING", output)
