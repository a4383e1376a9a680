"""Access tokens for a grant: refresh ahead of expiry, with rotation, one refresh at a time.

Xero rotates the refresh token on every refresh and invalidates the previous access token, and two
refreshes of one grant racing each other burn it. So:

- a refresh happens only inside ``store.grant_lock`` (exclusive across threads, processes and,
  on PostgreSQL, machines);
- inside the lock the grant is read again: another thread or process may have refreshed already;
- the lock is held for one token call only: a transient failure releases it, and the backoff
  before the next attempt happens outside it (so nobody waits on a sleeping holder, and the next
  attempt may find that another process refreshed meanwhile);
- the rotated token response is saved (``store.save_rotated_tokens``, one committed transaction)
  before the new access token is handed to anyone;
- if we crash after Xero rotated but before our save, the stored refresh token is the previous
  one, which Xero still accepts for 30 minutes: the next run simply refreshes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from connector.errors import GrantInvalid, XeroUnavailable
from connector.identity import refresh_tokens
from connector.retry import TRANSIENT, Backoff, Retriable, RetryPolicy
from connector.settings import XeroSettings

if TYPE_CHECKING:
    import contextlib

    import httpx

log = logging.getLogger(__name__)



class Grant(Protocol):
    """What the token code reads of a stored grant."""

    grant_id: str
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    status: str
    status_reason: str | None


class GrantStore(Protocol):
    """Where grants live: the app's store (``store``) or the plain use's token file
    (``connector.token_file``)."""

    def get_grant(self, grant_id: str) -> Grant:
        """The grant as stored now."""
        ...

    def grant_lock(self, grant_id: str,
                   timeout: float = 60.0) -> contextlib.AbstractContextManager[None]:
        """Hold the grant exclusively (threads, processes, machines where it can)."""
        ...

    def save_rotated_tokens(self, grant_id: str, token_response: dict[str, Any], *,
                            now: datetime | None = None) -> Grant:
        """Keep the rotated tokens, committed before returning."""
        ...


# Told (grant id, Xero's reason) when Xero refuses a grant, inside the grant lock, before
# GrantInvalid is raised: the owner of the grants records it (the app's store marks the grant
# and moves its connections on, ``store.lifecycle``).
OnGrantInvalid = Callable[[str, str], object]

REFRESH_ATTEMPTS = 3
MAX_REFRESH_BACKOFF_SECONDS = 8.0


def _usable(grant: Grant, now: datetime, margin: float, rejected: str | None) -> bool:
    """The stored access token can be used: not the one Xero just rejected, not about to expire."""
    if rejected is not None and grant.access_token == rejected:
        return False
    return grant.access_expires_at - timedelta(seconds=margin) > now


def _check_active(grant: Grant) -> None:
    if grant.status != "active":
        raise GrantInvalid(
            f"grant {grant.grant_id} is {grant.status}; the organisation must be connected again",
            error="invalid_grant", cause=grant.status_reason,
        )


def access_token_for(
    store: GrantStore,
    settings: XeroSettings,
    grant_id: str,
    *,
    rejected: str | None = None,
    now: datetime | None = None,
    on_refresh: Callable[[], None] | None = None,
    http: Callable[[], httpx.Client] | None = None,
    on_grant_invalid: OnGrantInvalid | None = None,
) -> str:
    """A valid access token for the grant, refreshing it when needed.

    Args:
        store: the credential store.
        settings: Xero settings (token URL, client credentials, ``refresh_margin_seconds``).
        grant_id: the grant to use.
        rejected: an access token Xero just answered 401 to; never returned again.
        now: the current time (tests); defaults to the clock.
        on_refresh: called when a refresh request is sent to Xero (call counting).
        http: gives the client to send a refresh with (one shared by a run's many grants),
            called only when a refresh is sent (a client costs ~60 ms of CPU, mostly its TLS
            context); default a client of its own.
        on_grant_invalid: told (grant id, reason) when Xero refuses the grant, before
            ``GrantInvalid`` is raised, still inside the grant lock.

    Raises:
        GrantInvalid: the grant is dead (``invalid_grant``).
        OAuthError, XeroUnavailable, MalformedResponse: the refresh failed otherwise.
    """
    margin = settings.refresh_margin_seconds
    grant = store.get_grant(grant_id)
    _check_active(grant)
    if _usable(grant, now or datetime.now(UTC), margin, rejected):
        return grant.access_token

    def attempt() -> str:
        try:
            return _refresh_once(store, settings, grant_id, rejected=rejected, now=now,
                                 on_refresh=on_refresh, http=http,
                                 on_grant_invalid=on_grant_invalid)
        except XeroUnavailable as exc:
            # Retried outside the lock: others are not held up while we wait.
            raise Retriable(TRANSIENT, lambda _n, error=exc: error,
                            note=f"token refresh of grant {grant_id}: {exc.cause}") from None

    return RetryPolicy.transient_only(
        settings, REFRESH_ATTEMPTS,
        backoff=Backoff(2 * settings.backoff_seconds, MAX_REFRESH_BACKOFF_SECONDS),
    ).call(attempt, sleep=lambda seconds: time.sleep(seconds))


def _refresh_once(
    store: GrantStore,
    settings: XeroSettings,
    grant_id: str,
    *,
    rejected: str | None,
    now: datetime | None,
    on_refresh: Callable[[], None] | None,
    http: Callable[[], httpx.Client] | None = None,
    on_grant_invalid: OnGrantInvalid | None = None,
) -> str:
    """Under the grant lock: use a token someone else just saved, or make one token call."""
    margin = settings.refresh_margin_seconds
    with store.grant_lock(grant_id):
        grant = store.get_grant(grant_id)  # another process may have refreshed meanwhile
        _check_active(grant)
        if _usable(grant, now or datetime.now(UTC), margin, rejected):
            return grant.access_token
        if on_refresh is not None:
            on_refresh()
        try:
            token_set = refresh_tokens(settings, grant.refresh_token, attempts=1,
                                       http=http() if http else None)
        except GrantInvalid as exc:
            if on_grant_invalid is not None:
                on_grant_invalid(grant_id, exc.cause or "invalid_grant")
            raise
        # Persist the rotated refresh token before anyone uses the new access token.
        saved = store.save_rotated_tokens(grant_id, token_set.raw, now=now)
        log.info("refreshed the access token of grant %s", grant_id)
        return saved.access_token


__all__ = ["Grant", "GrantStore", "OnGrantInvalid", "access_token_for"]
