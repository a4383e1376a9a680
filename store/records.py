"""What the store holds, as values: grants, connections, their statuses, and the store's errors.

Shared by both backends; nothing here touches a database.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from connector.errors import ConfigurationError

HOME_ENV = "XERO_ELT_HOME"
DEFAULT_HOME = ".xero-elt"


class StoreError(Exception):
    """The store could not read or write (missing record, bad key, full disk, …)."""


class LockBusy(Exception):
    """Another holder keeps a lock of ``Store.exclusive``; ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is held by another run")
        self.name = name


class StoreConfigError(StoreError, ConfigurationError):
    """The store's URL or key is missing or wrong (the command line exits 2)."""

    def __init__(self, message: str) -> None:
        ConfigurationError.__init__(self, message)


class ConnectionStatus(StrEnum):
    """Where a connection stands; the values are the ones the `connections` table shows."""

    INVITED = "invited"
    LINK_OPENED = "link_opened"
    INCOMPLETE = "incomplete"
    CONNECTED = "connected"
    NEEDS_RECONNECTION = "needs_reconnection"
    DISCONNECTED = "disconnected"
    EXPIRED = "expired"
    PURGING = "purging"
    """A purge was asked for and has not finished: no run loads the organisation any more."""
    PURGED = "purged"
    """The organisation's data, state and tokens were removed on request; the row stays for the
    audit trail (when, by whom), with nothing else about the organisation."""


class GrantStatus(StrEnum):
    """Whether a grant's refresh token can still be used."""

    ACTIVE = "active"
    INVALID = "invalid"
    REVOKED = "revoked"


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (freezegun-friendly)."""
    return datetime.now(UTC)


def default_home() -> Path:
    """The local state folder: ``XERO_ELT_HOME`` or ``./.xero-elt``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


@dataclass(frozen=True)
class Grant:
    """One Xero consent's tokens. ``repr`` never shows a token."""

    grant_id: str
    client_id: str
    xero_user_id: str | None
    auth_event_id: str | None
    scopes: str
    access_token: str = dataclasses.field(repr=False)
    access_expires_at: datetime
    refresh_token: str = dataclasses.field(repr=False)
    refreshed_at: datetime
    status: str
    status_reason: str | None
    created_at: datetime

    def refresh_token_expires_at(self, idle_days: int = 60) -> datetime:
        """When Xero forgets the refresh token if it is not used before then."""
        return self.refreshed_at + timedelta(days=idle_days)


@dataclass(frozen=True)
class Connection:
    """An invite and, once a company is confirmed, the organisation it connected."""

    connection_id: str
    company: str
    email: str
    status: str
    status_reason: str | None
    invite_token_hash: str | None = dataclasses.field(repr=False)
    invite_expires_at: datetime | None
    invited_at: datetime
    link_opened_at: datetime | None
    tenant_id: str | None
    organisation_name: str | None
    xero_connection_id: str | None
    grant_id: str | None
    connected_at: datetime | None
    disconnected_at: datetime | None
    last_synced_at: datetime | None
    last_sync_rows: int | None
    last_sync_outcome: str | None
    sync_state: str | None
    updated_at: datetime
    purged_at: datetime | None = None
    purged_by: str | None = None
    language: str | None = None
    """The language of the invite's pages and email (``en``, ``ar``); none: the browser's."""


DATETIME_FIELDS = frozenset({
    "access_expires_at", "refreshed_at", "created_at", "invite_expires_at", "invited_at",
    "link_opened_at", "connected_at", "disconnected_at", "last_synced_at", "updated_at",
    "purged_at",
})
CONNECTION_FIELDS = tuple(f.name for f in dataclasses.fields(Connection))
UPDATABLE_CONNECTION_FIELDS = frozenset(CONNECTION_FIELDS) - {"connection_id"}


def to_text(value: datetime | None) -> str | None:
    """A datetime as stored: ISO 8601 in UTC, always with microseconds, so every value has one
    shape and text order is time order in both backends (whatever PostgreSQL's collation)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(value: str | None) -> datetime | None:
    """The stored text back as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value)
