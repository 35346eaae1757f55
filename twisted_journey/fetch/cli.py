# -*- test-case-name: tests.test_fetch_cli -*-
"""
``journey fetch URL [URL ...]``: the options and the run, on Twisted or its stdlib twin.

:func:`configure` adds the options to the ``fetch`` sub-command's parser and
:func:`run` executes it; ``twisted_journey.cli`` calls both.  With Twisted the URLs are
fetched by :class:`twisted_journey.fetch.Fetcher` (up to ``--parallel`` at once); without
it, by :mod:`twisted_journey.fallback.fetch`, which takes only the basic options.

Exit statuses are :data:`twisted_journey.fetch.errors.EXIT_CODES`: 0 when every URL succeeded,
else the code of the first failure, with one line per failed URL on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted_journey import settings
from twisted_journey.fetch import cli as fetchcli
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import files, semantics

__all__ = ["add_basic_arguments", "check_arguments", "configure", "run"]

PROGRAM = "journey fetch"

#: Options only the Twisted engine has, with their defaults (to refuse them without it).
TWISTED_ONLY: dict[str, object] = {
    "no_clobber": False,
    "parallel": 1,
    "connect_timeout": None,
    "idle_timeout": None,
    "max_time": None,
    "retry": 0,
    "continue_": False,
    "newer": False,
    "compressed": False,
    "cacert": None,
    "insecure": False,
    "header": [],
    "sha256": None,
}


def _setting(check: Any, name: str) -> Any:
    """
    An argparse type running a :mod:`twisted_journey.settings` check for option ``name``.
    """

    def parse(text: str) -> Any:
        try:
            return check(name, text)
        except settings.SettingError as e:
            raise argparse.ArgumentTypeError(str(e).rstrip(".")) from None

    return parse


def _seconds(name: str) -> Any:
    return _setting(settings.seconds, name)


def _limit(name: str) -> Any:
    return _setting(settings.limit, name)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c in name for c in " \t\r\n") or "\n" in value or "\r" in value:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name, value.strip()


def _sha256(text: str) -> str:
    if not semantics.is_sha256(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not 64 hexadecimal digits")
    return text.lower()


def configure(parser: argparse.ArgumentParser) -> None:
    """
    Add ``journey fetch``'s arguments to ``parser``.
    """
    fetchcli.add_basic_arguments(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit status:\n" + "\n".join(
        f"  {code:>2}  {meaning}" for code, meaning in fetch_errors.EXIT_CODES.items()
    )
    add = parser.add_argument
    add("--no-clobber", action="store_true", help="skip URLs whose file already exists")
    add(
        "--parallel",
        type=_limit("--parallel"),
        default=1,
        metavar="N",
        help="N transfers at once [1]",
    )
    add(
        "--connect-timeout",
        type=_seconds("--connect-timeout"),
        metavar="S",
        help="seconds to connect [30]",
    )
    add(
        "--idle-timeout",
        type=_seconds("--idle-timeout"),
        metavar="S",
        help="give up after S seconds without data [300]",
    )
    add(
        "--max-time",
        type=_seconds("--max-time"),
        metavar="S",
        help="seconds for each whole attempt [none]",
    )
    add(
        "--retry",
        type=fetchcli._count,
        default=0,
        metavar="N",
        help="retry N times on network errors, timeouts, 408/429/5xx [0]",
    )
    add(
        "--retry-delay",
        type=_seconds("--retry-delay"),
        default=1.0,
        metavar="S",
        help="first retry wait, doubled each time; Retry-After wins [1]",
    )
    add(
        "-C",
        "--continue",
        dest="continue_",
        action="store_true",
        help="keep NAME.part on failure and resume it with Range",
    )
    add(
        "-N",
        "--newer",
        action="store_true",
        help="conditional GET: only fetch when changed (ETag / Last-Modified remembered)",
    )
    add(
        "--compressed",
        action="store_true",
        help="ask for gzip/deflate and decode it (size and ratio capped)",
    )
    add(
        "--max-decoded-size",
        type=_limit("--max-decoded-size"),
        default=1 << 30,
        metavar="BYTES",
        help="cap on a decoded body [1 GiB]",
    )
    add("--cacert", metavar="FILE", help="trust only the CA certificates in this PEM file")
    add("--insecure", action="store_true", help="do NOT verify TLS certificates (dangerous)")
    add(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="send this request header; repeatable",
    )
    add(
        "--sha256",
        type=_sha256,
        metavar="HEX",
        help="fail unless the body has this SHA-256 (one URL)",
    )
    add(
        "--progress",
        action="store_true",
        help="show a progress bar even when stderr is not a terminal",
    )


def run(args: argparse.Namespace, twisted: bool = True) -> int:
    """
    Fetch the URLs in ``args``; return the exit status.

    :param twisted: use the Twisted engine; otherwise the stdlib twin (which refuses the
        options it does not have).
    """
    if args.output is not None and len(args.urls) > 1:
        return _usage("-o/--output takes one URL; use --output-dir for several.")
    if args.sha256 is not None and len(args.urls) > 1:
        return _usage("--sha256 takes one URL.")
    if not twisted:
        return _runStdlib(args)
    if args.insecure:
        print(
            f"{PROGRAM}: WARNING: --insecure: TLS certificates are not verified; anyone on "
            "the path can read and change what you download.",
            file=sys.stderr,
        )
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    status = fetch_errors.EXIT_FAILURE

    async def main(reactor: Any) -> None:
        nonlocal status
        status = await _fetchAll(reactor, args)

    try:
        react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
    except SystemExit:
        pass
    return status


def _usage(sentence: str) -> int:
    print(f"{PROGRAM}: {sentence}", file=sys.stderr)
    return fetch_errors.EXIT_USAGE


def _runStdlib(args: argparse.Namespace) -> int:
    used = [name for name, default in TWISTED_ONLY.items() if getattr(args, name) != default]
    if used:
        names = ", ".join("--" + name.rstrip("_").replace("_", "-") for name in used)
        return _usage(f"{names} need(s) Twisted, which is not installed.")
    from twisted_journey.fallback import fetch as fallback

    args.timeout = 30.0
    return fallback.run(args, PROGRAM)


def _settings(args: argparse.Namespace) -> Any:
    from twisted_journey.fetch.client import FetchSettings

    # Timeouts not given keep FetchSettings' own defaults.
    timeouts = {
        name: value
        for name, value in (
            ("connectTimeout", args.connect_timeout),
            ("idleTimeout", args.idle_timeout),
        )
        if value is not None
    }
    return FetchSettings(
        **timeouts,
        maxRedirects=args.max_redirs,
        maxTime=args.max_time,
        retries=args.retry,
        retryDelay=args.retry_delay,
        parallel=args.parallel,
        headers=args.header,
        cacert=args.cacert,
        insecure=args.insecure,
        compressed=args.compressed,
        maxDecodedSize=args.max_decoded_size,
    )


async def _fetchAll(reactor: Any, args: argparse.Namespace) -> int:
    from twisted.internet.defer import DeferredList, gatherResults

    from twisted_journey.fetch.agent import classify
    from twisted_journey.fetch.client import Fetcher

    try:
        fetcher = Fetcher(reactor, settings=_settings(args))
    except fetch_errors.FetchError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return e.exitCode
    show = not args.quiet and (args.progress or sys.stderr.isatty())
    # Two URLs of one run never write one name: the later one fails (see NameRegistry).
    fetcher.names = files.NameRegistry(keep=True)

    def one(index: int, url: str) -> Any:
        bar = _Bar(url, index) if show else None
        d = fetcher.retrieve(
            url,
            args.output,
            bar,
            outputDir=args.output_dir,
            contentDisposition=args.content_disposition,
            noClobber=args.no_clobber,
            resume=args.continue_,
            newer=args.newer,
            sha256=args.sha256,
            createDirs=args.create_dirs,
        )
        d.addErrback(lambda failure: classify(failure, url))
        if bar is not None:
            d.addBoth(bar.close)
        return d

    transfers = [one(i, url) for i, url in enumerate(args.urls)]
    finished: set[int] = set()

    def markFinished(result: object, index: int) -> object:
        finished.add(index)
        return result

    for index, transfer in enumerate(transfers):
        transfer.addBoth(markFinished, index)
    interrupted = False

    def interrupt() -> Any:
        # Ctrl-C (or SIGTERM) stops the reactor: cancel what is running and let each
        # transfer clean up (remove its .part, unless --continue) before shutdown.
        nonlocal interrupted
        running = [d for i, d in enumerate(transfers) if i not in finished]
        if not running:
            return None
        interrupted = True
        for d in running:
            d.cancel()
        return DeferredList(running)

    trigger = reactor.addSystemEventTrigger("before", "shutdown", interrupt)
    try:
        results = await gatherResults(transfers)
    finally:
        await fetcher.close()
    if interrupted:
        kept = " (.part files kept for --continue)" if args.continue_ else ""
        print(f"{PROGRAM}: interrupted; unfinished files removed{kept}.", file=sys.stderr)
        return 130
    reactor.removeSystemEventTrigger(trigger)
    failures: list[fetch_errors.FetchError | None] = []
    for url, result in zip(args.urls, results, strict=True):
        if isinstance(result, fetch_errors.FetchError):
            print(fetch_errors.failure_line(PROGRAM, url, result), file=sys.stderr)
            failures.append(result)
        else:
            failures.append(None)
    return fetch_errors.exit_status(failures)


class _Bar:
    """
    A tqdm progress bar fed by ``reporthook(blocknum, blocksize, totalsize)`` calls.
    """

    def __init__(self, url: str, position: int) -> None:
        self.url = url
        self.position = position
        self.bar: Any = None

    def __call__(self, blocknum: int, blocksize: int, totalsize: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=totalsize if totalsize >= 0 else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=files.name_from_url(self.url)[:30],
                position=self.position,
                leave=True,
                file=sys.stderr,
            )
        if blocksize:
            self.bar.update(blocksize)

    def close(self, result: object) -> object:
        if self.bar is not None:
            self.bar.close()
        return result


# --- the options both engines share -------------------------------------------------------


def add_basic_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options both ``journey fetch`` and the stdlib twin take: ``URL...``, ``-o``,
    ``--output-dir``, ``--content-disposition``, ``--max-redirs``, ``--quiet``.
    """
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URLs")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (one URL only) [name from the URL]"
    )
    parser.add_argument("--output-dir", metavar="DIR", help="put files in DIR [.]")
    parser.add_argument(
        "--content-disposition",
        action="store_true",
        help="use the server's Content-Disposition name, reduced to a safe basename",
    )
    parser.add_argument(
        "--max-redirs", type=_count, default=20, metavar="N", help="follow at most N redirects [20]"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--create-dirs",
        action="store_true",
        help="create the missing directories of -o FILE (--output-dir is always created)",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """
    Refuse combinations that make no sense (``-o`` with several URLs).
    """
    if args.output is not None and len(args.urls) > 1:
        parser.error("-o/--output takes one URL; use --output-dir for several.")


def _count(text: str) -> int:
    """
    An argparse type for a whole number of at least 0.
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return value
