"""Xero misbehaving in the middle of a real `xero-elt run --json` (a subprocess, as cron runs it).

Four organisations, each connected through its own admin's grant. In each run some organisations
meet a fault and one or more meet none. Every run must end either loaded correctly or failed with
a message naming the organisation, the entity and the cause, in the JSON summary and on stderr;
the organisations without a fault load in full; and the next run, with Xero healthy again,
completes the work (every table holds exactly what Xero holds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.handle import SandboxHandle
from tests.hardening.conftest import (
    API,
    CliHome,
    RunResult,
    counts_by_tenant,
    expected_counts,
    finished,
    sole_admin,
    wait_until,
)

pytestmark = [pytest.mark.hardening, pytest.mark.slow]

ENTITY_OF_PATH = {"Contacts": "suppliers", "Accounts": "accounts", "TaxRates": "tax_rates",
                  "TrackingCategories": "tracking_categories"}
FAST = {"SOURCES__XERO__MAX_RETRIES": "2", "SOURCES__XERO__TIMEOUT": "1"}


@pytest.fixture
def four_orgs(sandbox_factory: Callable[..., SandboxHandle],
              make_home: Callable[..., CliHome]) -> CliHome:
    """Four organisations (250 suppliers each), each on its own admin's grant."""
    sb = sandbox_factory(tenants=4)
    sb.reset()
    home = make_home(sb, sb.create_app(name="faults"))
    for tenant_id in sb.tenant_ids():
        home.connect([tenant_id], user=sole_admin(sb, tenant_id))
    home.extra_env.update(FAST)
    return home


@dataclass(frozen=True)
class Fault:
    """A fault on one organisation's entity, and what the summary must then say."""

    body: dict[str, Any]
    path: str  # Contacts, Accounts, ...
    outcome: str  # failed | deferred
    cause: tuple[str, ...]  # words the error must contain (any of them)


def check_named_failure(result: RunResult, home: CliHome, tenant_id: str, entity: str,
                        outcome: str, cause: tuple[str, ...]) -> None:
    """The organisation's summary and stderr name it, the entity and the cause."""
    name = next(t["name"] for t in home.sandbox.tenants() if t["tenantId"] == tenant_id)
    org = result.org(tenant_id)
    assert org["outcome"] == outcome, org
    entry = org["entities"][entity]
    assert entry["outcome"] == outcome, org
    error = entry["error"] or ""
    assert name in error, error
    assert f"entity {entity}" in error, error
    assert any(word.lower() in error.lower() for word in cause), (cause, error)
    line = next((ln for ln in result.stderr.splitlines() if f"({tenant_id}): {outcome}" in ln),
                "")
    assert name in line, result.stderr[-3000:]
    assert entity in line
    assert any(word.lower() in line.lower() for word in cause), line


def check_complete(home: CliHome, tenants: list[str] | None = None) -> None:
    """The tables hold exactly what Xero holds (for these organisations, or all)."""
    expected = expected_counts(home.sandbox)
    loaded = counts_by_tenant(home.db)
    for (table, tenant_id), count in expected.items():
        if tenants is None or tenant_id in tenants:
            assert loaded.get((table, tenant_id)) == count, (table, tenant_id, loaded)


PERSISTENT = {
    "500 burst past the retries": Fault(
        {"kind": "status", "status": 500, "count": -1}, "Accounts", "failed",
        ("HTTP 500",)),
    "dropped connections": Fault(
        {"kind": "drop", "count": -1}, "TaxRates", "failed",
        ("dropped", "RemoteProtocolError", "could not be reached")),
    "slow past the timeout": Fault(
        {"kind": "slow", "seconds": 2.5, "count": -1}, "Contacts", "failed",
        ("ReadTimeout", "could not be reached")),
    "malformed JSON": Fault(
        {"kind": "malformed", "count": -1}, "TrackingCategories", "failed",
        ("not valid JSON",)),
    "truncated JSON": Fault(
        {"kind": "truncated", "count": -1}, "Contacts", "failed",
        ("cut off", "mid-body")),
    "429 storm longer than we wait": Fault(
        {"kind": "rate_limit", "problem": "minute", "retry_after": 3600, "count": -1},
        "Accounts", "deferred", ("429",)),
    "day limit": Fault(
        {"kind": "rate_limit", "problem": "day", "count": -1}, "Contacts", "deferred",
        ("day limit",)),
    "503 maintenance past the retries": Fault(
        {"kind": "status", "status": 503, "count": -1}, "TaxRates", "failed",
        ("HTTP 503",)),
}
# Three faulted organisations per run, the fourth healthy.
GROUPS = [list(PERSISTENT)[i:i + 3] for i in range(0, len(PERSISTENT), 3)]


@pytest.mark.parametrize("names", GROUPS, ids=["+".join(g) for g in GROUPS])
def test_persistent_faults_fail_named_organisations_only_and_the_next_run_completes(
    four_orgs: CliHome, names: list[str],
) -> None:
    home, sb = four_orgs, four_orgs.sandbox
    tenants = sb.tenant_ids()
    for tenant_id, name in zip(tenants, names, strict=False):
        fault = PERSISTENT[name]
        sb.fault(**fault.body, path=f"{API}/{fault.path}", tenant_id=tenant_id)

    result = home.run()

    assert result.code == 3, result  # partial: the healthy organisation loaded
    healthy = tenants[len(names):]
    for tenant_id, name in zip(tenants, names, strict=False):
        fault = PERSISTENT[name]
        check_named_failure(result, home, tenant_id, ENTITY_OF_PATH[fault.path], fault.outcome,
                            fault.cause)
    for tenant_id in healthy:
        assert result.org(tenant_id)["outcome"] == "ok", result.org(tenant_id)
    check_complete(home, healthy)
    assert set(home.statuses().values()) == {"connected"}  # nothing here needs reconnecting

    sb.clear_faults()
    again = home.run()
    assert again.code == 0, again
    check_complete(home)


