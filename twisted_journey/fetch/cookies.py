# -*- test-case-name: tests.test_fetch_cookies -*-
"""
The cookie engine of both fetch engines: ``-b/--cookie`` and ``-c/--cookie-jar``, as curl.

Stdlib only (``http.cookiejar``), so ``journey fetch`` and its twin send and keep the
same cookies.  The engine is on when either option is given:

- ``-b 'NAME=VALUE; N2=V2'`` (any ``=`` in it): these cookies, sent to each URL's own
  host (host-only, path ``/``), never to another host;
- ``-b FILE``: the cookies of a Netscape-format file (curl's and wget's); ``-b ''``:
  none, but what servers set is kept and sent back (a ``Set-Cookie`` then a redirect
  to itself works);
- ``-c FILE``: every cookie, session ones included, written there in the Netscape
  format at the end of the run, through a locked temporary file renamed into place (a
  link at ``FILE`` is replaced, never written through);
- as in curl, ``-b -`` reads the Netscape-format cookies from standard input and
  ``-c -`` writes the jar to standard output (:data:`STDIO`).

Which cookie goes where is ``http.cookiejar``'s policy (RFC 6265's Domain and Path rules),
with a cookie set without ``Domain`` sent back to its own host only.  Hosts are named
as curl names them, in the jar and in the files: a dotless host is ``localhost`` (not
``http.cookiejar``'s ``localhost.local``), an IPv6 literal ``::1`` (no brackets), so
``curl -b`` reads what ``-c`` wrote and the other way round; ``#HttpOnly_`` marks an
``HttpOnly`` cookie whatever the case the server wrote it in, and a session cookie's
expiry is ``0``.  What a server sends
is bounded: at most :data:`MAX_SET_COOKIES` ``Set-Cookie`` fields of a response are read,
each of at most :data:`MAX_COOKIE_BYTES` bytes, and the jar holds at most
:data:`MAX_COOKIES` cookies.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import itertools
import os
import re
import stat
import sys
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Sequence

from twisted_journey.fetch import safefiles
from twisted_journey.fetch.errors import FileError

__all__ = [
    "MAX_COOKIES",
    "MAX_COOKIE_BYTES",
    "MAX_SET_COOKIES",
    "STDIO",
    "CookieEngine",
    "parse_pairs",
]

#: ``Set-Cookie`` fields read from one response.
MAX_SET_COOKIES = 50
#: Bytes of one ``Set-Cookie`` value; a longer one is ignored (RFC 6265 asks for 4096).
MAX_COOKIE_BYTES = 4096
#: Cookies held at once; past them, new ones are ignored.
MAX_COOKIES = 3000
#: Bytes of a ``-b FILE`` read.
MAX_FILE_BYTES = 4 << 20
#: The file name that means standard input (``-b -``) or standard output (``-c -``).
STDIO = "-"

_NAME = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _host(url: str) -> str:
    """
    ``url``'s host as curl names it in a cookie file: lower case, an IPv6 literal
    without its brackets, no port, no user name.
    """
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _http_only(cookie: http.cookiejar.Cookie) -> bool:
    """
    Whether ``cookie`` is ``HttpOnly``: the attribute as a server wrote it (any case),
    or ``http.cookiejar``'s ``HTTPOnly`` for a ``#HttpOnly_`` line it read.
    """
    rest: dict[str, object] = cookie._rest  # type: ignore[attr-defined]
    return any(key.lower() == "httponly" for key in rest)


class _Policy(http.cookiejar.DefaultCookiePolicy):
    """
    ``http.cookiejar``'s policy (a cookie set without ``Domain`` goes back to its own
    host only), with hosts named as curl names them: a host-only cookie of
    ``localhost`` or ``[::1]`` has the domain ``localhost`` or ``::1``, which
    ``http.cookiejar`` alone would compare with ``localhost.local`` and ``[::1].local``
    and so never send.
    """

    def __init__(self) -> None:
        super().__init__(strict_ns_domain=http.cookiejar.DefaultCookiePolicy.DomainStrictNonDomain)

    def _ownHost(self, domain: str, request: urllib.request.Request) -> bool:
        """
        Whether ``domain`` names exactly the host of ``request`` (``.HOST`` as well: a
        cookie whose ``Domain`` is the host itself).
        """
        host = _host(request.get_full_url())
        return bool(host) and domain in (host, "." + host)

    def return_ok_domain(
        self, cookie: http.cookiejar.Cookie, request: urllib.request.Request
    ) -> bool:
        if self._ownHost(cookie.domain, request):
            return True
        return bool(super().return_ok_domain(cookie, request))

    def domain_return_ok(self, domain: str, request: urllib.request.Request) -> bool:
        return self._ownHost(domain, request) or bool(super().domain_return_ok(domain, request))


class _Jar(http.cookiejar.MozillaCookieJar):
    """
    A Netscape-format jar whose host-only cookies carry their host as curl names it
    (see :class:`_Policy`).
    """

    def make_cookies(
        self, response: http.client.HTTPResponse, request: urllib.request.Request
    ) -> Sequence[http.cookiejar.Cookie]:
        cookies = super().make_cookies(response, request)
        host = _host(request.get_full_url())
        for cookie in cookies:
            if not cookie.domain_specified and cookie.domain != host:
                # http.cookiejar's HOST.local or [IPv6]: curl's name instead.
                cookie.domain = host
        return cookies


class _Response:
    """
    What ``CookieJar.extract_cookies`` reads of a response: its ``info()``.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self._headers = http.client.HTTPMessage()
        for value in values:
            self._headers["Set-Cookie"] = value

    def info(self) -> http.client.HTTPMessage:
        return self._headers


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """
    ``NAME=VALUE; N2=V2`` as pairs.

    :raises ValueError: when a name is not a token or a value holds a control character,
        a quote, a comma or a backslash.
    """
    pairs = []
    for item in text.split(";"):
        if not item.strip():
            continue
        name, _, value = item.strip().partition("=")
        if not name or not set(name) <= _NAME:
            raise ValueError(f"{name!r} is not a cookie name (an HTTP token)")
        if not all(" " <= c <= "~" and c not in ',";\\' for c in value):
            raise ValueError(f"the value of cookie {name!r} holds a character a cookie cannot")
        pairs.append((name, value.strip()))
    return pairs


