"""`xero-elt status`: recent runs, freshness per organisation and entity, and warnings.

Reads only local state (the store and the run history), so it works when the warehouse is down.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines import exitcodes
from pipelines.destinations import target_key
from pipelines.run import read_history
from pipelines.schedule_commands import compact, describe
from store import ConnectionStatus, Store, open_store
from store.egress import egress, size
from store.schedules import BadSchedule

# Xero forgets a refresh token unused for 60 days; warn with time to spare.
REFRESH_IDLE_DAYS = 60
REFRESH_WARN_DAYS = 45
STALE_AFTER = timedelta(days=2)
# Webhook events should be loaded within a minute; this long pending means the targeted runs
# are failing or blocked (a scheduled run holding the organisation, a dead grant).
WEBHOOK_LAG_WARN = timedelta(minutes=15)
def collect(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready document."""
    now = now or datetime.now(UTC)
    history = read_history(store.home)
    grants = {g.grant_id: g for g in store.list_grants()}
    sent = egress(store, now)
    freshness: dict[str, dict[str, Any]] = {}
    for run in history:
        for org in run.get("organisations", []):
            for entity, result in org.get("entities", {}).items():
                if result.get("outcome") == "ok":
                    freshness.setdefault(org["tenant_id"], {})[entity] = run.get("started_at")
    warnings: list[str] = []
    organisations = []
    # Per organisation and entity: its interval and next due time, for the default destination.
    connections = store.list_connections()
    try:
        planned = {org["connection_id"]: org["entities"] for org in describe(
            store, target_key(),
            [c for c in connections if c.status == ConnectionStatus.CONNECTED])}
    except BadSchedule as exc:  # a bad [pipelines.schedule] setting: runs refuse it too
        planned = {}
        warnings.append(str(exc))
    for conn in connections:
        row: dict[str, Any] = {
            "connection_id": conn.connection_id,
            "company": conn.company,
            "organisation_name": conn.organisation_name,
            "tenant_id": conn.tenant_id,
            "status": conn.status,
            "status_reason": conn.status_reason,
            "last_synced_at": conn.last_synced_at,
            "last_sync_outcome": conn.last_sync_outcome,
            "entities": freshness.get(conn.tenant_id or "", {}),
            "egress": sent.of(conn.tenant_id),
        }
        if conn.connection_id in planned:
            row["schedule"] = planned[conn.connection_id]
        name = conn.organisation_name or conn.company
        if conn.status == ConnectionStatus.NEEDS_RECONNECTION:
            reason = conn.status_reason or "grant revoked"
            warnings.append(f"{name}: needs reconnection ({reason}); resend the invite with "
                            f"`xero-elt invite resend {conn.connection_id}`")
        if conn.status == ConnectionStatus.CONNECTED:
            grant = grants.get(conn.grant_id or "")
            if grant is not None:
                idle = now - grant.refreshed_at
                expires = grant.refreshed_at + timedelta(days=REFRESH_IDLE_DAYS)
                row["refresh_token_expires_at"] = expires
                if idle > timedelta(days=REFRESH_WARN_DAYS):
                    warnings.append(
                        f"{name}: the Xero refresh token was last used {idle.days} days ago and "
                        f"dies at {expires:%Y-%m-%d} unless a run uses it; run `xero-elt run`")
            if conn.last_synced_at is None or now - conn.last_synced_at > STALE_AFTER:
                warnings.append(f"{name}: not synced since "
                                f"{conn.last_synced_at or 'it was connected'}")
        organisations.append(row)
    if sent.warning:
        warnings.append(sent.warning)
    webhooks = store.xero_webhook_health()
    oldest = webhooks.oldest_pending_at
    if oldest is not None and now - oldest > WEBHOOK_LAG_WARN:
        warnings.append(f"Xero webhooks: {webhooks.pending} event(s) pending, the oldest since "
                        f"{oldest:%Y-%m-%d %H:%M} UTC; see XERO_ELT_HOME/logs/targeted-sync-*.log")
    return {
        "webhooks": webhooks.summary(now),
        "organisations": organisations,
        "egress_total": sent.total,
        "recent_runs": [
            {k: run.get(k) for k in ("run_id", "started_at", "outcome", "duration_s",
                                     "destination", "dataset")}
            for run in history[-10:]
        ],
        "warnings": warnings,
    }


def status(as_json: bool = False) -> int:
    """Print the status; exit 0, or 1 when there is anything to warn about."""
    doc = collect(open_store())
    if as_json:
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("Organisations:")
        if not doc["organisations"]:
            print("  none yet: `xero-elt invite create --company … --email …`")
        for org in doc["organisations"]:
            print(f"  {org['connection_id']}  {org['status']:<18} "
                  f"{org['organisation_name'] or org['company']}  "
                  f"last sync {org['last_synced_at'] or '-'} ({org['last_sync_outcome'] or '-'})")
            for entity, when in sorted(org["entities"].items()):
                print(f"      {entity:<22} fresh as of {when}")
            if org.get("schedule"):
                print(f"      {'schedule':<22} {compact(org['schedule'])}")
            sent = org["egress"]
            if sent["bytes_30_days"]:
                print(f"      {'received from Xero':<22} {size(sent['bytes_30_days'])} in "
                      f"30 days, {size(sent['bytes_month_projected'])} projected this month")
        total = doc["egress_total"]
        line = (f"Received from Xero: {size(total['bytes_30_days'])} in 30 days, "
                f"{size(total['bytes_month_projected'])} projected this month")
        if "allowance_bytes" in total:
            line += (f" (allowance {size(total['allowance_bytes'])}: "
                     f"{total['bytes_month_projected'] / max(total['allowance_bytes'], 1):.0%})")
        print(line)
        print("Recent runs:")
        if not doc["recent_runs"]:
            print("  none yet: `xero-elt run`")
        for run in doc["recent_runs"]:
            print(f"  {run['run_id']}  {run['outcome']:<8} {run['duration_s']} s  "
                  f"{run['destination']}/{run['dataset']}")
        hooks = doc["webhooks"]
        if hooks["last_handshake_at"] or hooks["last_event_at"]:
            print("Xero webhooks:")
            print(f"  last handshake {hooks['last_handshake_at'] or '-'}, last event "
                  f"{hooks['last_event_at'] or '-'}")
            lag = "-" if hooks["last_lag_s"] is None else hooks["last_lag_s"]
            print(f"  {hooks['pending']} pending (oldest {hooks['oldest_pending_age_s'] or 0} s),"
                  f" last event loaded {lag} s after it arrived")
        for warning in doc["warnings"]:
            print(f"WARNING: {warning}")
    return exitcodes.FAILURE if doc["warnings"] else exitcodes.OK

