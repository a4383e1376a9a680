"""API keys of the auth server's JSON API: created, looked up by hash, listed, revoked.

A key is shown once, when it is created; the store keeps its SHA-256 only. Keys are 43
characters of ``secrets.token_urlsafe`` after a ``xelt_`` prefix (256 bits), so a fast hash
cannot be reversed or guessed and lookups stay one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.records import StoreError, from_text, to_text, utcnow

KEY_PREFIX = "xelt_"
MIN_API_KEY_LENGTH = 32  # the admin token's floor (docs/reliability.md, Security)
# What a key may do, each scope including the ones before it: ``read`` (GETs), ``write``
# (invites, resend, withdraw, sync), ``admin`` (disconnect, purge). Keys from before scopes
# existed are ``admin``: they keep every right they had.
SCOPES: tuple[str, ...] = ("read", "write", "admin")
DEFAULT_SCOPE = "admin"


def api_key_hash(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One API key's record (never the key itself)."""

    key_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scope: str = DEFAULT_SCOPE

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def allows(self, needed: str) -> bool:
        """True when this key's scope covers ``needed`` (``admin`` covers everything)."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def summary(self) -> dict[str, Any]:
        """JSON-ready (``xero-elt apikey list --json``)."""
        return {"key_id": self.key_id, "name": self.name, "created_at": to_text(self.created_at),
                "last_used_at": to_text(self.last_used_at),
                "revoked_at": to_text(self.revoked_at), "scope": self.scope}


def _key(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(key_id=row["key_id"], name=row["name"],
                  created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
                  last_used_at=from_text(row["last_used_at"]),
                  revoked_at=from_text(row["revoked_at"]),
                  scope=row["scope"] or DEFAULT_SCOPE)


class ApiKeyQueries:
    """The API keys' queries, mixed into ``Store`` (which supplies ``_read`` and ``_write``)."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def create_api_key(self, name: str, scope: str = DEFAULT_SCOPE) -> tuple[ApiKey, str]:
        """A new key named ``name`` with ``scope``; returns its record and the key (the only
        time it exists)."""
        name = " ".join(name.split())
        if not name or len(name) > 100:
            raise StoreError("an API key needs a name of 1..100 characters")
        if scope not in SCOPES:
            raise StoreError(f"an API key's scope is one of {', '.join(SCOPES)}, not {scope!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(6)
        with self._write() as tx:
            tx.execute(
                "INSERT INTO api_keys (key_id, name, key_hash, created_at, scope)"
                " VALUES (?,?,?,?,?)", (key_id, name, api_key_hash(key), to_text(utcnow()), scope))
        return self.get_api_key(key_id), key

    def get_api_key(self, key_id: str) -> ApiKey:
        """A key's record; StoreError if there is none."""
        rows = self._read("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
        if not rows:
            raise StoreError(f"no API key {key_id!r} in the store")
        return _key(rows[0])

    def list_api_keys(self) -> list[ApiKey]:
        """Every key's record, oldest first, revoked ones included."""
        return [_key(r) for r in self._read("SELECT * FROM api_keys ORDER BY created_at, key_id")]

    def check_api_key(self, key: str) -> ApiKey | None:
        """The active key's record for a presented key, else None; notes when it was used."""
        if len(key) < MIN_API_KEY_LENGTH:
            return None
        wanted = api_key_hash(key)
        rows = self._read("SELECT * FROM api_keys WHERE key_hash = ?", (wanted,))
        # Found by hash; compared again in constant time so equality is never short-cut.
        if not rows or not hmac.compare_digest(rows[0]["key_hash"], wanted):
            return None
        record = _key(rows[0])
        if not record.active:
            return None
        with self._write() as tx:
            tx.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?",
                       (to_text(utcnow()), record.key_id))
        return record

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """Stop a key working at once (revoking twice is harmless)."""
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
                (to_text(utcnow()), key_id))
            if changed != 1:
                raise StoreError(f"no API key {key_id!r} in the store")
        return self.get_api_key(key_id)
