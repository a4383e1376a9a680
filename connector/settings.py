"""Settings of the Xero connector, read through dlt's config providers, and the entity table.

Everything lives under ``[sources.xero]``: environment variables (``SOURCES__XERO__API_URL``, ...)
win over ``.dlt/secrets.toml`` and ``.dlt/config.toml`` (in the working directory), and those win
over the defaults below, which are the real Xero URLs. ``load_settings(**overrides)`` lets code and
tests set any field directly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

from connector.errors import ConfigurationError

PRODUCT = "xero-elt"

# The four entities and the two tables tracking categories give; the order is the load order.
ENTITIES: tuple[str, ...] = (
    "suppliers",
    "accounts",
    "tax_rates",
    "tracking_categories",
    "tracking_options",
)

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


@configspec
class _XeroConfig(BaseConfiguration):
    """What dlt resolves from ``sources.xero.*``; turned into the frozen ``XeroSettings``."""

    client_id: str | None = None
    client_secret: TSecretStrValue | None = None
    authorize_url: str = "https://login.xero.com/identity/connect/authorize"
    token_url: str = "https://identity.xero.com/connect/token"  # noqa: S105 (a URL)
    revocation_url: str = "https://identity.xero.com/connect/revocation"
    connections_url: str = "https://api.xero.com/connections"
    api_url: str = "https://api.xero.com/api.xro/2.0"
    scopes: str = DEFAULT_SCOPES
    user_agent: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    daily_call_budget: int = 5000
    page_size: int = 1000
    max_in_flight: int = 5
    calls_per_minute: int = 60
    max_retries: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    refresh_margin_seconds: float = 300.0
    cursor_overlap_seconds: float = 60.0
    reconcile_interval_hours: float = 24.0
    reconcile_sweep_parts: int = 5
    ids_per_call: int = 50
    history: Any | None = None
    schema_contract: str = "evolve"


@dataclass(frozen=True)
class XeroSettings:
    """Every setting of the connector, typed and documented.

    Attributes:
        client_id: the Xero app's client id (secret file or env).
        client_secret: the app's client secret; hidden from repr.
        authorize_url, token_url, revocation_url, connections_url, api_url: Xero's endpoints
            (the sandbox's in tests and the demo).
        scopes: space-separated scopes requested at consent.
        user_agent: sent on every call; names the product and its version.
        timeout: read/write/pool timeout per request, seconds.
        connect_timeout: TCP connect timeout, seconds.
        daily_call_budget: calls per organisation per day we allow ourselves (Xero: 5,000;
            Starter tier 1,000). A run stops an organisation cleanly before crossing it.
        page_size: Contacts page size (Xero's maximum is 1000).
        max_in_flight: concurrent requests per organisation (Xero allows 5).
        calls_per_minute: our own pace per organisation (Xero allows 60 per minute; raise it
            only against a sandbox without limits); ``X-MinLimit-Remaining`` slows us further
            when others share the quota.
        max_retries: retries after a 5xx, timeout or dropped connection (bounded).
        backoff_seconds, max_backoff_seconds: exponential backoff base and cap (with jitter).
        max_retry_after_seconds: the longest minute-limit ``Retry-After`` we sleep for.
        refresh_margin_seconds: refresh an access token this long before it expires.
        cursor_overlap_seconds: ``If-Modified-Since`` is the cursor minus this much.
        reconcile_interval_hours: a supplier reconciliation (finds contacts whose
            ``IsSupplier`` changed without ``UpdatedDateUTC`` moving) runs when the last one is
            older.
        reconcile_sweep_parts: each reconciliation reads this fraction (1/N) of the supplier
            list in summary form, so a change the supplier count cannot show is found within
            N reconciliations; larger N, fewer bytes.
        ids_per_call: ContactIDs per ``IDs=`` request (Xero rejects URLs past about 52).
        history: entities kept with full history (scd2), e.g. ``{"accounts", "tax_rates"}``.
        schema_contract: ``evolve`` (default), ``freeze``, ``discard_row`` or ``discard_value``
            for new columns; ``freeze`` also freezes data types.
    """

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    authorize_url: str = _XeroConfig.authorize_url
    token_url: str = _XeroConfig.token_url
    revocation_url: str = _XeroConfig.revocation_url
    connections_url: str = _XeroConfig.connections_url
    api_url: str = _XeroConfig.api_url
    scopes: str = DEFAULT_SCOPES
    user_agent: str = field(default_factory=default_user_agent)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    daily_call_budget: int = 5000
    page_size: int = 1000
    max_in_flight: int = 5
    calls_per_minute: int = 60
    max_retries: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    refresh_margin_seconds: float = 300.0
    cursor_overlap_seconds: float = 60.0
    reconcile_interval_hours: float = 24.0
    reconcile_sweep_parts: int = 5
    ids_per_call: int = 50
    history: frozenset[str] = frozenset()
    schema_contract: str = "evolve"

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
        if not 1 <= self.ids_per_call <= 52:
            raise ConfigurationError(
                f"sources.xero.ids_per_call must be between 1 and 52, got {self.ids_per_call}"
            )
        if self.calls_per_minute < 1:
            raise ConfigurationError("sources.xero.calls_per_minute must be at least 1")
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
        ConfigurationError: a value has the wrong type or is out of range.
    """
    known = {f.name for f in dataclasses.fields(XeroSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigurationError(f"unknown Xero settings: {', '.join(sorted(unknown))}")
    try:
        config = resolve_configuration(_XeroConfig(), sections=("sources", "xero"))
    except ConfigurationException as exc:
        raise ConfigurationError(f"cannot read [sources.xero]: {exc}") from None
    values: dict[str, Any] = {
        name: getattr(config, name) for name in known if getattr(config, name) is not None
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return XeroSettings(**values)


__all__ = [
    "DEFAULT_SCOPES",
    "ENTITIES",
    "PRODUCT",
    "XeroSettings",
    "load_settings",
    "parse_history",
    "product_version",
]
