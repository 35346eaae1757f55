# -*- test-case-name: tests.test_fetch_api,tests.test_fetch_answers -*-
"""
Download HTTP(S) URLs to files on ``twisted.web.client``: streaming, bounded, and safe.

The chapter's one-liner, ``urllib.request.urlretrieve(url, filename)``, becomes::

    from twisted.internet.defer import Deferred
    from twisted.internet.task import react
    from twisted_journey.fetch import retrieve

    async def main(reactor):
        filename, headers = await retrieve("https://example.org/big.iso", "big.iso")

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))

For more than one URL, build a :class:`Fetcher` (it holds the agent, its connection pool
and the settings) and call :meth:`Fetcher.retrieve` for each; at most
``FetchSettings.parallel`` transfers run at once.

What it guarantees, which ``Agent`` and ``readBody`` alone do not:

- the body streams to ``NAME.part`` through ``deliverBody`` (a disk-writer thread takes
  it; the transport is paused while the thread is behind), and is renamed to ``NAME``
  only when it is complete and verified: a short, long or unframed body, a timeout, a
  bad checksum or an HTTP status of 400 or more leaves no ``NAME`` and no ``.part``;
- an idle timeout (no byte for N seconds) and a total time limit cover the body too;
- retries with exponential backoff honouring ``Retry-After``; ``Range`` resume;
  conditional GET with a remembered ETag / Last-Modified;
- gzip/deflate decoding (opt-in) with caps on decoded size and ratio (no bombs);
- ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` from the environment, with ``CONNECT``
  tunnelling for https; ``cacert`` and (loudly) ``insecure`` TLS.

Failures are the :class:`twisted_journey.fetch.errors.FetchError` subclasses (shared with the
stdlib twin), each with a sentence and an exit status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    UNKNOWN_LENGTH,
    IAgent,
    IResponse,
)

from twisted_journey.fetch import auth, cookies, naming, safefiles, semantics, sinks, validators
from twisted_journey.fetch.agent import EnvironmentAgent, classify, journeyPool
from twisted_journey.fetch.body import BodyReceiver, Deadline, Decoder, Spool, abandon
from twisted_journey.fetch.errors import (
    ChecksumMismatch,
    FetchError,
    FileError,
    HTTPStatusError,
    ProtocolError,
    TooLarge,
    TooManyRedirects,
    TruncatedBody,
    UnsupportedURL,
    cut_short,
    describe_url,
    unfollowed_status,
)
from twisted_journey.fetch.settings import FetchSettings
from twisted_journey.fetch.sinks import PartFile

__all__ = ["Fetched", "Fetcher", "Retrieved", "retrieve"]

MiB = 1 << 20
_DONE = Failure(ResponseDone())
GiB = 1 << 30

_T = TypeVar("_T")


@attrs.frozen
class Retrieved:
    """
    A URL fetched to a file.  Unpacks like ``urlretrieve``'s result:
    ``filename, headers = retrieved``.

    :ivar changed: ``False`` when the server said 304 Not Modified (file untouched).
    :ivar skipped: ``True`` when ``noClobber`` found the file already there.
    """

    url: str
    filename: str
    headers: Headers
    status: int
    size: int
    changed: bool = True
    skipped: bool = False

    def __iter__(self) -> Any:
        return iter((self.filename, self.headers))


@attrs.frozen
class Fetched:
    """
    A body fetched into memory by :meth:`Fetcher.fetchBytes`.
    """

    url: str
    status: int
    headers: Headers
    content: bytes


# --- the fetcher -------------------------------------------------------------------------------


class Fetcher:
    """
    Fetches URLs to files (or memory) with one agent, one pool and one set of settings.

    :param reactor: the reactor (resolved late when ``None``).
    :param agent: an ``IAgent`` to use instead of the default (``Agent`` on a persistent
        pool, TLS verified, proxies from the environment); redirects are followed on
        top of it.
    :param settings: a :class:`FetchSettings`.
    """

    def __init__(
        self,
        reactor: Any = None,
        agent: IAgent | None = None,
        settings: FetchSettings | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.settings = settings or FetchSettings()
        self.pool: HTTPConnectionPool | None = None
        if agent is None:
            self.pool = journeyPool(reactor, self.settings.maxHeaderBytes, self.settings.maxHeaders)
            self.pool.maxPersistentPerHost = max(2, self.settings.parallel)
            agent = EnvironmentAgent(reactor, self.pool, self.settings)
        #: The agent each request (and each redirect hop, followed here) goes through.
        self.agent: IAgent = agent
        self.semaphore = DeferredSemaphore(self.settings.parallel)
        self._madeDirectories: set[str] = set()
        #: The file names transfers have claimed (by default, only while they run).
        self.names = naming.NameRegistry()
        #: The cookies sent and kept (``None``: no cookie engine).
        self.cookies = cookies.CookieEngine.fromOptions(
            self.settings.cookie, self.settings.cookieJar
        )

    def saveCookies(self) -> None:
        """
        Write the cookies to ``settings.cookieJar`` (if set).

        :raises FileError: when the jar cannot be written.
        """
        if self.cookies is not None:
            self.cookies.save()

    def close(self) -> Deferred[None]:
        """
        Close the pool's idle connections (call when done, and in test cleanups).
        """
        if self.pool is None:
            return Deferred.fromCoroutine(_nothing())
        return self.pool.closeCachedConnections()

    # -- public API

    def retrieve(
        self,
        url: str,
        filename: str | None = None,
        reporthook: Callable[[int, int, int], object] | None = None,
        *,
        outputDir: str | None = None,
        contentDisposition: bool = False,
        noClobber: bool = False,
        resume: bool = False,
        newer: bool = False,
        sha256: str | None = None,
        onlyIfChanged: bool = False,
        stream: bool = True,
        createDirs: bool = False,
    ) -> Deferred[Retrieved]:
        """
        Fetch ``url`` to a file; fire with a :class:`Retrieved` (which unpacks as
        ``(filename, headers)``), or fail with a :class:`FetchError`.

        :param filename: the file's name (default: from the URL, in ``outputDir``).
        :param reporthook: called as ``reporthook(blocknum, blocksize, totalsize)`` like
            ``urlretrieve``'s: once with ``blocknum=0`` when the body starts, then per
            block received (``blocksize`` is that block's size; ``totalsize`` is -1 when
            unknown).
        :param contentDisposition: use the server's ``Content-Disposition`` name (made safe).
        :param noClobber: do not replace an existing file (succeed with ``skipped``).
        :param resume: keep the ``.part`` on failure and continue it with ``Range``.
        :param newer: conditional GET against the existing file; a 304 leaves it alone.
        :param sha256: the hex digest the body must have.
        :param onlyIfChanged: when the body is byte for byte the existing file, leave the
            file alone (``changed`` is then false): for servers without validators.
        :param stream: when ``filename`` is ``-`` (standard output) or names a FIFO, a
            character device or a terminal, write the body into it as it arrives (no
            ``.part``, no resume); with ``False`` such a name is an error.  A name not
            chosen by the caller is never streamed into.
        :param createDirs: create the missing parent directories of ``filename``
            (``outputDir`` is always created).

        Two transfers of one :class:`Fetcher` running at once never write one name: the
        later fails with :class:`FileError` (see :attr:`names`).
        """
        options = _Options(
            filename,
            outputDir,
            contentDisposition,
            noClobber,
            resume,
            newer,
            sha256,
            onlyIfChanged,
            stream,
            createDirs,
        )
        return self.semaphore.run(
            lambda: Deferred.fromCoroutine(self._retrieve(url, options, reporthook))
        )

    def fetchBytes(self, url: str, maxSize: int = 10 * MiB) -> Deferred[Fetched]:
        """
        Fetch ``url`` into memory; fail with :class:`TooLarge` past ``maxSize`` bytes.
        """
        return self.semaphore.run(
            lambda: Deferred.fromCoroutine(_onlyFetchErrors(url, self._fetchBytes(url, maxSize)))
        )

    # -- internals

    async def _withRetries(self, url: str, attempt: Callable[[], Any]) -> Any:
        """
        Run ``attempt`` until it succeeds, fails for good, or ``retries`` run out, waiting
        with exponential backoff (or ``Retry-After``) in between.  The caller has checked
        ``url`` (:func:`~twisted_journey.fetch.semantics.check_url`).
        """
        settings = self.settings
        for number in range(settings.retries + 1):
            try:
                return await attempt()
            except FetchError as e:
                if not e.retryable or number == settings.retries:
                    raise
                delay = settings.retryDelay * (2**number)
                if isinstance(e, HTTPStatusError) and e.retryAfter is not None:
                    delay = e.retryAfter
                await deferLater(self.reactor, min(delay, settings.maxRetryDelay))
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers(self, extra: Mapping[str, str], identity: bool = False) -> Headers:
        """
        The request headers: ``User-Agent``, ``Accept-Encoding`` (``identity`` when
        resuming: a range of the decoded body is what the ``.part`` holds), ``--header``
        values and ``extra``.
        """
        headers = Headers()
        headers.setRawHeaders(b"user-agent", [self.settings.userAgent.encode("latin-1")])
        if identity:
            headers.setRawHeaders(b"accept-encoding", [b"identity"])
        elif self.settings.compressed:
            brotli = b", br" if "br" in semantics.decodable() else b""
            headers.setRawHeaders(b"accept-encoding", [b"gzip, deflate" + brotli])
        for name, value in [*self.settings.headers, *extra.items()]:
            headers.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1")])
        return headers

    async def _request(self, url: str, headers: Headers, deadline: Deadline) -> IResponse:
        """
        GET ``url``, following up to ``maxRedirects`` redirects to http(s) URLs only.

        Credentials (from the URL's ``user:password@``, else ``settings.credentials``,
        sent as ``settings.authMode`` says) go to ``url``'s own origin only (each URL of a run is its own first URL, as in
        curl); the :data:`~twisted_journey.fetch.semantics.CREDENTIAL_HEADERS` are
        dropped once a redirect leaves that origin.
        """
        # Redirects are followed here rather than by twisted.web.client.RedirectAgent,
        # which offers no hook for what both engines must do alike at each hop: judge the
        # Location with semantics.redirect_target before any connection (http/https only,
        # no user:password@, percent-encoded as the twin sends it), send credentials to
        # the first origin only and drop the one shared CREDENTIAL_HEADERS list past it,
        # keep one Deadline across the hops, and end with the twin's TooManyRedirects
        # sentence after --max-redirs.
        bare, credentials = semantics.split_credentials(url)
        if credentials is None:
            credentials = self.settings.credentials
        authenticator = auth.Authenticator(credentials, self.settings.authMode)
        current = semantics.request_target(bare)
        origin = current
        if self.cookies is not None:
            self.cookies.begin(current)
        for hop in range(self.settings.maxRedirects + 1):
            sent = headers.copy()
            own = hop == 0 or semantics.same_origin(current, origin)
            ownAuthorization = sent.hasHeader(b"authorization")
            if own:
                value = authenticator.preemptive()
                if value is not None and not ownAuthorization:
                    sent.setRawHeaders(b"authorization", [value.encode("latin-1")])
            else:
                for name in semantics.CREDENTIAL_HEADERS:
                    sent.removeHeader(name.encode("ascii"))
            response = await self._requestCookies(url, current, sent, deadline)
            if response.code == 401 and own and not ownAuthorization:
                # --digest/--anyauth: answer the challenge once, on the same hop.
                challenges = _headerValues(response.headers, b"www-authenticate")
                answer = authenticator.answer("GET", auth.request_uri(current), challenges)
                if answer is not None:
                    await abandon(response)
                    sent.setRawHeaders(b"authorization", [answer.encode("latin-1")])
                    response = await self._requestCookies(url, current, sent, deadline)
            if response.code not in semantics.REDIRECTS:
                return response
            location = _location(response.headers)
            await abandon(response)
            if location is None:
                raise ProtocolError("a redirect without a Location header.", url)
            if hop == self.settings.maxRedirects:
                break
            # Checked before anything is sent: another scheme opens no connection.
            current = semantics.redirect_target(current, location)
        raise TooManyRedirects(
            f"too many redirects (more than --max-redirs {self.settings.maxRedirects}).", url
        )

    async def _requestCookies(
        self, url: str, target: str, headers: Headers, deadline: Deadline
    ) -> IResponse:
        """
        :meth:`_requestOnce`, with the cookie engine's ``Cookie`` sent (unless ``-H``
        gave one) and the answer's ``Set-Cookie`` kept.
        """
        if self.cookies is None:
            return await self._requestOnce(url, target, headers, deadline)
        cookie = self.cookies.header(target)
        if cookie is not None and not headers.hasHeader(b"cookie"):
            headers = headers.copy()
            headers.setRawHeaders(b"cookie", [cookie.encode("latin-1")])
        response = await self._requestOnce(url, target, headers, deadline)
        self.cookies.store(target, _headerValues(response.headers, b"set-cookie"))
        return response

    async def _requestOnce(
        self, url: str, target: str, headers: Headers, deadline: Deadline
    ) -> IResponse:
        """
        One GET of ``target`` (a hop on the way to ``url``), classified on failure.
        """
        try:
            requested = self.agent.request(b"GET", target.encode("ascii"), headers)
        except (ValueError, NotImplementedError) as e:
            raise UnsupportedURL(f"cannot request {describe_url(target)!r}: {e}.", url) from None
        except Exception:
            raise classify(Failure(), target, None, url) from None
        deadline.watch(requested.cancel)
        try:
            response: IResponse = await requested
        except Exception:
            raise _failed(target, deadline, url) from None
        deadline.poke()
        return response

    async def _receive(
        self,
        url: str,
        response: IResponse,
        spool: Spool,
        deadline: Deadline,
        progress: Callable[[int], object],
    ) -> int:
        """
        Stream the body of ``response`` into ``spool`` and check it against its framing;
        return the raw byte count.  The caller finishes the spool; on failure it is
        settled here.
        """
        codings = semantics.content_codings(_header(response.headers, b"content-encoding"))
        decoder = None
        try:
            semantics.check_codings(url, codings)
        except FetchError:
            await abandon(response)
            await _settle(spool)
            raise
        if codings and self.settings.compressed:
            if response.code == 206:
                await abandon(response)
                await _settle(spool)
                raise ProtocolError(
                    "the server answered a resumed --compressed download with an encoded "
                    "range, which cannot continue the decoded .part; nothing saved.",
                    url,
                )
            decoder = Decoder.chain(codings, self.settings.maxDecodedSize, self.settings.maxRatio)
        receiver = BodyReceiver(spool.write, deadline, decoder, progress, spool)
        response.deliverBody(receiver)
        try:
            framed = await receiver.done
        except Exception:
            error = _failed(url, deadline)
            await _settle(spool)
            raise error from None
        expected = None if response.length is UNKNOWN_LENGTH else int(response.length)
        received = receiver.received + getattr(response, "journeySurplus", 0)
        try:
            if not framed and getattr(response, "journeyReset", False):
                # Ended by its connection, which was reset, not closed: maybe cut.
                raise cut_short(url)
            semantics.check_length(url, expected, received, framed)
        except FetchError:
            await _settle(spool)
            raise
        return receiver.received

    @staticmethod
    async def _finish(url: str, spool: Spool, then: Callable[[], object] | None = None) -> None:
        """
        Finish ``spool`` (running ``then`` after the last write), as a :class:`FetchError`.
        """
        try:
            await spool.finish(then)
        except FetchError:
            raise
        except Exception as e:
            raise FileError(f"cannot write the file: {e}.", url) from None

    async def _retrieve(
        self,
        url: str,
        options: _Options,
        reporthook: Callable[[int, int, int], object] | None,
    ) -> Retrieved:
        """
        Fetch ``url`` to a file; any failure becomes a :class:`FetchError`.
        """
        return await _onlyFetchErrors(url, self._retrieveChecked(url, options, reporthook))

    async def _retrieveChecked(
        self,
        url: str,
        options: _Options,
        reporthook: Callable[[int, int, int], object] | None,
    ) -> Retrieved:
        """
        Check ``url``, choose and claim the file's name, then fetch with retries.
        """
        semantics.check_url(url)
        path, streaming = naming.choose_target(
            url,
            options.filename,
            options.outputDir,
            options.createDirs,
            options.stream,
            self._madeDirectories,
        )
        if streaming != options.stream or (streaming and options.resume):
            options = attrs.evolve(
                options, stream=streaming, resume=False if streaming else options.resume
            )
        if (
            options.noClobber
            and not streaming
            and not options.contentDisposition
            and os.path.exists(path)
        ):
            return Retrieved(url, path, Headers(), 0, os.path.getsize(path), False, True)
        if not options.contentDisposition:
            self.names.claim(path, options, url)
        try:
            return await self._withRetries(
                url, lambda: self._retrieveOnce(url, path, options, reporthook)
            )
        finally:
            self.names.release(options)

    async def _retrieveOnce(
        self,
        url: str,
        path: str,
        options: _Options,
        reporthook: Callable[[int, int, int], object] | None,
        fresh: bool = False,
    ) -> Retrieved:
        """
        One attempt at fetching ``url`` to ``path`` (resuming, conditional, verified).

        :param fresh: ask for the whole body even when a ``.part`` could be resumed (its
            server answered a resume with another version of the file).
        """
        extra: dict[str, str] = {}
        if options.newer:
            extra.update(validators.conditional_headers(path))
        part = path + ".part"
        offset = 0
        if options.resume and not fresh and safefiles.is_regular(part):
            offset = os.path.getsize(part)
        if offset:
            extra["Range"] = f"bytes={offset}-"
            extra.update(validators.range_condition(part))
        deadline = Deadline(self.reactor, self.settings.idleTimeout, self.settings.maxTime)
        try:
            response = await self._request(url, self._headers(extra, bool(offset)), deadline)
            code = response.code
            if code == 304 and options.newer:
                await abandon(response)
                size = os.path.getsize(path) if os.path.exists(path) else 0
                return Retrieved(url, path, response.headers, code, size, changed=False)
            if code == 416 and offset and _completeRange(response, offset):
                await abandon(response)
                complete = PartFile(path, True, options.noClobber, options.sha256 is not None)
                try:
                    complete.verify(options.sha256)
                except BaseException:
                    complete.discard()  # a bad .part would fail the same way forever
                    raise
                complete.commit()
                return Retrieved(url, path, response.headers, code, offset)
            await _raiseForStatus(url, response, self.settings.authMode)
            serverNamed = False
            if options.contentDisposition:
                chosen = naming.disposition_target(
                    url,
                    _header(response.headers, b"content-disposition"),
                    options.filename,
                    options.outputDir,
                )
                if chosen is not None:
                    path, serverNamed = chosen
                try:
                    self.names.claim(path, options, url)
                except FetchError:
                    await abandon(response)
                    raise
                if options.noClobber and os.path.exists(path):
                    await abandon(response)
                    return Retrieved(
                        url, path, response.headers, code, os.path.getsize(path), False, True
                    )
            resumed = code == 206
            span = None
            if resumed:
                # Never splice: only the range asked for, of the length it says, of the
                # version whose start the .part holds.
                await _checkRange(url, response, offset)
                if validators.range_validator_changed(
                    extra.get("If-Range"),
                    _header(response.headers, b"etag"),
                    _header(response.headers, b"last-modified"),
                ):
                    await abandon(response)
                    deadline.cancel()
                    return await self._retrieveOnce(url, path, options, reporthook, fresh=True)
                span = _completeSize(response)
            # A file is opened (truncated unless resumed) and locked now, before anything
            # beside it is written: from here on it is this transfer's alone.  A FIFO or a
            # terminal (which may block the open) is opened on the disk thread.
            hashed = options.sha256 is not None or options.onlyIfChanged
            sink = _Target(
                lambda: sinks.open_sink(
                    path, resumed, options.noClobber, hashed, options.stream, serverNamed
                )
            )
            if not options.stream:
                try:
                    sink.open()
                except FetchError:
                    await abandon(response)
                    raise
            record = None
            try:
                if resumed and sink.offset != offset:
                    raise FileError(
                        f"{part!r} changed while its rest was being asked for; not continued.",
                        url,
                    )
                if options.resume and not resumed:
                    # A .part that may be continued later remembers what it is part of, so
                    # the continuation asks for the rest only if the file is unchanged.
                    etag = _header(response.headers, b"etag")
                    modified = _header(response.headers, b"last-modified")
                    if etag or modified:
                        validators.save_validators(part, url, etag, modified)
                if options.newer:
                    # Written before the file is renamed, put in place right after it: a
                    # full disk fails the run with nothing changed.
                    record = validators.prepare_validators(
                        path,
                        url,
                        _header(response.headers, b"etag"),
                        _header(response.headers, b"last-modified"),
                    )
            except BaseException:
                await abandon(response)
                sink.discard(keep=options.resume)
                raise
            start = offset if resumed else 0
            total = -1 if response.length is UNKNOWN_LENGTH else start + int(response.length)
            blocks = 0

            def progress(size: int) -> None:
                nonlocal blocks
                blocks += 1
                if reporthook is not None:
                    reporthook(blocks, size, total)

            if reporthook is not None:
                reporthook(0, 0, total)
            spool = Spool(self.reactor, sink.write_many)
            if options.stream:
                spool.inline = -1  # a FIFO or terminal may block: never on the reactor thread
            else:
                spool.sink = sink.open()  # a regular file: the body may be spliced into it
            try:
                await self._receive(url, response, spool, deadline, progress)
                if span is not None and span[1] + 1 != span[2]:
                    # The range was all there, the file is not: never saved as complete.
                    await self._finish(url, spool)
                    raise TruncatedBody(
                        f"the server sent only bytes {span[0]}-{span[1]} of {span[2]}; "
                        "the .part is kept for --continue.",
                        url,
                    )
                await self._finish(
                    url,
                    spool,
                    lambda: sink.complete(options.sha256, options.onlyIfChanged, record),
                )
            except BaseException as e:
                # Keep the .part for --continue, unless it is what is wrong.
                keep = options.resume and not isinstance(e, ChecksumMismatch)
                sink.discard(keep=keep)
                if record is not None:
                    record.discard()
                raise
            return Retrieved(url, path, response.headers, code, sink.written, not sink.unchanged)
        finally:
            deadline.cancel()

    async def _fetchBytes(self, url: str, maxSize: int) -> Fetched:
        """
        Fetch ``url`` into memory, with retries, up to ``maxSize`` bytes.
        """

        async def once() -> Fetched:
            deadline = Deadline(self.reactor, self.settings.idleTimeout, self.settings.maxTime)
            try:
                response = await self._request(url, self._headers({}), deadline)
                await _raiseForStatus(url, response, self.settings.authMode)
                if response.length is not UNKNOWN_LENGTH and int(response.length) > maxSize:
                    await abandon(response)
                    raise TooLarge(f"the body is {response.length} bytes, over {maxSize}.", url)
                chunks: list[bytes] = []
                size = 0

                def keep(data: list[bytes]) -> None:
                    nonlocal size
                    size += sum(len(chunk) for chunk in data)
                    if size > maxSize:
                        raise TooLarge(f"the body is over {maxSize} bytes.", url)
                    chunks.extend(data)

                spool = Spool(None, keep)
                await self._receive(url, response, spool, deadline, lambda n: None)
                await self._finish(url, spool)
                return Fetched(url, response.code, response.headers, b"".join(chunks))
            finally:
                deadline.cancel()

        semantics.check_url(url)
        return await self._withRetries(url, once)


class _Target:
    """
    The :class:`sinks.Sink` of one transfer (opened by :meth:`open`, else on first use),
    and how the transfer ends: put in place with its validators, or left alone when
    unchanged.
    """

    def __init__(self, opener: Callable[[], sinks.Sink]) -> None:
        self._opener = opener
        self._sink: sinks.Sink | None = None
        self.unchanged = False

    def open(self) -> sinks.Sink:
        """
        The sink, opened now if it is not yet.
        """
        if self._sink is None:
            self._sink = self._opener()
        return self._sink

    @property
    def offset(self) -> int:
        """
        Bytes the file held when opened (a resumed ``.part``).
        """
        return self.open().offset

    def write_many(self, chunks: list[bytes]) -> None:
        """
        Write ``chunks`` to the file (on the disk thread), opening it first if needed.
        """
        self.open().write_many(chunks)

    def complete(
        self,
        sha256: str | None,
        onlyIfChanged: bool = False,
        record: safefiles.Replacement | None = None,
    ) -> None:
        """
        Verify the checksum and rename into place, then put the validators ``record`` beside it;
        with ``onlyIfChanged``, drop the new copy instead when it is byte for byte the
        existing file (:attr:`unchanged`).
        """
        try:
            sink = self.open()
            sink.verify(sha256)
            digest = sink.digest.hexdigest() if sink.digest is not None else None
            if onlyIfChanged and digest and sinks.same_content(sink.path, digest, sink.written):
                sink.discard()
                self.unchanged = True
            else:
                sink.commit()
        except BaseException:
            if record is not None:
                record.discard()
            raise
        if record is not None:
            record.commit()

    def discard(self, keep: bool) -> None:
        """
        Remove the file being written (keep the ``.part`` with ``keep``).
        """
        if self._sink is not None:
            self._sink.discard(keep)

    @property
    def written(self) -> int:
        """
        Bytes written so far.
        """
        return self._sink.written if self._sink is not None else 0


@attrs.frozen
class _Options:
    """
    Per-call options of :meth:`Fetcher.retrieve`.
    """

    filename: str | None
    outputDir: str | None
    contentDisposition: bool
    noClobber: bool
    resume: bool
    newer: bool
    sha256: str | None
    onlyIfChanged: bool
    stream: bool = True
    createDirs: bool = False


async def _onlyFetchErrors(url: str, work: Coroutine[Any, Any, _T]) -> _T:
    """
    Await ``work``; any failure but a cancellation becomes a :class:`FetchError` (the API
    raises nothing else).
    """
    try:
        return await work
    except (FetchError, CancelledError):
        raise
    except Exception:
        raise classify(Failure(), url) from None


def _failed(url: str, deadline: Deadline, reported: str | None = None) -> Exception:
    """
    What the failure being handled is raised as: the caller's own cancellation of the
    transfer stays a :class:`CancelledError`; anything else (a cancellation by the
    ``--max-time`` deadline included) becomes its :class:`FetchError` (:func:`classify`).
    """
    failure = Failure()
    if failure.check(CancelledError) and not deadline.expired:
        return cast(Exception, failure.value)
    return classify(failure, url, deadline, reported)


async def _nothing() -> None:
    """
    An already-finished coroutine (no pool to close).
    """
    return None


async def _settle(spool: Spool) -> None:
    """
    Wait for a spool's writer thread to finish, ignoring its outcome.
    """
    try:
        await spool.finish()
    except Exception:
        pass


def _header(headers: Headers, name: bytes) -> str | None:
    """
    The first value of header ``name`` as text (latin-1), or ``None``.
    """
    values = headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


def _headerValues(headers: Headers, name: bytes) -> list[str]:
    """
    Every value of header ``name`` as text (latin-1).
    """
    return [value.decode("latin-1") for value in headers.getRawHeaders(name, [])]


def _location(headers: Headers) -> str | None:
    """
    The ``Location`` header as text: UTF-8 when it is (as browsers read it), else each
    non-ASCII byte percent-encoded as it is (as curl sends it).
    """
    values = headers.getRawHeaders(b"location")
    if not values:
        return None
    value = values[0]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in value)


async def _raiseForStatus(url: str, response: IResponse, authMode: str = "basic") -> None:
    """
    Fail for a status of 300 or more (an unfollowed redirect, or an error); a ``401``
    says which authentication the server asks for (under ``authMode``).
    """
    code = response.code
    if code < 300:
        return
    await abandon(response)
    phrase = response.phrase.decode("latin-1", "replace")
    if code < 400:
        raise unfollowed_status(url, code, phrase)
    detail = ""
    if code == 401:
        challenges = _headerValues(response.headers, b"www-authenticate")
        detail = auth.unauthorized_detail(challenges, authMode)
        detail = f" ({detail})" if detail else ""
    raise HTTPStatusError(
        f"the server answered {code} {phrase}{detail}; nothing saved.",
        url,
        code,
        semantics.retry_after(_header(response.headers, b"retry-after")),
    )


async def _checkRange(url: str, response: IResponse, offset: int) -> None:
    """
    Fail (dropping the body) unless a 206 answers our ``Range: bytes=OFFSET-``.
    """
    length = None if response.length is UNKNOWN_LENGTH else int(response.length)
    try:
        semantics.check_partial(url, _header(response.headers, b"content-range"), offset, length)
    except FetchError:
        await abandon(response)
        raise


def _completeSize(response: IResponse) -> tuple[int, int, int] | None:
    """
    For a ``206``: ``(first, last, total)`` from its ``Content-Range``, or ``None`` when
    the whole file's size is not said (``bytes A-B/*``).
    """
    span = semantics.parse_content_range(_header(response.headers, b"content-range"))
    if span is None or span[2] is None:
        return None
    return span[0], span[1], span[2]


def _completeRange(response: IResponse, offset: int) -> bool:
    """
    Whether a 416 says the file is ``offset`` bytes long (a resume that was complete).
    """
    value = _header(response.headers, b"content-range") or ""
    return value.strip() == f"bytes */{offset}"


def retrieve(
    url: str,
    filename: str | None = None,
    reporthook: Callable[[int, int, int], object] | None = None,
    *,
    reactor: Any = None,
    agent: IAgent | None = None,
    settings: FetchSettings | None = None,
    **options: Any,
) -> Deferred[Retrieved]:
    """
    ``urlretrieve`` for Twisted: fetch ``url`` to ``filename`` (default: the URL's name in
    the current directory); fire with ``(filename, headers)``.

    Unlike ``urlretrieve`` it streams, times out, verifies the length and leaves no file
    on failure.  ``options`` are those of :meth:`Fetcher.retrieve`.
    """
    fetcher = Fetcher(reactor, agent, settings)

    async def run() -> Retrieved:
        try:
            return await fetcher.retrieve(url, filename, reporthook, **options)
        finally:
            await fetcher.close()

    return Deferred.fromCoroutine(run())
