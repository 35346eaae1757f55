# -*- test-case-name: tests.test_fetch_auth -*-
"""
HTTP authentication for both fetch engines: Basic (RFC 7617) and Digest (RFC 7616).

Stdlib only, so ``journey fetch`` and its stdlib twin answer a server's challenge with
the same bytes.  The twin uses this module rather than ``urllib``'s
``HTTPDigestAuthHandler``: that handler lacks SHA-256 on older Pythons, retries up to
five times, reads ``WWW-Authenticate`` with a loose regular expression, and would send
credentials wherever its password manager's URI prefix matches; here one answer per
request, the same parser and the same origin rule hold for both engines.

The rules:

- ``basic`` (``-u`` alone, as curl): Basic credentials are sent with the first request;
- ``digest`` (``--digest``): the first request goes without credentials; a ``401``
  with a Digest challenge is answered once (``qop=auth``, a fresh ``cnonce``, the nonce
  counted), with MD5, MD5-sess, SHA-256 or SHA-256-sess, the strongest offered;
- ``any`` (``--anyauth``): as ``digest``, falling back to Basic when that is all the
  server offers.

Credentials go only to the URL's own origin (the callers check it); a challenge comes
from the network, so it is parsed strictly (RFC 9110 section 11.6.1) and bounded: a
malformed or oversized ``WWW-Authenticate`` is never answered.
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from twisted_journey.fetch import semantics

__all__ = [
    "MAX_CHALLENGES",
    "MAX_CHALLENGE_BYTES",
    "MAX_PARAMETERS",
    "MODES",
    "Authenticator",
    "Challenge",
    "ChallengeError",
    "digest_authorization",
    "parse_challenges",
    "request_uri",
    "unauthorized_detail",
]

#: The ``-u`` modes: curl's default, ``--digest``, ``--anyauth``.
MODES = ("basic", "digest", "any")

#: Bytes of ``WWW-Authenticate`` read (all fields together); past them, none is answered.
MAX_CHALLENGE_BYTES = 8192
#: Challenges read from one response.
MAX_CHALLENGES = 16
#: Parameters read from one challenge.
MAX_PARAMETERS = 32

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN68 = frozenset("-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

#: Digest algorithms, strongest first, with their hash functions.
_ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-256-SESS": lambda data: hashlib.sha256(data).hexdigest(),
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "MD5-SESS": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
}


class ChallengeError(ValueError):
    """
    A ``WWW-Authenticate`` value that is malformed or too large.
    """


@dataclass(frozen=True)
class Challenge:
    """
    One challenge of a ``WWW-Authenticate`` field.

    :ivar scheme: the scheme, as sent (compare it case-insensitively).
    :ivar parameters: the auth-params, names lowercased, quoted-strings unescaped.
    :ivar token68: the token68 form's value, or ``None``.
    """

    scheme: str
    parameters: dict[str, str]
    token68: str | None = None


class _Reader:
    """
    A cursor over one field value.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek() in (" ", "\t"):
            self.at += 1

    def token(self, allowed: frozenset[str] = _TCHAR) -> str:
        start = self.at
        while self.peek() and self.peek() in allowed:
            self.at += 1
        return self.text[start : self.at]

    def quoted(self) -> str:
        """
        A quoted-string (the opening quote is next), unescaped.
        """
        self.at += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if not c:
                raise ChallengeError("an unterminated quoted-string")
            self.at += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                c = self.peek()
                if not c:
                    raise ChallengeError("an unterminated quoted-string")
                self.at += 1
            if not (c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff"):
                raise ChallengeError("a control character in a quoted-string")
            out.append(c)

    def starts_parameter(self) -> bool:
        """
        Whether ``token BWS "=" BWS`` and a value (an auth-param, not a new challenge
        nor a token68 such as ``abc==``) come next.
        """
        saved = self.at
        try:
            if not self.token():
                return False
            self.skip_space()
            if self.peek() != "=":
                return False
            self.at += 1
            self.skip_space()
            return self.peek() not in ("=", ",", "")
        finally:
            self.at = saved


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """
    The challenges of the ``WWW-Authenticate`` field ``values`` (RFC 9110 section
    11.6.1: ``#challenge``, each ``scheme [ token68 / #auth-param ]``).

    :raises ChallengeError: when a value is malformed, a parameter is repeated, or the
        field holds more than :data:`MAX_CHALLENGE_BYTES` bytes,
        :data:`MAX_CHALLENGES` challenges or :data:`MAX_PARAMETERS` parameters in one.
    """
    values = list(values)
    if sum(len(value) for value in values) > MAX_CHALLENGE_BYTES:
        raise ChallengeError(f"over {MAX_CHALLENGE_BYTES} bytes")
    challenges: list[Challenge] = []
    for value in values:
        reader = _Reader(value)
        while True:
            while reader.peek() in (" ", "\t", ","):
                reader.at += 1
            if not reader.peek():
                break
            scheme = reader.token()
            if not scheme:
                raise ChallengeError(f"no scheme at offset {reader.at}")
            if len(challenges) == MAX_CHALLENGES:
                raise ChallengeError(f"more than {MAX_CHALLENGES} challenges")
            challenges.append(_challenge(reader, scheme))
    return challenges


def _challenge(reader: _Reader, scheme: str) -> Challenge:
    """
    The rest of one challenge after its ``scheme``; the reader is left at the comma (or
    end) after it.
    """
    if reader.peek() not in (" ", "\t", ",", ""):
        raise ChallengeError(f"a malformed scheme at offset {reader.at}")
    reader.skip_space()
    parameters: dict[str, str] = {}
    if reader.peek() in (",", ""):
        return Challenge(scheme, parameters)
    if not reader.starts_parameter():
        token68 = reader.token(_TOKEN68)
        while reader.peek() == "=":
            reader.at += 1
            token68 += "="
        reader.skip_space()
        if not token68 or reader.peek() not in (",", ""):
            raise ChallengeError(f"a malformed token68 at offset {reader.at}")
        return Challenge(scheme, parameters, token68)
    while True:
        name = reader.token().lower()
        reader.skip_space()
        reader.at += 1  # the "=" starts_parameter saw
        reader.skip_space()
        if reader.peek() == '"':
            value = reader.quoted()
        else:
            value = reader.token()
            if not value:
                raise ChallengeError(f"a parameter without a value at offset {reader.at}")
        if name in parameters:
            raise ChallengeError(f"the parameter {name!r} twice")
        if len(parameters) == MAX_PARAMETERS:
            raise ChallengeError(f"more than {MAX_PARAMETERS} parameters")
        parameters[name] = value
        reader.skip_space()
        if reader.peek() == "":
            return Challenge(scheme, parameters)
        if reader.peek() != ",":
            raise ChallengeError(f"a malformed parameter list at offset {reader.at}")
        # A comma: another parameter of this challenge, or the next challenge.
        while reader.peek() in (" ", "\t", ","):
            reader.at += 1
        if not reader.starts_parameter():
            return Challenge(scheme, parameters)


def _quote(text: str) -> str:
    """
    ``text`` as a quoted-string.
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def request_uri(url: str) -> str:
    """
    The request-target of ``url`` (its path and query), as a Digest ``uri``.
    """
    parts = urllib.parse.urlsplit(url)
    return (parts.path or "/") + ("?" + parts.query if parts.query else "")


def _usable_digest(challenge: Challenge) -> bool:
    """
    Whether this module can answer ``challenge``: Digest, with a realm and a nonce, a
    known algorithm, and ``qop`` absent or offering ``auth``.
    """
    if challenge.scheme.lower() != "digest":
        return False
    p = challenge.parameters
    if "realm" not in p or "nonce" not in p:
        return False
    algorithm = p.get("algorithm", "MD5")
    if not algorithm.isascii() or algorithm.upper() not in _ALGORITHMS:
        return False  # not ASCII: "\xdf".upper() is "SS"
    offered = [q.strip().lower() for q in p.get("qop", "auth").split(",")]
    return "auth" in offered


def digest_authorization(
    challenge: Challenge,
    credentials: tuple[str, str],
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """
    The ``Authorization`` value answering the Digest ``challenge`` (RFC 7616 section
    3.4; RFC 2069's form when it offers no ``qop``).

    :param uri: the request-target (see :func:`request_uri`).
    :param nc: how many requests this nonce has answered, this one included.
    :param cnonce: the client nonce (default: 128 random bits).
    """
    p = challenge.parameters
    algorithm = p.get("algorithm", "MD5").upper()
    h = _ALGORITHMS[algorithm]
    user, password = credentials
    realm, nonce = p["realm"], p["nonce"]
    cnonce = cnonce if cnonce is not None else secrets.token_hex(16)
    ha1 = h(f"{user}:{realm}:{password}".encode())
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    qop = "auth" if "qop" in p else None
    if qop:
        response = h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode())
    else:
        response = h(f"{ha1}:{nonce}:{ha2}".encode())
    fields: list[str] = []
    if p.get("userhash", "").lower() == "true":
        fields += [f"username={_quote(h(f'{user}:{realm}'.encode()))}", "userhash=true"]
    elif user.isascii() and user.isprintable():
        fields.append(f"username={_quote(user)}")
    else:
        fields.append(f"username*=UTF-8''{urllib.parse.quote(user, safe='')}")
    fields += [
        f"realm={_quote(realm)}",
        f"uri={_quote(uri)}",
        f"algorithm={p.get('algorithm', 'MD5')}",
        f"nonce={_quote(nonce)}",
    ]
    if qop:
        fields += [f"nc={nc:08x}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
    fields.append(f"response={_quote(response)}")
    if "opaque" in p:
        fields.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(fields)


class Authenticator:
    """
    The ``Authorization`` one URL's requests carry, under one ``-u`` mode.

    The callers send :meth:`preemptive`'s value (if any) with each request to the URL's
    own origin, and on a ``401`` from that origin (to a request sent without an
    ``Authorization`` of the user's own) retry once with :meth:`answer`'s value (if any).

    :param credentials: ``(user, password)``, or ``None`` (nothing is ever sent).
    :param mode: one of :data:`MODES`.
    """

    def __init__(self, credentials: tuple[str, str] | None, mode: str = "basic") -> None:
        if mode not in MODES:
            raise ValueError(f"the authentication mode must be one of {MODES}, not {mode!r}")
        self.credentials = credentials
        self.mode = mode
        #: How many requests each nonce has answered.
        self.counts: dict[str, int] = {}

    def preemptive(self) -> str | None:
        """
        The ``Authorization`` value sent before any challenge (Basic, in ``basic`` mode).
        """
        if self.credentials is None or self.mode != "basic":
            return None
        return semantics.basic_authorization(self.credentials)

    def answer(self, method: str, uri: str, values: Sequence[str]) -> str | None:
        """
        The ``Authorization`` value answering the ``WWW-Authenticate`` field ``values``
        of a ``401`` to ``method uri``, or ``None`` when there is nothing to answer with
        (no credentials, ``basic`` mode, or no usable, well-formed challenge).
        """
        if self.credentials is None or self.mode == "basic":
            return None
        try:
            challenges = parse_challenges(values)
        except ChallengeError:
            return None
        digests = [c for c in challenges if _usable_digest(c)]
        if digests:
            order = list(_ALGORITHMS)
            best = min(
                digests, key=lambda c: order.index(c.parameters.get("algorithm", "MD5").upper())
            )
            nonce = best.parameters["nonce"]
            if nonce not in self.counts and len(self.counts) >= MAX_CHALLENGES:
                self.counts.clear()
            self.counts[nonce] = self.counts.get(nonce, 0) + 1
            return digest_authorization(best, self.credentials, method, uri, self.counts[nonce])
        if self.mode == "any" and any(c.scheme.lower() == "basic" for c in challenges):
            return semantics.basic_authorization(self.credentials)
        return None


def unauthorized_detail(values: Sequence[str], mode: str) -> str:
    """
    What a ``401``'s ``WWW-Authenticate`` field ``values`` asks of the user, as a clause
    for the failure sentence (``""`` when the field is absent).  It names the options by
    their long names, which every tool that prints it takes (``journey fetch``, its twin,
    ``journey mirror`` and ``twistd journey-fetch``, where ``-u`` is ``--urls``).
    """
    try:
        challenges = parse_challenges(values)
    except ChallengeError:
        return "its WWW-Authenticate header is malformed, so it was not answered"
    names: list[str] = []
    for challenge in challenges:
        name = challenge.scheme[:32]
        known = {"basic": "Basic", "digest": "Digest"}.get(name.lower(), name)
        if known not in names:
            names.append(known)
    if not names:
        return ""
    asked = " or ".join(names)
    if "Digest" in names and mode == "basic":
        return f"it asks for {asked} authentication: use --digest or --anyauth with --user"
    if "Basic" in names and mode == "digest" and "Digest" not in names:
        return f"it asks for {asked} authentication: use --anyauth, or --user without --digest"
    if "Digest" in names or "Basic" in names:
        return f"it asks for {asked} authentication: check --user USER:PASSWORD"
    return f"it asks for {asked} authentication, which journey does not do"
