"""
journey-mux behind a real HAProxy (the Debian package's ``/usr/sbin/haproxy``) on loopback:
two ``twistd journey-mux`` instances listening on ``haproxy:`` endpoints, one reached with
``send-proxy`` (PROXY version 1) and one with ``send-proxy-v2``; and behind nginx's
``stream`` module with ``proxy_protocol on;``.  Clients connect from known source
addresses and ports (127.0.0.2, 127.0.0.3); the records must name exactly those, and
``--max-per-peer`` must count each client, not the proxy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE, ServerProcess, freePort, startServer, twistdArgv, waitFor

HAPROXY = "/usr/sbin/haproxy"
NGINX = "/usr/sbin/nginx"
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def clientFrom(host: str, address: tuple[str, int]) -> socket.socket:
    """
    A client bound to ``host`` (a port the kernel picks, read back with
    ``getsockname``) and connected to ``address``.
    """
    sock = socket.socket()
    sock.settimeout(PATIENCE)
    sock.bind((host, 0))
    sock.connect(address)
    return sock


def peerName(sock: socket.socket) -> str:
    """
    ``host:port`` of ``sock``'s own end, as the records name it.
    """
    host, port = sock.getsockname()
    return f"{host}:{port}"


def closedByServer(sock: socket.socket) -> bool:
    """
    Whether the other end closed ``sock`` (end of stream or reset) within the patience.
    """
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


class ProxiedMuxTestCase(SynchronousTestCase):
    """
    journey-mux instances on ``haproxy:`` endpoints, behind a proxy a subclass starts.

    :ivar backends: by name: the server, its data log and the proxy's address for it.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir()
        self.backends: dict[str, tuple[ServerProcess, Path, tuple[str, int]]] = {}

    def startBackend(self, name: str) -> int:
        """
        Start a journey-mux for ``name`` (JSON records, ``--max-per-peer 2``) and record it
        with a free port for the proxy's frontend; return the port it listens on.
        """
        port, front = freePort(), freePort()
        output = self.directory / f"{name}.log"
        server = startServer(
            self,
            twistdArgv(
                "journey-mux",
                "--listen",
                f"haproxy:tcp:{port}:interface=127.0.0.1",
                "--output",
                str(output),
                "--format",
                "json",
                "--max-per-peer",
                "2",
                "--flush-interval",
                "0.05",
            ),
            ("127.0.0.1", port),
        )
        self.backends[name] = (server, output, ("127.0.0.1", front))
        return port

    def records(self, output: Path) -> list[dict[str, object]]:
        """
        The JSON records written so far.
        """
        if not output.exists():
            return []
        return [json.loads(line) for line in output.read_bytes().splitlines()]

    def check(self, name: str) -> None:
        """
        Through the backend ``name``: records name each client's own address and port;
        the third connection from 127.0.0.2 is refused by ``--max-per-peer 2`` while
        127.0.0.3 still gets in; the events name the clients.
        """
        server, output, front = self.backends[name]
        clients = []
        for host in ("127.0.0.2", "127.0.0.2", "127.0.0.3"):
            sock = clientFrom(host, front)
            self.addCleanup(sock.close)
            local = peerName(sock)
            sock.sendall(f"hello from {local}\n".encode())
            clients.append((sock, local))
            line = f"hello from {local}"
            waitFor(
                lambda line=line: any(r["line"] == line for r in self.records(output)),
                f"the record of {local}",
            )
        third = clientFrom("127.0.0.2", front)
        self.addCleanup(third.close)
        refusedPeer = peerName(third)
        third.sendall(b"refused line\n")
        self.assertTrue(closedByServer(third), server.output())
        fourth = clientFrom("127.0.0.3", front)
        self.addCleanup(fourth.close)
        fourthPeer = peerName(fourth)
        fourth.sendall(b"still in\n")
        waitFor(
            lambda: any(r["line"] == "still in" for r in self.records(output)),
            "the second client of 127.0.0.3",
        )
        self.assertEqual(server.stop(signal.SIGTERM), -signal.SIGTERM, server.output())
        found = [(r["peer"], r["line"]) for r in self.records(output)]
        expected = [(local, f"hello from {local}") for _, local in clients]
        self.assertEqual(found, [*expected, (fourthPeer, "still in")])
        log = server.stdout.decode()
        for _, local in clients:
            self.assertIn(f"Got connection from {local}", log)
        self.assertIn(f"Refused connection from {refusedPeer}: 2 connections open", log)


