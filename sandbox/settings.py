"""Behaviours of Xero the sandbox can switch, set at `/_sandbox/settings` (reset restores them).

Each models something REFERENCE.md section 0 describes; where Xero's behaviour is uncertain the
setting chooses between the versions reported, so the product can be tested against each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

RECONSENT_MODES = ("keep", "new")
NOT_MODIFIED_MODES = ("empty", "304", "ignore")


@dataclass(frozen=True)
class SandboxSettings:
    """The switchable behaviours, with Xero's (or the most reported) as defaults."""

    # Contacts per organisation above which a Contacts request filtered or ordered on an
    # unoptimised field gets 400 HighVolumeException (Xero: "about 100,000").
    high_volume_threshold: int = 100_000
    # Whether an If-Modified-Since header lets an unoptimised Contacts read through on a
    # high-volume organisation. UNCONFIRMED: the reported refusal sent none; default no.
    high_volume_exempts_modified_since: bool = False
    # A re-consented, already connected organisation keeps its authEventId ("keep", as reports
    # say) or gets the new consent's ("new").
    reconsent_auth_event: str = "keep"
    # Organisations one app may have connected (None: no cap); at the cap the consent page
    # greys the others out.
    max_connections: int | None = None
    # gzip a body when the request's Accept-Encoding allows it, as Xero's web servers do.
    compress: bool = True
    # GET /Accounts with If-Modified-Since when no account changed since: "empty" (200 with an
    # empty Accounts list, the most likely), "304" (Not Modified, no body, as some Xero endpoints
    # answer) or "ignore" (the header ignored: the whole chart). UNCONFIRMED which Xero does.
    accounts_not_modified: str = "empty"
    # Webhooks (sandbox.webhooks). Whether `make_supplier` (IsSupplier derived from bills, the
    # record itself not edited) sends a CONTACT UPDATE. UNDOCUMENTED at Xero: default no.
    webhook_make_supplier_event: bool = False
    # Gap before the first retry of a failed delivery; each later gap doubles (Xero: "decreasing
    # frequency"). Tests set it small; the schedule follows the sandbox clock.
    webhook_retry_base_seconds: float = 60.0
    # How long failed deliveries are retried before the webhook is disabled (Xero: 24 hours).
    webhook_retry_window_seconds: float = 86_400.0
    # How long the receiver has to answer (Xero: 5 seconds).
    webhook_timeout_seconds: float = 5.0
    # Events are collected this long (real seconds) after the first one, or up to
    # `webhook_batch_max_events`, into one delivery. Xero's own batching is not documented.
    webhook_batch_seconds: float = 0.5
    webhook_batch_max_events: int = 100

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> SandboxSettings:
        """A copy with `changes` applied; ValueError names a bad key or value."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
        for name, value in changes.items():
            _check(name, value)
        return replace(self, **changes)


def _check(name: str, value: Any) -> None:
    if name == "high_volume_threshold":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("'high_volume_threshold' must be a whole number >= 0")
    elif name == "reconsent_auth_event":
        if value not in RECONSENT_MODES:
            raise ValueError(f"'reconsent_auth_event' must be one of {list(RECONSENT_MODES)}")
    elif name == "accounts_not_modified":
        if value not in NOT_MODIFIED_MODES:
            raise ValueError(
                f"'accounts_not_modified' must be one of {list(NOT_MODIFIED_MODES)}")
    elif name == "max_connections":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0):
            raise ValueError("'max_connections' must be null or a whole number >= 0")
    elif name in ("compress", "high_volume_exempts_modified_since",
                  "webhook_make_supplier_event") and not isinstance(value, bool):
        raise ValueError(f"{name!r} must be true or false")
    elif name in _POSITIVE_SECONDS:
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name!r} must be a number of seconds > 0")
    elif name == "webhook_batch_max_events" and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError("'webhook_batch_max_events' must be a whole number >= 1")


_POSITIVE_SECONDS = frozenset({"webhook_retry_base_seconds", "webhook_retry_window_seconds",
                               "webhook_timeout_seconds", "webhook_batch_seconds"})
