"""Send a request to the email / SMS provider, retrying only what is safe to retry.

A provider has no idempotency key for sends, so a retry is safe only when we
know the provider did not act on the request:

    could not send (refused, DNS, connect timeout, TLS)   retry
    429, 5xx                                              retry, honouring Retry-After
    other 4xx                                             never retry: "rejected"
    2xx                                                   "sent"
    connection dropped after sending, read timeout        never retry: "unknown"

The last case may or may not have reached the recipient; sending again could
send twice, so it is left for a human (the outbox keeps it visible).

Every send goes through one ``Transport``: urllib3's pools, one per provider
origin, each keeping up to ten idle connections alive, reached directly or
through the proxy the environment names for it. Its errors say how far a
failed send got:

    TransportError          the send ended without the provider's answer
    ├── NotSent             no byte of the request left: connect, DNS, TLS handshake or certificate
    │   └── StaleConnection a kept connection the provider had closed refused the write
    └── NoAnswer            the request left; the provider may have acted on it
"""

from __future__ import annotations

import email.utils
import http.client
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3.connection
import urllib3.exceptions
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_environ_proxies, select_proxy
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, ProxyManager, Timeout
from urllib3.util import Retry, create_urllib3_context, make_headers

from guard.store.util import utc_now

SENT, REJECTED, FAILED, UNKNOWN = "sent", "rejected", "failed", "unknown"
# urllib3 resends nothing and follows no redirect: what is resent, and when, the Forwarder decides.
_NEVER = Retry(total=False, redirect=False)


class TransportError(Exception):
    """A send that ended without the provider's answer."""


class NotSent(TransportError):
    """No byte of the request left: the provider never had it, so sending it again is safe."""


class StaleConnection(NotSent):
    """A kept connection the provider had closed refused the write: it never had the request."""


class NoAnswer(TransportError):
    """The request left but no complete answer came back: the provider may have acted on it."""


@dataclass(frozen=True)
class UpstreamRequest:
    """One HTTP request for the provider, credentials included."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """What the provider answered; headers read from the wire match names in any case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


@dataclass(frozen=True)
class Outcome:
    """How a forward ended: ``state`` is sent, rejected, failed (retry later) or unknown.

    Only ``unknown`` may have reached the provider without its answer: a failed
    forward never left, or the provider answered that it did not take it.
    """

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
    return max(0.0, (when - (now or utc_now())).total_seconds())


class _OneWrite:
    """Write a request's head and body in one write, and say how far a failed send got.

    urllib3 writes the head, then the body. Two writes wake the provider's
    server twice per request (and, on a busy host, let it run in between);
    one write is one wake-up and one packet for a small body.
    """

    _parts: list[bytes] | None = None
    # Whether the connection carried a request since it connected: a write refused on
    # such a kept connection means the provider closed it while it sat idle.
    _carried = False

    def connect(self) -> None:
        """Connect (TCP, then TLS and the certificate), raising NotSent if that fails."""
        self._carried = False
        try:
            super().connect()
        except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
            # Connecting (to a proxy, too) writes no byte of the request. urllib3's own
            # errors name the host already; TLS errors do not.
            where = "" if isinstance(exc, urllib3.exceptions.HTTPError) \
                else f"{self.host}:{self.port}: "
            raise NotSent(f"{where}{exc}") from exc

    def request(self, method, url, body=None, headers=None, **kwargs) -> None:
        """Write the request in one write; raise StaleConnection if a kept connection refuses it."""
        kept = self._carried and self.sock is not None
        self._parts = []
        try:
            super().request(method, url, body, headers, **kwargs)
            data = b"".join(self._parts)
        except ValueError as exc:  # a header or target http.client refuses to write
            raise NotSent(f"cannot write the request: {exc}") from exc
        finally:
            self._parts = None
        try:
            super().send(data)
        except ConnectionError as exc:
            if kept:
                raise StaleConnection(f"{self.host}:{self.port}: {exc}") from exc
            # On a new connection the provider may have answered before it stopped reading
            # (a 413 for a body too large): urllib3 reads that answer.
            raise
        self._carried = True

    def send(self, data) -> None:
        """Keep what ``request`` writes for its one write; write anything else at once."""
        if self._parts is None:
            super().send(data)
        else:
            self._parts.append(data)


class Connection(_OneWrite, urllib3.connection.HTTPConnection):
    """An HTTP connection that writes each request in one write."""


class TLSConnection(_OneWrite, urllib3.connection.HTTPSConnection):
    """An HTTPS connection that writes each request in one write."""


class _Pool(HTTPConnectionPool):
    ConnectionCls = Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = TLSConnection