class HAProxyTests(ProxiedMuxTestCase):
    """
    HAProxy in front of two journey-mux instances.
    """

    def setUp(self) -> None:
        if not os.access(HAPROXY, os.X_OK):
            raise SkipTest(f"{HAPROXY} is not installed (Debian package haproxy)")
        super().setUp()
        config = textwrap.dedent(
            """\
            global
                maxconn 200
            defaults
                mode tcp
                timeout connect 5s
                timeout client 60s
                timeout server 60s
            """
        )
        for name, option in (("v1", "send-proxy"), ("v2", "send-proxy-v2")):
            port = self.startBackend(name)
            front = self.backends[name][2][1]
            config += textwrap.dedent(
                f"""\
                frontend front_{name}
                    bind 127.0.0.1:{front}
                    default_backend back_{name}
                backend back_{name}
                    server mux_{name} 127.0.0.1:{port} {option}
                """
            )
        path = self.directory / "haproxy.cfg"
        path.write_text(config)
        proxy = ServerProcess([HAPROXY, "-f", str(path), "-db"])
        self.addCleanup(proxy.stop)
        for _, _, address in self.backends.values():
            proxy.waitForListening(address)

    def test_sendProxyVersion1(self) -> None:
        """
        ``send-proxy``: records and ``--max-per-peer`` see the true clients.
        """
        self.check("v1")

    def test_sendProxyVersion2(self) -> None:
        """
        ``send-proxy-v2``: records and ``--max-per-peer`` see the true clients.
        """
        self.check("v2")


class NginxTests(ProxiedMuxTestCase):
    """
    nginx's ``stream`` module in front of journey-mux.
    """

    def setUp(self) -> None:
        if not (os.access(NGINX, os.X_OK) and os.path.exists(NGINX_STREAM)):
            raise SkipTest(
                f"{NGINX} or {NGINX_STREAM} is not installed (Debian packages nginx, "
                "libnginx-mod-stream)"
            )
        super().setUp()
        port = self.startBackend("nginx")
        front = self.backends["nginx"][2]
        path = self.directory / "nginx.conf"
        path.write_text(
            textwrap.dedent(
                f"""\
                load_module {NGINX_STREAM};
                daemon off;
                pid {self.directory}/nginx.pid;
                error_log {self.directory}/error.log;
                events {{}}
                stream {{
                    server {{
                        listen 127.0.0.1:{front[1]};
                        proxy_pass 127.0.0.1:{port};
                        proxy_protocol on;
                    }}
                }}
                """
            )
        )
        proxy = ServerProcess([NGINX, "-c", str(path), "-p", str(self.directory)])
        self.addCleanup(proxy.stop)
        proxy.waitForListening(front)

    def test_proxyProtocol(self) -> None:
        """
        ``proxy_protocol on;``: records and ``--max-per-peer`` see the true clients.
        """
        self.check("nginx")


