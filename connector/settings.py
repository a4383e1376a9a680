"""Settings of the Xero connector, read through dlt's config providers, and the entity table.

Everything lives under ``[sources.xero]``: environment variables (``SOURCES__XERO__API_URL``, ...)
win over ``.dlt/secrets.toml`` and ``.dlt/config.toml`` (in the working directory), and those win
over the defaults below, which are the real Xero URLs. Each setting is declared once, in
``XeroSettings``; ``load_settings(**overrides)`` reads them (``connector.config``) and lets code and
tests set any field directly. The entity table is ``connector.entities``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from connector.config import read_settings, secret
from connector.entities import ENTITIES
from connector.errors import ConfigurationError

PRODUCT = "xero-elt"

DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.contacts.read accounting.settings.read"
)

SCHEMA_CONTRACT_MODES = ("evolve", "freeze", "discard_row", "discard_value")


def product_version() -> str:
    """The installed version of xero-elt (``0.0.0+local`` when running from a checkout)."""
    try:
        return metadata.version(PRODUCT)
    except metadata.PackageNotFoundError:
        return "0.0.0+local"


def default_user_agent() -> str:
    """User-Agent naming the product and version, as Xero asks of integrations."""
    return f"{PRODUCT}/{product_version()} (python-httpx)"


@dataclass(frozen=True)
class XeroSettings:
    """Every ``[sources.xero]`` setting, declared once: type, default, meaning.

    Read through dlt's providers by ``load_settings`` (``connector.config.read_settings``).
    """

    client_id: str = ""
    """The Xero app's client id (``.dlt/secrets.toml`` or ``SOURCES__XERO__CLIENT_ID``)."""
    client_secret: str = secret("")
    """The app's client secret; empty for a PKCE app."""
    refresh_token: str = secret("")
    """A refresh token for the plain-source use: adopted into the local token store on first
    use; afterwards the store's rotated token wins (Xero rotates it on every refresh)."""
    authorize_url: str = "https://login.xero.com/identity/connect/authorize"
    """Xero's consent page (the sandbox's in tests and the demo)."""
    token_url: str = "https://identity.xero.com/connect/token"  # noqa: S105 (a URL)
    """Xero's token endpoint."""
    revocation_url: str = "https://identity.xero.com/connect/revocation"
    """Xero's revocation endpoint."""
    connections_url: str = "https://api.xero.com/connections"
    """Xero's tenant-less ``/connections`` endpoint."""
    api_url: str = "https://api.xero.com/api.xro/2.0"
    """The Accounting API's base URL."""
    scopes: str = DEFAULT_SCOPES
    """Space-separated scopes requested at consent."""
    user_agent: str = field(default_factory=default_user_agent)
    """Sent on every call; names the product and its version, as Xero asks."""
    timeout: float = 30.0
    """Read/write/pool timeout per request, seconds."""
    connect_timeout: float = 10.0
    """TCP connect timeout, seconds."""
    daily_call_budget: int = 5000
    """Calls per organisation per UTC day we allow ourselves (Xero: 5,000; Starter tier
    1,000); a run stops an organisation cleanly before crossing it."""
    page_size: int = 1000
    """Contacts page size (Xero's maximum is 1000)."""
    max_in_flight: int = 5
    """Concurrent requests per organisation (Xero allows 5)."""
    calls_per_minute: int = 60
    """Our own pace per organisation (Xero allows 60 a minute; raise it only against a sandbox
    without limits); ``X-MinLimit-Remaining`` slows us further when others share the quota."""
    app_calls_per_minute: int = 9_500
    """Calls the whole app allows itself in Xero's app window (Xero: 10,000 a minute across
    every organisation; the margin is for calls outside the budget, such as token refreshes).
    With the app's store, every process on every machine draws from this one budget before it
    calls; the plain dlt use paces this process to it."""
    app_window_seconds: float = 60.0
    """The length of Xero's app window (a minute); only tests against a sandbox whose
    ``app_window_seconds`` is shortened change it."""
    max_retries: int = 4
    """Retries after a 5xx, timeout or dropped connection (bounded)."""
    backoff_seconds: float = 0.5
    """Exponential backoff base (with jitter), seconds."""
    max_backoff_seconds: float = 30.0
    """Exponential backoff cap, seconds."""
    max_retry_after_seconds: float = 120.0
    """The longest minute-limit ``Retry-After`` we sleep for; longer defers the organisation."""
    refresh_margin_seconds: float = 300.0
    """Refresh an access token this long before it expires."""
    cursor_overlap_seconds: float = 60.0
    """``If-Modified-Since`` is the cursor minus this much."""
    reconcile_interval_hours: float = 24.0
    """A supplier reconciliation (finds contacts whose ``IsSupplier`` changed without
    ``UpdatedDateUTC`` moving) runs when the last one is older."""
    reconcile_sweep_parts: int = 5
    """Each reconciliation reads 1/N of the supplier list in summary form (of every contact's,
    for a high-volume organisation, which has no supplier count to check), so a change the
    supplier count cannot show is found within N reconciliations; larger N, fewer bytes."""
    accounts_snapshot_hours: float = 24.0
    """Accounts are read with ``If-Modified-Since`` (the cursor minus ``cursor_overlap_seconds``)
    and only what changed is loaded; such a partial answer cannot show a deleted account, so the
    whole chart is read without the header, and compared for deletions, when the last whole read
    is this many hours old (and on ``full_refresh``, ``reconcile`` and a first run). A deleted
    account is marked within this interval. 0: every run reads the whole chart. With history
    (scd2) on for accounts, a run whose answer shows a change reads the whole chart too (a second
    call: scd2 retires what a load leaves out); a run that finds no change loads nothing."""
    ids_per_call: int = 50
    """ContactIDs per ``IDs=`` request (Xero rejects URLs past about 52)."""
    history: frozenset[str] = frozenset()
    """Entities kept with full history (scd2): a list, ``"a,b"``, a table of booleans or
    ``"all"``."""
    schema_contract: str = "evolve"
    """``evolve`` (default), ``freeze``, ``discard_row`` or ``discard_value`` for new columns;
    ``freeze`` also freezes data types."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", parse_history(self.history))
        for url_field in ("authorize_url", "token_url", "revocation_url", "connections_url",
                          "api_url"):
            url = getattr(self, url_field)
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"sources.xero.{url_field} must be an http(s) URL, got {url!r}"
                )
            object.__setattr__(self, url_field, url.rstrip("/"))
        if not 1 <= self.page_size <= 1000:
            raise ConfigurationError(
                f"sources.xero.page_size must be between 1 and 1000, got {self.page_size}"
            )
        if not 1 <= self.max_in_flight <= 5:
            raise ConfigurationError(
                f"sources.xero.max_in_flight must be between 1 and 5, got {self.max_in_flight}"
            )
        if self.reconcile_sweep_parts < 1:
            raise ConfigurationError("sources.xero.reconcile_sweep_parts must be at least 1")
        if not self.accounts_snapshot_hours >= 0:
            raise ConfigurationError("sources.xero.accounts_snapshot_hours must be 0 or more")
        if not 1 <= self.ids_per_call <= 52:
            raise ConfigurationError(
                f"sources.xero.ids_per_call must be between 1 and 52, got {self.ids_per_call}"
            )
        if self.calls_per_minute < 1:
            raise ConfigurationError("sources.xero.calls_per_minute must be at least 1")
        if self.app_calls_per_minute < 1:
            raise ConfigurationError("sources.xero.app_calls_per_minute must be at least 1")
        if self.app_window_seconds <= 0:
            raise ConfigurationError("sources.xero.app_window_seconds must be positive")
        if self.daily_call_budget < 1:
            raise ConfigurationError("sources.xero.daily_call_budget must be at least 1")
        if self.schema_contract not in SCHEMA_CONTRACT_MODES:
            raise ConfigurationError(
                "sources.xero.schema_contract must be one of "
                f"{', '.join(SCHEMA_CONTRACT_MODES)}; got {self.schema_contract!r}"
            )

    def require_client(self) -> None:
        """Raise ``ConfigurationError`` unless the app's client id (and secret) are set."""
        if not self.client_id:
            raise ConfigurationError(
                "sources.xero.client_id is not set: put it in .dlt/secrets.toml under "
                "[sources.xero] or in the environment as SOURCES__XERO__CLIENT_ID"
            )

    def history_for(self, entity: str) -> bool:
        """True when ``entity`` keeps full history (scd2)."""
        return entity in self.history

    def replace(self, **changes: Any) -> XeroSettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def parse_history(value: Any) -> frozenset[str]:
    """Read the ``history`` setting: a list, a comma-separated string, or a table of booleans.

    ``history = ["accounts"]``, ``SOURCES__XERO__HISTORY=accounts,tax_rates``,
    ``[sources.xero.history] accounts = true`` and ``"all"`` are all accepted.
    """
    if value is None or value == "":
        return frozenset()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            return parse_history(json.loads(text))
        names = {part.strip() for part in text.split(",") if part.strip()}
    elif isinstance(value, dict):
        names = {str(k) for k, v in value.items() if v in (True, "true", "True", 1, "1")}
    else:
        names = {str(v) for v in value}
    if "all" in names:
        return frozenset(ENTITIES)
    unknown = names - set(ENTITIES)
    if unknown:
        raise ConfigurationError(
            f"sources.xero.history names unknown entities {sorted(unknown)}; "
            f"known: {', '.join(ENTITIES)}"
        )
    return frozenset(names)


def load_settings(**overrides: Any) -> XeroSettings:
    """Resolve ``[sources.xero]`` through dlt's providers; ``overrides`` win over everything.

    Raises:
        ConfigurationError: an unknown setting, a value of the wrong type or out of range.
    """
    return read_settings(XeroSettings, ("sources", "xero"), overrides, ConfigurationError)


__all__ = [
    "DEFAULT_SCOPES",
    "ENTITIES",
    "PRODUCT",
    "XeroSettings",
    "load_settings",
    "parse_history",
    "product_version",
]
