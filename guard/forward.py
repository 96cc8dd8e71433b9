"""Send a request to the email / SMS provider, retrying only what is safe to retry.

A provider has no idempotency key for sends, so a retry is safe only when we
know the provider did not act on the request:

    could not connect (refused, DNS, connect timeout)   retry
    429, 5xx                                            retry, honouring Retry-After
    other 4xx                                           never retry: "rejected"
    2xx                                                 "sent"
    connection dropped after sending, read timeout      never retry: "unknown"

The last case may or may not have reached the recipient; sending again could
send twice, so it is left for a human (the outbox keeps it visible).

Sends go out on kept-alive http.client connections, a few per provider
origin, each request in one write: requests and urllib3 around them cost more
CPU per send than the exchange itself. A provider reached through a proxy from
the environment, or a Forwarder given its own requests session, goes through
requests instead.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    default_user_agent,
    get_encoding_from_headers,
    select_proxy,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)
from urllib3.util.wait import wait_for_read

SENT, REJECTED, FAILED, UNKNOWN = "sent", "rejected", "failed", "unknown"


@dataclass(frozen=True)
class UpstreamRequest:
    """One HTTP request for the provider, credentials included."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """What the provider answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


@dataclass(frozen=True)
class Outcome:
    """How a forward ended: ``state`` is sent, rejected, failed (retry later) or unknown."""

    state: str
    reply: Reply | None = None
    error: str | None = None
    attempts: int = 0
    retry_after: float | None = None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class TransportError(Exception):
    """A send on a pooled connection that ended without the provider's answer."""


class NotDelivered(TransportError):
    """The request never reached the provider: it could not connect (refused, DNS, TLS)."""


class NoAnswer(TransportError):
    """The request may have reached the provider, but no complete answer came back."""


def never_reached_upstream(exc: BaseException) -> bool:
    """Tell whether a send error happened before the request could be delivered."""
    if isinstance(exc, TransportError):
        return isinstance(exc, NotDelivered)
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        err = todo.pop()
        if id(err) in seen or not isinstance(err, BaseException):
            continue
        seen.add(id(err))
        if isinstance(err, (urllib3.exceptions.NewConnectionError,
                            urllib3.exceptions.ConnectTimeoutError)):
            return True
        if isinstance(err, urllib3.exceptions.MaxRetryError):
            todo.append(err.reason)
        todo.extend(err.args)
        todo.extend([err.__cause__, err.__context__])
    return False


class _OneWrite:
    """Send a request's head and body in one write, not two.

    urllib3 writes the head, then the body. Two writes wake the provider's
    server twice per request (and, on a busy host, let it run in between);
    one write is one wake-up and one packet for a small body. Failures are
    raised from the same call as before (``request``), so what counts as
    reaching the provider does not change.
    """

    _parts: list[bytes] | None = None

    def request(self, *args, **kwargs) -> None:
        self._parts = []
        try:
            super().request(*args, **kwargs)
            data = b"".join(self._parts)
        finally:
            self._parts = None
        if data:
            super().send(data)

    def send(self, data) -> None:
        if self._parts is not None:
            if isinstance(data, bytes | bytearray):
                self._parts.append(bytes(data))
                return
            # A streamed body: what is buffered goes first, then the stream as usual.
            buffered, self._parts = b"".join(self._parts), []
            if buffered:
                super().send(buffered)
        super().send(data)


class _Connection(_OneWrite, urllib3.connection.HTTPConnection):
    """An HTTP connection that sends a request's head and body in one write."""


class _TLSConnection(_OneWrite, urllib3.connection.HTTPSConnection):
    """An HTTPS connection that sends a request's head and body in one write."""


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class OneWriteAdapter(HTTPAdapter):
    """A requests transport adapter whose connections send each request in one write.

    It also remembers the connection pool of each origin and TLS setting (finding
    it is a third of the adapter's work per send) and builds responses without
    reading cookies, which nothing here uses.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """Return the pool for the request's origin, looked up once per origin and setting."""
        try:
            key = (urlsplit(request.url)[:2], verify, cert,
                   tuple(sorted((proxies or {}).items())))
            pool = self._pools.get(key)
        except TypeError:  # an unhashable setting: look it up every time
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        # A pool the manager closed (evicted, or the adapter closed) has ``pool`` None.
        if pool is None or pool.pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._pools) < 64:
                self._pools[key] = pool
        return pool

    def close(self) -> None:
        """Forget the remembered pools too, then close as requests does."""
        self._pools.clear()
        super().close()

    def build_response(self, req, resp) -> requests.Response:
        """Wrap urllib3's response as requests does, without the cookie jar."""
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url
        response.request = req
        response.connection = self
        return response


