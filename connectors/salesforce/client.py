"""The Salesforce session: login, timeouts, one retry policy and the API quota guard.

Every request goes through the ``requests.Session`` handed to simple-salesforce,
so timeouts and the ``Sforce-Limit-Info`` reading live in one place: an adapter
that puts a timeout on any request without one, and a response hook that keeps
the org's latest API usage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.wait import wait_base

from connectors.salesforce.errors import (
    CredentialsError,
    OutcomeUnknown,
    QuotaReached,
    SalesforceUnavailable,
)

T = TypeVar("T")

API_VERSION = "59.0"
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read: SOQL pages and Bulk results can be slow
ENV = "GUARD_SALESFORCE_"


class TimeoutAdapter(HTTPAdapter):
    """An HTTP adapter that never lets a request wait forever."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201 - requests' own signature
        """Send the request with the default timeout unless the caller gave one."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class ApiUsage:
    """The org's daily API usage as last reported in ``Sforce-Limit-Info``."""

    def __init__(self) -> None:
        self.used: int | None = None
        self.total: int | None = None

    def observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Read the usage header of a response (a requests response hook)."""
        header = response.headers.get("Sforce-Limit-Info")
        if header:
            usage = Salesforce.parse_api_usage(header).get("api-usage")
            if usage is not None:
                self.used, self.total = usage.used, usage.total

    def forget(self) -> None:
        """Drop the last reading: a new run may start after the daily quota was reset."""
        self.used = self.total = None

    @property
    def remaining(self) -> int | None:
        """Calls left today, or None before the first response."""
        if self.used is None or self.total is None:
            return None
        return self.total - self.used


def guarded_session(timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                    session: requests.Session | None = None) -> tuple[requests.Session, ApiUsage]:
    """Equip a session with default timeouts and API usage tracking."""
    session = session or requests.Session()
    adapter = TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    usage = ApiUsage()
    session.hooks["response"].append(usage.observe)
    return session, usage


def error_code(exc: SalesforceError) -> str | None:
    """Return the Salesforce errorCode of a failed call, if the body has one."""
    content = exc.content
    if isinstance(content, bytes | str):
        try:
            content = json.loads(content)
        except ValueError:
            return None
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return content[0].get("errorCode")
    if isinstance(content, Mapping):
        return content.get("errorCode")
    return None


def error_message(exc: SalesforceError) -> str:
    """Return the Salesforce message of a failed call, else the raw body."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return str(content[0].get("message", content))
    return str(content)


def _daily_limit(exc: BaseException) -> bool:
    # REQUEST_LIMIT_EXCEEDED covers both the org's daily total ("TotalRequests
    # Limit exceeded"), which no retry fixes today, and concurrency limits,
    # which clear within seconds.
    return isinstance(exc, SalesforceRefusedRequest) and "TotalRequests" in error_message(exc)


def transient(exc: BaseException) -> bool:
    """Tell whether a failed call is worth repeating as it was."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, SalesforceRefusedRequest):
        return error_code(exc) == "REQUEST_LIMIT_EXCEEDED" and not _daily_limit(exc)
    return isinstance(exc, SalesforceExpiredSession)


def never_applied(exc: BaseException) -> bool:
    """Tell whether a failed write certainly changed nothing, so sending it again is safe.

    A connection that never opened, a refused session and a concurrency limit
    are answered before any record is touched. A read timeout, a connection
    dropped mid-answer or a 5xx may come after the write was applied.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    if isinstance(exc, SalesforceRefusedRequest):
        return error_code(exc) == "REQUEST_LIMIT_EXCEEDED" and not _daily_limit(exc)
    return isinstance(exc, SalesforceExpiredSession)


