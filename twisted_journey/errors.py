# -*- test-case-name: tests.test_cli -*-
"""
Where the journey clients connect, and the sentences they print when a server cannot be
reached or its TLS certificate is refused; stdlib only.

The Twisted clients and their stdlib twins classify a failure into one of the kinds below
and print :func:`connect_failure`'s or :func:`tls_failure`'s sentence, so both engines say
the same thing.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass

__all__ = [
    "EXPIRED",
    "HANDSHAKE",
    "MISMATCH",
    "NOT_YET_VALID",
    "REFUSED",
    "RESOLVE",
    "TIMEOUT",
    "UNREACHABLE",
    "UNTRUSTED",
    "ClientError",
    "Target",
    "certificate_problem",
    "connect",
    "connect_failure",
    "describe_os_error",
    "place",
    "plural",
    "tls_failure",
]

RESOLVE = "resolve"
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"

# The kinds of TLS failure tls_failure describes:

#: The certificate is not signed by an authority the client trusts.
UNTRUSTED = "untrusted"
#: The certificate does not name the host the client asked for.
MISMATCH = "mismatch"
#: The certificate's validity ended.
EXPIRED = "expired"
#: The certificate's validity has not begun.
NOT_YET_VALID = "not yet valid"
#: Any other TLS failure; the sentence carries the TLS library's reason.
HANDSHAKE = "handshake"


@dataclass(frozen=True)
class Target:
    """
    Where a client connects, and how.

    :ivar host: the server's host name or address (the name its TLS certificate must
        carry), or a unix socket's path when ``port`` is ``None``.
    :ivar port: the TCP port; ``None`` for a unix socket.
    :ivar tls: speak TLS, verifying the server's certificate and host name.
    :ivar cacert: a PEM file of the authorities to trust; the system's when ``None``.
    """

    host: str
    port: int | None = None
    tls: bool = False
    cacert: str | None = None

    @property
    def path(self) -> str | None:
        """
        The unix socket path, or ``None`` for a TCP target.
        """
        return self.host if self.port is None else None

    def __str__(self) -> str:
        return place(self.host, self.port)


def place(host: str, port: int | str | None) -> str:
    """
    How sentences name a server: ``HOST port PORT`` (``[::1] port PORT`` for an IPv6
    address), or ``unix socket PATH`` when there is no port.
    """
    if port is None or port == "":
        return f"unix socket {host}"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address, written as in a URL
    return f"{host} port {port}"


def connect_failure(
    kind: str, host: str, port: int | str | None, detail: str = "", timeout: float | None = None
) -> str:
    """
    One sentence saying why ``host``/``port`` could not be talked to.

    :param kind: :data:`RESOLVE`, :data:`REFUSED`, :data:`TIMEOUT` or :data:`UNREACHABLE`.
    :param port: ``None`` when ``host`` is a unix socket path.
    :param detail: the system's reason, for :data:`UNREACHABLE`.
    :param timeout: the limit that ran out, for :data:`TIMEOUT`.
    """
    where = place(host, port)
    if kind == RESOLVE:
        return f"cannot resolve host name {host!r}."
    if kind == REFUSED:
        return f"connection to {where} refused: is the server running?"
    if kind == TIMEOUT:
        return f"no complete answer from {where} within {timeout:g} seconds."
    return f"cannot reach {where}: {detail or 'unknown error'}."


def tls_failure(kind: str, host: str, port: int | str | None, detail: str = "") -> str:
    """
    One sentence saying why the TLS connection to ``host``/``port`` was refused.

    :param kind: :data:`UNTRUSTED`, :data:`MISMATCH`, :data:`EXPIRED`,
        :data:`NOT_YET_VALID`, or :data:`HANDSHAKE` for any other TLS failure.
    :param detail: the TLS library's reason, for :data:`HANDSHAKE`.
    """
    where = f"refused the TLS certificate of {place(host, port)}"
    if kind == UNTRUSTED:
        return (
            f"{where}: it is not signed by a trusted authority "
            "(give the authority's certificate with --cacert FILE)."
        )
    if kind == MISMATCH:
        return f"{where}: it is not valid for the name {host!r}."
    if kind == EXPIRED:
        return f"{where}: it has expired."
    if kind == NOT_YET_VALID:
        return f"{where}: it is not valid yet."
    return f"TLS with {place(host, port)} failed: {detail or 'unknown error'}."


#: OpenSSL's ``X509_V_ERR_*`` verification codes with a sentence of their own.
_VERIFY_CODES = {9: NOT_YET_VALID, 10: EXPIRED, 62: MISMATCH, 64: MISMATCH}


def certificate_problem(
    verify_code: int | None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> str:
    """
    The kind of a certificate verification failure: from OpenSSL's verification code
    when there is one, else from the certificate's validity dates; otherwise
    :data:`UNTRUSTED`.
    """
    if verify_code in _VERIFY_CODES:
        return _VERIFY_CODES[verify_code]
    now = datetime.datetime.now(datetime.timezone.utc)
    if not_after is not None and now > not_after:
        return EXPIRED
    if not_before is not None and now < not_before:
        return NOT_YET_VALID
    return UNTRUSTED


def plural(count: int, noun: str) -> str:
    """
    ``count`` and ``noun``, with an ``s`` unless ``count`` is 1, for the sentences the
    servers and clients print.

    >>> plural(1, "connection"), plural(2, "URL")
    ('1 connection', '2 URLs')
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class ClientError(Exception):
    """
    A stdlib client failed: it could not connect, the exchange failed or ran out of time,
    or its input could not be read.  ``str()`` is one sentence for a person.
    """


def describe_os_error(
    error: OSError, host: str, port: int | str | None, timeout: float | None = None
) -> str:
    """
    :func:`connect_failure`'s (or for a TLS error :func:`tls_failure`'s) sentence for a
    socket error talking to ``host``/``port``.
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        return tls_failure(certificate_problem(error.verify_code), host, port)
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError):
        # OpenSSL's reason as Twisted (pyOpenSSL) gives it: "wrong version number".
        reason = error.reason.lower().replace("_", " ") if error.reason else ""
        return tls_failure(HANDSHAKE, host, port, reason or error.strerror or str(error))
    if isinstance(error, socket.gaierror):
        kind = RESOLVE
    elif isinstance(error, ConnectionRefusedError):
        kind = REFUSED
    elif isinstance(error, TimeoutError):
        kind = TIMEOUT
    else:
        kind = UNREACHABLE
    return connect_failure(kind, host, port, error.strerror or str(error), timeout)


def connect(target: Target, timeout: float) -> socket.socket:
    """
    A connected socket for the stdlib clients: TCP (``socket.create_connection``) or
    unix, and with ``target.tls`` a TLS socket whose handshake is done, the server's
    certificate verified against ``target.cacert`` (the system's authorities by default)
    and its host name checked.  A failure is raised as :class:`ClientError` with its
    sentence.
    """
    try:
        if target.port is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(target.host)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
        if target.tls:
            try:
                context = ssl.create_default_context(cafile=target.cacert)
                sock = context.wrap_socket(sock, server_hostname=target.host)
            except BaseException:
                sock.close()
                raise
        return sock
    except OSError as e:
        raise ClientError(describe_os_error(e, target.host, target.port, timeout)) from None