@dataclass(frozen=True)
class _Target:
    """Where one kind of provider call goes on a pooled connection, and what it sends."""

    origin: tuple[str, str, int]
    verify: bool | str
    method: str
    path: str
    # The request's headers but Content-Length, in the order they go out. http.client
    # puts Host and "Accept-Encoding: identity" first unless they are among them.
    headers: Mapping[str, str]


_PORTS = {"http": 80, "https": 443}


def _dropped(sock: socket.socket) -> bool:
    """Tell whether an idle connection's peer closed it (or sent what nobody asked for)."""
    # An idle keep-alive socket is readable only once the server has closed it (EOF) or
    # broken the protocol; either way it must not carry a request. urllib3's own check.
    return wait_for_read(sock, timeout=0.0)


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """Build the verifying TLS context requests would use for ``verify``."""
    # requests trusts its CA bundle (certifi), or the bundle or directory the environment
    # names (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE); never the unverified mode.
    where = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


def _decoded(body: bytes, encoding: str) -> bytes:
    # Requests go out with "Accept-Encoding: identity"; a server that compresses anyway
    # is decoded as urllib3 does (http.client leaves the body as sent).
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


class _PooledConnection(_OneWrite, http.client.HTTPConnection):
    """A kept-alive http.client connection that sends a request's head and body in one write."""


class _PooledTLSConnection(_OneWrite, http.client.HTTPSConnection):
    """A kept-alive http.client TLS connection that sends head and body in one write."""


def _close_all(idle: dict) -> None:
    for connections in list(idle.values()):
        while connections:
            connections.pop().close()


