"""The plain dlt use's token store: one grant's tokens in a 0600 JSON file, nothing of the app.

A ``refresh_token`` from ``[sources.xero]`` is adopted here on first use; Xero rotates it on
every refresh, so from then on the file's token wins over the secrets' (which Xero stops
accepting 30 minutes after the first refresh). The file sits in ``XERO_ELT_HOME``
(``tokens.json``), beside the secrets file it stands in for: it holds what ``.dlt/secrets.toml``
holds, so it is protected the same way (owner-only), not encrypted. The app keeps its grants in
its own store (``store``), never here.

Single-flight: ``grant_lock`` is a thread lock plus an ``flock`` on ``tokens.lock``, released
by the kernel when the holder dies, so two processes of one machine never refresh at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.errors import ConfigurationError

HOME_ENV = "XERO_ELT_HOME"
DEFAULT_HOME = ".xero-elt"
TOKENS_FILE = "tokens.json"
LOCK_FILE = "tokens.lock"


def local_home() -> Path:
    """The local state folder: ``XERO_ELT_HOME`` or ``./.xero-elt``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


@dataclass(frozen=True)
class FileGrant:
    """One grant's tokens as the file keeps them. ``repr`` never shows a token."""

    grant_id: str
    access_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_token: str = field(repr=False)
    status: str = "active"
    status_reason: str | None = None


class FileTokenStore:
    """Grants in ``HOME/tokens.json``; what ``connector.tokens.access_token_for`` needs.

    Args:
        home: the folder (default ``XERO_ELT_HOME``); created on first write.
    """

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else local_home()
        self.path = self.home / TOKENS_FILE
        self._thread_lock = threading.Lock()

    # -- the file ----------------------------------------------------------------------------

    def _read_all(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ConfigurationError(f"{self.path} is not valid JSON; remove it to adopt the "
                                     "refresh token from the secrets again") from None
        return data if isinstance(data, dict) else {}

    def _write_all(self, data: Mapping[str, Any]) -> None:
        """Atomically: a crash leaves the old file or the new one."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    def _grant(grant_id: str, row: Mapping[str, Any]) -> FileGrant:
        return FileGrant(grant_id=grant_id, access_token=row["access_token"],
                         access_expires_at=datetime.fromisoformat(row["access_expires_at"]),
                         refresh_token=row["refresh_token"], status=row.get("status", "active"),
                         status_reason=row.get("status_reason"))

    @staticmethod
    def _row(grant: FileGrant) -> dict[str, Any]:
        return {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                "access_expires_at": grant.access_expires_at.isoformat(),
                "status": grant.status, "status_reason": grant.status_reason}

    # -- what the token code asks ------------------------------------------------------------

    @contextlib.contextmanager
    def grant_lock(self, grant_id: str, timeout: float = 60.0) -> Iterator[None]:
        """Hold the file exclusively (every grant at once: there is usually one)."""
        if not self._thread_lock.acquire(timeout=timeout):
            raise ConfigurationError(f"{self.path} stayed locked for {timeout:.0f} s")
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            with open(self.home / LOCK_FILE, "a+b") as handle:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise ConfigurationError(
                                f"{self.path} stayed locked for {timeout:.0f} s") from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def get_grant(self, grant_id: str) -> FileGrant:
        """The grant; ConfigurationError if the file does not have it."""
        row = self._read_all().get("grants", {}).get(grant_id)
        if row is None:
            raise ConfigurationError(f"no grant {grant_id!r} in {self.path}")
        return self._grant(grant_id, row)

    def adopted(self, fingerprint: str) -> str | None:
        """The grant adopted from the refresh token with this SHA-256, if any."""
        return self._read_all().get("adopted", {}).get(fingerprint)

    def adopt(self, fingerprint: str, refresh_token: str) -> str:
        """Keep a refresh token from the secrets as a new grant (its access token already
        expired, so the first use refreshes); call it inside ``grant_lock``."""
        grant_id = "grt_" + secrets.token_hex(8)
        data = self._read_all()
        grant = FileGrant(grant_id, "", datetime.now(UTC), refresh_token)
        data.setdefault("grants", {})[grant_id] = self._row(grant)
        data.setdefault("adopted", {})[fingerprint] = grant_id
        self._write_all(data)
        return grant_id

    def keep(self, fingerprint: str, grant: FileGrant) -> None:
        """Keep a grant as adopted from the refresh token with this SHA-256 (moving grants
        from elsewhere); call it inside ``grant_lock``."""
        data = self._read_all()
        data.setdefault("grants", {})[grant.grant_id] = self._row(grant)
        data.setdefault("adopted", {})[fingerprint] = grant.grant_id
        self._write_all(data)

    def save_rotated_tokens(self, grant_id: str, token_response: dict[str, Any], *,
                            now: datetime | None = None) -> FileGrant:
        """Replace the grant's tokens with a refresh's (written before this returns)."""
        now = now or datetime.now(UTC)
        try:
            grant = FileGrant(grant_id, str(token_response["access_token"]),
                              now + timedelta(seconds=int(token_response.get("expires_in", 1800))),
                              str(token_response["refresh_token"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError("token response lacks access_token/refresh_token/"
                                     "expires_in") from None
        data = self._read_all()
        data.setdefault("grants", {})[grant_id] = self._row(grant)
        self._write_all(data)
        return grant

    def mark_invalid(self, grant_id: str, reason: str) -> None:
        """Xero refused the grant: later runs say so at once instead of asking Xero again."""
        data = self._read_all()
        row = data.get("grants", {}).get(grant_id)
        if row is not None:
            grant = replace(self._grant(grant_id, row), status="invalid", status_reason=reason)
            data["grants"][grant_id] = self._row(grant)
            self._write_all(data)

    def list_grants(self) -> list[FileGrant]:
        """Every grant in the file."""
        return [self._grant(gid, row) for gid, row in self._read_all().get("grants", {}).items()]


__all__ = ["FileGrant", "FileTokenStore", "local_home"]
