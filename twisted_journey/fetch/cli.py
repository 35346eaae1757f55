# -*- test-case-name: tests.test_fetch_cli -*-
"""
``journey fetch URL [URL ...]``: the options and the run, on Twisted or its stdlib twin.

:func:`configure` adds the options (declared in :mod:`twisted_journey.fetch.options`)
to the ``fetch`` sub-command's parser and :func:`run` executes it; ``twisted_journey.cli`` calls both.  With Twisted the URLs are
fetched by :class:`~twisted_journey.fetch.client.Fetcher` (up to ``--parallel`` at once); without
it, by :mod:`twisted_journey.fallback.fetch`, which takes only the basic options.

Exit statuses are :data:`twisted_journey.fetch.errors.EXIT_CODES`: 0 when every URL succeeded,
else the code of the first failure, with one line per failed URL on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from typing import Any

from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import naming, options
from twisted_journey.fetch.options import FetchCommand
from twisted_journey.records import printable

__all__ = ["PROGRAM", "configure", "run"]

#: The program name in messages.
PROGRAM = "journey fetch"


def configure(parser: argparse.ArgumentParser) -> None:
    """
    Add ``journey fetch``'s arguments (:class:`~twisted_journey.fetch.options.FetchCommand`)
    to ``parser``; curl's spellings of them too.
    """
    options.addArguments(parser, FetchCommand)
    _acceptCurlContinue(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit status:\n" + "\n".join(
        f"  {code:>2}  {meaning}" for code, meaning in fetch_errors.EXIT_CODES.items()
    )


def _acceptCurlContinue(parser: argparse.ArgumentParser) -> None:
    """
    Let ``parser`` take curl's ``-C -`` ("continue where the file ends", the only offset
    journey has) as ``-C``: the ``-`` right after ``-C``/``--continue`` is dropped before
    parsing (argparse cannot take an optional value that is never a URL).
    """
    parse = parser.parse_known_args

    def parseKnownArgs(args: Any = None, namespace: Any = None) -> Any:
        """
        ``parse_known_args`` with ``-C -`` read as ``-C``.
        """
        if args is not None:
            args = list(args)
            for i in range(len(args) - 1, 0, -1):
                if args[i] == "-" and args[i - 1] in ("-C", "--continue"):
                    del args[i]
        return parse(args, namespace)

    parser.parse_known_args = parseKnownArgs  # type: ignore[method-assign]


def run(args: argparse.Namespace, twisted: bool = True) -> int:
    """
    Fetch the URLs in ``args``; return the exit status.

    :param twisted: use the Twisted engine; otherwise the stdlib twin (which refuses the
        options it does not have).
    """
    command = FetchCommand.fromArguments(args)
    problem = command.problem()
    if problem is not None:
        return _usage(problem)
    if not twisted:
        return _runStdlib(command)
    if command.insecure:
        print(
            f"{PROGRAM}: WARNING: --insecure: TLS certificates are not verified; anyone on "
            "the path can read and change what you download.",
            file=sys.stderr,
        )
    from twisted_journey.fetch.lazytls import withoutTLSImports

    with _frozenStartUp(), withoutTLSImports():  # pyOpenSSL loads on the first https connection
        from twisted.internet import reactor  # noqa: F401 (installed here, in no-TLS form)
        from twisted.internet.defer import Deferred
        from twisted.internet.task import react

        from twisted_journey.fetch import client  # noqa: F401 (twisted.web, in no-TLS form)

    _quietTwistedLogging()
    status = fetch_errors.EXIT_FAILURE

    async def main(reactor: Any) -> None:
        """
        Fetch everything; any unexpected failure is one sentence, never a traceback.
        """
        nonlocal status
        try:
            status = await _fetchAll(reactor, command)
        except Exception as e:  # never a traceback: one sentence
            detail = printable(f"{type(e).__name__}: {e}")
            print(f"{PROGRAM}: unexpected failure: {detail}", file=sys.stderr)
            status = fetch_errors.EXIT_FAILURE

    try:
        react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
    except SystemExit:
        pass
    return status


@contextlib.contextmanager
def _frozenStartUp() -> Iterator[None]:
    """
    Import Twisted with the cyclic garbage collector paused, then move every object alive
    to its permanent generation (``gc.freeze``) and resume it.  The imports make some
    50,000 tracked objects that live as long as the process; without this, the
    collections that start during the imports and the run would traverse them again and
    again (about a tenth of a small fetch's instructions).  The run's own garbage is collected
    as usual.  Nothing is done when the reactor is already imported (a test runner, a
    program calling :func:`run`): its objects are not ours to freeze.
    """
    if "twisted.internet.reactor" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _quietTwistedLogging() -> None:
    """
    Send Twisted's log events nowhere: every failure is reported as one sentence per URL,
    so a traceback Twisted logs on the way (an unhandled ``Deferred`` error, say) must not
    reach stderr.  ``JOURNEY_FETCH_DEBUG=1`` writes them to stderr instead.
    """
    from twisted.logger import globalLogBeginner, textFileLogObserver

    observers: list[Any] = []
    if os.environ.get("JOURNEY_FETCH_DEBUG"):
        observers.append(textFileLogObserver(sys.stderr))
    else:
        observers.append(lambda event: None)
    globalLogBeginner.beginLoggingTo(observers, discardBuffer=True, redirectStandardIO=False)


def _usage(sentence: str) -> int:
    """
    Print a usage error; return its exit status.
    """
    print(f"{PROGRAM}: {sentence}", file=sys.stderr)
    return fetch_errors.EXIT_USAGE


def _runStdlib(command: FetchCommand) -> int:
    """
    Run the stdlib twin, refusing the options only the Twisted engine has.
    """
    used = command.twistedOnly()
    if used:
        return _usage(f"{', '.join(used)} need(s) Twisted, which is not installed.")
    from twisted_journey.fallback import fetch as fallback

    return fallback.run(command, PROGRAM)


async def _fetchAll(reactor: Any, command: FetchCommand) -> int:
    """
    Fetch every URL of ``command`` (up to ``--parallel`` at once); print a line per
    failure; return the exit status (130 when interrupted).
    """
    from twisted.internet.defer import DeferredList, gatherResults

    from twisted_journey.fetch.agent import classify
    from twisted_journey.fetch.client import Fetcher

    try:
        fetcher = Fetcher(reactor, settings=command.settings())
    except fetch_errors.FetchError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return e.exitCode
    show = not command.quiet and (command.progress or sys.stderr.isatty())
    # Two URLs of one run never write one name: the later one fails (see NameRegistry).
    fetcher.names = naming.NameRegistry(keep=True)

    def one(index: int, url: str) -> Any:
        """
        Start fetching URL number ``index`` (with its progress bar).
        """
        bar = _Bar(url, index) if show else None
        d = fetcher.retrieve(
            url,
            command.output,
            bar,
            outputDir=command.outputDir,
            contentDisposition=command.contentDisposition,
            noClobber=command.noClobber,
            resume=command.resume,
            newer=command.newer,
            sha256=command.sha256,
            createDirs=command.createDirs,
        )
        d.addErrback(lambda failure: classify(failure, url))
        if bar is not None:
            d.addBoth(bar.close)
        return d

    transfers = [one(i, url) for i, url in enumerate(command.urls)]
    finished: set[int] = set()

    def markFinished(result: object, index: int) -> object:
        """
        Remember that transfer ``index`` is over.
        """
        finished.add(index)
        return result

    for index, transfer in enumerate(transfers):
        transfer.addBoth(markFinished, index)
    interrupted = False

    def interrupt() -> Any:
        # Ctrl-C (or SIGTERM) stops the reactor: cancel what is running and let each
        # transfer clean up (remove its .part, unless --continue) before shutdown.
        """
        Before shutdown: cancel running transfers and wait for their clean-up.
        """
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
        kept = " (.part files kept for --continue)" if command.resume else ""
        print(f"{PROGRAM}: interrupted; unfinished files removed{kept}.", file=sys.stderr)
        return 130
    reactor.removeSystemEventTrigger(trigger)
    failures: list[fetch_errors.FetchError | None] = []
    for url, result in zip(command.urls, results, strict=True):
        if isinstance(result, fetch_errors.FetchError):
            print(fetch_errors.failure_line(PROGRAM, url, result), file=sys.stderr)
            failures.append(result)
        else:
            failures.append(None)
    try:
        fetcher.saveCookies()
    except fetch_errors.FetchError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        failures.append(e)
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
                desc=naming.name_from_url(self.url)[:30],
                position=self.position,
                leave=True,
                file=sys.stderr,
            )
        if blocksize:
            self.bar.update(blocksize)

    def close(self, result: object) -> object:
        """
        Close the bar (a ``Deferred`` callback: pass ``result`` on).
        """
        if self.bar is not None:
            self.bar.close()
        return result
