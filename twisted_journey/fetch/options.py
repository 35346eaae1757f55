# -*- test-case-name: tests.test_fetch_cli,tests.test_fetch_mirror -*-
"""
Every option of ``journey fetch``, its stdlib twin and the mirror, declared once (stdlib only).

Each option is one field of :class:`FetchCommand` or :class:`MirrorCommand`, declared by
:func:`option`: its flags, help, default, the check that turns the text given into a
value (a :mod:`twisted_journey.settings`-style function ``check(flag, text)`` raising
:class:`~twisted_journey.settings.SettingError`), which command lines have it, and the
:class:`~twisted_journey.fetch.settings.FetchSettings` attribute it sets.  Grep a flag
and you find its one declaration.

Two adapters read the declarations: :func:`addArguments` adds them to an
:mod:`argparse` parser (``journey fetch``, ``python -m twisted_journey.fallback.fetch``,
``journey mirror``) and :func:`usageOptions` gives the ``optFlags``/``optParameters``
of a :class:`twisted.python.usage.Options` (``twistd journey-fetch``); the commands are
then built by :meth:`FetchCommand.fromArguments` and :meth:`MirrorCommand.fromValues`,
the one place the values are checked.

An option of kind ``"const"`` is a family of mutually exclusive flags setting one field
(``--digest``, ``--anyauth``, ``--basic``: ``authMode``), each flag with its value and
help in :attr:`Option.consts`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted_journey import settings
from twisted_journey.fetch import cookies, semantics
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import settings as defaults
from twisted_journey.fetch.settings import FetchSettings

__all__ = [
    "BOTH",
    "JOURNEY",
    "TWIN",
    "FetchCommand",
    "MirrorCommand",
    "Option",
    "addArguments",
    "option",
    "usageOptions",
]

#: Where an option exists: on ``journey fetch`` and the stdlib twin,
BOTH = "both"
#: on ``journey fetch`` only (the Twisted engine's; refused when Twisted is missing),
JOURNEY = "journey"
#: on the stdlib twin only.
TWIN = "twin"

#: A check: ``check(flag, text)`` is the value, or raises ``SettingError``.
Check = Callable[[str, Any], Any]


@dataclasses.dataclass(frozen=True)
class Option:
    """
    One command-line option, as :func:`option` declares it.

    :ivar flags: its spellings, the first long one naming it in sentences (``URL``: the
        positional URLs).
    :ivar help: one line for ``--help``, the default in brackets.
    :ivar metavar: the value's name in ``--help``.
    :ivar check: turns the text given into the value (``None``: the text itself).
    :ivar kind: ``"value"``, ``"flag"`` (no value), ``"append"`` (repeatable),
        ``"const"`` (mutually exclusive flags, each setting the field to its value in
        ``consts``) or ``"urls"`` (the positional URLs).
    :ivar where: :data:`BOTH`, :data:`JOURNEY` or :data:`TWIN`.
    :ivar setting: the :class:`FetchSettings` attribute it sets, if any.
    :ivar ignored: accepted for curl users and otherwise ignored.
    :ivar required: the command needs it.
    :ivar consts: for a ``"const"`` option, ``(value, help)`` for each flag, in order.
    :ivar twistdShort: the short flag ``twistd journey-fetch`` gives it instead (its
        ``-u`` is ``--urls``: on the ``journey`` commands ``-u`` is ``--user``, as in
        curl).
    """

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    check: Check | None = None
    kind: str = "value"
    where: str = BOTH
    setting: str | None = None
    ignored: bool = False
    required: bool = False
    consts: tuple[tuple[Any, str], ...] = ()
    twistdShort: str | None = None

    @property
    def name(self) -> str:
        """
        The flag that names the option in sentences (``--max-redirs``).
        """
        return next((flag for flag in self.flags if flag.startswith("--")), self.flags[0])

    def parse(self, text: Any) -> Any:
        """
        The value of ``text`` given for this option.

        :raises SettingError: a sentence naming the option.
        """
        if self.kind == "flag":
            return bool(text)
        if self.kind == "const":
            return text
        return text if self.check is None or text is None else self.check(self.name, text)


def option(*flags: str, default: Any = None, **declaration: Any) -> Any:
    """
    Declare a command field: a :func:`dataclasses.field` with ``default`` whose metadata
    holds the :class:`Option` made of ``flags`` and ``declaration``.
    """
    return dataclasses.field(
        default=default, metadata={"option": Option(tuple(flags), **declaration)}
    )


def _options(command: type[Any]) -> list[tuple[dataclasses.Field[Any], Option]]:
    """
    ``(field, option)`` for every option of the dataclass ``command``.
    """
    return [
        (field, field.metadata["option"])
        for field in dataclasses.fields(command)
        if "option" in field.metadata
    ]


# --- the checks that are fetch's own --------------------------------------------------------

#: The characters of an HTTP field name (RFC 9110 section 5.1: a token).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def header(name: str, text: str) -> tuple[str, str]:
    """
    ``-H 'Name: value'``: the name an HTTP token, the value printable ASCII (spaces and
    tabs allowed), as both engines send them unchanged.
    """
    field, colon, value = text.partition(":")
    field, value = field.strip(), value.strip(" \t")
    if not colon or not field:
        raise settings.SettingError(f"{text!r} is not 'Name: value'")
    if not set(field) <= _TOKEN:
        raise settings.SettingError(
            f"{text!r}: the header name may hold only ASCII letters, digits and !#$%&'*+-.^_`|~"
        )
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise settings.SettingError(
            f"{text!r}: the header value may hold only printable ASCII and tabs"
        )
    return field, value


def sha256(name: str, text: str) -> str:
    """
    ``--sha256 HEX`` or ``--sha256 sha256:HEX``: the digest, lower case.
    """
    digest = semantics.parse_sha256(text)
    if digest is None:
        raise settings.SettingError(
            f"{text!r} is not 64 hexadecimal digits (optionally after 'sha256:')"
        )
    return digest


def credentials(name: str, text: str) -> tuple[str, str]:
    """
    ``-u USER:PASSWORD``.
    """
    user, colon, password = text.partition(":")
    if not colon:
        raise settings.SettingError(f"{name} takes USER:PASSWORD (journey does not prompt)")
    return user, password


def cookie(name: str, text: str) -> str:
    """
    ``-b``: a ``NAME=VALUE; ...`` string is checked here (a file is read when the
    fetcher starts, see :meth:`~twisted_journey.fetch.cookies.CookieEngine.fromOptions`).
    """
    if "=" in text:
        try:
            cookies.parse_pairs(text)
        except ValueError as e:
            raise settings.SettingError(f"{name}: {e}") from None
    return text


def proxy(name: str, text: str) -> str:
    """
    ``-x [http://]HOST:PORT``: the proxy URL.
    """
    url = text if "://" in text else "http://" + text
    try:
        semantics.check_url(url)
    except fetch_errors.UnsupportedURL:
        raise settings.SettingError(
            f"{fetch_errors.describe_url(text)!r} is not an http:// proxy URL with a host "
            "and a port from 1 to 65535"
        ) from None
    if not url.startswith("http://"):
        raise settings.SettingError("only http:// proxies are supported")
    return url


# --- journey fetch and its twin -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FetchCommand:
    """
    One ``journey fetch`` (or twin) command line, parsed once.  ``None`` means "not
    given": :data:`twisted_journey.fetch.settings` defaults apply.  :meth:`settings`
    derives the Twisted engine's :class:`FetchSettings`; :meth:`twistedOnly` names the
    options given that the stdlib twin lacks.
    """

    urls: tuple[str, ...] = option("URL", kind="urls", help="http:// or https:// URLs", default=())
    output: str | None = option(
        "-o", "--output", metavar="FILE", help="write to FILE (one URL only) [name from the URL]"
    )
    outputDir: str | None = option("--output-dir", metavar="DIR", help="put files in DIR [.]")
    contentDisposition: bool = option(
        "--content-disposition",
        kind="flag",
        default=False,
        help="use the server's Content-Disposition name, reduced to a safe basename; "
        "it never replaces an existing file",
    )
    maxRedirects: int = option(
        "--max-redirs",
        check=settings.count,
        default=defaults.MAX_REDIRECTS,
        metavar="N",
        setting="maxRedirects",
        help=f"follow at most N redirects [{defaults.MAX_REDIRECTS}]",
    )
    quiet: bool = option(
        "-q", "-s", "--quiet", "--silent", kind="flag", default=False, help="no progress bar"
    )
    maxTime: float | None = option(
        "--max-time",
        "-m",
        check=settings.seconds,
        metavar="S",
        setting="maxTime",
        help="seconds for each whole attempt, redirects and interim answers included "
        "(exit 6 past them) [none]",
    )
    createDirs: bool = option(
        "--create-dirs",
        kind="flag",
        default=False,
        help="create the missing directories of -o FILE (--output-dir is always created)",
    )
    credentials: tuple[str, str] | None = option(
        "-u",
        "--user",
        check=credentials,
        metavar="USER:PASSWORD",
        setting="credentials",
        help="credentials for each URL's own host, as curl sends them: Basic at once, "
        "unless --digest or --anyauth; never sent on a redirect to another host "
        "(also: http://USER:PASSWORD@HOST/)",
    )
    authMode: str | None = option(
        "--digest",
        "--anyauth",
        "--basic",
        kind="const",
        consts=(
            (
                "digest",
                "send --user only as HTTP Digest (RFC 7616: SHA-256 or MD5, qop=auth), "
                "answering the server's challenge",
            ),
            ("any", "send --user as whatever the server asks for: Digest, else Basic"),
            ("basic", "send --user as HTTP Basic with the first request (the default)"),
        ),
        setting="authMode",
        help="how --user is sent",
    )
    cookie: str | None = option(
        "-b",
        "--cookie",
        check=cookie,
        metavar="'NAME=VALUE; ...'|FILE",
        setting="cookie",
        help="turn the cookie engine on and send these cookies to each URL's own host, or "
        "those of a Netscape-format FILE ('' : none yet; '-' : standard input, not in a "
        "mirror); cookies servers set are sent back as their Domain and Path allow",
    )
    cookieJar: str | None = option(
        "-c",
        "--cookie-jar",
        metavar="FILE",
        setting="cookieJar",
        help="turn the cookie engine on and write every cookie to FILE (Netscape format, "
        "mode 0600; '-' : standard output, not in a mirror) at the end (a mirror: after "
        "each pass)",
    )
    timeout: float = option(
        "--timeout",
        check=settings.seconds,
        default=defaults.CONNECT_TIMEOUT,
        metavar="S",
        where=TWIN,
        help=f"seconds per connect/read [{defaults.CONNECT_TIMEOUT:g}]",
    )
    noClobber: bool = option(
        "--no-clobber",
        kind="flag",
        default=False,
        where=JOURNEY,
        help="skip URLs whose file exists",
    )
    parallel: int | None = option(
        "--parallel",
        check=settings.limit,
        metavar="N",
        where=JOURNEY,
        setting="parallel",
        help=f"N transfers at once [{defaults.PARALLEL}]",
    )
    connectTimeout: float | None = option(
        "--connect-timeout",
        check=settings.seconds,
        metavar="S",
        where=JOURNEY,
        setting="connectTimeout",
        help=f"seconds to connect [{defaults.CONNECT_TIMEOUT:g}]",
    )
    idleTimeout: float | None = option(
        "--idle-timeout",
        check=settings.seconds,
        metavar="S",
        where=JOURNEY,
        setting="idleTimeout",
        help=f"give up after S seconds without data [{defaults.IDLE_TIMEOUT:g}]",
    )
    retries: int | None = option(
        "--retry",
        check=settings.count,
        metavar="N",
        where=JOURNEY,
        setting="retries",
        help="retry N times on network errors, timeouts, 408/429/5xx [0]",
    )
    retryDelay: float | None = option(
        "--retry-delay",
        check=settings.seconds,
        metavar="S",
        where=JOURNEY,
        setting="retryDelay",
        help=f"first retry wait, doubled each time; Retry-After wins [{defaults.RETRY_DELAY:g}]",
    )
    resume: bool = option(
        "-C",
        "--continue",
        kind="flag",
        default=False,
        where=JOURNEY,
        help="keep NAME.part on failure and resume it with Range (curl's '-C -' works too)",
    )
    newer: bool = option(
        "-N",
        "--newer",
        kind="flag",
        default=False,
        where=JOURNEY,
        help="conditional GET: only fetch when changed (ETag / Last-Modified remembered)",
    )
    compressed: bool = option(
        "--compressed",
        kind="flag",
        default=False,
        where=JOURNEY,
        setting="compressed",
        help="ask for gzip/deflate and decode it (size and ratio capped)",
    )
    maxDecodedSize: int | None = option(
        "--max-decoded-size",
        check=settings.limit,
        metavar="BYTES",
        where=JOURNEY,
        setting="maxDecodedSize",
        help=f"cap on a decoded body [{defaults.MAX_DECODED_SIZE >> 20} MiB]",
    )
    maxHeaderBytes: int | None = option(
        "--max-header-bytes",
        check=settings.limit,
        metavar="BYTES",
        where=JOURNEY,
        setting="maxHeaderBytes",
        help=f"cap on a response's headers [{defaults.MAX_HEADER_BYTES >> 10} KiB]",
    )
    maxHeaders: int | None = option(
        "--max-headers",
        check=settings.limit,
        metavar="N",
        where=JOURNEY,
        setting="maxHeaders",
        help=f"cap on a response's header fields [{defaults.MAX_HEADERS}]",
    )
    cacert: str | None = option(
        "--cacert",
        metavar="FILE",
        where=JOURNEY,
        setting="cacert",
        help="trust only the CA certificates in this PEM file",
    )
    insecure: bool = option(
        "-k",
        "--insecure",
        kind="flag",
        default=False,
        where=JOURNEY,
        setting="insecure",
        help="do NOT verify TLS certificates (dangerous)",
    )
    headers: tuple[tuple[str, str], ...] = option(
        "-H",
        "--header",
        kind="append",
        check=header,
        default=(),
        metavar="'NAME: VALUE'",
        where=JOURNEY,
        setting="headers",
        help="send this request header; repeatable",
    )
    proxy: str | None = option(
        "-x",
        "--proxy",
        check=proxy,
        metavar="URL",
        where=JOURNEY,
        help="use this http:// proxy for every URL (NO_PROXY still applies) [environment]",
    )
    sha256: str | None = option(
        "--sha256",
        check=sha256,
        metavar="HEX",
        where=JOURNEY,
        help="fail unless the body has this SHA-256, as HEX or sha256:HEX (one URL)",
    )
    progress: bool = option(
        "--progress",
        kind="flag",
        default=False,
        where=JOURNEY,
        help="show a progress bar even when stderr is not a terminal",
    )
    fail: bool = option(
        "-f",
        "--fail",
        kind="flag",
        default=False,
        where=JOURNEY,
        ignored=True,
        help="accepted for curl users: always the case",
    )
    location: bool = option(
        "-L",
        "--location",
        kind="flag",
        default=False,
        ignored=True,
        help="accepted for curl users: redirects are always followed (--max-redirs 0: none)",
    )

    @classmethod
    def fromArguments(cls, args: argparse.Namespace) -> FetchCommand:
        """
        The command parsed by a parser :func:`addArguments` set up (the twin's lacks the
        Twisted engine's options: they keep their "not given" values).
        """
        values: dict[str, Any] = {}
        for field, declared in _options(cls):
            value = getattr(args, field.name, None)
            if value is not None:
                values[field.name] = tuple(value) if declared.kind in ("urls", "append") else value
        return cls(**values)

    def problem(self) -> str | None:
        """
        The usage sentence for options that make no sense together, or ``None``.
        """
        if not self.urls:
            return "no URL given."
        if self.output is not None and len(self.urls) > 1:
            return "-o/--output takes one URL; use --output-dir for several."
        if self.sha256 is not None and len(self.urls) > 1:
            return "--sha256 takes one URL."
        return None

    def twistedOnly(self) -> list[str]:
        """
        The flags given that only the Twisted engine has.
        """
        return [
            declared.name
            for field, declared in _options(type(self))
            if declared.where == JOURNEY
            and not declared.ignored
            and getattr(self, field.name) != field.default
        ]

    def proxies(self) -> Mapping[str, str] | None:
        """
        ``-x URL`` as a proxies mapping (``NO_PROXY`` from the environment still applies),
        or ``None`` to read the environment.
        """
        if self.proxy is None:
            return None
        proxies = {"http": self.proxy, "https": self.proxy}
        bypass = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
        if bypass:
            proxies["no"] = bypass
        return proxies

    def settings(self) -> FetchSettings:
        """
        The Twisted engine's settings: the options given, the defaults for the rest.
        """
        return _settings(self, proxies=self.proxies())


def _settings(command: Any, **given: Any) -> FetchSettings:
    """
    The :class:`FetchSettings` of ``command``: ``given`` and the value of each option
    declaring a ``setting``; the defaults for what is ``None``.
    """
    for field, declared in _options(type(command)):
        if declared.setting is not None:
            given[declared.setting] = getattr(command, field.name)
    return FetchSettings(**{name: value for name, value in given.items() if value is not None})


def _sameAs(command: type[Any], name: str) -> Any:
    """
    A field declared as ``command``'s field ``name``: one option, declared once, that
    several commands take.
    """
    field = next(field for field in dataclasses.fields(command) if field.name == name)
    return dataclasses.field(default=field.default, metadata=field.metadata)


# --- journey mirror and twistd journey-fetch ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class MirrorCommand:
    """
    The options of ``journey mirror`` and ``twistd journey-fetch`` (one service), checked
    by :meth:`fromValues`; ``-u``/``--user``, ``--digest``/``--anyauth``/``--basic``,
    ``-b`` and ``-c`` are :class:`FetchCommand`'s own, for the mirror's fetcher
    (:meth:`settings`).
    """

    urls: str = option(
        "--urls",
        twistdShort="u",
        default="",
        required=True,
        metavar="FILE",
        help="file of URLs to mirror, one per line (required)",
    )
    outputDir: str = option(
        "--output-dir",
        "-d",
        default=".",
        metavar="DIR",
        help="directory for the copies, created when missing [.]",
    )
    interval: float = option(
        "--interval",
        "-i",
        check=settings.seconds,
        default=defaults.MIRROR_INTERVAL,
        metavar="S",
        help=f"seconds between refreshes of each URL [{defaults.MIRROR_INTERVAL:g}]",
    )
    parallel: int = option(
        "--parallel",
        "-p",
        check=settings.limit,
        default=defaults.MIRROR_PARALLEL,
        metavar="N",
        help=f"transfers at once [{defaults.MIRROR_PARALLEL}]",
    )
    once: bool = option(
        "--once",
        kind="flag",
        default=False,
        help="try every URL once, then stop (for cron: journey mirror then exits 0 only "
        "if every URL succeeded)",
    )
    credentials: tuple[str, str] | None = _sameAs(FetchCommand, "credentials")
    authMode: str | None = _sameAs(FetchCommand, "authMode")
    cookie: str | None = _sameAs(FetchCommand, "cookie")
    cookieJar: str | None = _sameAs(FetchCommand, "cookieJar")

    @classmethod
    def fromValues(cls, values: Mapping[str, Any]) -> MirrorCommand:
        """
        The command for ``values`` (each option's long name, ``output-dir``, or field
        name, ``outputDir``, to the text given, or ``None``): each checked, the URL file
        required and readable, the directory a directory if it exists.

        :raises SettingError: a sentence naming the option.
        """
        parsed: dict[str, Any] = {}
        for field, declared in _options(cls):
            if declared.kind == "const":
                value = _chosen(declared, values, values.get(field.name))
            else:
                value = values.get(declared.name.lstrip("-"), values.get(field.name))
            if value is not None:
                parsed[field.name] = declared.parse(value)
        command = cls(**parsed)
        if not command.urls:
            raise settings.SettingError("--urls FILE is required.")
        if not os.path.isfile(command.urls):
            raise settings.SettingError(f"--urls {command.urls!r} is not a readable file.")
        if os.path.exists(command.outputDir) and not os.path.isdir(command.outputDir):
            raise settings.SettingError(f"--output-dir {command.outputDir!r} is not a directory.")
        for flag, value in (("--cookie", command.cookie), ("--cookie-jar", command.cookieJar)):
            if value == cookies.STDIO:
                # Read again on every restart, written after every pass: a file, not a pipe.
                raise settings.SettingError(
                    f"{flag} -: standard input and output are not supported by the mirror; "
                    "give a file."
                )
        return command

    def settings(self) -> FetchSettings:
        """
        The mirror's fetcher's settings: ``--parallel``, the credentials and how they are
        sent, the cookies; the defaults for the rest.
        """
        return _settings(self, parallel=self.parallel)


def _chosen(declared: Option, values: Mapping[str, Any], default: Any) -> Any:
    """
    The value of the ``"const"`` option ``declared`` in ``values``, where each of its
    flags given is true under its long name (``digest``), else ``default``.

    :raises SettingError: when two of its flags are given.
    """
    given = [flag for flag in declared.flags if values.get(flag.lstrip("-"))]
    if len(given) > 1:
        raise settings.SettingError(f"{given[0]} and {given[1]} exclude each other.")
    if not given:
        return default
    return declared.consts[declared.flags.index(given[0])][0]


# --- the adapters ----------------------------------------------------------------------


def addArguments(
    parser: argparse.ArgumentParser,
    command: type[Any],
    where: tuple[str, ...] = (BOTH, JOURNEY),
    check: bool = True,
) -> None:
    """
    Add the options of ``command`` (:class:`FetchCommand`, :class:`MirrorCommand`) that
    exist ``where`` to ``parser``; each lands in the attribute named like its field.

    :param check: run each option's check as argparse parses it (otherwise the text is
        kept, for a command that checks its values itself).
    """
    for field, declared in _options(command):
        if declared.where not in where:
            continue
        if declared.kind == "urls":
            parser.add_argument(
                field.name, nargs="+", metavar=declared.flags[0], help=declared.help
            )
            continue
        if declared.kind == "const":
            group = parser.add_mutually_exclusive_group()
            for flag, (value, text) in zip(declared.flags, declared.consts, strict=True):
                group.add_argument(
                    flag, dest=field.name, action="store_const", const=value, help=text
                )
            continue
        extra: dict[str, Any] = {}
        if declared.kind == "flag":
            extra["action"] = "store_true"
        else:
            extra["metavar"] = declared.metavar
            if declared.kind == "append":
                extra["action"] = "append"
            elif declared.required:
                extra["required"] = True
            else:
                extra["default"] = field.default
            if check and declared.check is not None:
                extra["type"] = settings.argparse_type(declared.parse)
        parser.add_argument(*declared.flags, dest=field.name, help=declared.help, **extra)


def usageOptions(command: type[Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """
    ``(optFlags, optParameters)`` of a :class:`twisted.python.usage.Options` for the
    options of ``command``; its values are the text given, each stored under the field's
    name, for ``command.fromValues`` to check in ``postOptions``.
    """
    flags: list[list[Any]] = []
    parameters: list[list[Any]] = []
    shorts: set[str] = set()
    for field, declared in _options(command):
        if declared.kind == "const":
            # Each flag its own; fromValues refuses two of them and picks the value.
            flags.extend(
                [flag.lstrip("-"), None, _sentence(text)]
                for flag, (value, text) in zip(declared.flags, declared.consts, strict=True)
            )
            continue
        long = declared.name.lstrip("-")
        short = declared.twistdShort or next(
            (f[1:] for f in declared.flags if len(f) == 2 and f[0] == "-"), None
        )
        if short in shorts:
            short = None  # -u is --urls there: --user keeps its long name only
        elif short is not None:
            shorts.add(short)
        # usage.Options shows the default itself: drop the help's "[default]".
        text = _sentence(re.sub(r" \[[^]]*\]$", "", declared.help))
        if declared.kind == "flag":
            flags.append([long, short, text])
        else:
            default = field.default
            if default in (None, ""):
                default = None
            elif isinstance(default, float):
                default = f"{default:g}"
            else:
                default = str(default)
            parameters.append([long, short, default, text])
    return flags, parameters


def _sentence(text: str) -> str:
    """
    A help line as ``usage.Options`` shows it: capitalised, with a full stop.
    """
    return text[:1].upper() + text[1:] + "."
