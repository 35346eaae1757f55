# -*- test-case-name: tests.test_fetch_mirror -*-
"""
The mirror service behind ``twistd -n journey-fetch``: keep local copies of URLs fresh.

Every ``interval`` seconds each URL in the URL file is fetched with a conditional GET
(the ETag / Last-Modified of the last copy are remembered beside it, in
``.NAME.http.json``), so an unchanged file costs a 304 and is left alone, and a changed
one is written to ``NAME.part`` and renamed over ``NAME`` atomically.  A URL that fails
is retried after a backoff that doubles with each failure (up to ``maxBackoff``), without
holding up the others.  The URL file is read again whenever it changes; a line that is
not ``URL [NAME]`` with a good URL and a plain name, or whose name another line already
takes (or is the other's ``.part``), is logged and skipped, and no input stops the
refresh loop.  Each change and each failure is a ``twisted.logger`` event (with any
password in a URL left out); with ``once`` the service tries every URL one time and then
stops the reactor.

``journey mirror --once`` (:func:`run`) runs the same service for cron: it exits with
the code of the first URL that failed (:data:`twisted_journey.fetch.errors.EXIT_CODES`),
0 when all succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import sys
import unicodedata
import urllib.parse
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from twisted_journey import startup
from twisted_journey.errors import plural
from twisted_journey.fetch import cookies, naming, safefiles
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch.agent import classify
from twisted_journey.fetch.client import Fetcher
from twisted_journey.fetch.errors import FetchError, FileError, UnsupportedURL, describe_url
from twisted_journey.fetch.options import MirrorCommand
from twisted_journey.fetch.semantics import check_url
from twisted_journey.fetch.settings import MIRROR_INTERVAL, MIRROR_PARALLEL, FetchSettings

__all__ = ["MirrorService", "Mirrored", "fetchSettings", "parse_url_list", "run"]


@attrs.define
class Mirrored:
    """
    What the service knows about one URL.

    :ivar failures: consecutive failures (0 after a success).
    :ivar due: the clock time of its next attempt.
    """

    url: str
    name: str | None
    failures: int = 0
    due: float = 0.0


class MirrorService(Service):
    """
    Refreshes every URL of ``urlsPath`` into ``outputDir`` every ``interval`` seconds.

    :param parallel: transfers at once.
    :param once: try every URL one time, then stop the reactor.
    :param maxBackoff: the longest wait before retrying a failing URL.
    :param fetcher: a :class:`Fetcher` to use (tests); built from ``settings`` (with
        ``parallel``) otherwise.
    :param settings: the :class:`FetchSettings` of the fetcher built here (credentials,
        ``authMode``, cookies...); default ``FetchSettings()``.
    :ivar cycles: refresh passes completed.
    :ivar failed: URLs that failed in the last pass.
    :ivar failures: the :class:`FetchError` of each URL that failed in the last pass.
    """

    log = Logger()

    def __init__(
        self,
        urlsPath: str,
        outputDir: str,
        interval: float = MIRROR_INTERVAL,
        parallel: int = MIRROR_PARALLEL,
        once: bool = False,
        maxBackoff: float = 86400.0,
        reactor: Any = None,
        fetcher: Fetcher | None = None,
        settings: FetchSettings | None = None,
    ) -> None:
        self.urlsPath = urlsPath
        self.outputDir = outputDir
        self.interval = interval
        self.parallel = parallel
        self.once = once
        self.maxBackoff = maxBackoff
        self._reactor = reactor
        self.fetcher = fetcher
        self.settings = settings if settings is not None else FetchSettings()
        self.entries: dict[str, Mirrored] = {}
        self.cycles = 0
        self.failed = 0
        self.failures: list[FetchError] = []
        self._stamp: tuple[int, int] | None = None
        self._next: IDelayedCall | None = None
        self._running: Deferred[Any] | None = None
        startup.keepStandardError()

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def startService(self) -> None:
        """
        Create ``outputDir`` if it is missing, then start the first pass, and let go of
        the standard error kept for reporting a failure (as
        :class:`~twisted_journey.service.ListeningService` does).

        :raises StartError: with one sentence, when the directory cannot be created (the
            first pass would fail every URL, and every pass after it).
        """
        try:
            safefiles.make_directories(self.outputDir)
        except FileError as e:
            raise startup.StartError(f"--output-dir: {e}") from None
        startup.started()
        super().startService()
        if self.fetcher is None:
            settings = dataclasses.replace(self.settings, parallel=self.parallel)
            self.fetcher = Fetcher(self.reactor, settings=settings)
        self._next = self.reactor.callLater(0, self._cycle)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        running = self._running
        fetcher = self.fetcher

        async def stop() -> None:
            if running is not None:
                running.cancel()
            if fetcher is not None:
                await fetcher.close()

        return Deferred.fromCoroutine(stop())

    def reload(self) -> None:
        """
        Read the URL file again if it changed since the last read.
        """
        try:
            info = os.stat(self.urlsPath)
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reactor
                raise OSError(f"{self.urlsPath!r} is not a regular file")
            with open(self.urlsPath, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            self.log.error(
                "Cannot read the URL file {path!r}: {reason!r}", path=self.urlsPath, reason=str(e)
            )
            return
        self._stamp = stamp
        entries, problems = parse_url_list(text)
        names = naming.NameRegistry(keep=True)
        kept: dict[str, Mirrored] = {}
        for url, name in entries:
            try:
                names.claim(naming.target_path(url, name, self.outputDir), url, url)
            except FetchError as e:
                problems.append(f"{describe_url(url)}: {e}")
                continue
            if url in kept:
                continue
            old = self.entries.get(url)
            kept[url] = old if old is not None and old.name == name else Mirrored(url, name)
        for problem in problems:
            self.log.warn("Skipped in {path!r}: {problem}", path=self.urlsPath, problem=problem)
        self.entries = kept
        self.log.info(
            "Read {urls} from {path!r}",
            urls=plural(len(kept), "URL"),
            count=len(kept),
            path=self.urlsPath,
        )

    def _cycle(self) -> None:
        self._next = None
        self.failed = 0
        self.failures = []
        try:
            self.reload()
            now = self.reactor.seconds()
            due = [entry for entry in self.entries.values() if entry.due <= now]
            self._running = gatherResults([self._refresh(entry) for entry in due])
        except Exception:
            # A bug, not an input: log it and keep the loop alive.
            self.log.failure("The mirror pass failed")
            self._cycled(None)
            return
        self._running.addBoth(self._cycled)

    def _cycled(self, result: object) -> None:
        self._running = None
        self.cycles += 1
        self._saveCookies()
        if not self.running:
            return
        if self.once:
            self.log.info(
                "Tried every URL once: {failed} failed", failed=self.failed, total=len(self.entries)
            )
            self.reactor.stop()
            return
        self._next = self.reactor.callLater(self.interval, self._cycle)

    def _saveCookies(self) -> None:
        """
        After each pass, write the fetcher's cookie jar (``FetchSettings.cookieJar``), so
        the cookies servers set survive a restart.
        """
        if self.fetcher is None:
            return
        try:
            self.fetcher.saveCookies()
        except FetchError as e:
            self.log.error("Cannot write the cookie jar: {reason!r}", reason=str(e))

    def _refresh(self, entry: Mirrored) -> Deferred[None]:
        assert self.fetcher is not None
        d = self.fetcher.retrieve(
            entry.url, entry.name, outputDir=self.outputDir, newer=True, onlyIfChanged=True
        )

        def succeeded(result: Any) -> None:
            entry.failures = 0
            entry.due = self.reactor.seconds() + self.interval
            if result.changed:
                self.log.info(
                    "Updated {path!r} from {url!r} ({size} bytes)",
                    path=result.filename,
                    url=describe_url(entry.url),
                    size=result.size,
                )
            else:
                self.log.debug("Unchanged: {url!r}", url=describe_url(entry.url))

        def failed(failure: Any) -> None:
            try:
                error = classify(failure, entry.url)
            except Exception:
                error = FetchError(f"unexpected failure: {failure.type.__name__}.", entry.url)
            entry.failures += 1
            delay = min(self.interval * 2 ** (entry.failures - 1), self.maxBackoff)
            entry.due = self.reactor.seconds() + delay
            self.failed += 1
            self.failures.append(error)
            if self.once:
                self.log.warn(
                    "Failed {url!r}: {reason!r}",
                    url=describe_url(entry.url),
                    reason=_scrub(str(error), entry.url),
                    exitCode=error.exitCode,
                )
                return
            self.log.warn(
                "Failed {url!r}: {reason!r}; next try in {delay:g} seconds",
                url=describe_url(entry.url),
                reason=_scrub(str(error), entry.url),
                delay=delay,
                exitCode=error.exitCode,
            )

        def logged(failure: Any) -> None:
            self.log.failure("Mirroring {url!r} went wrong", failure, url=describe_url(entry.url))

        return d.addCallbacks(succeeded, failed).addErrback(logged)


def fetchSettings(command: MirrorCommand) -> FetchSettings:
    """
    The settings of the fetcher of the mirror ``command`` describes
    (:meth:`~twisted_journey.fetch.options.MirrorCommand.settings`), its ``-b`` cookie
    file read once now, so that a bad one fails at start rather than at the first pass.

    :raises FetchError: when the ``-b`` cookie file cannot be read.
    """
    settings = command.settings()
    cookies.CookieEngine.fromOptions(settings.cookie, settings.cookieJar)
    return settings


def _scrub(text: str, url: str) -> str:
    """
    ``text`` with the password of ``url`` (if any) replaced by ``***``, whatever put it
    there.
    """
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


# --- the URL list ---------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    """
    ``url`` for a message: no password, at most 200 characters, even when malformed.
    """
    try:
        shown = describe_url(url)
    except ValueError:
        shown = url.rpartition("@")[2] if "@" in url else url
    return shown if len(shown) <= 200 else shown[:200] + "..."


def parse_url_list(text: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """
    Read a mirror's URL file: one URL per line, optionally followed by whitespace and a
    local name; blank lines and ``#`` comments ignored.

    :return: ``(entries, problems)``: ``(url, name or None)`` pairs, and one sentence per
        line that was skipped (a bad URL, or a name that is not a plain file name).  No
        input raises.
    """
    entries: list[tuple[str, str | None]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        for i, field in enumerate(fields):
            if field.startswith("#"):
                del fields[i:]
                break
        if len(fields) > 2:
            problems.append(f"line {number}: expected 'URL [NAME]', got {line.strip()!r}.")
            continue
        url = fields[0]
        shown = _shown_url(url)
        if any(unicodedata.category(c)[0] == "C" for c in url):
            problems.append(f"line {number}: {shown!r} has control characters.")
            continue
        try:
            check_url(url)
        except UnsupportedURL as e:
            problems.append(f"line {number}: {str(e)[:300]}")
            continue
        except ValueError as e:  # urlsplit: a broken IPv6 literal, say
            problems.append(f"line {number}: {shown!r} is not a valid URL: {e}.")
            continue
        name = None
        if len(fields) == 2:
            name = naming.safe_basename(fields[1])
            if name != fields[1]:
                problems.append(f"line {number}: {fields[1]!r} is not a plain file name.")
                continue
        entries.append((url, name))
    return entries, problems


# --- journey mirror ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """
    ``journey mirror`` (its options, :class:`~twisted_journey.fetch.options.MirrorCommand`,
    are added to its parser by :mod:`twisted_journey.cli`): run
    :class:`MirrorService` until interrupted, or (``--once``) for one pass; log to
    stderr; return the exit status.
    """
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from twisted_journey.settings import SettingError

    program = "journey mirror"
    try:
        command = MirrorCommand.fromValues(vars(args))
    except SettingError as e:
        print(f"{program}: {e}", file=sys.stderr)
        return fetch_errors.EXIT_USAGE
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False,
    )
    try:
        settings = fetchSettings(command)
    except FetchError as e:
        print(f"{program}: {e}", file=sys.stderr)
        return e.exitCode
    try:
        safefiles.make_directories(command.outputDir)
    except FileError as e:
        print(f"{program}: --output-dir: {e}", file=sys.stderr)
        return e.exitCode
    service = MirrorService(
        command.urls,
        command.outputDir,
        command.interval,
        command.parallel,
        once=command.once,
        reactor=reactor,
        settings=settings,
    )
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if not command.once:
        return 130
    if service.cycles == 0:
        return 130  # interrupted before the pass ended
    return fetch_errors.exit_status(service.failures)