class Api:
    """One Salesforce org: every call retried by one policy and stopped at the quota reserve."""

    def __init__(self, sf: Salesforce, *, reserve: int = 5000, usage: ApiUsage | None = None,
                 attempts: int = 5, wait: wait_base | None = None) -> None:
        self.sf = sf
        self.reserve = reserve
        if usage is None:
            _, usage = guarded_session(session=sf.session)
        self.usage = usage
        self.attempts = attempts
        self.wait = wait if wait is not None else wait_exponential(multiplier=1, min=1, max=30)

    def check_quota(self) -> None:
        """Raise QuotaReached when the org's remaining daily calls are down to the reserve."""
        remaining = self.usage.remaining
        if remaining is not None and remaining <= self.reserve:
            raise QuotaReached(
                f"Salesforce API quota: {self.usage.used} of {self.usage.total} calls used today; "
                f"stopping to keep {self.reserve} for the org's own users"
            )

    def create(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Send a create, repeating it only when it certainly changed nothing.

        Raises ``OutcomeUnknown`` when the write may have been applied and its
        answer was lost: the caller looks before creating again.
        """
        try:
            return self.call(fn, *args, _retry_if=never_applied, **kwargs)
        except SalesforceUnavailable as exc:
            cause = exc.__cause__
            if cause is not None and not never_applied(cause):
                raise OutcomeUnknown(f"Salesforce may have applied the write: {exc}") from exc
            raise

    def call(self, fn: Callable[..., T], *args: Any,
             _retry_if: Callable[[BaseException], bool] = transient, **kwargs: Any) -> T:
        """Call the API once the quota allows, retrying transient faults."""
        retrying = Retrying(
            retry=retry_if_exception(_retry_if),
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.check_quota()
                    return fn(*args, **kwargs)
        except SalesforceRefusedRequest as exc:
            if error_code(exc) == "REQUEST_LIMIT_EXCEEDED":
                raise QuotaReached(f"Salesforce refused the call: {error_message(exc)}") from exc
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SalesforceUnavailable(f"cannot reach Salesforce: {exc}") from exc
        except SalesforceGeneralError as exc:
            if exc.status >= 500:
                tries = retrying.statistics.get("attempt_number", 1)
                raise SalesforceUnavailable(
                    f"Salesforce answered {exc.status} ({tries} attempts): {error_message(exc)}"
                ) from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SalesforceExpiredSession):
            self.relogin()

    def relogin(self) -> None:
        """Log in again after INVALID_SESSION_ID (REST retries on its own; Bulk and mdapi don't)."""
        if getattr(self.sf, "_salesforce_login_partial", None) is None:
            raise SalesforceUnavailable(
                "the Salesforce session expired and was given as a bare session id; "
                "configure credentials so the connector can log in again"
            )
        # simple-salesforce keeps the login recipe; its refresh also renews the
        # REST headers. The Metadata API client caches the old session id, so
        # it is dropped to be rebuilt on next use.
        self.sf._refresh_session()
        self.sf._mdapi = None


def login_from_env(environ: Mapping[str, str], *,
                   session: requests.Session | None = None) -> Salesforce:
    """Log in with environment credentials: password, JWT bearer or client credentials."""

    def get(name: str) -> str | None:
        value = environ.get(ENV + name)
        return value if value else None

    common: dict[str, Any] = {"session": session, "version": get("API_VERSION") or API_VERSION}
    domain = get("DOMAIN")
    if domain:
        common["domain"] = domain
    username, key = get("USERNAME"), get("CONSUMER_KEY")
    try:
        if username and get("PASSWORD"):
            return Salesforce(username=username, password=get("PASSWORD"),
                              security_token=get("SECURITY_TOKEN") or "", **common)
        if username and key and (get("PRIVATE_KEY_FILE") or get("PRIVATE_KEY")):
            return Salesforce(username=username, consumer_key=key,
                              privatekey_file=get("PRIVATE_KEY_FILE"),
                              privatekey=get("PRIVATE_KEY"), **common)
        if key and get("CONSUMER_SECRET"):
            if not domain or domain in ("login", "test"):
                raise CredentialsError(
                    f"{ENV}DOMAIN: client credentials need the org's My Domain "
                    "(e.g. 'acme.my'), not login or test"
                )
            return Salesforce(consumer_key=key, consumer_secret=get("CONSUMER_SECRET"), **common)
    except SalesforceAuthenticationFailed as exc:
        raise CredentialsError(f"Salesforce login failed: {exc}") from None
    raise CredentialsError(
        f"no Salesforce credentials: set {ENV}USERNAME, {ENV}PASSWORD and {ENV}SECURITY_TOKEN; "
        f"or {ENV}USERNAME, {ENV}CONSUMER_KEY and {ENV}PRIVATE_KEY_FILE (JWT bearer); "
        f"or {ENV}CONSUMER_KEY, {ENV}CONSUMER_SECRET and {ENV}DOMAIN (client credentials)"
    )
