# -*- test-case-name: tests.test_fetch_integration,tests.test_fetch_answers -*-
"""
The default agent of :class:`~twisted_journey.fetch.client.Fetcher`: what Twisted's ``Agent``
does not do by itself.

- :class:`EnvironmentAgent` honours ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (decided
  by :func:`twisted_journey.fetch.semantics.proxy_for`): plain http goes through ``ProxyAgent``,
  https through a ``CONNECT`` tunnel (:class:`TunnelEndpoint`) with TLS inside it, so
  the proxy never sees the request in clear.
- :class:`TLSPolicy` verifies against the system CAs, or only those of a ``--cacert``
  file, or (``--insecure``) not at all.
- :func:`journeyPool` bounds response headers and marks a response whose server sent
  bytes past its ``Content-Length`` (Twisted drops them silently), so a too-long body is
  an error.
- :func:`classify` turns what ``Agent``, ``RedirectAgent`` and the body fail with
  (``ResponseNeverReceived``, ``_DataLoss``, ``SSL.Error``, ...) into the
  :class:`~twisted_journey.fetch.errors.FetchError` a person and a caller can use.
"""

from __future__ import annotations

import base64
import sys
from typing import Any
from urllib.request import getproxies

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, HTTPConnectionPool, ProxyAgent, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from twisted_journey import errors
from twisted_journey.fetch import semantics
from twisted_journey.fetch.body import Deadline
from twisted_journey.fetch.errors import (
    FetchError,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
    TooManyRedirects,
    UnsupportedURL,
    chunk_line_too_long,
    cut_mid_response,
    cut_short,
    malformed_chunk,
    proxy_failure,
)
from twisted_journey.fetch.settings import CONNECT_TIMEOUT, FetchSettings

__all__ = [
    "CertificateRejected",
    "EnvironmentAgent",
    "TLSEndpoint",
    "TLSPolicy",
    "TunnelEndpoint",
    "classify",
    "journeyPool",
]

_DONE = Failure(ResponseDone())


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """
    TLS without certificate verification (``--insecure``), still sending SNI.
    """

    def __init__(self, hostname: bytes) -> None:
        from twisted.internet.ssl import CertificateOptions

        self._hostname = hostname
        self._context = CertificateOptions().getContext()

    def clientConnectionForTLS(self, tlsProtocol: object) -> Any:
        """
        A client TLS connection for ``tlsProtocol``.
        """
        from OpenSSL import SSL

        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        connection.set_tlsext_host_name(self._hostname)
        connection.set_connect_state()
        return connection


@implementer(IPolicyForHTTPS)
class TLSPolicy:
    """
    Verify servers against the system's CAs, or only those in ``cacert``; or, with
    ``insecure``, not at all.
    """

    def __init__(self, cacert: str | None = None, insecure: bool = False) -> None:
        self.insecure = insecure
        self._trustRoot: Any = None
        if cacert is not None:
            from twisted.internet.ssl import Certificate, trustRootFromCertificates

            try:
                with open(cacert, "rb") as f:
                    pem = f.read()
                marker = b"-----END CERTIFICATE-----"
                blocks = [b + marker for b in pem.split(marker) if b"-----BEGIN" in b]
                self._trustRoot = trustRootFromCertificates(
                    [Certificate.loadPEM(block) for block in blocks]
                )
            except Exception as e:
                raise TLSError(f"cannot use --cacert {cacert!r}: {e}.") from None
            if not blocks:
                raise TLSError(f"--cacert {cacert!r} holds no PEM certificate.")

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """
        The connection creator for ``hostname``: verifying (naming what is wrong with a
        refused certificate), or with ``insecure`` not.
        """
        if self.insecure:
            return _Unverified(hostname)
        from twisted.internet.ssl import optionsForClientTLS

        name = hostname.decode("ascii")
        return _Diagnosing(optionsForClientTLS(name, trustRoot=self._trustRoot), name)


#: OpenSSL's X509_V_ERR_* codes a person meets, and what they mean.
_CERTIFICATE_PROBLEMS = {
    2: "its issuer's certificate is not available",
    9: "the certificate is not valid yet",
    10: "the certificate has expired",
    18: "the certificate is self-signed and not trusted (use --cacert FILE to trust it)",
    19: "the certificate chain ends in an untrusted self-signed certificate "
    "(use --cacert FILE to trust its CA)",
    20: "the certificate is signed by an untrusted or unknown CA "
    "(use --cacert FILE to trust its CA)",
    21: "the certificate is signed by an untrusted or unknown CA "
    "(use --cacert FILE to trust its CA)",
    23: "the certificate has been revoked",
    26: "the certificate is not meant for a TLS server",
}


