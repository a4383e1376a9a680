"""The one HTTP client for Xero's Accounting API: auth and tenant headers, pacing, retries, paging.

``XeroClient`` owns one httpx client for the run; ``client.session(org)`` gives an
``OrganisationSession`` per organisation that keeps that organisation within Xero's limits:

- at most ``max_in_flight`` (5) requests in flight (a semaphore);
- at most ``calls_per_minute`` (60) requests in any 60 seconds, tightened by the last
  ``X-MinLimit-Remaining`` Xero sent, so a normal run never sees a 429;
- and every call, of every organisation, first takes a slot of the app's budget
  (``connector.budget``: Xero's 10,000 calls a minute across the app, shared through the app's
  store by every process on every machine); a 429 ``appminute`` pauses the whole app for
  Xero's ``Retry-After``;
- a minute 429 waits ``Retry-After`` (capped, else the organisation is deferred); a day 429, a
  spent ``X-DayLimit-Remaining`` or our own ``daily_call_budget`` stops it (``DailyLimitReached``);
- 5xx, timeouts and dropped connections retry with exponential backoff and jitter, a bounded
  number of times; a body that is not JSON is retried once, then ``MalformedResponse``;
- 401 ``TokenExpired`` asks the token provider again (it refreshes, or picks up a token another
  process already refreshed) and retries once; a dead grant (``GrantInvalid``) is reported;
- 403 re-checks ``/connections``: a tenant that is gone is ``TenantDisconnected``; one still
  listed means the authorising user lost the permission (``PermissionLost``);
- 503 "Organisation offline" defers that organisation at once (``OrganisationOffline``); other
  5xx (maintenance included) retry as above;
- gzip answers are decoded by httpx; a damaged compressed body is treated like a malformed one.

What an answer means is decided in one place, ``OrganisationSession.validate_response`` (and
``_failed_transfer`` for a request that got no whole answer): a result, an error, or
``Retriable``. Whether and when to try again is ``connector.retry``'s one policy, around the
request.

What Xero took away (a dead grant, a lost role, a tenant gone) is reported in
``SyncStats.access_lost()``; the caller records it (the connector writes no status).

Once an organisation hits an error it cannot get past in this run, the session remembers it and
every later call for that organisation raises it at once, without calling Xero: that organisation
stops, the others go on. A 4xx that concerns one request (``XeroRequestError``: a 400
``HighVolumeException`` or ``QueryParseException``, a 404) fails that request only.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from connector import wire
from connector.budget import AppBudget, AppCallLedger, LocalLedger
from connector.errors import (
    AuthenticationFailed,
    DailyLimitReached,
    GrantInvalid,
    HighVolumeRefused,
    MalformedResponse,
    OrganisationOffline,
    PermissionLost,
    RateLimited,
    TenantDisconnected,
    TokenExpired,
    XeroError,
    XeroRequestError,
    XeroUnavailable,
)
from connector.identity import http_client, list_connections, raise_for_auth_status
from connector.retry import (
    DAMAGED,
    THROTTLED,
    TRANSIENT,
    UNAUTHORIZED,
    Retriable,
    RetryPolicy,
    retry_after,
)
from connector.settings import XeroSettings
from connector.stats import AccessLost, SyncStats
from connector.token_providers import Organisation, TokenProvider
from connector.usage import DailyUsage

log = logging.getLogger(__name__)

# Our minute window is a little longer than Xero's so clock skew never tips us over.
_WINDOW_SECONDS = 60.5
# How often the run writes its daily call counts (connector/usage.py: not a commit per call).
_USAGE_FLUSH_SECONDS = 1.0
# Connections of the run's one httpx client, and the requests handed to it at once. httpx
# queues requests beyond its connections under one lock and rescans the whole queue on every
# request and answer: with 1,000 organisations, ~3,000 queued requests made that quadratic and
# the run spent its time in the pool's lock (py-spy: 2,600 threads waiting there). So a request
# waits for a slot here first, and httpx never holds more than it has connections for.
MAX_CONNECTIONS = 64




def _transport_cause(exc: BaseException) -> str:
    """``ConnectError: [Errno 111] Connection refused``: the type and httpx's short reason."""
    reason = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _failed_transfer(exc: httpx.TransportError | httpx.DecodingError, url: str,
                     ctx: dict[str, str | None]) -> Retriable:
    """What a request that got no whole answer means, for the retry policy."""
    if isinstance(exc, httpx.DecodingError):
        # A gzip stream that does not decode: the body is damaged, like a malformed one.
        return Retriable(DAMAGED, lambda _n: MalformedResponse(
            "Xero's compressed answer could not be decoded", cause="damaged gzip stream",
            **ctx), note=f"damaged gzip stream ({ctx['endpoint']})")
    cause = _transport_cause(exc)
    if isinstance(exc, httpx.RemoteProtocolError):
        if "complete message body" in str(exc):
            # The answer started but stopped short: a truncated body, never an empty page.
            return Retriable(DAMAGED, lambda _n: MalformedResponse(
                "Xero's answer was cut off before the end of the body",
                cause="connection closed mid-body", **ctx),
                note=f"connection closed mid-body ({ctx['endpoint']})")
        # Dropped before any answer: like a 5xx.
        return Retriable(TRANSIENT, lambda tries: XeroUnavailable(
            f"Xero dropped the connection to {url} {tries} times", cause=cause, **ctx),
            note=f"{type(exc).__name__} for {ctx['endpoint']}")
    return Retriable(TRANSIENT, lambda tries: XeroUnavailable(
        f"Xero could not be reached at {url} after {tries} attempts", cause=cause, **ctx),
        note=f"{type(exc).__name__} for {ctx['endpoint']}")


