"""
Helpers for tests that start real processes and talk to them over loopback.

Every server started here is a child process running the code in this checkout (the
checkout is put first on ``PYTHONPATH``, so the twistd dropin in ``twisted/plugins`` is the
one found), and is stopped by a cleanup registered on the test case.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: How long a test waits for a server to come up, or a child to finish, before failing.
PATIENCE = 30.0

# A test run started in the background by a script (``trial ... &`` in a shell without job
# control, as CI does) ignores SIGINT, and every process it starts would inherit that:
# a server would then never see the SIGINT a test sends it.  With a handler here instead,
# the servers start with SIGINT's default action, as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def environment(stdlibOnly: bool = False, **extra: str) -> dict[str, str]:
    """
    The environment for a child process: this checkout first on ``PYTHONPATH``.

    :param stdlibOnly: make ``import twisted`` fail in the child (a ``sitecustomize``
        sets ``sys.modules["twisted"] = None``), to prove a module runs without Twisted.
    """
    env = dict(os.environ)
    paths = [str(REPO)]
    if stdlibOnly:
        paths.insert(0, _blockerDirectory())
        env["JOURNEY_TEST_STDLIB_ONLY"] = "1"
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("JOURNEY_ENGINE", None)
    env.update(extra)
    return env


def proxyFreeEnvironment(stdlibOnly: bool = False, **extra: str) -> dict[str, str]:
    """
    :func:`environment` with every proxy variable (``http_proxy``, ``NO_PROXY``, ...)
    removed, since tests never leave loopback; then ``extra``.
    """
    env = environment(stdlibOnly)
    for name in list(env):
        if name.lower().endswith("_proxy"):
            del env[name]
    env.update(extra)
    return env


_blocker: str | None = None


def _blockerDirectory() -> str:
    """
    A directory holding a ``sitecustomize.py`` that blocks every ``twisted`` import.
    """
    global _blocker
    if _blocker is None:
        _blocker = tempfile.mkdtemp(prefix="journey-no-twisted-")
        Path(_blocker, "sitecustomize.py").write_text(
            "import sys\n"
            "for name in ('twisted', 'zope', 'zope.interface'):\n"
            "    sys.modules[name] = None\n"
        )
    return _blocker


def twistdArgv(tapname: str, *options: str) -> list[str]:
    """
    The command line that runs ``twistd -n TAPNAME OPTIONS`` in the foreground.
    """
    return [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        tapname,
        *options,
    ]


def fallbackArgv(tool: str, *options: str) -> list[str]:
    """
    The command line that runs ``python -m twisted_journey.fallback.TOOL OPTIONS``.
    """
    return [sys.executable, "-m", f"twisted_journey.fallback.{tool}", *options]


def journeyArgv(*arguments: str) -> list[str]:
    """
    The command line that runs ``journey ARGUMENTS`` (as ``python -m twisted_journey``).
    """
    return [sys.executable, "-m", "twisted_journey", *arguments]


#: Ports :func:`freePort` hands out: below Linux's ephemeral range (32768-60999 by
#: default), so no client socket the kernel numbers can take one, split into one block
#: per parallel test process so that two never hand out the same port.
PORTS = range(20000, 32768)
_BLOCKS = 16
_nextPort: int | None = None


def _workerIndex() -> int:
    """
    Which parallel test process this is: pytest-xdist's ``gwN``, or trial ``-j``'s
    working directory ``_trial_temp/N``; ``0`` when the suite runs in one process.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:])
    cwd = Path.cwd()
    if cwd.name.isdigit() and cwd.parent.name.startswith("_trial_temp"):
        return int(cwd.name)
    return 0


#: Read once, when the suite loads this module: a test may change directory later.
_WORKER = _workerIndex()


#: The file whose byte N a test process locks to claim port N (:func:`_claim`), open
#: for the life of the process (closing any descriptor of it would drop its locks).
_claims: int | None = None