def _patternText(pattern: Any) -> str:
    """
    The host name or address a certificate's ``service_identity`` pattern names.
    """
    value = getattr(pattern, "pattern", None)
    if value is None:
        value = getattr(pattern, "ip", pattern)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


class CertificateRejected(Exception):  # noqa: N818
    """
    Why a server's certificate was refused (expired, untrusted, another host name), the
    reason a TLS connection is aborted with; :func:`classify` makes it a ``TLSError``.
    """


@implementer(IOpenSSLClientConnectionCreator)
class _Diagnosing:
    """
    Twisted's verifying connection creator, with a verify callback that checks the chain
    as OpenSSL did and the host name as Twisted does (``service_identity``), and on
    failure aborts the handshake (``TLSMemoryBIOProtocol.failVerification``) with a
    :class:`CertificateRejected` naming the problem: the failure says what is wrong,
    nothing is logged, and no traceback reaches stderr.
    """

    def __init__(self, creator: Any, hostname: str) -> None:
        self.creator = creator
        self.hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: object) -> Any:
        """
        A client TLS connection for ``tlsProtocol``.
        """
        from OpenSSL import SSL
        from service_identity import VerificationError
        from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
        from service_identity.pyopenssl import extract_patterns

        connection = self.creator.clientConnectionForTLS(tlsProtocol)
        hostname = self.hostname
        try:
            import ipaddress

            ipaddress.ip_address(hostname)
            wanted: Any = IPAddress_ID(hostname)
        except ValueError:
            wanted = DNS_ID(hostname)

        rejected = False

        def reject(problem: str) -> bool:
            nonlocal rejected
            if not rejected:
                rejected = True
                tlsProtocol.failVerification(Failure(CertificateRejected(problem)))  # type: ignore[attr-defined]
            return False

        def verify(conn: Any, cert: Any, err: int, depth: int, ok: int) -> bool:
            if rejected:
                return False
            if not ok:
                return reject(_CERTIFICATE_PROBLEMS.get(err, f"certificate verify error {err}"))
            if depth == 0:
                try:
                    verify_service_identity(extract_patterns(cert), [wanted], [])
                except VerificationError:
                    names = ", ".join(_patternText(p) for p in extract_patterns(cert))
                    return reject(
                        f"the certificate is for {names or 'no host name'}, not {hostname}"
                    )
            return True

        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
        return connection


def _proxyAuthorization(proxy: str) -> bytes | None:
    """
    A ``Proxy-Authorization`` value for ``http://user:password@host`` proxies.
    """
    parts = URI.fromBytes(proxy.encode("ascii"))
    userinfo = parts.netloc.rpartition(b"@")[0]
    if not userinfo:
        return None
    from urllib.parse import unquote_to_bytes

    user, _, password = userinfo.partition(b":")
    credentials = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
    return b"Basic " + base64.b64encode(credentials)


