"""
TLS both ways, and unix sockets from the clients: ``ssl:`` and ``tls:`` listeners of
journey-greet and journey-mux spoken to with ``openssl s_client`` and Python's :mod:`ssl`;
``journey greet --tls`` and ``journey send --tls`` (``--cacert``) on both engines against
certificates made in the test (good, expired, for another name, self-signed); and both
clients reaching a server on a unix socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    ServerProcess,
    environment,
    fallbackArgv,
    freePort,
    journeyArgv,
    readAll,
    run,
    socketPath,
    twistdArgv,
)
from tests.tlssupport import Certificates, makeCertificates

GREETING = b"Thank you for connecting\r\n"


def startAll(testCase: SynchronousTestCase, servers: list[tuple[list[str], Any]]) -> None:
    """
    Start every ``(argv, address)`` server at once (twistd takes a second to start) and
    wait until each listens; stop them after the test.
    """
    started = []
    for argv, address in servers:
        server = ServerProcess(argv)
        testCase.addCleanup(server.stop)
        started.append((server, address))
    for server, address in started:
        server.waitForListening(address)


def waitForLines(path: Path, count: int) -> list[bytes]:
    """
    The lines of the data log at ``path`` once it holds ``count`` of them (the servers
    here flush every tenth of a second), or what it holds when patience runs out.
    """
    deadline = time.monotonic() + PATIENCE
    lines: list[bytes] = []
    while time.monotonic() < deadline:
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= count:
            break
        time.sleep(0.1)
    return lines


class TLSListenerTests(SynchronousTestCase):
    """
    The Twisted servers' ``ssl:`` and ``tls:`` listeners, with certificates signed by an
    authority made in the test, spoken to by Python's :mod:`ssl` and ``openssl s_client``
    verifying them.
    """

    def setUp(self) -> None:
        self.certificates = makeCertificates(os.path.abspath(self.mktemp()))
        self.context = ssl.create_default_context(cafile=self.certificates.ca)

    def openssl(self, port: int, data: bytes = b"", *options: str) -> bytes:
        """
        What ``openssl s_client`` prints from a verified connection to loopback ``port``,
        sending ``data``: with data, it closes once that is sent; without, it waits for the
        server to close.
        """
        if shutil.which("openssl") is None:
            raise SkipTest("openssl is not installed")
        result = subprocess.run(
            [
                "openssl", "s_client", "-quiet", "-no_ign_eof" if data else "-ign_eof",
                "-connect", f"127.0.0.1:{port}",
                "-CAfile", self.certificates.ca, "-verify_return_error", *options,
            ],
            input=data, capture_output=True, timeout=PATIENCE,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_greetSSL(self) -> None:
        """
        journey-greet on ``ssl:`` greets a verifying Python client and ``openssl
        s_client``, checking the certificate's IP address and host name.
        """
        port = freePort()
        startAll(
            self,
            [(twistdArgv("journey-greet", "-q", "--listen", self.certificates.good.endpoint(port)),
              ("127.0.0.1", port))],
        )  # fmt: skip
        for name in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as raw:
                sock = self.context.wrap_socket(raw, server_hostname=name)
                self.assertEqual(readAll(sock), GREETING)
        self.assertEqual(self.openssl(port, b"", "-verify_ip", "127.0.0.1"), GREETING)
        self.assertEqual(
            self.openssl(port, b"", "-servername", "localhost", "-verify_hostname", "localhost"),
            GREETING,
        )

    def test_greetTLSDirectory(self) -> None:
        """
        journey-greet on ``tls:DIRECTORY`` serves the certificate whose name the client
        asks for (SNI).
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        good = self.certificates.good
        (directory / "localhost.pem").write_bytes(
            Path(good.key).read_bytes() + Path(good.cert).read_bytes()
        )
        port = freePort()
        startAll(
            self,
            [(twistdArgv("journey-greet", "-q", "--listen",
                         f"tls:{directory.absolute()}:port={port}:interface=127.0.0.1"),
              ("127.0.0.1", port))],
        )  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as raw:
            sock = self.context.wrap_socket(raw, server_hostname="localhost")
            self.assertEqual(readAll(sock), GREETING)
        self.assertEqual(
            self.openssl(port, b"", "-servername", "localhost", "-verify_hostname", "localhost"),
            GREETING,
        )

    def test_muxSSL(self) -> None:
        """
        journey-mux on ``ssl:`` records what a Python TLS client and ``openssl s_client``
        send, line by line.
        """
        port = freePort()
        output = Path(self.mktemp()).absolute()
        startAll(
            self,
            [(twistdArgv("journey-mux", "-q", "-o", str(output), "--flush-interval", "0.1",
                         "--listen", self.certificates.good.endpoint(port)),
              ("127.0.0.1", port))],
        )  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as raw:
            sock = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"from python\nsecond\n")
            sock.unwrap()
        self.openssl(port, b"from openssl\n", "-verify_ip", "127.0.0.1")
        lines = waitForLines(output, 3)
        self.assertEqual(
            sorted(line.split(b" ", 3)[3] for line in lines),
            [b"from openssl", b"from python", b"second"],
        )