def _session(line: str) -> str:
    """
    A Netscape cookie-file line with curl's expiry ``0`` (a session cookie) written as
    ``http.cookiejar`` writes it (empty), so it is read as a session cookie, not as one
    that expired in 1970.
    """
    fields = line.rstrip("\r").split("\t")
    if len(fields) == 7 and fields[4] == "0":
        fields[4] = ""
    return "\t".join(fields)


def _name(path: str) -> str:
    """
    ``path`` as a message names it (``-`` is standard input).
    """
    return "on standard input" if path == STDIO else repr(path)


def _read_file(path: str) -> bytes | None:
    """
    At most ``MAX_FILE_BYTES + 1`` bytes of the regular file ``path``, or ``None`` when
    there is none.

    :raises FileError: when it cannot be read or is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FileError(f"cannot read the cookie file {path!r}: {e.strerror or e}.") from None
    with open(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileError(f"the cookie file {path!r} is not a regular file.")
            return f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise FileError(f"cannot read the cookie file {path!r}: {e.strerror or e}.") from None


def _read_standard_input() -> bytes:
    """
    At most ``MAX_FILE_BYTES + 1`` bytes of standard input, to its end (none when it is
    closed).

    :raises FileError: when it cannot be read.
    """
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return b""
    try:
        data: bytes = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or "it is closed"
        raise FileError(f"cannot read the cookies on standard input: {reason}.") from None
    return data


class CookieEngine:
    """
    The cookies of one run, shared by all its URLs.

    :param cookie: the ``-b`` value (cookies, a file name, or ``''``), or ``None``.
    :param jar: the ``-c`` file, or ``None``.
    :raises ValueError: for a malformed ``-b NAME=VALUE`` string (see :func:`parse_pairs`).
    :raises FileError: when the ``-b`` file cannot be read or is not in the Netscape
        format.
    """

    def __init__(self, cookie: str | None = None, jar: str | None = None) -> None:
        self.jar = _Jar(policy=_Policy())
        self.path = jar
        self._pairs: list[tuple[str, str]] = []
        self._hosts: set[str] = set()
        if cookie is None or cookie == "":
            return
        if "=" in cookie:
            self._pairs = parse_pairs(cookie)
        else:
            self._load(cookie)

    @classmethod
    def fromOptions(cls, cookie: str | None, jar: str | None) -> CookieEngine | None:
        """
        The engine ``-b`` and ``-c`` ask for, or ``None`` when neither is given.
        """
        if cookie is None and jar is None:
            return None
        return cls(cookie, jar)

    def _load(self, path: str) -> None:
        """
        Read the Netscape-format file ``path`` (a link is followed: it is only read; a
        missing or empty file is an empty jar, and the header line may be missing, as in
        curl; a FIFO or device is refused unopened for reading), or standard input for
        :data:`STDIO`.
        """
        data = _read_standard_input() if path == STDIO else _read_file(path)
        if data is None:
            return
        if len(data) > MAX_FILE_BYTES:
            raise FileError(f"the cookie file {_name(path)} is over {MAX_FILE_BYTES} bytes.")
        text = "\n".join(_session(line) for line in data.decode("latin-1").split("\n"))
        if not re.search(self.jar.magic_re, text.partition("\n")[0]):
            # curl reads a file without the header line (an empty one above all).
            text = "# Netscape HTTP Cookie File\n" + text
        try:
            with warnings.catch_warnings():
                # A malformed line would also print http.cookiejar's traceback.
                warnings.simplefilter("ignore")
                self.jar._really_load(  # type: ignore[attr-defined]
                    io.StringIO(text), path, ignore_discard=True, ignore_expires=False
                )
        except (http.cookiejar.LoadError, ValueError) as e:
            raise FileError(
                f"the cookie file {_name(path)} is not in the Netscape format "
                f"(curl's and wget's): {str(e)[:200]}."
            ) from None

    def begin(self, url: str) -> None:
        """
        Give the ``-b NAME=VALUE`` cookies to ``url``'s host (once per host): each URL
        of a run is sent them, a redirect to another host is not.
        """
        if not self._pairs:
            return
        host = _host(url)
        if not host or host in self._hosts:
            return
        self._hosts.add(host)
        for name, value in self._pairs:
            self.jar.set_cookie(
                http.cookiejar.Cookie(
                    0, name, value, None, False, host, False, False, "/", True, False,
                    None, True, None, None, {},
                )
            )  # fmt: skip

    def header(self, url: str) -> str | None:
        """
        The ``Cookie`` value for a request to ``url``, or ``None``.
        """
        request = urllib.request.Request(url)
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie")

    def store(self, url: str, values: Iterable[str]) -> None:
        """
        Keep what the ``Set-Cookie`` field ``values`` of the answer to ``url`` set.
        """
        first = itertools.islice(values, MAX_SET_COOKIES)
        kept = [value for value in first if len(value) <= MAX_COOKIE_BYTES]
        if not kept:
            return
        if len(self.jar) >= MAX_COOKIES:
            self.jar.clear_expired_cookies()
            if len(self.jar) >= MAX_COOKIES:
                return
        request = urllib.request.Request(url)
        self.jar.extract_cookies(_Response(kept), request)  # type: ignore[arg-type]

    def netscape(self) -> bytes:
        """
        The jar in the Netscape format (session cookies included, expired ones not), its
        bytes those the servers sent (header values are latin-1 text here, as in both
        engines).
        """
        lines = ["# Netscape HTTP Cookie File", "# Written by twisted_journey.", ""]
        now = int(time.time())
        for cookie in self.jar:
            if cookie.is_expired(now):
                continue
            domain = cookie.domain
            if _http_only(cookie):
                domain = "#HttpOnly_" + domain
            name, value = (
                (cookie.name, cookie.value) if cookie.value is not None else ("", cookie.name)
            )
            fields = [
                domain,
                "TRUE" if cookie.domain.startswith(".") else "FALSE",
                cookie.path,
                "TRUE" if cookie.secure else "FALSE",
                str(cookie.expires) if cookie.expires is not None else "0",
                name,
                value,
            ]
            if any("\t" in f or "\n" in f or "\r" in f for f in fields):
                continue
            lines.append("\t".join(fields))
        return ("\n".join(lines) + "\n").encode("latin-1")

    def save(self) -> None:
        """
        Write the jar to the ``-c`` file (if any), mode 0600, through a locked temporary
        file beside it renamed into place.

        :raises FileError: when it cannot be written.
        """
        if self.path is None:
            return
        if self.path == STDIO:
            try:
                sys.stdout.flush()
                sys.stdout.buffer.write(self.netscape())
                sys.stdout.buffer.flush()
            except (OSError, ValueError, AttributeError) as e:
                reason = getattr(e, "strerror", None) or "it is closed"
                raise FileError(
                    f"cannot write the cookie jar to standard output: {reason}."
                ) from None
            return
        temporary, fd = safefiles.temporary_beside(self.path)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(self.netscape())
            while view:
                view = view[os.write(fd, view) :]
            safefiles.replace_atomically(temporary, self.path, fd)
        except OSError as e:
            if safefiles.is_regular(temporary):
                os.unlink(temporary)
            raise FileError(
                f"cannot write the cookie jar {self.path!r}: {e.strerror or e}."
            ) from None
        finally:
            os.close(fd)
