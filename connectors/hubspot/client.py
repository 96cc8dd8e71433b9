"""The HubSpot API as the connector uses it: retries, pacing, token refresh, JSON in and out.

Every call goes through the official ``hubspot-api-client`` (its auth, host
and urllib3 transport); responses are read as HubSpot's wire JSON so the
connector sees exactly what the API documents. The one endpoint the client
lacks (v4 subscription statuses) goes over the same urllib3 retry policy.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import urllib3
from hubspot import HubSpot
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from connectors.hubspot.errors import ApiError, CredentialsError, OutcomeUnknown, RateLimited

DEFAULT_HOST = "https://api.hubapi.com"
BATCH_SIZE = 100  # HubSpot's limit for batch read, update and create
ASSOCIATIONS_BATCH_SIZE = 1000  # HubSpot's limit for v4 association batch reads (since 2025-02)
REQUEST_TIMEOUT = (10.0, 120.0)  # connect, read: no call may wait forever
Clock = Callable[[], datetime]


def default_retry(*, total: int = 6, backoff_factor: float = 1.0) -> Retry:
    """Build the retry policy: 429 and 5xx on every method, ``Retry-After`` honoured.

    urllib3 retries only idempotent methods by default, but HubSpot's search
    and batch endpoints are POSTs; a 429 means the request was not processed,
    so repeating it is safe. Without ``Retry-After`` the backoff doubles up to
    ten seconds, the length of HubSpot's rolling rate-limit window.
    """
    return Retry(
        total=total,
        connect=3,
        read=2,
        status=total,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        backoff_factor=backoff_factor,
        backoff_max=10,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class CreateRetry(Retry):
    """Retry only what certainly never reached HubSpot: connect errors and 429.

    A create that reached HubSpot and lost its answer (a read timeout, a
    dropped connection, a 5xx from a gateway) may have been applied, and
    repeating it blindly creates the record twice; those errors go back to
    the caller, who looks before creating again. A 429 means HubSpot
    processed nothing. urllib3 would also repeat a 503 that carries
    ``Retry-After``, which is why the status check is narrowed here.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return status_code == 429 and super().is_retry(method, status_code, has_retry_after)


def create_retry(retry: Retry) -> CreateRetry:
    """Derive the policy for creates from ``retry``: same pacing, no blind repeats."""
    params = {
        name: getattr(retry, name)
        for name in ("total", "connect", "status", "backoff_factor", "backoff_max",
                     "respect_retry_after_header")
    }  # fmt: skip
    return CreateRetry(
        **params, read=0, other=0, redirect=0, allowed_methods=None,
        status_forcelist=frozenset({429}), raise_on_status=False,
    )  # fmt: skip


def never_sent(exc: BaseException) -> bool:
    """Tell whether a transport error happened before the request could reach HubSpot."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError is one too


def build_client(
    access_token: str | None = None, *, host: str | None = None, retry: Retry | None = None
) -> HubSpot:
    """Create a ``HubSpot`` client with the connector's retry policy."""
    kwargs: dict[str, Any] = {"access_token": access_token, "retry": retry or default_retry()}
    if host:
        kwargs["host"] = host.rstrip("/")
    return HubSpot(**kwargs)


