"""
Tests for ``twistd journey-mux``'s options and service maker, and its dropin line.
"""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.support import fallbackArgv, run, twistdArgv
from twisted_journey.mux import MuxFactory
from twisted_journey.tap.mux import Options, makeService


def parse(*argv: str) -> Options:
    """
    Parse ``argv`` as twistd would parse ``journey-mux ARGV``.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    ``journey-mux``'s options, defaults and errors.
    """

    def test_defaults(self) -> None:
        """
        With no options: ``tcp:1235``, stdout, text, line mode, 64 KiB lines, 1 s flushes,
        no rotation, no timeout, no broadcast.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:1235"])
        self.assertEqual(
            (options["output"], options["format"], options["mode"]), ("-", "text", "line")
        )
        self.assertEqual(options["max-line-length"], 65536)
        self.assertEqual(options["flush-interval"], 1.0)
        self.assertIsNone(options["rotate-bytes"])
        self.assertEqual(options["rotate-keep"], 10)
        self.assertIsNone(options["timeout"])
        self.assertFalse(options["broadcast"])
        self.assertEqual(options["broadcast-buffer"], 1 << 20)
        self.assertFalse(options["quiet"])

    def test_values(self) -> None:
        """
        Every option is parsed into its type.
        """
        options = parse(
            "--output", "x.log", "--format", "json", "--mode", "raw", "--max-line-length", "100",
            "--flush-interval", "0.5", "--rotate-bytes", "1000", "--rotate-keep", "0",
            "--timeout", "30", "--broadcast", "--broadcast-buffer", "4096", "-q",
            "--listen", "tcp:1", "--listen", "unix:/tmp/x",
        )  # fmt: skip
        self.assertEqual(
            [options[k] for k in ("output", "format", "mode", "max-line-length", "flush-interval")],
            ["x.log", "json", "raw", 100, 0.5],
        )
        self.assertEqual(
            [options[k] for k in ("rotate-bytes", "rotate-keep", "timeout", "broadcast-buffer")],
            [1000, 0, 30.0, 4096],
        )
        self.assertTrue(options["broadcast"] and options["quiet"])
        self.assertEqual(options["listen"], ["tcp:1", "unix:/tmp/x"])

    def test_errorsAreOneSentence(self) -> None:
        """
        Each mistake is a ``UsageError`` whose message says what is wrong.
        """
        cases = [
            (["--format", "xml"], "--format must be one of text, json, not 'xml'."),
            (["--mode", "packet"], "--mode must be one of line, raw, not 'packet'."),
            (["--max-line-length", "0"], "--max-line-length must be a whole number of at least 1"),
            (["--flush-interval", "-1"], "--flush-interval must be a number of seconds above 0"),
            (["--rotate-keep", "x"], "--rotate-keep must be a whole number of at least 0"),
            (["--rotate-bytes", "1000"], "--rotate-bytes needs --output PATH"),
            (["--timeout", "0"], "--timeout must be a number of seconds above 0"),
            (["--listen", "bogus:1"], "--listen 'bogus:1' is not a usable endpoint"),
        ]
        for argv, message in cases:
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertTrue(str(error).startswith(message), (argv, str(error)))

    def test_help(self) -> None:
        """
        The help names every option.
        """
        text = str(Options())
        for name in ("--output", "--format", "--mode", "--max-line-length", "--flush-interval",
                     "--rotate-bytes", "--rotate-keep", "--broadcast", "--timeout", "--listen"):  # fmt: skip
            self.assertIn(name, text)


class MakeServiceTests(SynchronousTestCase):
    """
    :func:`makeService` on a ``MemoryReactorClock``.
    """

    def test_listensAndWrites(self) -> None:
        """
        The service listens where asked with a :class:`MuxFactory` configured from the
        options, flushes on the clock, and closes the data log when stopped.
        """
        reactor = MemoryReactorClock()
        path = Path(self.mktemp()).absolute()
        options = parse("--listen", "tcp:8123", "--output", str(path), "--format", "json", "-q")
        service = makeService(options, reactor)
        service.startService()
        [(port, factory, _, _)] = reactor.tcpServers
        self.assertEqual(port, 8123)
        self.assertIsInstance(factory, MuxFactory)
        self.assertEqual(factory.recordFormat, "json")
        self.assertIs(factory.clock, reactor)
        service.stopService()
        self.assertTrue(path.exists())
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_unopenableOutput(self) -> None:
        """
        A data log that cannot be opened ends twistd with one sentence (``SystemExit``,
        which twistd prints without a traceback), before anything listens.
        """
        options = parse("--output", "/nonexistent/dir/log")
        error = self.assertRaises(SystemExit, makeService, options, MemoryReactorClock())
        self.assertEqual(
            str(error), "cannot open --output '/nonexistent/dir/log': No such file or directory."
        )

    def test_unopenableOutputUnderTwistd(self) -> None:
        """
        Under a real ``twistd``, a bad ``--output`` is one line on stderr and exit 1, not a
        traceback (issue 7).
        """
        result = run(twistdArgv("journey-mux", "--output", "/nonexistent/dir/log"))
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (1, b"", b"cannot open --output '/nonexistent/dir/log': No such file or directory.\n"),
        )

    def test_linkAtOutputRefused(self) -> None:
        """
        A symbolic link planted at ``--output`` (or at a worker's ``PATH.wI``) is refused in
        one sentence by twistd, with and without ``--workers``, and by the stdlib twin; the
        link's target is never written.
        """
        base = Path(self.mktemp())
        base.mkdir()
        target = base / "target"
        target.write_bytes(b"precious\n")
        link = base / "received.log"
        link.symlink_to(target)
        (base / "w.log.w1").symlink_to(target)
        sentence = "a symbolic link is there, and the data log is never written through one."
        for argv, name in [
            (twistdArgv("journey-mux", "--output", str(link)), link),
            (
                twistdArgv("journey-mux", "--output", str(base / "w.log"), "--workers", "2"),
                base / "w.log.w1",
            ),
            (fallbackArgv("mux", "--output", str(link), "--listen", "tcp:0"), link),
        ]:
            result = run(argv)
            self.assertNotEqual(result.returncode, 0, argv)
            self.assertIn(f"cannot open --output '{name}': {sentence}".encode(), result.stderr)
            self.assertNotIn(b"Traceback", result.stderr + result.stdout)
        self.assertEqual(target.read_bytes(), b"precious\n")

    def test_plugin(self) -> None:
        """
        twistd finds ``journey-mux``, and it builds this module's service.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("journey-mux", makers)
        self.assertIs(makers["journey-mux"].options, Options)