class HAProxyTLSTests(SynchronousTestCase):
    """
    HAProxy reaching journey-mux over TLS (``server ... ssl send-proxy-v2``), with health
    checks that send PROXY ``LOCAL`` headers (``check check-ssl check-send-proxy``).
    HAProxy sends the PROXY header in clear, then starts TLS.
    """

    def setUp(self) -> None:
        if not os.access(HAPROXY, os.X_OK):
            raise SkipTest(f"{HAPROXY} is not installed (Debian package haproxy)")
        port = self.startBackend()
        config = textwrap.dedent(
            f"""\
            defaults
                mode tcp
                timeout connect 5s
                timeout client 60s
                timeout server 60s
                timeout check 5s
            frontend front
                bind 127.0.0.1:{self.frontPort}
                default_backend back
            backend back
                server mux 127.0.0.1:{port} {self.serverOptions}
            """
        )  # fmt: skip
        path = self.directory / "haproxy.cfg"
        path.write_text(config)
        self.proxy = ServerProcess([HAPROXY, "-f", str(path), "-db"])
        self.addCleanup(self.proxy.stop)
        self.proxy.waitForListening(self.front)

    def startBackend(self) -> int:
        """
        Start journey-mux on ``haproxy:ssl:`` (trusting only 127.0.0.1, with
        ``--metrics``); pick the proxy's front port; return the backend's port.
        """
        from tests.support import selfSignedCertificate

        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir()
        key, cert = selfSignedCertificate(str(self.directory / "tls"))
        port, self.metricsPort, front = freePort(), freePort(), freePort()
        self.output = self.directory / "mux.log"
        self.server = startServer(
            self,
            twistdArgv(
                "journey-mux",
                "--listen", f"haproxy:ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                "--proxy-from", "127.0.0.1",
                "--output", str(self.output), "--format", "json", "--flush-interval", "0.05",
                "--metrics", f"tcp:{self.metricsPort}:interface=127.0.0.1",
            ),
            ("127.0.0.1", self.metricsPort),
        )  # fmt: skip
        self.frontPort = front
        self.front = ("127.0.0.1", front)
        return port

    def metric(self, name: str) -> float:
        """
        The value of the metric ``name`` now, summed over its labels.
        """
        import urllib.request

        url = f"http://127.0.0.1:{self.metricsPort}/metrics"
        total = 0.0
        with urllib.request.urlopen(url, timeout=PATIENCE) as response:
            for line in response.read().decode().splitlines():
                if line.startswith((name + " ", name + "{")):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    #: HAProxy's ``server`` options
    serverOptions = "ssl verify none send-proxy-v2 check inter 100ms check-ssl check-send-proxy"
    #: health checks to wait for before the client connects
    checks = 3

    def test_headerBeforeTLS(self) -> None:
        """
        A client's line arrives through TLS with the client's address; HAProxy's health
        checks pass (they are served), are counted apart, and neither log an event nor
        count as accepted connections.
        """
        waitFor(
            lambda: self.metric("journey_health_checks_total") >= self.checks,
            "the health checks",
        )
        sock = clientFrom("127.0.0.2", self.front)
        self.addCleanup(sock.close)
        local = peerName(sock)
        sock.sendall(b"through TLS\n")

        def recorded() -> list[object]:
            if not self.output.exists():
                return []
            return [json.loads(line) for line in self.output.read_bytes().splitlines()]

        waitFor(lambda: recorded(), "the client's record")
        self.assertEqual(
            [(r["peer"], r["line"]) for r in recorded()],  # type: ignore[index]
            [(local, "through TLS")],
        )
        # Accepted: this client and the probe that saw HAProxy listening (a client too).
        accepted = self.metric("journey_connections_accepted_total")
        self.assertLessEqual(accepted, 2)
        self.assertGreaterEqual(self.metric("journey_health_checks_total"), self.checks)
        self.assertEqual(self.metric("journey_connections_refused_total"), 0)
        self.server.stop()
        log = self.server.stdout.decode()
        self.assertEqual(log.count("Got connection from"), accepted, log)
        self.assertIn(f"Got connection from {local}", log)
        for unwanted in ("Dropped", "Traceback", "Unhandled"):
            self.assertNotIn(unwanted, log)


class HAProxyTLSVersion1Tests(HAProxyTLSTests):
    """
    The same with ``send-proxy``: HAProxy's health checks then send a version 1 header
    naming the check's own connection, which is told from a client's as well.
    """

    serverOptions = "ssl verify none send-proxy check inter 100ms check-ssl"


class NginxTLSTests(HAProxyTLSTests):
    """
    nginx's ``stream`` module reaching journey-mux over TLS (``proxy_ssl on;`` with
    ``proxy_protocol on;``): the version 1 header in clear, then TLS.  nginx sends no
    health checks.
    """

    checks = 0

    def setUp(self) -> None:
        if not (os.access(NGINX, os.X_OK) and os.path.exists(NGINX_STREAM)):
            raise SkipTest(
                f"{NGINX} or {NGINX_STREAM} is not installed (Debian packages nginx, "
                "libnginx-mod-stream)"
            )
        port = self.startBackend()
        path = self.directory / "nginx.conf"
        path.write_text(
            textwrap.dedent(
                f"""\
                load_module {NGINX_STREAM};
                daemon off;
                pid {self.directory}/nginx.pid;
                error_log {self.directory}/error.log;
                events {{}}
                stream {{
                    server {{
                        listen 127.0.0.1:{self.frontPort};
                        proxy_pass 127.0.0.1:{port};
                        proxy_protocol on;
                        proxy_ssl on;
                    }}
                }}
                """
            )
        )
        proxy = ServerProcess([NGINX, "-c", str(path), "-p", str(self.directory)])
        self.addCleanup(proxy.stop)
        proxy.waitForListening(self.front)
