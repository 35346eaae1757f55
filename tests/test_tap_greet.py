"""
Tests for ``twistd journey-greet``'s options and service maker, and for the dropin.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_journey.greet import GreetFactory
from twisted_journey.settings import ProxySettings, ServerSettings
from twisted_journey.tap.greet import Options, makeService


def parse(*argv: str) -> Options:
    """
    Parse ``argv`` as twistd would parse ``journey-greet ARGV``.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    ``journey-greet``'s options, defaults and errors.
    """

    def test_defaults(self) -> None:
        """
        With no options: ``tcp:1234``, the chapter's greeting, a 30 s timeout, no limits.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:1234"])
        self.assertEqual(options["greeting"], b"Thank you for connecting\r\n")
        self.assertEqual(options["timeout"], 30.0)
        self.assertIsNone(options["max-connections"])
        self.assertIsNone(options["max-per-peer"])
        self.assertFalse(options["quiet"])

    def test_repeatableListen(self) -> None:
        """
        ``--listen`` repeats and replaces the default.
        """
        options = parse(
            "--listen", "tcp:1", "--listen", r"tcp6:2:interface=\:\:1", "--listen", "unix:/x"
        )
        self.assertEqual(options["listen"], ["tcp:1", r"tcp6:2:interface=\:\:1", "unix:/x"])

    def test_values(self) -> None:
        """
        Numbers are parsed; ``--message`` gets CRLF.
        """
        options = parse(
            "--max-connections", "10", "--max-per-peer", "2", "--timeout", "1.5", "-q", "-m", "hi"
        )
        self.assertEqual(
            (options["max-connections"], options["max-per-peer"], options["timeout"]), (10, 2, 1.5)
        )
        self.assertTrue(options["quiet"])
        self.assertEqual(options["greeting"], b"hi\r\n")

    def test_settings(self) -> None:
        """
        Parsing ends with the typed settings the services are built from, defaults filled
        in (greet's own timeout among them).
        """
        options = parse("--listen", "tcp:1", "--max-connections", "10", "--workers", "2", "-q")
        self.assertEqual(
            options.settings,
            ServerSettings(
                listen=("tcp:1",),
                maxConnections=10,
                maxPerPeer=None,
                perPeerPrefix=(32, 64),
                timeout=30.0,
                quiet=True,
                proxy=ProxySettings(3.0, ()),
                workers=2,
                metrics=None,
                output=None,
            ),
        )

    def test_messageFile(self) -> None:
        """
        ``--message-file`` is read byte for byte.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"\x00\xffno newline")
        self.assertEqual(parse("--message-file", path)["greeting"], b"\x00\xffno newline")

    def test_errorsAreOneSentence(self) -> None:
        """
        Each mistake is a ``UsageError`` whose message says what is wrong.
        """
        cases = [
            (["--listen", "bogus:1"], "--listen 'bogus:1' is not a usable endpoint"),
            (["--listen", "tcp:notaport"], "--listen 'tcp:notaport' is not a usable endpoint"),
            (["--max-connections", "0"], "--max-connections must be a whole number of at least 1"),
            (["--max-per-peer", "x"], "--max-per-peer must be a whole number of at least 1"),
            (["--timeout", "-1"], "--timeout must be a number of seconds above 0"),
            (["-m", "a", "--message-file", "b"], "give --message or --message-file, not both."),
            (["--message-file", "/nonexistent"], "cannot read --message-file '/nonexistent'"),
        ]
        for argv, expected in cases:
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(expected, str(error))

    def test_help(self) -> None:
        """
        The help names every option and the default endpoint.
        """
        text = str(Options())
        for option in [
            "--listen",
            "--message",
            "--message-file",
            "--max-connections",
            "--max-per-peer",
            "--timeout",
            "--quiet",
            "tcp:1234",
        ]:
            self.assertIn(option, text)


class MakeServiceTests(SynchronousTestCase):
    """
    ``makeService`` listens where asked, with a factory configured from the options.
    """

    def test_listensOnEveryEndpoint(self) -> None:
        """
        Each ``--listen`` becomes a listening port with one shared factory.
        """
        reactor = MemoryReactorClock()
        options = parse(
            "--listen", "tcp:8007:interface=127.0.0.1", "--listen", "tcp:8008", "-q", "-m", "yo"
        )
        service = makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        ports = [(port, interface) for port, _, _, interface in reactor.tcpServers]
        self.assertEqual(ports, [(8007, "127.0.0.1"), (8008, "")])
        factories = {id(factory) for _, factory, _, _ in reactor.tcpServers}
        self.assertEqual(len(factories), 1)
        factory = reactor.tcpServers[0][1]
        self.assertIsInstance(factory, GreetFactory)
        self.assertEqual(factory.greeting, b"yo\r\n")
        self.assertTrue(factory.quiet)
        self.assertIs(factory.clock, reactor)

    def test_defaultOptions(self) -> None:
        """
        ``makeService`` with default options listens on port 1234.
        """
        reactor = MemoryReactorClock()
        makeService(parse(), reactor).startService()
        self.assertEqual(reactor.tcpServers[0][0], 1234)


class DropinTests(SynchronousTestCase):
    """
    The dropin in ``twisted/plugins`` declares all three tools.
    """

    def test_plugins(self) -> None:
        """
        ``getPlugins(IServiceMaker)`` finds journey-greet, journey-mux and journey-fetch,
        each pointing at its tap module.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        for tapname, module in [
            ("journey-greet", "twisted_journey.tap.greet"),
            ("journey-mux", "twisted_journey.tap.mux"),
            ("journey-fetch", "twisted_journey.tap.fetch"),
        ]:
            self.assertIn(tapname, makers)
            self.assertEqual(makers[tapname].module, module)  # type: ignore[attr-defined]
        self.assertIs(makers["journey-greet"].options, Options)

    def test_dropinImportsNoReactor(self) -> None:
        """
        Loading the dropin does not install a reactor (which would break ``--reactor``):
        checked in a fresh interpreter.
        """
        from tests.support import run

        result = run(
            [
                __import__("sys").executable,
                "-c",
                "import sys; from twisted.plugin import getPlugins; "
                "from twisted.application.service import IServiceMaker; "
                "[p for p in getPlugins(IServiceMaker)]; "
                "print('twisted.internet.reactor' in sys.modules)",
            ]
        )
        self.assertEqual(result.stdout.strip(), b"False", result.stderr)
