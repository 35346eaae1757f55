"""
The package as a user gets it: a wheel built from this checkout, installed into a fresh
virtual environment, must show and run the twistd plugins and the ``journey`` command.

This is the test that catches the flat-layout traps: a dropin left out of the wheel, an
``__init__.py`` shipped in ``twisted/plugins`` (which would replace Twisted's own), or a
plugin only visible when run from the checkout.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import REPO, connect, freePort, readAll, startServer

#: building and installing from the registries can take a while on a cold cache
INSTALL_PATIENCE = 600


def _clean_environment() -> dict[str, str]:
    """
    An environment that does not point at this checkout.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JOURNEY_ENGINE")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _copyCheckout(target: Path) -> Path:
    """
    Copy this checkout to ``target``, leaving out build products, caches and version
    control, and return it.

    Packages are built from a copy: a build in the checkout leaves ``build/`` and
    ``*.egg-info/`` there, and setuptools reuses a stale ``SOURCES.txt``, which would hide a
    file ``MANIFEST.in`` forgot.
    """
    shutil.copytree(
        REPO,
        target,
        ignore=shutil.ignore_patterns(
            *["*.egg-info", "_build", ".venv", "venv", "build", "dist", "__pycache__"],
            # written meanwhile by the suite's other processes or CI's other steps
            *["_trial_temp*", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"],
        ),
    )
    return target


@functools.cache
def installation() -> tuple[Path, Path, Path]:
    """
    Build the wheel and install it into a fresh virtual environment, once per test run
    (trial has no ``setUpClass``); removed when the run ends.

    :return: the scratch directory, the wheel, and the virtual environment.
    """
    directory = Path(tempfile.mkdtemp(prefix="journey-wheel-"))
    atexit.register(shutil.rmtree, directory, True)
    env = _clean_environment()
    dist, venv = directory / "dist", directory / "venv"
    checkout = _copyCheckout(directory / "checkout")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(checkout)],
        check=True,
        env=env,
        timeout=INSTALL_PATIENCE,
        capture_output=True,
    )
    (wheel,) = dist.glob("twisted_journey-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_PATIENCE)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        env=env,
        timeout=INSTALL_PATIENCE,
        capture_output=True,
    )
    return directory, wheel, venv


class InstalledWheelTests(SynchronousTestCase):
    """
    Build once, install once, then check what a user would see: one test, so that
    parallel test processes do not each build and install the wheel.
    """

    def setUp(self) -> None:
        if os.environ.get("JOURNEY_SKIP_PACKAGING"):
            raise SkipTest("JOURNEY_SKIP_PACKAGING is set")
        self.directory, self.wheel, self.venv = installation()

    def bin(self, name: str) -> str:
        """
        A script installed in the fresh environment.
        """
        return str(self.venv / "bin" / name)

    def run_installed(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        """
        Run an installed script from a directory outside the checkout.
        """
        return subprocess.run(
            argv, capture_output=True, env=_clean_environment(), cwd=self.directory, timeout=120
        )

    def checkWheelContents(self) -> None:
        """
        The wheel holds the dropin and ``py.typed``, and no ``__init__.py`` under
        ``twisted/`` that would overwrite Twisted's own.
        """
        names = zipfile.ZipFile(self.wheel).namelist()
        self.assertIn("twisted/plugins/journey_plugins.py", names)
        self.assertIn("twisted_journey/py.typed", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertFalse([n for n in names if n.startswith(("tests/", "docs/", "bench/"))], names)
        # setuptools >= 77 puts it under .dist-info/licenses/, older ones in .dist-info/
        self.assertTrue([n for n in names if ".dist-info/" in n and n.endswith("/LICENSE")], names)

    def checkTwistdListsThePlugins(self) -> None:
        """
        ``twistd --help`` in the fresh environment lists all three tools.
        """
        result = self.run_installed(self.bin("twistd"), "--help")
        for tapname in [b"journey-greet", b"journey-mux", b"journey-fetch"]:
            self.assertIn(tapname, result.stdout, result.stdout + result.stderr)

    def checkGreetingFromInstalledPlugin(self) -> None:
        """
        ``twistd -n journey-greet`` from the fresh environment serves the greeting, and
        the installed ``journey greet`` prints it.
        """
        port = freePort()
        startServer(
            self,
            [
                self.bin("twistd"),
                "-n",
                "--pidfile=",
                "journey-greet",
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
            ],
            ("127.0.0.1", port),
            env=_clean_environment(),
            cwd=str(self.directory),
        )
        self.assertEqual(readAll(connect(("127.0.0.1", port))), b"Thank you for connecting\r\n")
        result = self.run_installed(self.bin("journey"), "greet", "127.0.0.1", str(port))
        self.assertEqual((result.returncode, result.stdout), (0, b"Thank you for connecting\r\n"))

    def test_installedWheel(self) -> None:
        """
        The wheel's contents, the plugins ``twistd`` lists and the greeting an installed
        plugin serves are what a user gets.
        """
        self.checkWheelContents()
        self.checkTwistdListsThePlugins()
        self.checkGreetingFromInstalledPlugin()


@functools.cache
def sourceDistribution() -> tuple[Path, list[str]]:
    """
    Build the sdist (with the build tools already installed: no download) and unpack it,
    once per test run; removed when the run ends.

    :return: the unpacked source tree and the names in the archive, relative to its top.
    """
    directory = Path(tempfile.mkdtemp(prefix="journey-sdist-"))
    atexit.register(shutil.rmtree, directory, True)
    checkout = _copyCheckout(directory / "checkout")
    subprocess.run(
        [
            *[sys.executable, "-m", "build", "--sdist", "--no-isolation"],
            *["--skip-dependency-check", "--outdir", str(directory / "dist"), str(checkout)],
        ],
        check=True,
        env=_clean_environment(),
        timeout=INSTALL_PATIENCE,
        capture_output=True,
    )
    (archive,) = (directory / "dist").glob("twisted_journey-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
        tar.extractall(directory / "src", filter="data")
    (tree,) = (directory / "src").iterdir()
    return tree, names


class SourceDistributionTests(SynchronousTestCase):
    """
    The sdist carries what it takes to run the suite and build the docs, and the suite
    runs from it.
    """

    def setUp(self) -> None:
        if os.environ.get("JOURNEY_SKIP_PACKAGING"):
            raise SkipTest("JOURNEY_SKIP_PACKAGING is set")
        self.tree, self.names = sourceDistribution()

    def test_contents(self) -> None:
        """
        The licence, the test support modules, conftest, the docs sources, the benchmarks
        and CI script are in; built docs and bytecode are not.
        """
        for name in [
            "LICENSE",
            "README.rst",
            "conftest.py",
            ".ci/run",
            "tests/__init__.py",
            "tests/support.py",
            "tests/fetchservers.py",
            "docs/conf.py",
            "docs/index.rst",
            "bench/greet.py",
            "twisted/plugins/journey_plugins.py",
        ]:
            self.assertIn(name, self.names)
        self.assertFalse(
            [n for n in self.names if n.startswith("docs/_build/") or n.endswith(".pyc")]
        )

    def test_suiteRunsFromIt(self) -> None:
        """
        A slice of the suite passes with the unpacked sdist as the working directory and
        nothing pointing at this checkout.
        """
        result = subprocess.run(
            [
                *[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                *["tests/test_settings.py", "tests/test_tap_greet.py", "tests/test_help.py"],
                "tests/test_docs_site.py",
            ],
            cwd=self.tree,
            env=_clean_environment(),
            capture_output=True,
            timeout=INSTALL_PATIENCE,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(b"passed", result.stdout)