class Pacer:
    """Keep at most ``limit`` requests in any rolling ``interval`` (client-side throttle)."""

    def __init__(
        self,
        limit: int,
        interval: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or interval <= 0:
            raise ValueError("a pacer needs a positive limit and interval")
        self.limit = limit
        self.interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until one more request fits in the window, then count it."""
        with self._lock:
            now = self._monotonic()
            while self._sent and now - self._sent[0] >= self.interval:
                self._sent.popleft()
            if len(self._sent) >= self.limit:
                delay = self.interval - (now - self._sent[0])
                if delay > 0:
                    self._sleep(delay)
                    now = self._monotonic()
                self._sent.popleft()
            self._sent.append(now)


class StaticToken:
    """A private-app access token: it never expires."""

    def __init__(self, token: str) -> None:
        self.token = token

    def current(self, client: HubSpot) -> str:
        return self.token


class OAuthTokens:
    """OAuth access tokens, refreshed with the refresh token shortly before they expire."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        clock: Clock | None = None,
        margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.clock = clock or (lambda: datetime.now(UTC))
        self.margin = margin
        self.access_token: str | None = None
        self.expires_at: datetime | None = None
        self._lock = threading.Lock()

    def current(self, client: HubSpot) -> str:
        with self._lock:
            now = self.clock()
            if self.access_token is None or self.expires_at - self.margin <= now:
                self._refresh(client, now)
            return self.access_token

    def _refresh(self, client: HubSpot, now: datetime) -> None:
        try:
            response = client.oauth.tokens_api.create(
                grant_type="refresh_token",
                client_id=self.client_id,
                client_secret=self.client_secret,
                refresh_token=self.refresh_token,
                _preload_content=False,
            )
        except Exception as exc:  # the generated client raises one class per package
            raise _api_error("OAuth token refresh", exc) from exc
        data = json.loads(response.data)
        self.access_token = data["access_token"]
        # HubSpot may rotate the refresh token; keep whichever it returned.
        self.refresh_token = data.get("refresh_token") or self.refresh_token
        self.expires_at = now + timedelta(seconds=int(data.get("expires_in", 1800)))


def _api_error(operation: str, exc: Exception) -> ApiError:
    status = getattr(exc, "status", None)
    if status is None:
        raise exc
    body = getattr(exc, "body", None) or getattr(exc, "reason", "") or ""
    return _error_from_reply(operation, int(status), body)


def _error_from_reply(operation: str, status: int, body: Any) -> ApiError:
    """Build the error for a non-2xx reply, with HubSpot's own message when it gave one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    detail = str(body)
    try:
        detail = json.loads(body).get("message") or detail
    except (ValueError, AttributeError):
        pass  # not HubSpot's JSON error shape: the raw body is the detail
    cls = RateLimited if status == 429 else ApiError
    return cls(operation, status, detail)


def chunks(items: Sequence, size: int = BATCH_SIZE) -> Iterable[Sequence]:
    """Split ``items`` into consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Api:
    """The HubSpot calls the connector makes, each paced and with a fresh token."""

    def __init__(
        self,
        client: HubSpot,
        *,
        tokens: StaticToken | OAuthTokens | None = None,
        pacer: Pacer | None = None,
        search_pacer: Pacer | None = None,
    ) -> None:
        self.client = client
        if tokens is None:
            if not client.access_token:
                raise CredentialsError("the HubSpot client has no access token")
            tokens = StaticToken(client.access_token)
        self.tokens = tokens
        # Private apps get 100-190 requests per ten seconds; search is limited
        # separately to five per second per account.
        self.pacer = pacer or Pacer(90, 10.0)
        self.search_pacer = search_pacer or Pacer(4, 1.0)
        self.host = (client.config.get("host") or DEFAULT_HOST).rstrip("/")
        self.retry = client.config.get("retry") or default_retry()
        self.create_retry = create_retry(self.retry)
        self._http = urllib3.PoolManager(retries=self.retry)
        self.requests = 0
        self._apis: dict[tuple[str, str | None, bool], Any] = {}

    def _api(self, path: str, *, creating: bool = False) -> Any:
        """Return the client's API object at ``path`` (``"crm.objects.search_api"``), reused.

        ``creating`` gives an object whose transport never repeats a request
        that may have reached HubSpot (see ``CreateRetry``).
        """
        # Every access of a hubspot-api-client discovery property builds a new API client
        # (reading the package's metadata from disk, opening a new connection pool);
        # building each once per access token keeps connections alive between calls.
        key = (path, self.client.access_token, creating)
        api = self._apis.get(key)
        if api is None:
            api = self.client
            if creating:
                api = HubSpot(**{**self.client.config, "retry": self.create_retry})
            for name in path.split("."):
                api = getattr(api, name)
            # A refreshed token makes the clients of the old one useless.
            self._apis = {k: v for k, v in self._apis.items() if k[1] == key[1]}
            self._apis[key] = api
        return api

    def _prepare(self, *, search: bool = False) -> None:
        token = self.tokens.current(self.client)
        if self.client.access_token != token:
            self.client.access_token = token
        self.pacer.wait()
        if search:
            self.search_pacer.wait()
        self.requests += 1

    def _call(self, operation: str, api_method: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            response = api_method(
                *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except urllib3.exceptions.HTTPError as exc:
            # Reads were retried by the transport already; what is left is an outage.
            raise ApiError(operation, 0, f"no answer from HubSpot: {exc}") from exc
        except Exception as exc:
            raise _api_error(operation, exc) from exc
        return json.loads(response.data) if response.data else None

    # -- objects --------------------------------------------------------------

    def search(self, object_type: str, body: Mapping[str, Any]) -> dict:
        """Run one CRM search request (``POST /crm/v3/objects/{type}/search``)."""
        self._prepare(search=True)
        api = self._api("crm.objects.search_api")
        return self._call(f"search {object_type}", api.do_search, object_type, dict(body))

    def list_page(
        self,
        object_type: str,
        *,
        after: str | None = None,
        archived: bool = False,
        properties: Sequence[str] = (),
        limit: int = 100,
    ) -> dict:
        """Read one page of ``GET /crm/v3/objects/{type}``."""
        self._prepare()
        kwargs: dict[str, Any] = {"limit": limit, "archived": archived}
        if after:
            kwargs["after"] = after
        if properties:
            kwargs["properties"] = list(properties)
        api = self._api("crm.objects.basic_api")
        return self._call(f"list {object_type}", api.get_page, object_type, **kwargs)

    def batch_read(
        self, object_type: str, ids: Iterable[str], properties: Sequence[str]
    ) -> dict[str, dict]:
        """Read objects by id, 100 per call; ids HubSpot does not know are left out."""
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(str(i) for i in ids))
        for part in chunks(unique):
            self._prepare()
            body = {
                "properties": list(properties),
                "propertiesWithHistory": [],
                "inputs": [{"id": i} for i in part],
            }
            api = self._api("crm.objects.batch_api")
            data = self._call(f"batch read {object_type}", api.read, object_type, body)
            for record in data.get("results") or ():
                found[str(record["id"])] = record
        return found

    def batch_update(self, object_type: str, inputs: Sequence[Mapping]) -> int:
        """Update objects' properties, 100 per call; return how many HubSpot updated."""
        updated = 0
        for part in chunks(list(inputs)):
            self._prepare()
            api = self._api("crm.objects.batch_api")
            body = {"inputs": [dict(i) for i in part]}
            data = self._call(f"batch update {object_type}", api.update, object_type, body)
            updated += len(data.get("results") or ())
        return updated

    def batch_create(self, object_type: str, inputs: Sequence[Mapping]) -> list[dict]:
        """Create up to 100 objects in one call; return the created records.

        HubSpot validates the whole batch: one invalid input fails it with a
        400 and creates nothing. A request that may have reached HubSpot is
        never repeated here; when its answer is lost (read timeout, dropped
        connection, 5xx) ``OutcomeUnknown`` says to look before creating again.
        """
        if len(inputs) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} inputs per batch create")
        operation = f"batch create {object_type}"
        self._prepare()
        api = self._api("crm.objects.batch_api", creating=True)
        body = {"inputs": [dict(i) for i in inputs]}
        try:
            response = api.create(
                object_type, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except urllib3.exceptions.HTTPError as exc:
            if never_sent(exc):
                raise ApiError(operation, 0, f"cannot reach HubSpot: {exc}") from exc
            raise OutcomeUnknown(operation, 0, f"the answer was lost: {exc}") from exc
        except Exception as exc:
            error = _api_error(operation, exc)
            if error.status >= 500:
                raise OutcomeUnknown(operation, error.status, error.detail) from exc
            raise error from exc
        data = json.loads(response.data) if response.data else {}
        return list(data.get("results") or ())

    def associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, list[str]]:
        """Map each id to the ids it is associated with (v4 batch read, 1,000 per call).

        HubSpot pages each object's associations on its own: a result with
        ``paging.next.after`` has more, fetched by sending that id again with
        its ``after``, alongside other ids still to read.
        """
        out: dict[str, set[str]] = {}
        todo: list[dict] = [{"id": i} for i in dict.fromkeys(str(i) for i in ids)]
        operation = f"read associations {from_type}->{to_type}"
        while todo:
            part, todo = todo[:ASSOCIATIONS_BATCH_SIZE], todo[ASSOCIATIONS_BATCH_SIZE:]
            self._prepare()
            api = self._api("crm.associations.v4.batch_api")
            data = self._call(operation, api.get_page, from_type, to_type, {"inputs": part})
            for result in data.get("results") or ():
                from_id = str(result["from"]["id"])
                targets = out.setdefault(from_id, set())
                targets.update(str(t["toObjectId"]) for t in result.get("to") or ())
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    todo.append({"id": from_id, "after": str(after)})
        return {key: sorted(targets, key=int) for key, targets in out.items()}

    # -- schema ---------------------------------------------------------------

    def properties(self, object_type: str) -> list[dict]:
        """List an object type's property definitions."""
        self._prepare()
        api = self._api("crm.properties.core_api")
        return self._call(f"list {object_type} properties", api.get_all, object_type)["results"]

    def create_property(self, object_type: str, definition: Mapping) -> dict:
        """Create one property definition."""
        self._prepare()
        api = self._api("crm.properties.core_api")
        return self._call(
            f"create {object_type} property", api.create, object_type, dict(definition)
        )

    def property_groups(self, object_type: str) -> list[dict]:
        """List an object type's property groups."""
        self._prepare()
        api = self._api("crm.properties.groups_api")
        data = self._call(f"list {object_type} property groups", api.get_all, object_type)
        return data["results"]

    def create_property_group(self, object_type: str, definition: Mapping) -> dict:
        """Create one property group."""
        self._prepare()
        api = self._api("crm.properties.groups_api")
        return self._call(
            f"create {object_type} property group", api.create, object_type, dict(definition)
        )

    def pipelines(self, object_type: str) -> list[dict]:
        """List an object type's pipelines with their stages."""
        self._prepare()
        api = self._api("crm.pipelines.pipelines_api")
        return self._call(f"list {object_type} pipelines", api.get_all, object_type)["results"]

    # -- endpoints the client lacks -------------------------------------------

    def post(self, path: str, body: Any, query: Mapping[str, str] | None = None) -> dict:
        """POST JSON to an API path the generated client does not cover."""
        self._prepare()
        url = f"{self.host}{path}"
        if query:
            url += "?" + urlencode(query)
        headers = {
            "Authorization": f"Bearer {self.client.access_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            response = self._http.request(
                "POST", url, body=json.dumps(body).encode(), headers=headers, timeout=30
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(f"POST {path}", 0, str(exc)) from exc
        if not 200 <= response.status <= 299:
            raise _error_from_reply(f"POST {path}", response.status, response.data)
        return json.loads(response.data) if response.data else {}
