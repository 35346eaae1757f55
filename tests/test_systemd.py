"""
systemd socket activation: the unit pairs shipped in ``docs/howto/systemd/`` run as
written, through ``systemd-socket-activate`` (the socket unit's ``ListenStream`` and
``FileDescriptorName`` on a free loopback port, the service's ``ExecStart`` with this
checkout's twistd), for journey-greet and journey-mux.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    PATIENCE,
    REPO,
    connect,
    environment,
    freePort,
    readAll,
    startServer,
)
from twisted_journey.listen import with_backlog

UNITS = REPO / "docs" / "howto" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    """
    The unit file ``name`` from ``docs/howto/systemd``, parsed (systemd's syntax is INI
    enough for the keys the test reads).
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


class SocketActivationTests(SynchronousTestCase):
    """
    ``twistd journey-greet`` and ``journey-mux`` serve a socket systemd hands over, as
    their documented units say.
    """

    def setUp(self) -> None:
        if shutil.which("systemd-socket-activate") is None:
            raise SkipTest("systemd-socket-activate (Debian's systemd package) is not installed")

    def activate(self, tool: str, **replace: str) -> tuple[str, int]:
        """
        Start ``tool``'s service as ``systemd-socket-activate`` would start it for its
        socket unit, on a free loopback port, and wait until it answers.

        :param replace: service arguments to replace (``{"/var/log/...": "/tmp/..."}``).
        :return: the loopback address.
        """
        socketUnit = unit(f"journey-{tool}.socket")
        serviceUnit = unit(f"journey-{tool}.service")
        listen = socketUnit["Socket"]["ListenStream"]
        name = socketUnit["Socket"]["FileDescriptorName"]
        self.assertTrue(listen.endswith((":1234", ":1235")), listen)
        execStart = shlex.split(serviceUnit["Service"]["ExecStart"])
        self.assertEqual(os.path.basename(execStart[0]), "twistd")
        arguments = [replace.get(argument, argument) for argument in execStart[1:]]
        self.assertIn(f"systemd:domain=INET:name={name}", arguments)
        port = freePort()
        env = environment()
        argv = [
            "systemd-socket-activate",
            "--listen", f"127.0.0.1:{port}",
            f"--fdname={name}",
            *(f"--setenv={key}={env[key]}" for key in ("PYTHONPATH", "PYTHONUNBUFFERED")),
            sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            *arguments,
        ]  # fmt: skip
        address = ("127.0.0.1", port)
        self.server = startServer(self, argv, address, env=env)
        return address

    def test_greet(self) -> None:
        """
        journey-greet greets on the socket handed over, and leaves its backlog alone.
        """
        address = self.activate("greet")
        for _ in range(3):
            self.assertEqual(readAll(connect(address)), b"Thank you for connecting\r\n")
        output = self.server.stdout + self.server.stderr
        self.assertNotIn(b"Traceback", output)

    def test_mux(self) -> None:
        """
        journey-mux records what clients send on the socket handed over, to the data log
        its service names.
        """
        output = Path(self.mktemp()).absolute()
        address = self.activate("mux", **{"/var/log/journey/data.log": str(output)})
        with connect(address) as sock:
            sock.sendall(b"activated\n")
        deadline = time.monotonic() + PATIENCE
        while b"activated" not in (output.read_bytes() if output.exists() else b""):
            self.assertLess(time.monotonic(), deadline, self.server.output())
            time.sleep(0.1)

    def test_noBacklogAdded(self) -> None:
        """
        The default backlog is never added to a ``systemd:`` endpoint, which takes none
        (the socket unit's ``Backlog=`` rules), nor to one wrapped in ``haproxy:``.
        """
        for description in [
            "systemd:domain=INET:name=greet",
            "haproxy:systemd:domain=INET:name=greet",
        ]:
            self.assertEqual(with_backlog(description), description)