class ClientContract:
    """
    ``journey greet`` and ``journey send`` with ``--tls`` and unix sockets, for one engine
    (:attr:`env`); mixed into a ``SynchronousTestCase``.
    """

    env: dict[str, str]
    certificates: Certificates

    def setUp(self) -> None:
        self.certificates = makeCertificates(os.path.abspath(self.mktemp()))  # type: ignore[attr-defined]

    def journey(self, *arguments: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """
        Run ``journey ARGUMENTS`` on this engine.
        """
        return run(journeyArgv(*arguments), env=self.env, input=input)

    def test_greetTLS(self) -> None:
        """
        ``journey greet --tls --cacert CA`` prints the greeting of a server whose
        certificate CA signed for the name or address given; a certificate that has
        expired, names another host, or is signed by nobody trusted (also: ours, without
        ``--cacert``, against the system's authorities) is refused in one sentence
        naming the problem, exit 1, nothing printed.
        """
        certificates = self.certificates
        ports = {name: freePort() for name in ("good", "expired", "wrongName", "untrusted")}
        startAll(
            self,  # type: ignore[arg-type]
            [(twistdArgv("journey-greet", "-q", "--listen",
                         getattr(certificates, name).endpoint(port)), ("127.0.0.1", port))
             for name, port in ports.items()],
        )  # fmt: skip
        ca = ("--tls", "--cacert", certificates.ca)
        for host in ("127.0.0.1", "localhost"):
            result = self.journey("greet", *ca, host, str(ports["good"]))
            self.assertEqual((result.returncode, result.stdout, result.stderr), (0, GREETING, b""))  # type: ignore[attr-defined]
        refused = "journey greet: refused the TLS certificate of 127.0.0.1 port {}: {}\n"
        untrusted = (
            "it is not signed by a trusted authority "
            "(give the authority's certificate with --cacert FILE)."
        )
        cases = [
            (ca, "expired", "it has expired."),
            (ca, "wrongName", "it is not valid for the name '127.0.0.1'."),
            (ca, "untrusted", untrusted),
            (("--tls",), "good", untrusted),
            (("--tls",), "wrongName", untrusted),  # the chain's problem comes first
        ]
        for options, name, problem in cases:
            result = self.journey("greet", *options, "127.0.0.1", str(ports[name]))
            self.assertEqual(  # type: ignore[attr-defined]
                (result.returncode, result.stdout, result.stderr.decode()),
                (1, b"", refused.format(ports[name], problem)),
                name,
            )

    def test_sendTLS(self) -> None:
        """
        ``journey send --tls`` streams a file and a pipe to journey-mux on ``ssl:``, every
        line recorded, and exits 0 when the server closes; an untrusted certificate is
        refused in one sentence and nothing is sent.
        """
        certificates = self.certificates
        port, untrustedPort = freePort(), freePort()
        output = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        startAll(
            self,  # type: ignore[arg-type]
            [(twistdArgv("journey-mux", "-q", "-o", str(output), "--flush-interval", "0.1",
                         "--listen", certificates.good.endpoint(port)), ("127.0.0.1", port)),
             (twistdArgv("journey-mux", "-q", "-o", str(output) + ".untrusted", "--listen",
                         certificates.untrusted.endpoint(untrustedPort)),
              ("127.0.0.1", untrustedPort))],
        )  # fmt: skip
        data = Path(self.mktemp())  # type: ignore[attr-defined]
        data.write_bytes(b"".join(b"file line %d\n" % n for n in range(5000)))
        ca = ("--tls", "--cacert", certificates.ca)
        result = self.journey("send", *ca, "127.0.0.1", str(port), str(data))
        self.assertEqual((result.returncode, result.stderr), (0, b""))  # type: ignore[attr-defined]
        result = self.journey("send", *ca, "localhost", str(port), input=b"piped\n")
        self.assertEqual((result.returncode, result.stderr), (0, b""))  # type: ignore[attr-defined]
        lines = waitForLines(output, 5001)
        texts = [line.split(b" ", 3)[3] for line in lines]
        self.assertEqual(texts.count(b"piped"), 1)  # type: ignore[attr-defined]
        self.assertEqual(  # type: ignore[attr-defined]
            [t for t in texts if t != b"piped"], [b"file line %d" % n for n in range(5000)]
        )
        result = self.journey("send", *ca, "127.0.0.1", str(untrustedPort), input=b"secret\n")
        self.assertEqual(  # type: ignore[attr-defined]
            (result.returncode, result.stderr.decode()),
            (
                1,
                f"journey send: refused the TLS certificate of 127.0.0.1 port {untrustedPort}: "
                "it is not signed by a trusted authority "
                "(give the authority's certificate with --cacert FILE).\n",
            ),
        )

    def test_plainServer(self) -> None:
        """
        ``--tls`` to a server that does not speak it: a greeting server's plain text is
        a failed handshake, in the same sentence from both engines; a journey-mux server,
        which never answers a handshake, runs out of ``--timeout`` (the handshake is not
        left to wait forever).
        """
        greetPort, muxPort = freePort(), freePort()
        startAll(
            self,  # type: ignore[arg-type]
            [(fallbackArgv("greet", "-q", "--listen", f"tcp:{greetPort}:interface=127.0.0.1"),
              ("127.0.0.1", greetPort)),
             (fallbackArgv("mux", "-q", "-o", os.devnull, "--listen",
                           f"tcp:{muxPort}:interface=127.0.0.1"), ("127.0.0.1", muxPort))],
        )  # fmt: skip
        result = self.journey("greet", "--tls", "127.0.0.1", str(greetPort))
        self.assertEqual(  # type: ignore[attr-defined]
            (result.returncode, result.stdout, result.stderr.decode()),
            (1, b"", f"journey greet: TLS with 127.0.0.1 port {greetPort} failed: "
                     "wrong version number.\n"),
        )  # fmt: skip
        result = self.journey(
            "send", "--tls", "--timeout", "0.5", "127.0.0.1", str(muxPort), input=b"x\n"
        )
        self.assertEqual(  # type: ignore[attr-defined]
            (result.returncode, result.stderr.decode()),
            (1, f"journey send: no complete answer from 127.0.0.1 port {muxPort} "
                "within 0.5 seconds.\n"),
        )  # fmt: skip

    def test_unixSocket(self) -> None:
        """
        A HOST containing ``/``, or ``unix:PATH``, is a unix socket: ``journey greet``
        prints its greeting and ``journey send`` streams to it; nothing there is one
        sentence.
        """
        greetPath, muxPath = socketPath(self), socketPath(self)
        output = Path(self.mktemp()).absolute()  # type: ignore[attr-defined]
        startAll(
            self,  # type: ignore[arg-type]
            [(fallbackArgv("greet", "-q", "--listen", f"unix:{greetPath}"), greetPath),
             (fallbackArgv("mux", "-q", "-o", str(output), "--flush-interval", "0.1",
                           "--listen", f"unix:{muxPath}"), muxPath)],
        )  # fmt: skip
        for host in (greetPath, f"unix:{greetPath}"):
            result = self.journey("greet", host)
            self.assertEqual((result.returncode, result.stdout), (0, GREETING))  # type: ignore[attr-defined]
        relative = os.path.relpath(muxPath)
        for host in (muxPath, f"unix:{relative}"):
            result = self.journey("send", host, input=f"to {host}\n".encode())
            self.assertEqual((result.returncode, result.stderr), (0, b""))  # type: ignore[attr-defined]
        lines = waitForLines(output, 2)  # (the server's first client was startAll's probe)
        self.assertEqual(  # type: ignore[attr-defined]
            [line.split(b" ", 3)[1:] for line in lines],
            [[b"unix", b"2", f"to {muxPath}".encode()],
             [b"unix", b"3", f"to unix:{relative}".encode()]],
        )  # fmt: skip
        missing = os.path.join(os.path.dirname(greetPath), "nothing")
        result = self.journey("greet", missing)
        self.assertEqual(  # type: ignore[attr-defined]
            (result.returncode, result.stderr.decode()),
            (1, f"journey greet: cannot reach unix socket {missing}: No such file or directory.\n"),
        )

    def test_usageErrors(self) -> None:
        """
        ``--tls`` to a unix socket, ``--cacert`` without ``--tls``, an unreadable or
        non-PEM ``--cacert`` and a PORT after a unix socket are usage errors: exit 2, one
        sentence.
        """
        notPEM = Path(self.mktemp())  # type: ignore[attr-defined]
        notPEM.write_text("hello\n")
        cases = [
            (["greet", "--tls", "/run/j.sock"], b"--tls needs a host name to verify"),
            (["send", "--tls", "unix:j.sock"], b"--tls needs a host name to verify"),
            (["greet", "--cacert", self.certificates.ca, "h"], b"--cacert goes with --tls."),
            (["greet", "--tls", "--cacert", "/nonexistent", "h"], b"cannot read '/nonexistent'"),
            (["send", "--tls", "--cacert", str(notPEM), "h"], b"holds no PEM certificate"),
            (["greet", "/run/j.sock", "99"], b"a unix socket (/run/j.sock) takes no PORT."),
        ]
        for argv, expected in cases:
            result = self.journey(*argv)
            self.assertEqual(result.returncode, 2, argv)  # type: ignore[attr-defined]
            self.assertIn(expected, result.stderr, argv)  # type: ignore[attr-defined]
            self.assertNotIn(b"Traceback", result.stderr)  # type: ignore[attr-defined]


class TwistedClientTests(ClientContract, SynchronousTestCase):
    """
    The clients on the Twisted engine.
    """

    env = environment()


class StdlibClientTests(ClientContract, SynchronousTestCase):
    """
    The clients' stdlib twins.
    """

    env = environment(JOURNEY_ENGINE="stdlib")