def _claim(port: int) -> bool:
    """
    Claim ``port`` for this process among every test process of this user on the
    machine: a lock on byte ``port`` of one shared file, released by the kernel when the
    process ends.

    :return: whether it is ours now (``False``: another test process claimed it).
    """
    global _claims
    if _claims is None:
        name = os.path.join(tempfile.gettempdir(), f"twisted_journey-test-ports-{os.getuid()}")
        _claims = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.lockf(_claims, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    return True


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port on ``host`` that nothing listens on, for a server the test starts.

    The port comes from this test process's own block of :data:`PORTS` (handed out in
    turn from a random start, each checked by binding it), so tests running in parallel
    never pick the same port, and no outgoing connection can hold it meanwhile.  It is
    also claimed for the life of this process (:func:`_claim`), so that another test run
    on the machine (a second checkout's suite: its processes number their blocks alike)
    never picks it in the moments before this test's server binds it.
    """
    global _nextPort
    size = len(PORTS) // _BLOCKS
    first = PORTS.start + (_WORKER % _BLOCKS) * size
    if _nextPort is None:
        _nextPort = random.randrange(size)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(size):
        port = first + _nextPort
        _nextPort = (_nextPort + 1) % size
        if not _claim(port):
            continue
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{first + size - 1}")


def connect(
    address: Any, timeout: float = PATIENCE, receiveBuffer: int | None = None
) -> socket.socket:
    """
    A blocking client socket connected to ``address`` (``(host, port)`` or a unix path).

    :param receiveBuffer: a small ``SO_RCVBUF`` set before connecting, for a client that
        should not soak up much of what a server sends before it reads.
    """
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family)
    if receiveBuffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def readAll(sock: socket.socket) -> bytes:
    """
    Read from ``sock`` until the peer closes it, then close it.
    """
    chunks = []
    with sock:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class ServerProcess:
    """
    A server child process whose output goes to files, stopped by :meth:`stop`.

    :ivar process: the ``subprocess.Popen``.
    :ivar address: where it listens, once :meth:`waitForListening` has seen it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        **popen: Any,
    ) -> None:
        self.argv = list(argv)
        self._directory = tempfile.mkdtemp(prefix="journey-server-")
        self.stdoutPath = Path(self._directory, "stdout")
        self.stderrPath = Path(self._directory, "stderr")
        with open(self.stdoutPath, "wb") as out, open(self.stderrPath, "wb") as err:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=environment() if env is None else env,
                cwd=cwd or self._directory,
                **popen,
            )

    @property
    def stdout(self) -> bytes:
        """
        What the process has written to stdout so far.
        """
        return self.stdoutPath.read_bytes()

    @property
    def stderr(self) -> bytes:
        """
        What the process has written to stderr so far.
        """
        return self.stderrPath.read_bytes()

    def output(self) -> str:
        """
        stdout and stderr as text, for failure messages.
        """
        return (
            f"argv: {self.argv}\n--- stdout\n{self.stdout.decode(errors='replace')}\n"
            f"--- stderr\n{self.stderr.decode(errors='replace')}"
        )

    def waitForListening(self, address: Any, timeout: float = PATIENCE) -> None:
        """
        Wait until a connection to ``address`` succeeds (the probe connection is closed
        at once), or fail with the process's output if it exits or time runs out.

        Probing connects once; a greeting server serves the probe like any client.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}\n{self.output()}"
                )
            try:
                connect(address, timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"server never listened on {address}\n{self.output()}"
                    ) from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = PATIENCE) -> int:
        """
        Send ``sig`` and wait for the process to exit; kill it if it will not.

        :return: its exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def catchesSignal(pid: int, number: int) -> bool:
    """
    Whether process ``pid`` has a handler for signal ``number`` now (``SigCgt`` in
    ``/proc``): a signal sent before a server's reactor installs its handlers meets
    Python's or the system's default, not the server's shutdown.  ``False`` once the
    process has gone.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


def waitFor(
    condition: Callable[[], object],
    what: str,
    timeout: float = PATIENCE,
    server: ServerProcess | None = None,
) -> None:
    """
    Poll ``condition()`` until it is true, or fail saying ``what`` never happened (with
    ``server``'s output, when one is given).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            output = f"\n{server.output()}" if server is not None else ""
            raise AssertionError(f"timed out waiting for {what}{output}")
        time.sleep(0.02)


def startServer(testCase: Any, argv: Sequence[str], address: Any, **kwargs: Any) -> ServerProcess:
    """
    Start a server process, wait until it listens on ``address``, and make ``testCase``
    stop it afterwards.
    """
    server = ServerProcess(argv, **kwargs)
    testCase.addCleanup(server.stop)
    server.waitForListening(address)
    return server


def run(
    argv: Sequence[str], *, input: bytes = b"", timeout: float = PATIENCE, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    """
    Run a command to completion with this checkout's environment; capture its output.
    """
    kwargs.setdefault("env", environment())
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, **kwargs)


def socketPath(testCase: Any) -> str:
    """
    A path for a unix socket short enough for ``sun_path`` (a test's own temporary
    directory may be too deep), removed after the test.
    """
    directory = tempfile.mkdtemp(prefix="j-", dir="/tmp")
    testCase.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, "s")


def cpuSeconds(pid: int) -> float:
    """
    User plus system CPU seconds process ``pid`` has used so far (from ``/proc``).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def selfSignedCertificate(directory: str, expired: bool = False) -> tuple[str, str]:
    """
    Write a self-signed certificate for ``localhost`` and its key into ``directory``.

    :param expired: make one that expired yesterday (valid from ten days ago).
    :return: the key and certificate paths.
    """
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10 if expired else 1))
        .not_valid_after(now + datetime.timedelta(days=-1 if expired else 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyPath, certPath = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(certPath, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


def mountTmpfs(testCase: Any, size: str) -> str:
    """
    A fresh ``tmpfs`` of ``size`` (``mount -o size=``), unmounted after the test.

    :raises SkipTest: when this process may not mount one (it is not root).
    """
    directory = tempfile.mkdtemp(prefix="journey-tmpfs-")
    testCase.addCleanup(shutil.rmtree, directory, True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise unittest.SkipTest(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    testCase.addCleanup(subprocess.run, ["umount", "-l", directory], check=False)
    return directory
