# -*- test-case-name: tests.test_cli -*-
"""
The ``journey`` command: clients for the journey servers, and the fetcher.

Each sub-command uses the Twisted engine when Twisted is installed and its stdlib twin
otherwise, so the command works (more slowly, with fewer features) on a bare Python.
A user's mistake ends in one sentence on stderr and a non-zero exit, never a traceback.

Exit statuses of ``greet`` and ``send``: 0 success, 1 the server could not be reached,
did not answer in time or its TLS certificate was refused, 2 a usage error, 130 interrupted
(Ctrl-C).

Both take the server as ``HOST [PORT]``, or as a unix socket path: a HOST that contains a
``/`` (``/run/journey.sock``, ``./j.sock``) or starts with ``unix:`` (``unix:j.sock``).
``--tls`` speaks TLS, verifying the server's certificate against the system's authorities
(or those in ``--cacert FILE``) and checking that it names HOST.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    from twisted_journey.errors import Target

from twisted_journey import __version__
from twisted_journey.settings import argparse_type, seconds

__all__ = ["main"]


def twistedAvailable() -> bool:
    """
    Whether the Twisted engine can be used (``JOURNEY_ENGINE=stdlib`` forces the twin).
    """
    import os

    if os.environ.get("JOURNEY_ENGINE") == "stdlib":
        return False
    # Not "twisted" alone: the checkout's own twisted/plugins directory is found as a
    # namespace package where Twisted is not installed.
    try:
        return importlib.util.find_spec("twisted.internet") is not None
    except ImportError:
        return False


def _fail(command: str, sentence: str, status: int = 1) -> int:
    """
    Print ``journey COMMAND: sentence`` on stderr and return ``status``.
    """
    print(f"journey {command}: {sentence}", file=sys.stderr)
    return status


def _port(text: str) -> int:
    """
    An argparse type for a TCP port number.
    """
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return port


#: An argparse type for a positive number of seconds.
_seconds = argparse_type(partial(seconds, "--timeout"))


def _cacert(path: str) -> str:
    """
    An argparse type for ``--cacert``: a readable PEM file of certificates.
    """
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise argparse.ArgumentTypeError(f"{path!r} holds no PEM certificate") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {path!r}: {e.strerror or e}") from None
    return path


def _addConnectionOptions(parser: argparse.ArgumentParser) -> None:
    """
    The options ``greet`` and ``send`` share to say how to reach the server.
    """
    parser.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS; the server's certificate must be trusted and name HOST",
    )
    parser.add_argument(
        "--cacert",
        type=_cacert,
        metavar="FILE",
        help="with --tls, trust the authorities in this PEM file [the system's]",
    )


def _unixPath(host: str) -> str | None:
    """
    The unix socket path ``host`` names (it contains ``/`` or starts with ``unix:``), or
    ``None`` for a host name or address.
    """
    if host.startswith("unix:"):
        return host[len("unix:") :]
    return host if "/" in host else None


def _target(command: str, args: argparse.Namespace, port: int | None) -> Target | str:
    """
    The :class:`twisted_journey.errors.Target` the arguments name, or the sentence of a
    usage error.

    :param port: the port given, or ``None`` when there was none.
    """
    from twisted_journey.errors import Target

    if not args.host:
        return "HOST is empty: give a host name, an IP address or a unix socket path."
    path = _unixPath(args.host)
    if args.cacert is not None and not args.tls:
        return "--cacert goes with --tls."
    if path is None:
        default = 1234 if command == "greet" else 1235
        return Target(args.host, default if port is None else port, args.tls, args.cacert)
    if not path:
        return f"{args.host!r} names no unix socket path."
    if port is not None:
        return f"a unix socket ({path}) takes no PORT."
    if args.tls:
        return "--tls needs a host name to verify; a unix socket has none."
    return Target(path)


def _runClient(
    command: str,
    stdlib: Callable[[], object],
    twisted: Callable[[Any], Deferred[Any]],
    describe: Callable[[Failure], str],
) -> int:
    """
    Run a client on the Twisted engine when it is available, else on its stdlib twin, and
    turn a failure into one sentence on stderr and status 1.

    :param stdlib: runs the stdlib client; raises ``errors.ClientError`` on failure.
    :param twisted: given the reactor, starts the Twisted client; its Deferred fails on
        failure.
    :param describe: the sentence for a Twisted failure.
    """
    if not twistedAvailable():
        from twisted_journey.errors import ClientError

        try:
            stdlib()
        except ClientError as e:
            return _fail(command, str(e))
        return 0

    from twisted.internet.task import react
    from twisted.logger import globalLogBeginner

    # Until logging begins, Twisted prints critical events on stderr, tracebacks included:
    # a certificate verification that raises is logged so.  Every failure of a client is
    # reported below in one sentence, so no event is printed at all.
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
    status = 0
    finished = interrupted = False

    def failed(failure: Failure) -> None:
        nonlocal status
        # Ctrl-C (or SIGTERM) stops the reactor, which may close the connection under the
        # client: that is the user's doing, not a failure to explain.
        if not interrupted:
            status = _fail(command, describe(failure))

    def shuttingDown() -> None:
        nonlocal interrupted
        interrupted = not finished

    def finish(_: object) -> None:
        nonlocal finished
        finished = True

    def main(reactor: Any) -> Deferred[None]:
        reactor.addSystemEventTrigger("before", "shutdown", shuttingDown)
        return twisted(reactor).addCallbacks(lambda _: None, failed).addBoth(finish)

    try:
        react(main)
    except SystemExit:
        pass  # react always ends so; the status is what ``failed`` recorded
    return 130 if interrupted else status


def _stdout() -> Callable[[bytes], None]:
    """
    A writer of raw bytes to stdout, as they arrive (see :func:`_writeAll`).
    """
    sys.stdout.flush()
    out = sys.stdout.fileno()
    return lambda data: _writeAll(out, data)


# --- journey greet -----------------------------------------------------------------------


def _configureGreet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "host",
        help="the greeting server's host name or address, or a unix socket path "
        "(containing '/', or unix:PATH)",
    )
    parser.add_argument("port", nargs="?", type=_port, default=None, help="its port [1234]")
    _addConnectionOptions(parser)
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        help="seconds for the whole exchange, connecting included [10]",
    )


def _greet(args: argparse.Namespace) -> int:
    """
    Print what a greeting server sends, until it closes the connection.
    """
    target = _target("greet", args, args.port)
    if isinstance(target, str):
        return _fail("greet", target, 2)
    write = _stdout()

    def stdlib() -> None:
        from twisted_journey.fallback.client import receive_greeting

        receive_greeting(target, write, args.timeout)

    def twisted(reactor: Any) -> Deferred[int]:
        from twisted_journey.client import receiveGreeting

        return receiveGreeting(reactor, target, write, args.timeout)

    def describe(failure: Failure) -> str:
        from twisted_journey.client import describeFailure

        return describeFailure(failure, target, args.timeout)

    return _runClient("greet", stdlib, twisted, describe)


# --- journey send ------------------------------------------------------------------------


def _configureSend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "host",
        help="the journey-mux server's host name or address, or a unix socket path "
        "(containing '/', or unix:PATH)",
    )
    parser.add_argument(
        "rest",
        nargs="*",
        metavar="[PORT] [FILE]",
        help="its port [1235] (none for a unix socket); the file to send [stdin]",
    )
    _addConnectionOptions(parser)
    # Only the connection has a deadline: the input is a stream that may last for ever
    # (tail -f | journey send), so a deadline on the whole exchange would cut it.
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        help="seconds to connect, the TLS handshake included; the stream has no deadline [10]",
    )
    from twisted_journey.syslogframe import FRAMINGS

    parser.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="lines",
        help="lines: send the input as it is; syslog: each line as an octet-counted syslog "
        "frame (RFC 6587, as TLS syslog needs) [lines]",
    )


def _send(args: argparse.Namespace) -> int:
    """
    Stream a file or stdin to a journey-mux server; print what it relays; exit when it closes.
    """
    import os

    rest = list(args.rest)
    port = None
    if rest and rest[0].isdigit() and _unixPath(args.host) is None:
        try:
            port = _port(rest.pop(0))
        except argparse.ArgumentTypeError as e:
            return _fail("send", f"{e}.", 2)
    if len(rest) > 1:
        return _fail("send", f"give at most one FILE, not {len(rest)}: {' '.join(rest)}.", 2)
    target = _target("send", args, port)
    if isinstance(target, str):
        return _fail("send", target, 2)
    fd = 0
    if rest and rest[0] != "-":
        try:
            fd = os.open(rest[0], os.O_RDONLY)
        except OSError as e:
            return _fail("send", f"cannot read {rest[0]!r}: {e.strerror or e}.")
    write = _stdout()

    def stdlib() -> None:
        from twisted_journey.fallback.client import send_stream

        send_stream(target, fd, write, args.timeout, args.framing)

    def twisted(reactor: Any) -> Deferred[int]:
        from twisted_journey.client import sendStream

        return sendStream(reactor, target, fd, write, args.timeout, args.framing)

    def describe(failure: Failure) -> str:
        from twisted_journey.client import describeFailure

        if failure.check(ConnectionError) and not failure.check(ConnectionRefusedError):
            return f"{failure.value}."
        return describeFailure(failure, target, args.timeout)

    return _runClient("send", stdlib, twisted, describe)


def _writeAll(fd: int, data: bytes) -> None:
    """
    Write all of ``data`` to ``fd``, waiting while it is full.

    The Twisted client makes a terminal input non-blocking while it runs, and a terminal's
    flags are shared by every descriptor open on it, stdout included: a plain buffered
    write would then fail (and lose what it held) whenever the terminal is slow to take it.
    """
    import os
    import select

    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


# --- journey fetch ------------------------------------------------------------------------


def _configureFetch(parser: argparse.ArgumentParser) -> None:
    from twisted_journey.fetch import cli as fetchcli

    fetchcli.configure(parser)


def _fetch(args: argparse.Namespace) -> int:
    """
    Fetch URLs to files (exit statuses: :data:`twisted_journey.fetch.errors.EXIT_CODES`).
    """
    from twisted_journey.fetch import cli as fetchcli

    return fetchcli.run(args, twisted=twistedAvailable())


# --- journey mirror -----------------------------------------------------------------------


def _configureMirror(parser: argparse.ArgumentParser) -> None:
    from twisted_journey.fetch.options import MirrorCommand, addArguments

    # The values are checked by MirrorCommand.fromValues, as twistd journey-fetch's are.
    addArguments(parser, MirrorCommand, check=False)


def _mirror(args: argparse.Namespace) -> int:
    """
    Keep copies of URLs fresh; with ``--once``, exit non-zero when any URL failed.
    """
    if not twistedAvailable():
        return _fail("mirror", "needs Twisted, which is not installed.", 2)
    from twisted_journey.fetch import mirror

    return mirror.run(args)


# --- journey completion -------------------------------------------------------------------


def _configureCompletion(parser: argparse.ArgumentParser) -> None:
    from twisted_journey.completion import SHELLS

    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")


def _completion(args: argparse.Namespace) -> int:
    """
    Print the completion script for ``args.shell``, generated from the parsers.
    """
    from twisted_journey.completion import script

    sys.stdout.write(script(_parser(), args.shell))
    return 0


# --- the command -------------------------------------------------------------------------


class _CommandParser(argparse.ArgumentParser):
    """
    The parser of one sub-command: an argument it does not know is its own usage error
    (its usage line, and a suggestion for a misspelt option), not the top-level parser's.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """
        Parse as argparse does, and refuse what is left over.
        """
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{_suggestion(self, extras)}")
        return parsed, extras


def _suggestion(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """
    `` (did you mean --timeout?)`` when the first unknown option looks like one of
    ``parser``'s, else nothing.
    """
    import difflib

    unknown = next((extra.split("=", 1)[0] for extra in extras if extra.startswith("-")), None)
    if unknown is None:
        return ""
    close = difflib.get_close_matches(unknown, list(parser._option_string_actions), n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """
    The ``journey`` command's parser.

    :param only: configure only this command's options (the one being run: the others'
        options, and the modules that declare them, are not needed); ``None``: all.
    """
    parser = argparse.ArgumentParser(
        prog="journey",
        description="Clients for the twisted_journey servers, and an HTTP fetcher.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    greet = commands.add_parser(
        "greet",
        help="print a greeting server's greeting",
        description="Connect, print what the server sends, exit 0 when it closes.",
    )
    if only in (None, "greet"):
        _configureGreet(greet)
    greet.set_defaults(run=_greet)
    send = commands.add_parser(
        "send",
        help="stream lines to a journey-mux server",
        description=(
            "Send stdin (or FILE) to a journey-mux server with back-pressure, half-close at "
            "the end, print what the server relays, exit 0 when it closes."
        ),
    )
    if only in (None, "send"):
        _configureSend(send)
    send.set_defaults(run=_send)
    fetch = commands.add_parser(
        "fetch",
        help="download URLs to files (curl/wget-like)",
        description=(
            "Download each URL to a file named from its path, through NAME.part renamed "
            "only when complete. Exit 0 when all succeed, else a documented code."
        ),
    )
    if only in (None, "fetch"):
        _configureFetch(fetch)
    fetch.set_defaults(run=_fetch)
    mirror = commands.add_parser(
        "mirror",
        help="keep local copies of a list of URLs fresh (--once: for cron)",
        description=(
            "What twistd journey-fetch runs, as a command: refresh every URL of FILE into "
            "DIR with conditional GETs; with --once, one pass whose exit status says "
            "whether every URL succeeded."
        ),
    )
    if only in (None, "mirror"):
        _configureMirror(mirror)
    mirror.set_defaults(run=_mirror)
    completion = commands.add_parser(
        "completion",
        help="print a bash or zsh completion script for journey",
        description=(
            "Print a completion script generated from journey's own options: "
            "'source <(journey completion bash)' in ~/.bashrc, or "
            "'journey completion zsh > ~/.zfunc/_journey' with ~/.zfunc on $fpath."
        ),
    )
    if only in (None, "completion"):
        _configureCompletion(completion)
    completion.set_defaults(run=_completion)
    return parser


#: The commands of ``journey``.
_COMMANDS = ("greet", "send", "fetch", "mirror", "completion")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``journey`` command with ``argv`` (default ``sys.argv[1:]``); return its status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    only = argv[0] if argv and argv[0] in _COMMANDS else None
    args = _parser(only).parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