class ConnectionPool:
    """Kept-alive connections per origin, each carrying one send at a time.

    A connection is taken for a send and given back once its answer is read in
    full; one that failed, or that the server will close, is dropped. At most
    ``size`` idle connections are kept per origin (requests keeps ten too).
    """

    def __init__(self, timeout: float | tuple[float, float], size: int = 10):
        self.connect_timeout, self.read_timeout = \
            timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.size = size
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._contexts: dict[bool | str, ssl.SSLContext] = {}
        # The idle sockets are closed when the pool goes, not left to the collector.
        weakref.finalize(self, _close_all, self._idle)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            _close_all(self._idle)

    def _take(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        """Return the most recently used idle connection the server has not closed, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None or not _dropped(conn.sock):
                return conn
            conn.close()

    def _give_back(self, origin: tuple[str, str, int],
                   conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.size:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, target: _Target) -> http.client.HTTPConnection:
        scheme, host, port = target.origin
        if scheme == "https":
            context = self._contexts.get(target.verify)
            if context is None:
                context = self._contexts[target.verify] = _tls_context(target.verify)
            conn = _PooledTLSConnection(host, port, timeout=self.connect_timeout,
                                        context=context)
        else:
            conn = _PooledConnection(host, port, timeout=self.connect_timeout)
        try:
            # TCP and, for https, the TLS handshake (the certificate and its host name
            # checked): no byte of the request is out yet.
            conn.connect()
        except OSError as exc:
            conn.close()
            raise NotDelivered(f"{host}:{port}: {exc}") from exc
        conn.sock.settimeout(self.read_timeout)
        return conn

    def send(self, target: _Target, body: bytes) -> Reply:
        """Send one request and return the answer, raising NotDelivered or NoAnswer."""
        headers = {**target.headers, "Content-Length": str(len(body))}
        conn = self._take(target.origin)
        reused = conn is not None
        if conn is None:
            conn = self._connect(target)
        try:
            try:
                conn.request(target.method, target.path, body, headers)
            except ConnectionError:
                if reused:
                    # The write itself failed, so the server has no whole request: the
                    # kept connection was closed under us. It goes once more on a new one
                    # (whatever the old one might still yield, such as an idle-timeout
                    # 408, answers no request of ours).
                    conn.close()
                    conn = self._connect(target)
                    conn.request(target.method, target.path, body, headers)
                # On a new connection the server may have answered before it stopped
                # reading (a 413 for a body too large): that answer is read, as urllib3 does.
            response = conn.getresponse()
            data = response.read()
            if response.status < 200:
                # http.client reads past 100 Continue only; the final answer behind
                # another interim one (103 Early Hints) cannot be read.
                raise http.client.HTTPException(f"interim answer {response.status} "
                                                "with no final answer read")
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NoAnswer(f"{target.origin[1]}:{target.origin[2]}: "
                           f"{str(exc) or type(exc).__name__}") from exc
        # Repeated headers are joined, and the first spelling of a name kept, as
        # requests does; so are the lines of a folded one (http.client keeps the breaks).
        reply_headers: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, value in response.getheaders():
            if "\n" in value:
                value = " ".join(line.strip() for line in value.splitlines())
            first = names.setdefault(name.lower(), name)
            if first in reply_headers:
                reply_headers[first] = f"{reply_headers[first]}, {value}"
            else:
                reply_headers[name] = value
        if "content-encoding" in names:
            try:
                data = _decoded(data, reply_headers[names["content-encoding"]])
            except zlib.error as exc:
                conn.close()
                raise NoAnswer(f"the provider's answer does not decode: {exc}") from exc
        if response.will_close:
            conn.close()
        else:
            self._give_back(target.origin, conn)
        return Reply(response.status, reply_headers, data)


def _retriable_reply(reply: Reply) -> bool:
    return reply.status == 429 or reply.status >= 500


class Forwarder:
    """Send requests upstream with exponential backoff and jitter.

    ``attempts`` bounds the tries of one ``send``; a Retry-After longer than
    ``retry_after_max`` ends the tries at once and is reported in the outcome,
    so the outbox can wait for it instead of holding a request thread.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        wait_initial: float = 0.5,
        wait_max: float = 8.0,
        retry_after_max: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.attempts = attempts
        self.retry_after_max = retry_after_max
        self.timeout = timeout
        # Sends go on the pooled connections unless the caller brings its own session.
        self._pool = ConnectionPool(timeout) if session is None else None
        self._targets: dict[tuple, _Target | None] = {}
        if session is None:
            session = requests.Session()
            session.mount("http://", OneWriteAdapter())
            session.mount("https://", OneWriteAdapter())
        self.session = session
        # The environment's proxy and CA settings are read once per upstream, not on every
        # send (requests re-reads them, and ~/.netrc, per request); and a netrc entry must
        # never replace the provider credentials the guard sends.
        self.session.trust_env = False
        self._environment: dict[tuple[str, str], dict] = {}
        self._prepared: dict[tuple, requests.PreparedRequest] = {}
        self.sleep = sleep
        self._backoff = wait_exponential_jitter(multiplier=wait_initial, max=wait_max,
                                                jitter=wait_initial)

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after
            if retry_after is not None:
                return retry_after
        return self._backoff(state)

    def _stop(self, state: RetryCallState) -> bool:
        if stop_after_attempt(self.attempts)(state):
            return True
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after
            return retry_after is not None and retry_after > self.retry_after_max
        return False

    def _settings(self, url: str) -> dict:
        origin = urlsplit(url)[:2]
        if origin not in self._environment:
            found = requests.Session().merge_environment_settings(url, {}, None, None, None)
            self._environment[origin] = {"proxies": found["proxies"], "verify": found["verify"]}
        return self._environment[origin]

    def _prepare(self, request: UpstreamRequest) -> requests.PreparedRequest:
        # The method, URL and headers of a provider call repeat: they are prepared once
        # (URL parsing and header checks are most of preparing) and only the body is new.
        key = (request.method, request.url, tuple(request.headers.items()))
        template = self._prepared.get(key)
        if template is None:
            template = requests.Request(request.method, request.url,
                                        headers=dict(request.headers)).prepare()
            if len(self._prepared) < 64:
                self._prepared[key] = template
        if not isinstance(request.body, bytes) or not request.body:
            prepared = template.copy()
            prepared.prepare_body(request.body, None)
            return prepared
        # What copy() and prepare_body() do for a body of bytes, without copying the
        # template's empty cookie jar and measuring the body through super_len.
        prepared = requests.PreparedRequest()
        prepared.method, prepared.url = template.method, template.url
        prepared.hooks = template.hooks
        prepared.headers = template.headers.copy()
        prepared.body = request.body
        prepared.headers["Content-Length"] = str(len(request.body))
        return prepared

    def _target(self, request: UpstreamRequest) -> _Target | None:
        """Say where ``request`` goes on a pooled connection; None if it goes through requests."""
        if self._pool is None or not isinstance(request.body, bytes):
            return None
        key = (request.method, request.url, tuple(request.headers.items()))
        if key in self._targets:
            return self._targets[key]
        # requests prepares the URL and checks the headers once, so what goes out is what
        # it would send; a proxied origin stays with requests, which knows proxies.
        template = requests.Request(request.method, request.url,
                                    headers=dict(request.headers)).prepare()
        settings = self._settings(template.url)
        parts = urlsplit(template.url)
        target = None
        if parts.scheme in _PORTS and not select_proxy(template.url, settings["proxies"]):
            host, port = parts.hostname, parts.port or _PORTS[parts.scheme]
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            # The head stays what requests would send: its User-Agent unless one is given.
            headers = {} if "User-Agent" in template.headers else \
                {"User-Agent": default_user_agent()}
            headers.update((name, value) for name, value in template.headers.items()
                           if name.lower() not in ("content-length", "transfer-encoding"))
            target = _Target((parts.scheme, host, port), settings["verify"], template.method,
                             path, headers)
        if len(self._targets) < 64:
            self._targets[key] = target
        return target

    def _post_once(self, request: UpstreamRequest) -> Reply:
        target = self._target(request)
        if target is not None:
            return self._pool.send(target, request.body)
        # Straight to the transport adapter: a provider call needs no session cookies,
        # hooks or redirects, and skipping them is a third of the cost of a send.
        prepared = self._prepare(request)
        response = self.session.get_adapter(request.url).send(
            prepared, timeout=self.timeout, **self._settings(request.url))
        return Reply(response.status_code, dict(response.headers), response.content)

    def send(self, request: UpstreamRequest) -> Outcome:
        """Send ``request``; retry connection failures, 429 and 5xx; never a 4xx."""
        try:
            first: Reply | Exception = self._post_once(request)
        except (requests.RequestException, TransportError) as exc:
            first = exc
        if isinstance(first, Reply) and not _retriable_reply(first):
            return _outcome(first, 1)
        if not isinstance(first, Reply) and not never_reached_upstream(first):
            return _outcome(first, 1)
        # Retriable: the retry policy takes over, with the answer already had as its first
        # try (so its waits, stops and counts are those of a policy that made the call).
        pending = [first]

        def attempt(request: UpstreamRequest) -> Reply:
            if pending:
                had = pending.pop()
                if isinstance(had, BaseException):
                    raise had
                return had
            return self._post_once(request)

        retrying = Retrying(
            retry=retry_if_exception(never_reached_upstream) | retry_if_result(_retriable_reply),
            stop=self._stop,
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        try:
            reply: Reply | Exception = retrying(attempt, request)
        except (requests.RequestException, TransportError) as exc:
            reply = exc
        return _outcome(reply, retrying.statistics.get("attempt_number", 1))


def _outcome(reply: Reply | Exception, attempts: int) -> Outcome:
    """Say how a forward ended from its last answer (or error) and its number of tries."""
    if not isinstance(reply, Reply):
        if never_reached_upstream(reply):
            return Outcome(FAILED, error=f"could not connect: {reply}", attempts=attempts)
        return Outcome(UNKNOWN, error=f"no answer after sending: {reply}", attempts=attempts)
    if 200 <= reply.status < 300:
        return Outcome(SENT, reply, attempts=attempts)
    if _retriable_reply(reply):
        return Outcome(FAILED, reply, error=f"upstream answered {reply.status}",
                       attempts=attempts, retry_after=reply.retry_after)
    return Outcome(REJECTED, reply, error=f"upstream answered {reply.status}",
                   attempts=attempts)