def test_transient_faults_everywhere_are_ridden_out(four_orgs: CliHome) -> None:
    """Bursts shorter than the retries: the run loads everything and says ok."""
    home, sb = four_orgs, four_orgs.sandbox
    a, b, c, d = sb.tenant_ids()
    armed = [
        ({"kind": "status", "status": 503, "count": 2}, a, "Accounts"),
        ({"kind": "status", "status": 500, "count": 2}, b, "TaxRates"),
        ({"kind": "status", "status": 502, "count": 1}, c, "Contacts"),
        ({"kind": "drop", "count": 2}, c, "Accounts"),
        ({"kind": "slow", "seconds": 2.5, "count": 1}, d, "Accounts"),
        ({"kind": "malformed", "count": 1}, a, "Contacts"),
        ({"kind": "truncated", "count": 1}, b, "Contacts"),
        ({"kind": "rate_limit", "problem": "minute", "retry_after": 1, "count": 3}, d,
         "TrackingCategories"),
    ]
    for body, tenant_id, path in armed:
        sb.fault(**body, path=f"{API}/{path}", tenant_id=tenant_id)

    result = home.run()

    assert result.code == 0, result
    assert sb.faults() == []  # every fault fired
    check_complete(home)
    calls = {o["tenant_id"]: o["api_calls"] for o in result.summary["organisations"]}
    assert calls[a] > 4
    assert calls[d] > 4  # the retries are counted, not hidden


def _hold_first_call(sb: SandboxHandle, tenants: list[str]) -> None:
    """The next API call of each organisation waits at Xero (its only slot: one in flight)."""
    for tenant_id in tenants:
        sb.fault(kind="slow", seconds=1.5, path=API, tenant_id=tenant_id, count=1)


def test_token_expiring_mid_run_is_refreshed_once_and_everything_loads(
    four_orgs: CliHome,
) -> None:
    home, sb = four_orgs, four_orgs.sandbox
    _hold_first_call(sb, sb.tenant_ids())
    proc = home.start(env=home.env(SOURCES__XERO__MAX_IN_FLIGHT="1"))
    wait_until(lambda: not sb.faults() or proc.poll() is not None)
    sb.advance(1801)  # every access token the run holds is now expired at Xero
    out, err = proc.communicate(timeout=120)
    result = finished(proc, out, err, 0)
    assert result.code == 0, result
    check_complete(home)
    assert result.summary["token_calls"] == 4  # one refresh per grant, not one per call
    expired = [r for r in sb.requests(path=API) if r["status"] == 401]
    assert expired  # the run really met expired tokens


def test_grant_revoked_and_organisation_disconnected_mid_run(four_orgs: CliHome) -> None:
    home, sb = four_orgs, four_orgs.sandbox
    revoked, disconnected, c, d = sb.tenant_ids()
    # One grant (the adviser's) for `disconnected` and `d`: removing the app from one
    # organisation in Xero leaves the grant alive for the other, so Xero answers 403.
    home.connect([disconnected, d])
    _hold_first_call(sb, [revoked, disconnected])
    proc = home.start(env=home.env(SOURCES__XERO__MAX_IN_FLIGHT="1"))
    wait_until(lambda: not sb.faults() or proc.poll() is not None)
    assert proc.poll() is None
    sb.revoke(refresh_token=home.store.get_grant(home.grants[revoked]).refresh_token)
    sb.disconnect(disconnected, home.app["client_id"])
    out, err = proc.communicate(timeout=120)
    result = finished(proc, out, err, 0)

    assert result.code == 3, result
    for tenant_id, words in ((revoked, ("invalid_grant", "connected again", "revoked")),
                             (disconnected, ("no longer connected", "403"))):
        org = result.org(tenant_id)
        assert org["outcome"] == "failed", org
        failed = {e: v for e, v in org["entities"].items() if v["outcome"] == "failed"}
        assert failed, org
        # The entity that met the fault is named; the organisation's other entities stop with
        # that same error (naming it) rather than calling Xero again.
        entity = next(e for e, v in failed.items() if f"entity {e}" in (v["error"] or ""))
        check_named_failure(result, home, tenant_id, entity, "failed", words)
    assert result.org(c)["outcome"] == "ok"
    assert result.org(d)["outcome"] == "ok"
    check_complete(home, [c, d])
    statuses = home.statuses()
    assert statuses[revoked] == "needs_reconnection"
    assert statuses[disconnected] == "disconnected"
    dead = home.store.get_grant(home.grants[revoked])
    for secret in (dead.refresh_token, dead.access_token):  # messages carry no token
        assert secret not in result.stderr
        assert secret not in str(result.summary)

    # Both are connected again (as the auth server would); the next run completes the work.
    home.connect([revoked], user=sole_admin(sb, revoked))
    home.connect([disconnected], user=sole_admin(sb, disconnected))
    again = home.run()
    assert again.code == 0, again
    check_complete(home)