def _environment(url: str) -> tuple[str | None, str]:
    """Return the proxy and the CA bundle the environment names for ``url``.

    They are read as requests reads them (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
    NO_PROXY with its CIDR ranges; REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else
    certifi's bundle), so the settings mean what they mean to requests.
    """
    proxy = select_proxy(url, get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return proxy, bundle or DEFAULT_CA_BUNDLE_PATH


def _manager(proxy: str | None, bundle: str, size: int, timeout: Timeout) -> PoolManager:
    """Build the pools for sends through ``proxy`` (None: direct), trusting ``bundle``."""
    context = create_urllib3_context()
    if os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    else:
        context.load_verify_locations(cafile=bundle)
    options = {"maxsize": size, "timeout": timeout, "ssl_context": context}
    if proxy is None:
        manager = PoolManager(**options)
    else:
        proxy = proxy if "://" in proxy else f"http://{proxy}"
        parts = urlsplit(proxy)
        credentials = make_headers(proxy_basic_auth=f"{unquote(parts.username)}:"
                                                    f"{unquote(parts.password or '')}") \
            if parts.username else None
        # An HTTPS proxy is trusted as the provider is, as requests trusts it.
        manager = ProxyManager(proxy, proxy_headers=credentials, proxy_ssl_context=context,
                               **options)
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return manager


class Transport:
    """Kept-alive connections to the providers, each carrying one request at a time.

    A connection is used again only while the provider keeps it open (urllib3
    checks it before each use), and dropped after any failure or an answer
    that closes it; at most ``size`` idle ones are kept per origin.
    """

    def __init__(self, timeout: tuple[float, float] = (5.0, 30.0), *, size: int = 10):
        self.timeout = Timeout(connect=timeout[0], read=timeout[1])
        self.size = size
        self._lock = threading.Lock()
        self._managers: dict[tuple[str | None, str], PoolManager] = {}
        # Per provider URL: its pool and the target its request line names. The environment
        # is read and the pool found once, not on every send.
        self._routes: dict[str, tuple[HTTPConnectionPool, str]] = {}

    def _route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        route = self._routes.get(url)
        if route is None:
            proxy, bundle = found = _environment(url)
            with self._lock:
                manager = self._managers.get(found)
                if manager is None:
                    manager = self._managers[found] = _manager(proxy, bundle, self.size,
                                                               self.timeout)
            parts = urlsplit(url)
            # A proxy forwards plain HTTP by the whole URL; HTTPS goes through a tunnel.
            target = url if proxy and parts.scheme == "http" else \
                urlunsplit(("", "", parts.path or "/", parts.query, ""))
            route = self._routes[url] = (manager.connection_from_url(url), target)
        return route

    def send(self, request: UpstreamRequest) -> Reply:
        """Send ``request`` and read the whole answer, raising NotSent or NoAnswer."""
        try:
            return self._exchange(request)
        except StaleConnection:
            # The provider never had the request whole, so it goes once more; the refused
            # connection is gone, and the next one is new or has passed the check.
            return self._exchange(request)

    def _exchange(self, request: UpstreamRequest) -> Reply:
        try:
            pool, target = self._route(request.url)
            response = pool.urlopen(request.method, target, body=request.body,
                                    headers=dict(request.headers), retries=_NEVER,
                                    redirect=False, assert_same_host=False,
                                    preload_content=False)
        except TransportError:
            raise
        except (OSError, ValueError, urllib3.exceptions.ClosedPoolError) as exc:
            # Reading the environment's CA bundle or proxy, parsing the URL and taking a
            # connection from a pool (one ``close`` closed meanwhile) all come before any
            # byte is written; urllib3 wraps what fails later in its own errors.
            raise NotSent(str(exc)) from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            raise NoAnswer(str(exc) or type(exc).__name__) from exc
        try:
            if response.status < 200:
                # http.client reads past 100 Continue only; the final answer behind another
                # interim one (103 Early Hints) cannot be read, and the connection holds it.
                response.close()
                raise NoAnswer(f"interim answer {response.status} with no final answer read")
            body = response.read()
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            raise NoAnswer(str(exc) or type(exc).__name__) from exc
        finally:
            response.release_conn()
        return Reply(response.status, response.headers, body)

    def close(self) -> None:
        """Close every idle connection; later sends open new ones."""
        with self._lock:
            routes, self._routes = self._routes, {}
            self._managers.clear()
        for pool, _ in routes.values():
            pool.close()


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
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.attempts = attempts
        self.retry_after_max = retry_after_max
        self.transport = Transport(timeout)
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

    def send(self, request: UpstreamRequest) -> Outcome:
        """Send ``request``; retry what never left, 429 and 5xx; never a 4xx."""
        try:
            first: Reply | TransportError = self.transport.send(request)
        except TransportError as exc:
            first = exc
        if isinstance(first, NoAnswer) or (isinstance(first, Reply)
                                           and not _retriable_reply(first)):
            return _outcome(first, 1)
        # Retriable: the retry policy takes over, with the answer already had as its first
        # try (so its waits, stops and counts are those of a policy that made the call).
        pending = [first]

        def attempt(request: UpstreamRequest) -> Reply:
            if pending:
                had = pending.pop()
                if isinstance(had, TransportError):
                    raise had
                return had
            return self.transport.send(request)

        retrying = Retrying(
            retry=retry_if_exception_type(NotSent) | retry_if_result(_retriable_reply),
            stop=self._stop,
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        try:
            reply: Reply | TransportError = retrying(attempt, request)
        except TransportError as exc:
            reply = exc
        return _outcome(reply, retrying.statistics.get("attempt_number", 1))


def _outcome(reply: Reply | TransportError, attempts: int) -> Outcome:
    """Say how a forward ended from its last answer (or error) and its number of tries."""
    if isinstance(reply, NotSent):
        return Outcome(FAILED, error=f"could not send: {reply}", attempts=attempts)
    if isinstance(reply, TransportError):
        return Outcome(UNKNOWN, error=f"no answer after sending: {reply}", attempts=attempts)
    if 200 <= reply.status < 300:
        return Outcome(SENT, reply, attempts=attempts)
    if _retriable_reply(reply):
        return Outcome(FAILED, reply, error=f"upstream answered {reply.status}",
                       attempts=attempts, retry_after=reply.retry_after)
    return Outcome(REJECTED, reply, error=f"upstream answered {reply.status}",
                   attempts=attempts)
