# -*- test-case-name: tests.test_fetch_cli -*-
"""
``journey fetch URL [URL ...]``: the options and the run, on Twisted or its stdlib twin.

:func:`configure` adds the options to the ``fetch`` sub-command's parser and
:func:`run` executes it; ``twisted_journey.cli`` calls both.  With Twisted the URLs are
fetched by :class:`~twisted_journey.fetch.client.Fetcher` (up to ``--parallel`` at once); without
it, by :mod:`twisted_journey.fallback.fetch`, which takes only the basic options.

Exit statuses are :data:`twisted_journey.fetch.errors.EXIT_CODES`: 0 when every URL succeeded,
else the code of the first failure, with one line per failed URL on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted_journey import settings
from twisted_journey.fetch import cookies, files, semantics
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.records import printable

if TYPE_CHECKING:
    from twisted_journey.fetch.client import FetchSettings

__all__ = [
    "PROGRAM",
    "FetchCommand",
    "add_auth_and_cookie_arguments",
    "add_basic_arguments",
    "check_arguments",
    "configure",
    "run",
]

#: The program name in messages.
PROGRAM = "journey fetch"


def _option(flag: str, twin: bool = False, dest: str | None = None) -> dict[str, Any]:
    """
    A :class:`FetchCommand` field's metadata: its command-line ``flag``, whether the
    stdlib twin has it too, and its argparse ``dest`` (default: the field's name).
    """
    return {"flag": flag, "twin": twin, "dest": dest}


@dataclasses.dataclass(frozen=True)
class FetchCommand:
    """
    One ``journey fetch`` command line, parsed once (stdlib only: the twin's path uses it
    too).  ``None`` means "not given": the engine's own default applies, so no default is
    written twice.  :meth:`settings` derives the Twisted engine's
    :class:`~twisted_journey.fetch.client.FetchSettings`; :meth:`twistedOnly` names the
    options the stdlib twin lacks.

    :ivar urls: the URLs, in order.
    :ivar output: ``-o FILE`` (``-``: standard output).
    :ivar outputDir: ``--output-dir DIR``.
    :ivar contentDisposition: name files from ``Content-Disposition``.
    :ivar maxRedirects: ``--max-redirs N``.
    :ivar quiet: ``-q``/``-s``: no progress bar.
    :ivar createDirs: ``--create-dirs``.
    :ivar noClobber: skip URLs whose file exists.
    :ivar parallel: transfers at once.
    :ivar connectTimeout: seconds to connect.
    :ivar idleTimeout: seconds without data.
    :ivar maxTime: seconds for each attempt.
    :ivar retries: ``--retry N``.
    :ivar retryDelay: seconds before the first retry.
    :ivar resume: ``-C``: keep and continue ``.part`` files.
    :ivar newer: ``-N``: conditional GET.
    :ivar compressed: ask for gzip/deflate and decode it.
    :ivar maxDecodedSize: cap on a decoded body.
    :ivar maxHeaderBytes: cap on the bytes of response headers.
    :ivar maxHeaders: cap on the number of response header fields.
    :ivar cacert: a PEM file of CAs to trust.
    :ivar insecure: ``-k``: do not verify certificates.
    :ivar headers: ``-H`` request headers.
    :ivar proxy: ``-x URL``: the proxy for every URL (instead of the environment's).
    :ivar credentials: ``-u USER:PASSWORD``.
    :ivar sha256: the body's expected SHA-256.
    :ivar progress: show a progress bar even when stderr is not a terminal.
    :ivar authMode: ``--digest`` / ``--anyauth`` / ``--basic`` (``None``: Basic).
    :ivar cookie: ``-b``: cookies, a cookie file, or ``''``.
    :ivar cookieJar: ``-c FILE``.
    """

    urls: tuple[str, ...] = dataclasses.field(metadata=_option("URL", twin=True))
    output: str | None = dataclasses.field(default=None, metadata=_option("-o", True))
    outputDir: str | None = dataclasses.field(
        default=None, metadata=_option("--output-dir", True, "output_dir")
    )
    contentDisposition: bool = dataclasses.field(
        default=False, metadata=_option("--content-disposition", True, "content_disposition")
    )
    maxRedirects: int | None = dataclasses.field(
        default=None, metadata=_option("--max-redirs", True, "max_redirs")
    )
    quiet: bool = dataclasses.field(default=False, metadata=_option("-q", True))
    createDirs: bool = dataclasses.field(
        default=False, metadata=_option("--create-dirs", True, "create_dirs")
    )
    noClobber: bool = dataclasses.field(default=False, metadata=_option("--no-clobber"))
    parallel: int | None = dataclasses.field(default=None, metadata=_option("--parallel"))
    connectTimeout: float | None = dataclasses.field(
        default=None, metadata=_option("--connect-timeout")
    )
    idleTimeout: float | None = dataclasses.field(default=None, metadata=_option("--idle-timeout"))
    maxTime: float | None = dataclasses.field(
        default=None, metadata=_option("--max-time", True, "maxTime")
    )
    retries: int | None = dataclasses.field(default=None, metadata=_option("--retry"))
    retryDelay: float | None = dataclasses.field(default=None, metadata=_option("--retry-delay"))
    resume: bool = dataclasses.field(default=False, metadata=_option("--continue"))
    newer: bool = dataclasses.field(default=False, metadata=_option("--newer"))
    compressed: bool = dataclasses.field(default=False, metadata=_option("--compressed"))
    maxDecodedSize: int | None = dataclasses.field(
        default=None, metadata=_option("--max-decoded-size")
    )
    maxHeaderBytes: int | None = dataclasses.field(
        default=None, metadata=_option("--max-header-bytes")
    )
    maxHeaders: int | None = dataclasses.field(default=None, metadata=_option("--max-headers"))
    cacert: str | None = dataclasses.field(default=None, metadata=_option("--cacert"))
    insecure: bool = dataclasses.field(default=False, metadata=_option("--insecure"))
    headers: tuple[tuple[str, str], ...] = dataclasses.field(
        default=(), metadata=_option("--header")
    )
    proxy: str | None = dataclasses.field(default=None, metadata=_option("--proxy"))
    credentials: tuple[str, str] | None = dataclasses.field(
        default=None, metadata=_option("--user", True)
    )
    sha256: str | None = dataclasses.field(default=None, metadata=_option("--sha256"))
    progress: bool = dataclasses.field(default=False, metadata=_option("--progress"))
    authMode: str | None = dataclasses.field(default=None, metadata=_option("--digest", True))
    cookie: str | None = dataclasses.field(default=None, metadata=_option("--cookie", True))
    cookieJar: str | None = dataclasses.field(default=None, metadata=_option("--cookie-jar", True))

    @classmethod
    def fromArguments(cls, args: argparse.Namespace) -> FetchCommand:
        """
        The command parsed by :func:`configure`'s parser (or the twin's, which lacks the
        Twisted-only options: they keep their "not given" values).
        """
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            dest = field.metadata["dest"] or field.name
            if hasattr(args, dest):
                values[field.name] = getattr(args, dest)
        values["urls"] = tuple(values.get("urls") or ())
        values["headers"] = tuple(values.get("headers") or ())
        return cls(**values)

    def twistedOnly(self) -> list[str]:
        """
        The flags given that only the Twisted engine has.
        """
        used = []
        for field in dataclasses.fields(self):
            if field.metadata["twin"]:
                continue
            value = getattr(self, field.name)
            if value != field.default:
                used.append(field.metadata["flag"])
        return used

    def proxies(self) -> Mapping[str, str] | None:
        """
        ``-x URL`` as a proxies mapping (``NO_PROXY`` from the environment still applies),
        or ``None`` to read the environment.
        """
        if self.proxy is None:
            return None
        proxy = self.proxy if "://" in self.proxy else "http://" + self.proxy
        proxies = {"http": proxy, "https": proxy}
        bypass = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
        if bypass:
            proxies["no"] = bypass
        return proxies

    def settings(self) -> FetchSettings:
        """
        The Twisted engine's settings: the options given, the engine's defaults for the rest.
        """
        from twisted_journey.fetch.client import FetchSettings

        given: dict[str, Any] = {
            "maxRedirects": self.maxRedirects,
            "connectTimeout": self.connectTimeout,
            "idleTimeout": self.idleTimeout,
            "maxTime": self.maxTime,
            "retries": self.retries,
            "retryDelay": self.retryDelay,
            "parallel": self.parallel,
            "maxDecodedSize": self.maxDecodedSize,
            "maxHeaderBytes": self.maxHeaderBytes,
            "maxHeaders": self.maxHeaders,
            "cacert": self.cacert,
            "proxies": self.proxies(),
            "credentials": self.credentials,
            "authMode": self.authMode,
            "cookie": self.cookie,
            "cookieJar": self.cookieJar,
        }
        return FetchSettings(
            **{name: value for name, value in given.items() if value is not None},
            headers=self.headers,
            insecure=self.insecure,
            compressed=self.compressed,
        )


def _setting(check: Any, name: str) -> Any:
    """
    An argparse type running a :mod:`twisted_journey.settings` check for option ``name``.
    """

    def parse(text: str) -> Any:
        """
        Check ``text`` as the option's value.
        """
        try:
            return check(name, text)
        except settings.SettingError as e:
            raise argparse.ArgumentTypeError(str(e).rstrip(".")) from None

    return parse


def _seconds(name: str) -> Any:
    """
    An argparse type for a number of seconds above 0.
    """
    return _setting(settings.seconds, name)


def _limit(name: str) -> Any:
    """
    An argparse type for a whole number above 0.
    """
    return _setting(settings.limit, name)


#: The characters of an HTTP field name (RFC 9110 section 5.1: a token).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _header(text: str) -> tuple[str, str]:
    """
    An argparse type for ``-H 'Name: value'``: the name an HTTP token, the value printable
    ASCII (spaces and tabs allowed), as both engines send them unchanged.
    """
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip(" \t")
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    if not set(name) <= _TOKEN:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the header name may hold only ASCII letters, digits and !#$%&'*+-.^_`|~"
        )
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the header value may hold only printable ASCII and tabs"
        )
    return name, value


def _sha256(text: str) -> str:
    """
    An argparse type for ``--sha256 HEX`` or ``--sha256 sha256:HEX``.
    """
    digest = semantics.parse_sha256(text)
    if digest is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 64 hexadecimal digits (optionally after 'sha256:')"
        )
    return digest


def _credentials(text: str) -> tuple[str, str]:
    """
    An argparse type for ``-u USER:PASSWORD``.
    """
    user, colon, password = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError("-u takes USER:PASSWORD (journey does not prompt)")
    return user, password


def _proxy(text: str) -> str:
    """
    An argparse type for ``-x [http://]HOST:PORT``.
    """
    url = text if "://" in text else "http://" + text
    try:
        semantics.check_url(url)
    except fetch_errors.UnsupportedURL:
        raise argparse.ArgumentTypeError(
            f"{fetch_errors.describe_url(text)!r} is not an http:// proxy URL with a host "
            "and a port from 1 to 65535"
        ) from None
    if not url.startswith("http://"):
        raise argparse.ArgumentTypeError("only http:// proxies are supported")
    return url


def configure(parser: argparse.ArgumentParser) -> None:
    """
    Add ``journey fetch``'s arguments to ``parser``; curl's spellings of them too.
    """
    add_basic_arguments(parser)
    _acceptCurlContinue(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit status:\n" + "\n".join(
        f"  {code:>2}  {meaning}" for code, meaning in fetch_errors.EXIT_CODES.items()
    )
    add = parser.add_argument
    add("--no-clobber", dest="noClobber", action="store_true", help="skip URLs whose file exists")
    add("--parallel", type=_limit("--parallel"), metavar="N", help="N transfers at once [1]")
    add(
        "--connect-timeout",
        dest="connectTimeout",
        type=_seconds("--connect-timeout"),
        metavar="S",
        help=f"seconds to connect [{semantics.CONNECT_TIMEOUT:g}]",
    )
    add(
        "--idle-timeout",
        dest="idleTimeout",
        type=_seconds("--idle-timeout"),
        metavar="S",
        help=f"give up after S seconds without data [{semantics.IDLE_TIMEOUT:g}]",
    )
    add(
        "--retry",
        dest="retries",
        type=_count,
        metavar="N",
        help="retry N times on network errors, timeouts, 408/429/5xx [0]",
    )
    add(
        "--retry-delay",
        dest="retryDelay",
        type=_seconds("--retry-delay"),
        metavar="S",
        help=f"first retry wait, doubled each time; Retry-After wins [{semantics.RETRY_DELAY:g}]",
    )
    add(
        "-C",
        "--continue",
        dest="resume",
        action="store_true",
        help="keep NAME.part on failure and resume it with Range (curl's '-C -' works too)",
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
        dest="maxDecodedSize",
        type=_limit("--max-decoded-size"),
        metavar="BYTES",
        help=f"cap on a decoded body [{semantics.MAX_DECODED_SIZE >> 20} MiB]",
    )
    add(
        "--max-header-bytes",
        dest="maxHeaderBytes",
        type=_limit("--max-header-bytes"),
        metavar="BYTES",
        help=f"cap on a response's headers [{semantics.MAX_HEADER_BYTES >> 10} KiB]",
    )
    add(
        "--max-headers",
        dest="maxHeaders",
        type=_limit("--max-headers"),
        metavar="N",
        help=f"cap on a response's header fields [{semantics.MAX_HEADERS}]",
    )
    add("--cacert", metavar="FILE", help="trust only the CA certificates in this PEM file")
    add(
        "-k",
        "--insecure",
        action="store_true",
        help="do NOT verify TLS certificates (dangerous)",
    )
    add(
        "-H",
        "--header",
        dest="headers",
        type=_header,
        action="append",
        metavar="'NAME: VALUE'",
        help="send this request header; repeatable",
    )
    add(
        "-x",
        "--proxy",
        type=_proxy,
        metavar="URL",
        help="use this http:// proxy for every URL (NO_PROXY still applies) [environment]",
    )
    add(
        "--sha256",
        type=_sha256,
        metavar="HEX",
        help="fail unless the body has this SHA-256, as HEX or sha256:HEX (one URL)",
    )
    add(
        "--progress",
        action="store_true",
        help="show a progress bar even when stderr is not a terminal",
    )
    add("-f", "--fail", action="store_true", help="accepted for curl users: always the case")
    add(
        "-L",
        "--location",
        action="store_true",
        help="accepted for curl users: redirects are always followed (--max-redirs 0: none)",
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
    if not command.urls:
        return _usage("no URL given.")
    if command.output is not None and len(command.urls) > 1:
        return _usage("-o/--output takes one URL; use --output-dir for several.")
    if command.sha256 is not None and len(command.urls) > 1:
        return _usage("--sha256 takes one URL.")
    if not twisted:
        return _runStdlib(command, args)
    if command.insecure:
        print(
            f"{PROGRAM}: WARNING: --insecure: TLS certificates are not verified; anyone on "
            "the path can read and change what you download.",
            file=sys.stderr,
        )
    from twisted_journey.fetch.lazytls import withoutTLSImports

    with withoutTLSImports():  # pyOpenSSL loads on the first https connection, if any
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


def _runStdlib(command: FetchCommand, args: argparse.Namespace) -> int:
    """
    Run the stdlib twin, refusing the options only the Twisted engine has.
    """
    used = command.twistedOnly()
    if used:
        return _usage(f"{', '.join(used)} need(s) Twisted, which is not installed.")
    from twisted_journey.fallback import fetch as fallback

    args.urls = list(command.urls)
    args.timeout = semantics.CONNECT_TIMEOUT
    return fallback.run(args, PROGRAM)


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
    fetcher.names = files.NameRegistry(keep=True)

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
                desc=files.name_from_url(self.url)[:30],
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


# --- the options both engines share -------------------------------------------------------


def add_basic_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options both ``journey fetch`` and the stdlib twin take: ``URL...``, ``-o``,
    ``--output-dir``, ``--content-disposition``, ``--max-redirs``, ``--quiet``
    (``-s``), ``--max-time`` (``-m``), ``--create-dirs``.
    """
    parser.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// URLs")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (one URL only) [name from the URL]"
    )
    parser.add_argument("--output-dir", metavar="DIR", help="put files in DIR [.]")
    parser.add_argument(
        "--content-disposition",
        action="store_true",
        help="use the server's Content-Disposition name, reduced to a safe basename; "
        "it never replaces an existing file",
    )
    parser.add_argument(
        "--max-redirs",
        type=_count,
        default=semantics.MAX_REDIRECTS,
        metavar="N",
        help=f"follow at most N redirects [{semantics.MAX_REDIRECTS}]",
    )
    parser.add_argument(
        "-q", "-s", "--quiet", "--silent", action="store_true", help="no progress bar"
    )
    parser.add_argument(
        "--max-time",
        "-m",
        dest="maxTime",
        type=_seconds("--max-time"),
        metavar="S",
        help="seconds for each whole attempt, redirects and interim answers included "
        "(exit 6 past them) [none]",
    )
    parser.add_argument(
        "--create-dirs",
        action="store_true",
        help="create the missing directories of -o FILE (--output-dir is always created)",
    )
    add_auth_and_cookie_arguments(parser)


def add_auth_and_cookie_arguments(parser: argparse.ArgumentParser) -> None:
    """
    ``-u`` and its modes (``--digest``, ``--anyauth``, ``--basic``), ``-b`` and ``-c``
    (dests ``credentials``, ``authMode``, ``cookie``, ``cookieJar``): ``journey fetch``,
    its twin and ``journey mirror`` take them alike.
    """
    parser.add_argument(
        "-u",
        "--user",
        dest="credentials",
        type=_credentials,
        metavar="USER:PASSWORD",
        help="credentials for each URL's own host, as curl sends them: Basic at once, "
        "unless --digest or --anyauth; never sent on a redirect to another host "
        "(also: http://USER:PASSWORD@HOST/)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--digest",
        dest="authMode",
        action="store_const",
        const="digest",
        help="send -u only as HTTP Digest (RFC 7616: SHA-256 or MD5, qop=auth), "
        "answering the server's challenge",
    )
    mode.add_argument(
        "--anyauth",
        dest="authMode",
        action="store_const",
        const="any",
        help="send -u as whatever the server asks for: Digest, else Basic",
    )
    mode.add_argument(
        "--basic",
        dest="authMode",
        action="store_const",
        const="basic",
        help="send -u as HTTP Basic with the first request (the default)",
    )
    parser.add_argument(
        "-b",
        "--cookie",
        type=_cookie,
        metavar="'NAME=VALUE; ...'|FILE",
        help="turn the cookie engine on and send these cookies to each URL's own host, or "
        "those of a Netscape-format FILE ('' : none yet); cookies servers set are sent "
        "back as their Domain and Path allow",
    )
    parser.add_argument(
        "-c",
        "--cookie-jar",
        dest="cookieJar",
        metavar="FILE",
        help="turn the cookie engine on and write every cookie to FILE (Netscape format, "
        "mode 0600) at the end",
    )


def _cookie(text: str) -> str:
    """
    An argparse type for ``-b``: a ``NAME=VALUE`` string is checked here.
    """
    if "=" in text:
        try:
            cookies.parse_pairs(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


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