class _AccessToken:
    """The access token one call sends; renewed (never the refused one again) after a 401."""

    def __init__(self, client: XeroClient, grant_id: str) -> None:
        self._client = client
        self._grant_id = grant_id
        self.value = client.access_token(grant_id)

    def renew(self) -> None:
        self.value = self._client.access_token(self._grant_id, rejected=self.value)


class _Pacer:
    """Spaces one organisation's calls within Xero's rolling minute window.

    Two views of the window are combined, and the stricter wins: our own log of calls sent in the
    last minute (at most ``per_minute``), and Xero's last ``X-MinLimit-Remaining`` (which also
    counts calls other processes made), less the calls we sent since and those still in flight,
    plus one for each of our calls that has since left the window.
    """

    _STALE_AFTER = 5.0  # a later answer showing more room than expected may be out of order

    def __init__(self, per_minute: int, sleep: Callable[[float], None]) -> None:
        self._per_minute = per_minute
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._in_flight = 0
        self._min_remaining: int | None = None
        self._min_observed_at = 0.0
        self._min_sent_since = 0
        self._min_credit = 0
        self.day_remaining: int | None = None
        self._day_sent_since = 0

    def _header_room(self, now: float) -> int | None:
        if self._min_remaining is None:
            return None
        if now - self._min_observed_at >= _WINDOW_SECONDS:
            self._min_remaining = None
            return None
        return self._min_remaining - self._min_sent_since + self._min_credit

    def wait_turn(self) -> None:
        """Block until one more call fits in the minute window, then book it."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= _WINDOW_SECONDS:
                    if self._sent.popleft() <= self._min_observed_at:
                        self._min_credit += 1  # Xero counted it; it has left its window too
                room = self._per_minute - len(self._sent)
                header_room = self._header_room(now)
                if header_room is not None:
                    room = min(room, header_room)
                if room > 0:
                    self._sent.append(now)
                    self._in_flight += 1
                    self._min_sent_since += 1
                    self._day_sent_since += 1
                    return
                wait = self._sent[0] + _WINDOW_SECONDS - now if self._sent else 1.0
                if header_room is not None and header_room <= 0:
                    wait = min(wait, self._min_observed_at + _WINDOW_SECONDS - now)
            log.debug("pacing: waiting %.1fs for the minute window", wait)
            self._sleep(min(max(wait, 0.05), _WINDOW_SECONDS))

    def done(self, headers: httpx.Headers | None) -> None:
        """A booked call ended; read Xero's remaining counters from its answer, if any."""
        with self._lock:
            self._in_flight -= 1
            if headers is None:
                return
            now = time.monotonic()
            minute = _int_header(headers, "X-MinLimit-Remaining")
            if minute is not None:
                # Calls still in flight may not be counted in this answer yet.
                estimate = minute - self._in_flight
                previous = self._header_room(now)
                if previous is not None and now - self._min_observed_at < self._STALE_AFTER:
                    estimate = min(estimate, previous)
                self._min_remaining = estimate
                self._min_observed_at = now
                self._min_sent_since = 0
                self._min_credit = 0
            day = _int_header(headers, "X-DayLimit-Remaining")
            if day is not None:
                self.day_remaining = day - self._in_flight
                self._day_sent_since = 0

    def forget_minute_counter(self) -> None:
        """After waiting out a minute 429, trust Retry-After over the last counter seen."""
        with self._lock:
            self._min_remaining = None

    def day_room(self) -> int | None:
        """Calls left today by Xero's last word, minus what we sent since; None if unknown."""
        with self._lock:
            if self.day_remaining is None:
                return None
            return self.day_remaining - self._day_sent_since


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class XeroClient:
    """The run's HTTP client; hands out one ``OrganisationSession`` per organisation.

    Nothing is opened until the first call: the httpx client, the daily usage counter and the
    sessions' page workers start on first use, and ``close()`` releases them all (a later call
    opens them again; the sessions, with their pacing, are kept).

    Args:
        settings: connector settings.
        tokens: where access tokens come from (``connector.token_providers``).
        stats: where calls are counted and lost access is reported (a fresh ``SyncStats`` if
            omitted).
        usage: the cross-run daily call counter (``<tokens.home>/usage.sqlite3`` if omitted).
        app_calls: the ledger of the app's budget (default the token provider's store when it
            has one, else this process's own ``LocalLedger``).
        sleep: how to wait (tests may pass a faster one).
    """

    def __init__(
        self,
        settings: XeroSettings,
        tokens: TokenProvider,
        stats: SyncStats | None = None,
        *,
        usage: DailyUsage | None = None,
        app_calls: AppCallLedger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.stats = stats if stats is not None else SyncStats()
        self._usage = usage
        self._owns_usage = usage is None
        self._app_calls = app_calls
        self._budget: AppBudget | None = None
        self.sleep = sleep
        self._http: httpx.Client | None = None
        self._sessions: dict[str, OrganisationSession] = {}
        self._lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)  # requests in flight

    @property
    def http(self) -> httpx.Client:
        """The one httpx client of the run, opened on first use."""
        with self._lock:
            if self._http is None:
                self._http = http_client(
                    self.settings,
                    limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                        max_keepalive_connections=MAX_CONNECTIONS),
                )
            return self._http

    @property
    def usage(self) -> DailyUsage:
        """The daily call counter, opened on first use."""
        with self._lock:
            if self._usage is None:
                # In the provider's store when it has one: shared by every machine on PostgreSQL.
                store = getattr(self.tokens, "store", None)
                self._usage = DailyUsage(store if store is not None else self.tokens.home,
                                         flush_every=_USAGE_FLUSH_SECONDS)
            return self._usage

    @property
    def budget(self) -> AppBudget:
        """This process's draw on the app's budget, made on first use."""
        with self._lock:
            if self._budget is None:
                ledger = self._app_calls
                if ledger is None:
                    # The provider's store when it has one: every process on every machine.
                    store = getattr(self.tokens, "store", None)
                    ledger = store if store is not None else LocalLedger()
                self._budget = AppBudget(ledger, limit=self.settings.app_calls_per_minute,
                                         window=self.settings.app_window_seconds)
            return self._budget

    def session(self, org: Organisation) -> OrganisationSession:
        """The session for an organisation (one per tenant per client)."""
        with self._lock:
            session = self._sessions.get(org.tenant_id)
            if session is None:
                session = self._sessions[org.tenant_id] = OrganisationSession(self, org)
            return session

    def access_token(self, grant_id: str, rejected: str | None = None) -> str:
        """A valid access token for the grant, from the token provider; a dead grant is
        reported in the stats (every organisation on it needs reconnection)."""

        def counted() -> None:
            self.stats.count_identity_call("token")

        try:
            return self.tokens.access_token(grant_id, rejected=rejected, on_refresh=counted)
        except GrantInvalid as exc:
            self.stats.lose_access(AccessLost(
                "needs_reconnection", f"Xero refused the grant ({exc.cause or 'invalid_grant'});"
                " connect again", grant_id))
            raise

    def close(self) -> None:
        """Close the HTTP connections, the usage counter and the sessions' page workers."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:  # first: a page being fetched still needs the client
            session.close()
        with self._lock:
            http, self._http = self._http, None
            usage = self._usage if self._owns_usage else None
            if self._owns_usage:
                self._usage = None
            budget = self._budget
        if http is not None:
            http.close()
        if usage is not None:
            usage.close()
        if budget is not None:
            budget.close()  # its unused calls go back to the app

    def __enter__(self) -> XeroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OrganisationSession:
    """Calls for one organisation, within its limits; remembers why it stopped, if it did."""

    def __init__(self, client: XeroClient, org: Organisation) -> None:
        self.client = client
        self.org = org
        self.settings = client.settings
        self.stopped: XeroError | None = None
        self._semaphore = threading.BoundedSemaphore(self.settings.max_in_flight)
        self._pacer = _Pacer(self.settings.calls_per_minute, client.sleep)
        self._policy = RetryPolicy.for_api(self.settings)
        self._budget_lock = threading.Lock()
        self._used_today: int | None = None  # read from the usage counter on the first call
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()

    # -- context for errors ---------------------------------------------------------------------

    def _context(self, entity: str | None, endpoint: str | None = None) -> dict[str, str | None]:
        return {"organisation": self.org.name, "tenant_id": self.org.tenant_id,
                "entity": entity, "endpoint": endpoint}

    def stop(self, error: XeroError) -> XeroError:
        """Stop this organisation for the rest of the run; returns the error to raise."""
        if self.stopped is None:
            self.stopped = error
            log.warning("stopping organisation %s: %s", self.org.name or self.org.tenant_id,
                        error)
        return error

    def _check_stopped(self, entity: str | None = None) -> None:
        """Refuse a call once the organisation is stopped; for another entity than the one that
        failed, the error says so and names the entity asked for (not the one that failed)."""
        stopped = self.stopped
        if stopped is None:
            return
        if entity is None or stopped.entity in (None, entity):
            raise stopped
        error = copy.copy(stopped)  # same type: callers decide on it as on the first one
        error.message = f"not read because {stopped.entity} failed first: {stopped.message}"
        error.entity, error.endpoint = entity, None
        error.args = (str(error),)
        raise error

    # -- budget ---------------------------------------------------------------------------------

    def _book_call(self, entity: str, endpoint: str) -> None:
        """Refuse the call if a day limit or our budget is spent; otherwise count it."""
        budget = self.settings.daily_call_budget
        with self._budget_lock:
            if self._used_today is None:
                self._used_today = self.client.usage.used(self.org.tenant_id)
            if self._used_today >= budget:
                raise self.stop(DailyLimitReached(
                    f"the daily call budget of {budget} calls is spent", problem="budget",
                    **self._context(entity, endpoint),
                ))
            room = self._pacer.day_room()
            if room is not None and room <= 0:
                raise self.stop(DailyLimitReached(
                    "Xero's day limit is spent (X-DayLimit-Remaining is 0)", problem="day",
                    **self._context(entity, endpoint),
                ))
            self._used_today += 1
        self.client.usage.record(self.org.tenant_id)
        self.client.stats.count_call(self.org.tenant_id, entity)

    # -- one request ----------------------------------------------------------------------------

    def _send(
        self, url: str, params: dict[str, str] | None, headers: dict[str, str], entity: str,
        endpoint: str, token: str, on_answer: Callable[[], None] | None = None,
    ) -> httpx.Response:
        with self._semaphore:
            self._check_stopped(entity)
            self._book_call(entity, endpoint)
            self._pacer.wait_turn()
            answer: httpx.Headers | None = None
            budget = self.client.budget
            slot = None
            try:
                slot = budget.acquire()
                http = self.client.http
                request = http.build_request(
                    "GET", url, params=params,
                    headers={**headers, "Authorization": f"Bearer {token}",
                             "xero-tenant-id": self.org.tenant_id},
                )
                with self.client.slots:  # held until the connection is free again
                    response = http.send(request, stream=True)
                    try:
                        if response.status_code == 200 and on_answer is not None:
                            on_answer()
                        response.read()
                    finally:
                        response.close()
                self.client.stats.count_bytes(self.org.tenant_id, entity,
                                              response.num_bytes_downloaded,
                                              len(response.content))
                self.client.usage.record_bytes(self.org.tenant_id, response.num_bytes_downloaded)
                if response.status_code != 429:
                    # A 429's counters say "0 left"; its Retry-After is the better guide.
                    answer = response.headers
                    budget.observe(response.headers)
                return response
            finally:
                if slot is not None:
                    budget.done(slot)
                self._pacer.done(answer)

    def get(
        self,
        path: str,
        *,
        entity: str,
        params: dict[str, str] | None = None,
        if_modified_since: datetime | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> Any:
        """GET an Accounting API path and return its JSON (decimal floats); None on 304.

        ``on_answer`` is called once Xero's 200 has begun to arrive (its status and headers),
        before the body is read: Xero has evaluated the query by then.

        Raises:
            XeroError: any failure this organisation cannot get past in this run (the session
                is stopped with it first).
        """
        try:
            return self._get(path, entity=entity, params=params,
                             if_modified_since=if_modified_since, on_answer=on_answer)
        except XeroRequestError as exc:
            raise exc.with_context(**self._context(entity, path)) from None
        except XeroError as exc:
            raise self.stop(exc.with_context(**self._context(entity, path))) from None

    def _get(
        self,
        path: str,
        *,
        entity: str,
        params: dict[str, str] | None,
        if_modified_since: datetime | None,
        on_answer: Callable[[], None] | None = None,
    ) -> Any:
        """One GET under the retry policy: each try sends once and reads the answer."""
        self._check_stopped(entity)
        url = f"{self.settings.api_url}/{path.lstrip('/')}"
        endpoint = f"/{path.lstrip('/')}"
        headers = {}
        if if_modified_since is not None:
            headers["If-Modified-Since"] = wire.format_if_modified_since(if_modified_since)
        ctx = self._context(entity, endpoint)
        token = _AccessToken(self.client, self.org.grant_id)

        def attempt() -> Any:
            try:
                response = self._send(url, params, headers, entity, endpoint, token.value,
                                      on_answer)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise _failed_transfer(exc, url, ctx) from None
            return self.validate_response(response, token, ctx)

        return self._policy.call(attempt, sleep=self.client.sleep)

    def validate_response(self, response: httpx.Response, token: _AccessToken,
                          ctx: dict[str, str | None]) -> Any:
        """What Xero's answer means: its JSON (None for 304), or the error it stands for.

        Raises:
            Retriable: worth trying again (``connector.retry`` decides whether and when).
            XeroError: anything else: this organisation cannot get past it in this run, or
                (``XeroRequestError``) this request is refused.
        """
        status = response.status_code
        endpoint = ctx["endpoint"]
        if status == 200:
            try:
                return wire.loads(response.content, **ctx)
            except MalformedResponse as exc:
                raise Retriable(DAMAGED, lambda _n, error=exc: error,
                                note=f"malformed body from {endpoint}") from None
        if status == 304:
            return None
        if status == 401:
            try:
                raise_for_auth_status(response, **ctx)
            except (TokenExpired, AuthenticationFailed) as exc:
                # Ask the token provider again: it refreshes, or has a token another process
                # already refreshed.
                raise Retriable(UNAUTHORIZED, lambda _n, error=exc: error,
                                before_retry=token.renew) from None
        if status == 403:
            self._forbidden(token.value, ctx)
        if status == 429:
            problem = (response.headers.get("X-Rate-Limit-Problem") or "").lower()
            retry_after_s = retry_after(response)
            if problem in ("day", "daily"):
                raise DailyLimitReached(
                    "Xero's day limit is reached", problem="day", retry_after=retry_after_s,
                    cause=f"Retry-After {retry_after_s or '?'}s", **ctx,
                )
            if problem == "appminute":
                # The whole app waits, every process: recorded where they all look first.
                self.client.budget.throttled(retry_after_s)
            raise Retriable(
                THROTTLED,
                lambda _n: RateLimited(
                    f"Xero kept answering 429 ({problem or 'unknown'} limit)",
                    problem=problem or None, retry_after=retry_after_s, **ctx),
                retry_after=retry_after_s, note=f"429 ({problem or '?'}) from {endpoint}",
                # After waiting out a minute 429, trust Retry-After over the last counter seen.
                before_retry=self._pacer.forget_minute_counter,
            )
        if status == 503 and _is_organisation_offline(response.content):
            raise OrganisationOffline(
                "Xero has this organisation offline; it is deferred to the next run",
                cause="HTTP 503 Organisation offline", **ctx,
            )
        if status >= 500:
            raise Retriable(
                TRANSIENT,
                lambda tries: XeroUnavailable(f"Xero kept failing after {tries} attempts",
                                              cause=f"HTTP {status}", **ctx),
                note=f"HTTP {status} from {endpoint}",
            )
        detail = wire.problem_detail(response.content)
        if status == 400 and wire.error_type(response.content) == "HighVolumeException":
            raise HighVolumeRefused(
                "Xero refused a Contacts query this organisation is too large for",
                status=status, cause=f"HTTP 400 HighVolumeException: {detail}", **ctx,
            )
        raise XeroRequestError(
            "Xero refused the request", status=status,
            cause=f"HTTP {status} {detail}".strip(), **ctx,
        )

    def _forbidden(self, token: str, ctx: dict[str, str | None]) -> None:
        """A 403: ask ``/connections`` whether the tenant is still there; always raises."""
        self.client.stats.count_identity_call("connections")
        try:
            connections = list_connections(self.settings, token)
        except XeroError as exc:
            raise TenantDisconnected(
                "Xero refused the organisation (403) and /connections could not be checked",
                cause=str(exc), **ctx,
            ) from None
        if any(c.get("tenantId") == self.org.tenant_id for c in connections):
            reason = ("Xero refuses this organisation's data (403) although it is still "
                      "connected: the user who authorised the connection has lost the role or "
                      "permission; an admin of the organisation must reconnect")
            self.client.stats.lose_access(AccessLost(
                "needs_reconnection", reason, self.org.grant_id, self.org.tenant_id))
            raise PermissionLost(reason, cause="HTTP 403 AuthenticationUnsuccessful", **ctx)
        self.client.stats.lose_access(AccessLost(
            "disconnected", "Xero no longer lists this organisation for the app (403)",
            self.org.grant_id, self.org.tenant_id))
        raise TenantDisconnected(
            "the organisation is no longer connected to this app at Xero", cause="HTTP 403",
            **ctx,
        )

    # -- collections and pages ------------------------------------------------------------------

    def get_collection(
        self,
        path: str,
        collection: str,
        *,
        entity: str,
        params: dict[str, str] | None = None,
        if_modified_since: datetime | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> tuple[list[dict], dict]:
        """The records of one unpaged collection and the envelope they came in."""
        payload = self.get(path, entity=entity, params=params,
                           if_modified_since=if_modified_since, on_answer=on_answer)
        if payload is None:
            return [], {}
        try:
            return wire.unwrap(payload, collection, **self._context(entity, f"/{path}")), payload
        except XeroError as exc:
            raise self.stop(exc) from None

    def iter_pages(
        self,
        path: str,
        collection: str,
        *,
        entity: str,
        params: dict[str, str] | None = None,
        if_modified_since: datetime | None = None,
        page_size: int | None = None,
        start_page: int = 1,
    ) -> Iterator[Page]:
        """Pages of a paged collection, in order, from ``start_page``. ``page`` is always sent.

        After the first page, Xero's ``pagination.pageCount`` says how many pages there are: the
        rest are fetched a few at a time (within the in-flight limit; each asked for once the
        one before it was answered) and yielded in order, on to the last page any answer
        reports. Without it, we read on until a page is shorter than ``page_size``.
        """
        size = page_size or self.settings.page_size
        base = {**(params or {}), "pageSize": str(size)}

        def fetch(number: int) -> Page:
            return self.get_page(path, collection, entity=entity,
                                 params={**base, "page": str(number)},
                                 if_modified_since=if_modified_since, number=number)

        first = fetch(start_page)
        yield first
        if first.page_count is None:
            page = first
            while len(page.records) >= size:
                page = fetch(page.number + 1)
                yield page
            return
        # Pages are positions, evaluated when Xero answers. A page is asked for only once the
        # one before it has been answered, so Xero evaluates them in page order: a contact
        # created meanwhile then pushes others forward into a later page (a duplicate), never
        # out of a page fetched earlier (a gap). Bodies still download and parse side by side.
        # Every answer reports the page count of its moment: read on to the largest.
        ahead = max(1, self.settings.max_in_flight - 1)
        pending: dict[int, Future[Page]] = {}
        answered: dict[int, threading.Event] = {start_page: threading.Event()}
        answered[start_page].set()
        changed = threading.Condition()

        def signal(number: int) -> None:
            with changed:
                answered[number].set()
                changed.notify_all()

        def submit(number: int) -> None:
            answered[number] = threading.Event()
            future = self._pool().submit(
                self.get_page, path, collection, entity=entity,
                params={**base, "page": str(number)}, if_modified_since=if_modified_since,
                number=number, on_answer=lambda: signal(number))
            pending[number] = future
            future.add_done_callback(lambda _f: signal(number))  # a failure unblocks too

        last_page, next_page, wanted = first.page_count, start_page + 1, start_page + 1
        try:
            while wanted <= last_page:
                with changed:
                    while (next_page <= last_page and next_page - wanted < ahead
                           and answered[next_page - 1].is_set()):
                        submit(next_page)
                        next_page += 1
                    if not pending[wanted].done():
                        changed.wait(timeout=1.0)
                        continue
                page = pending.pop(wanted).result()
                last_page = max(last_page, page.page_count or 0)
                wanted += 1
                yield page
        finally:
            for future in pending.values():
                future.cancel()

    def get_page(
        self,
        path: str,
        collection: str,
        *,
        entity: str,
        params: dict[str, str],
        if_modified_since: datetime | None = None,
        number: int = 1,
        on_answer: Callable[[], None] | None = None,
    ) -> Page:
        """One page of a paged collection with what its envelope says (time, counts)."""
        records, payload = self.get_collection(path, collection, entity=entity, params=params,
                                               if_modified_since=if_modified_since,
                                               on_answer=on_answer)
        return Page(number, records, _server_time(payload), _pagination(payload, "pageCount"),
                    _pagination(payload, "itemCount"))

    def _pool(self) -> ThreadPoolExecutor:
        with self._workers_lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(
                    max_workers=self.settings.max_in_flight,
                    thread_name_prefix=f"xero-{self.org.tenant_id[:8]}",
                )
            return self._workers

    def close(self) -> None:
        """Stop the page workers: queued pages are dropped, a page being fetched is waited
        for (so no worker outlives the HTTP client and opens it again)."""
        with self._workers_lock:
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Page:
    """One page of a paged collection: its number, records, and what the envelope said."""

    number: int
    records: list[dict]
    server_time: datetime | None  # the envelope's DateTimeUTC: Xero's clock when it answered
    page_count: int | None
    item_count: int | None


def _pagination(payload: dict, key: str) -> int | None:
    pagination = payload.get("pagination") if isinstance(payload, dict) else None
    if isinstance(pagination, dict):
        try:
            return int(pagination[key])
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _server_time(payload: dict) -> datetime | None:
    value = payload.get("DateTimeUTC") if isinstance(payload, dict) else None
    try:
        return wire.parse_net_date(value) if wire.is_net_date(value) else None
    except ValueError:
        return None


def _is_organisation_offline(body: bytes) -> bool:
    """Xero's per-organisation 503 ("Organisation offline"), not its API-wide maintenance one."""
    text = body[:300].decode("utf-8", "replace").lower()
    return "offline" in text and ("organisation" in text or "organization" in text) \
        and "maintenance" not in text


__all__ = ["Organisation", "OrganisationSession", "Page", "XeroClient"]
