# -*- test-case-name: tests.test_cli -*-
"""
The ``journey`` command: clients for the journey servers, and the fetcher.

Each sub-command uses the Twisted engine when Twisted is installed and its stdlib twin
otherwise, so the command works (more slowly, with fewer features) on a bare Python.
A user's mistake ends in one sentence on stderr and a non-zero exit, never a traceback.

Exit statuses of ``greet`` and ``send``: 0 success, 1 the server could not be reached or
did not answer in time, 2 a usage error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

from twisted_journey import __version__

__all__ = ["main"]


def twistedAvailable() -> bool:
    """
    Whether the Twisted engine can be used (``JOURNEY_ENGINE=stdlib`` forces the twin).
    """
    import os

    if os.environ.get("JOURNEY_ENGINE") == "stdlib":
        return False
    return importlib.util.find_spec("twisted") is not None


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


def _seconds(text: str) -> float:
    """
    An argparse type for a positive number of seconds.
    """
    from twisted_journey.settings import SettingError, seconds

    try:
        value = seconds("--timeout", text)
    except SettingError as e:
        raise argparse.ArgumentTypeError(str(e).rstrip(".")) from None
    assert value is not None
    return value


# --- journey greet -----------------------------------------------------------------------


def _configureGreet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", help="the greeting server's host name or address")
    parser.add_argument("port", nargs="?", type=_port, default=1234, help="its port [1234]")
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
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    if not twistedAvailable():
        from twisted_journey.fallback.greet import ClientError, receive_greeting

        try:
            receive_greeting(args.host, args.port, write, args.timeout)
        except ClientError as e:
            return _fail("greet", str(e))
        return 0

    from twisted.internet.task import react

    from twisted_journey.greet import describeFailure, receiveGreeting

    status = 0

    def run(reactor: object) -> object:
        def failed(failure: object) -> None:
            nonlocal status
            status = _fail("greet", describeFailure(failure, args.host, args.port, args.timeout))

        return receiveGreeting(reactor, args.host, args.port, write, args.timeout).addCallbacks(  # type: ignore[arg-type]
            lambda _: None, failed
        )

    try:
        react(run)
    except SystemExit:
        pass
    return status


# --- the command -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journey",
        description="Clients for the twisted_journey servers, and an HTTP fetcher.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    greet = commands.add_parser(
        "greet",
        help="print a greeting server's greeting",
        description="Connect, print what the server sends, exit 0 when it closes.",
    )
    _configureGreet(greet)
    greet.set_defaults(run=_greet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``journey`` command with ``argv`` (default ``sys.argv[1:]``); return its status.
    """
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
