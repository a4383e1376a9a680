"""Egress: the bytes Xero sent, per organisation, against the app's monthly allowance.

Since March 2026 Xero meters an app's monthly data egress (docs/deploy.md has the tiers). Runs
count what Xero sends (gzip, as sent) per organisation and UTC day in ``api_usage`` beside the
day's calls (``connector.usage``), so every machine's runs add up; ``xero-elt status`` and the
admin page show the figures computed here.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from store.base import Store

DAYS = 30
WARN_SHARE = 0.8  # warn when the month's projection reaches this share of the allowance
GB = 1_000_000_000  # Xero's allowances are in GB (10^9 bytes)


@configspec
class EgressSettings(BaseConfiguration):
    """``[pipelines]``: the monthly egress allowance the figures are measured against."""

    egress_allowance_gb: float | None = None
    """Xero's monthly data-egress allowance of the app's tier, in GB (reported as Core 10,
    Plus 50, Advanced 250: docs/deploy.md); unset, no allowance is shown. Also
    ``PIPELINES__EGRESS_ALLOWANCE_GB``."""


def figures(by_day: dict[str, int], today: date) -> dict[str, int]:
    """One organisation's egress: bytes received in the last 30 days (today included) and a
    projection for the month (received so far this month, plus the 30 days' daily average over
    the days it has had any, for the days left)."""
    start = (today - timedelta(days=DAYS - 1)).isoformat()
    window = {d: b for d, b in by_day.items() if d >= start}
    month = sum(b for d, b in by_day.items() if d >= today.replace(day=1).isoformat())
    total = sum(window.values())
    first = min((d for d, b in window.items() if b), default=None)
    days = (today - date.fromisoformat(first)).days + 1 if first else 1
    left = calendar.monthrange(today.year, today.month)[1] - today.day
    return {"bytes_30_days": total, "bytes_month_projected": month + total * left // days}


def allowance_bytes() -> int | None:
    """``[pipelines] egress_allowance_gb`` in bytes (None when unset)."""
    gb = resolve_configuration(EgressSettings(), sections=("pipelines",)).egress_allowance_gb
    return None if gb is None else int(gb * GB)


@dataclass
class Egress:
    """Every organisation's figures, their total (with ``allowance_bytes`` when set), and the
    warning to show, if any."""

    organisations: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    warning: str | None = None

    def of(self, tenant_id: str | None) -> dict[str, int]:
        """One organisation's figures (zeros when it has none)."""
        return self.organisations.get(tenant_id or "") or {"bytes_30_days": 0,
                                                           "bytes_month_projected": 0}


def egress(store: Store, now: datetime) -> Egress:
    """The figures from the store's daily counts, as of ``now``."""
    today = now.date()
    since = min(today - timedelta(days=DAYS - 1), today.replace(day=1))
    found = Egress(total={"bytes_30_days": 0, "bytes_month_projected": 0})
    # Organisations purged or gone count too: Xero metered what it sent them.
    for tenant, by_day in store.bytes_received_by_day(since.isoformat()).items():
        found.organisations[tenant] = figures(by_day, today)
        for key, value in found.organisations[tenant].items():
            found.total[key] += value
    allowance = allowance_bytes()
    if allowance is not None:
        found.total["allowance_bytes"] = allowance
        projected = found.total["bytes_month_projected"]
        share = projected / allowance if allowance else 1.0
        if share >= WARN_SHARE:
            found.warning = (
                f"Xero egress: {size(projected)} projected this month, {share:.0%} of the "
                f"allowance of {size(allowance)} ([pipelines] egress_allowance_gb); "
                "docs/deploy.md says what costs egress")
    return found


def size(count: int) -> str:
    """Bytes for a person: B, kB, MB or GB (powers of 1,000, as Xero counts)."""
    for unit, step in (("GB", GB), ("MB", 1_000_000), ("kB", 1_000)):
        if count >= step:
            return f"{count / step:.1f} {unit}"
    return f"{count} B"


__all__ = ["GB", "Egress", "EgressSettings", "allowance_bytes", "egress", "figures", "size"]