def _hostPort(proxy: str) -> tuple[str, int]:
    """
    The host and port of a proxy URL (port 80 when absent).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(proxy)
    return parts.hostname or "", parts.port or 80


class _TunnelProtocol(Protocol):
    """
    Asks a proxy to ``CONNECT`` to the target, then hands the connection (and every byte
    after the proxy's answer) to the real protocol, which starts TLS.
    """

    def __init__(self, target: bytes, auth: bytes | None, factory: Any, ready: Deferred[Any]):
        self.target = target
        self.auth = auth
        self.wrappedFactory = factory
        self.ready = ready
        self.buffer = b""
        self.wrapped: Any = None

    def connectionMade(self) -> None:
        """
        Send the ``CONNECT`` request.
        """
        lines = [b"CONNECT " + self.target + b" HTTP/1.1", b"Host: " + self.target]
        if self.auth:
            lines.append(b"Proxy-Authorization: " + self.auth)
        self.transport.write(b"\r\n".join([*lines, b"", b""]))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        """
        Read the proxy's answer; after a 200, pass every byte to the real protocol.
        """
        if self.wrapped is not None:
            self.wrapped.dataReceived(data)
            return
        self.buffer += data
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        if not found:
            if len(self.buffer) > 65536:
                self._refuse(b"an endless answer")
            return
        status = head.split(b"\r\n", 1)[0]
        fields = status.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or fields[1] != b"200":
            self._refuse(status)
            return
        self.wrapped = self.wrappedFactory.buildProtocol(self.transport.getPeer())  # type: ignore[union-attr]
        self.wrapped.makeConnection(self.transport)
        ready, self.ready = self.ready, None  # type: ignore[assignment]
        ready.callback(self.wrapped)
        if rest:
            self.wrapped.dataReceived(rest)

    def _refuse(self, status: bytes) -> None:
        """
        The proxy said no: fail the connection attempt with its status line.
        """
        ready, self.ready = self.ready, None  # type: ignore[assignment]
        text = status.decode("latin-1")
        ready.errback(
            NetworkError(f"the proxy refused to CONNECT to {self.target.decode()}: {text!r}.")
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """
        Pass the loss on, or fail the attempt when the tunnel never opened.
        """
        if self.wrapped is not None:
            self.wrapped.connectionLost(reason)
        elif self.ready is not None:
            ready, self.ready = self.ready, None  # type: ignore[assignment]
            ready.errback(NetworkError("the proxy closed the connection during CONNECT."))


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """
    Connects to ``host``:``port`` through an HTTP proxy's ``CONNECT`` tunnel; a failure
    to reach the proxy names ``proxy`` (its URL), not the target.
    """

    def __init__(
        self,
        proxyEndpoint: Any,
        host: str,
        port: int,
        auth: bytes | None = None,
        proxy: str = "http://proxy:3128",
    ):
        self.proxyEndpoint = proxyEndpoint
        self.proxy = proxy
        self.target = (
            f"{host}:{port}".encode("idna") if ":" not in host else f"[{host}]:{port}".encode()
        )
        self.auth = auth

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect to the proxy, ask for the tunnel, then start ``protocolFactory``'s protocol in it.
        """
        ready: Deferred[Any] = Deferred()
        factory = Factory.forProtocol(
            lambda: _TunnelProtocol(self.target, self.auth, protocolFactory, ready)
        )

        def failed(failure: Failure) -> None:
            """
            The proxy could not be reached: fail the attempt.
            """
            if not ready.called:
                ready.errback(failure)

        self.proxyEndpoint.connect(factory).addErrback(failed)
        return ready.addErrback(self.proxyFailure)

    def proxyFailure(self, failure: Failure) -> Any:
        """
        A failure to reach the proxy, as a :class:`NetworkError` naming the proxy.
        """
        return _proxyFailure(failure, self.proxy)


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """
    Endpoints for direct connections, and for https through a ``CONNECT`` proxy.
    """

    def __init__(self, reactor: Any, settings: FetchSettings, policy: IPolicyForHTTPS) -> None:
        self.reactor = reactor
        self.settings = settings
        self.policy = policy
        # Read once: urllib's getproxies() scans the whole environment on every call.
        self.proxies = settings.proxies if settings.proxies is not None else getproxies()
        self._tcp: dict[tuple[str, int], Any] = {}

    def tcp(self, host: str, port: int) -> Any:
        """
        The (cached) TCP endpoint for ``host``:``port``, with the connect timeout.

        An IP address is connected to as it is: no name resolution (a thread and a
        ``getaddrinfo`` per connection) and no IDNA encoding (``HostnameEndpoint`` loads
        the ``idna`` package's tables for any host name, an address included).
        """
        endpoint = self._tcp.get((host, port))
        if endpoint is None:
            timeout = self.settings.connectTimeout or CONNECT_TIMEOUT
            kind: Any = HostnameEndpoint
            if isIPAddress(host):
                kind = TCP4ClientEndpoint
            elif isIPv6Address(host) and "%" not in host:
                kind = TCP6ClientEndpoint
            endpoint = self._tcp[host, port] = kind(self.reactor, host, port, timeout=timeout)
        return endpoint

    def endpointForURI(self, uri: URI) -> Any:
        """
        The endpoint for ``uri``: TCP, or TLS over TCP or over a ``CONNECT`` tunnel.
        """
        host = uri.host.decode("ascii")
        if uri.scheme != b"https":
            return self.tcp(host, uri.port)
        url = f"https://{host}:{uri.port}/"
        proxy = semantics.proxy_for(url, self.proxies)
        if proxy:
            inner: Any = TunnelEndpoint(
                self.tcp(*_hostPort(proxy)),
                host,
                uri.port,
                _proxyAuthorization(proxy),
                proxy,
            )
        else:
            inner = self.tcp(host, uri.port)
        return TLSEndpoint(self.policy.creatorForNetloc(uri.host, uri.port), inner)


@implementer(IStreamClientEndpoint)
class TLSEndpoint:
    """
    TLS over ``inner``, as ``twisted.internet.endpoints.wrapClientTLS`` makes it, but
    importing pyOpenSSL (``twisted.protocols.tls``) only when it first connects, so the
    fetcher runs where Twisted was loaded without TLS support
    (:mod:`twisted_journey.fetch.lazytls`).

    :param creator: the ``IOpenSSLClientConnectionCreator`` for the server.
    :param inner: the endpoint of the connection (TCP, or a ``CONNECT`` tunnel).
    """

    def __init__(self, creator: Any, inner: Any) -> None:
        self.creator = creator
        self.inner = inner

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect ``inner``, run TLS over it; fire with ``protocolFactory``'s protocol.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        tls = TLSMemoryBIOFactory(self.creator, True, protocolFactory)
        return self.inner.connect(tls).addCallback(lambda protocol: protocol.wrappedProtocol)


@implementer(IAgent)
class EnvironmentAgent:
    """
    An agent that honours the proxy settings: plain http through ``ProxyAgent`` when a
    proxy applies, everything else (https tunnelled or direct) through ``Agent``.
    """

    def __init__(self, reactor: Any, pool: HTTPConnectionPool, settings: FetchSettings) -> None:
        self.reactor = reactor
        self.pool = pool
        self.settings = settings
        self.endpoints = _Endpoints(
            reactor, settings, TLSPolicy(settings.cacert, settings.insecure)
        )
        self.direct = Agent.usingEndpointFactory(reactor, self.endpoints, pool)
        self._proxyAgents: dict[str, ProxyAgent] = {}

    def request(
        self, method: bytes, uri: bytes, headers: Headers | None = None, bodyProducer: Any = None
    ) -> Deferred[IResponse]:
        """
        Issue the request directly or through the proxy the environment gives.
        """
        url = uri.decode("ascii")
        proxy = (
            semantics.proxy_for(url, self.endpoints.proxies) if url.startswith("http:") else None
        )
        if not proxy:
            return self.direct.request(method, uri, headers, bodyProducer)
        agent = self._proxyAgents.get(proxy)
        if agent is None:
            endpoint = self.endpoints.tcp(*_hostPort(proxy))
            agent = self._proxyAgents[proxy] = ProxyAgent(endpoint, self.reactor, self.pool)
        auth = _proxyAuthorization(proxy)
        if auth:
            headers = headers.copy() if headers is not None else Headers()
            headers.setRawHeaders(b"proxy-authorization", [auth])
        d = agent.request(method, uri, headers, bodyProducer)
        return d.addErrback(_proxyFailure, proxy)


def _proxyFailure(failure: Failure, proxy: str) -> Any:
    """
    Re-raise a failure to connect to ``proxy`` as a :class:`NetworkError` naming the
    proxy (not the target, which was never reached); pass other failures through.
    """
    from twisted.internet import error

    host, port = _hostPort(proxy)
    if failure.check(error.ConnectionRefusedError):
        raise proxy_failure(errors.REFUSED, host, port)
    if failure.check(error.DNSLookupError):
        raise proxy_failure(errors.RESOLVE, host, port)
    if failure.check(error.TimeoutError):
        raise proxy_failure(errors.TIMEOUT, host, port)
    if failure.check(error.ConnectError) and not failure.check(error.ConnectingCancelledError):
        raise proxy_failure(errors.UNREACHABLE, host, port, str(failure.value))
    return failure


def journeyPool(reactor: Any, maxHeaderBytes: int, maxHeaders: int) -> HTTPConnectionPool:
    """
    A persistent pool whose connections bound response headers (size and count) and
    notice bytes past a response's ``Content-Length``; see
    ``twisted_journey.fetch._twisted.journeyPool``, home of the Twisted internals it needs.
    """
    from twisted_journey.fetch import _twisted

    return _twisted.journeyPool(reactor, maxHeaderBytes, maxHeaders)


# --- classifying failures ----------------------------------------------------------------------


def classify(
    failure: Failure, url: str, deadline: Deadline | None = None, reported: str | None = None
) -> FetchError:
    """
    The :class:`FetchError` for a failure of the agent or the body.

    :param url: the URL requested when it failed (a redirect hop: its host and port are
        the ones named).
    :param reported: the URL the caller asked for, recorded on the error (default ``url``).
    """
    error = _classify(failure, url, deadline)
    if reported is not None and (not error.url or error.url == url):
        error.url = reported
    return error


def _classify(failure: Failure, url: str, deadline: Deadline | None) -> FetchError:
    """
    The :class:`FetchError` for ``failure``, naming ``url``'s host and port.
    """
    # A TLS failure needs TLS to have been loaded: never import it just to classify.
    identity = sys.modules.get("service_identity")
    VerificationError = identity.VerificationError if identity else CertificateRejected
    SSL = sys.modules.get("OpenSSL.SSL")
    from twisted.internet import error
    from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived
    from twisted.web.error import InfiniteRedirection, RedirectWithNoLocation, SchemeNotSupported

    from twisted_journey.fetch._twisted import DataLoss, MalformedChunks

    value = failure.value
    if isinstance(value, FetchError):
        if not value.url:
            value.url = url
        return value
    if deadline is not None and deadline.expired:
        return deadline.error(url)
    host, port = _hostPortOf(url)
    reasons = getattr(value, "reasons", None) or []
    for reason in [failure, *reasons]:
        if reason.check(CertificateRejected):
            return TLSError(f"TLS with {host} port {port} failed: {reason.value}.", url)
        if reason.check(VerificationError):
            return TLSError(
                f"TLS with {host} port {port} failed: the certificate is not for {host}.", url
            )
        if reason.check(InfiniteRedirection):
            return TooManyRedirects(f"too many redirects (more than --max-redirs) from {url}.", url)
        if reason.check(RedirectWithNoLocation):
            return ProtocolError("a redirect without a Location header.", url)
        if reason.check(MalformedChunks):
            # Before DataLoss: a broken chunked framing also ends the body early.
            return _malformedChunks(reason.value, url)
        if reason.check(DataLoss):
            return cut_short(url)
        if reason.check(FetchError):
            return _classify(reason, url, deadline)
        if SSL is not None and reason.check(SSL.Error):
            why = _sslReason(reason.value)
            hint = " (use --cacert FILE to trust its CA)" if "CA" in why else ""
            return TLSError(f"TLS with {host} port {port} failed: {why}{hint}.", url)
    if failure.check(error.DNSLookupError):
        return NetworkError(errors.connect_failure(errors.RESOLVE, host, port), url)
    if failure.check(error.ConnectionRefusedError):
        return NetworkError(errors.connect_failure(errors.REFUSED, host, port), url)
    if failure.check(error.TimeoutError):
        return Timeout(f"cannot connect to {host} port {port} in time (--connect-timeout).", url)
    if failure.check(CancelledError):
        return FetchError("the transfer was cancelled.", url)
    if failure.check(SchemeNotSupported):
        return UnsupportedURL(f"{url!r} is not an http:// or https:// URL.", url)
    if failure.check(error.ConnectError):
        return NetworkError(errors.connect_failure(errors.UNREACHABLE, host, port, str(value)), url)
    if failure.check(ResponseNeverReceived):
        return NetworkError(f"{host} port {port} closed the connection without answering.", url)
    if failure.check(ResponseFailed, RequestTransmissionFailed):
        return cut_mid_response(host, port, url)
    return FetchError(f"{type(value).__name__}: {value}", url)


def _malformedChunks(value: BaseException, url: str) -> FetchError:
    """
    The framing error for Twisted's verdict on a chunked body, in the words the stdlib
    twin uses for the same bytes.
    """
    from twisted_journey.fetch._twisted import MAX_CHUNK_LINE

    text = str(value)
    if "exceeds maximum" in text:
        error = chunk_line_too_long(MAX_CHUNK_LINE)
    else:
        error = malformed_chunk(text.rstrip(".").lower())
    error.url = url
    return error


def _sslReason(value: BaseException) -> str:
    """
    The OpenSSL reason text in an ``SSL.Error``.
    """
    try:
        return str(value.args[0][0][2])
    except (IndexError, TypeError):
        return str(value)


def _hostPortOf(url: str) -> tuple[str, int | str]:
    """
    The host and port (``?`` when invalid) of ``url``, for messages.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port: int | str = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = "?"
    return parts.hostname or "", port
