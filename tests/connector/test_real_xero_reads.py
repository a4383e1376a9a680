"""The supplier read strategy against behaviours of the real Xero (REFERENCE.md section 0):
positional paging under concurrent edits, high-volume organisations, cheap reconciliation,
suppliers that stop being suppliers, masked tax numbers. All over real loopback HTTP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.errors import PermissionLost
from sandbox.handle import SandboxHandle, XeroGrant, make_grant
from store import open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings

# Sandbox loads one after another (~5 s a test): `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _world(sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path, *,
           suppliers: int, tenants: int = 1, **settings: Any
           ) -> tuple[SandboxHandle, XeroGrant, Loader]:
    sandbox = sandbox_factory(tenants=tenants, suppliers=suppliers, rate_limits=False)
    sandbox.reset()
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="reads")
    grant = make_grant(sandbox, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, grant, **settings))
    return sandbox, grant, loader


def _xero_contacts(sandbox: SandboxHandle, grant: XeroGrant, tenant_id: str,
                   where: str) -> dict[str, Any]:
    """The contacts Xero holds now that match `where`, by id (one unpaged call, outside the
    connector)."""
    response = httpx.get(
        f"{sandbox.api_url}/Contacts", params={"where": where, "includeArchived": "true"},
        headers=grant.headers(tenant_id), timeout=60,
    )
    response.raise_for_status()
    return {c["ContactID"]: c for c in response.json()["Contacts"]}


def _xero_suppliers(sandbox: SandboxHandle, grant: XeroGrant, tenant_id: str) -> dict[str, Any]:
    return _xero_contacts(sandbox, grant, tenant_id, "IsSupplier==true")


def _contacts_calls(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return sandbox.requests(path="/api.xro/2.0/Contacts")


def _loaded_ids(loader: Loader, where: str = "true") -> set[str]:
    return {r[0] for r in loader.query(f"select contact_id from suppliers where {where}")}  # noqa: S608


def _non_supplier(sandbox: SandboxHandle, grant: XeroGrant, tenant_id: str) -> str:
    contacts = _xero_contacts(sandbox, grant, tenant_id, "IsSupplier==false")
    return next(i for i, c in contacts.items() if c["ContactStatus"] == "ACTIVE")


# --- 1. a full read is complete under concurrent edits ------------------------------------------

@pytest.mark.slow
def test_a_full_read_misses_no_supplier_while_xero_edits_and_creates_mid_read(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader = _world(sandbox_factory, tmp_path, tmp_home, suppliers=3000,
                                    page_size=100)
    tenant = grant.tenant_ids[0]
    before = _xero_suppliers(sandbox, grant, tenant)
    by_updated = sorted(before, key=lambda i: (before[i]["UpdatedDateUTC"], i))
    by_id = sorted(before)
    # Edits early in either order (the ones that shifted later pages before), archives, and new
    # suppliers, armed to land between pages at several moments of the read.
    moments = [1, 4, 9, 15, 22]
    created = 0
    for n, moment in enumerate(moments):
        for contact_id in (by_updated[n * 3], by_updated[n * 3 + 1], by_id[n * 5]):
            sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact_id,
                           fields={"Website": f"https://edited-{n}.test"},
                           after_requests=moment)
        sandbox.mutate(tenant_id=tenant, entity="contacts", op="archive", id=by_id[-1 - n],
                       after_requests=moment)
        sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                       fields={"Name": f"Mid-read supplier {n}", "IsSupplier": True},
                       after_requests=moment)
        created += 1
    sandbox.clear_requests()

    stats = loader.run(entities=["suppliers"])

    assert [e.outcome for e in stats.entries()] == ["ok"]
    assert sandbox.scheduled_mutations()["armed"] == []  # all landed mid-read
    missing = set(before) - _loaded_ids(loader)
    assert not missing, f"{len(missing)} suppliers that existed throughout the read are missing"
    # A create pushes the page's last supplier into the next page: handed over twice, it and its
    # child rows are still kept once (the repeat turns the child tables' deduplication on).
    assert loader.query("select count(*) - count(distinct contact_id) from suppliers") == [(0,)]
    for table in ("suppliers__phones", "suppliers__addresses"):
        assert loader.query(f"select count(*) from (select tenant_id, contact_id, position "  # noqa: S608
                            f"from {table} group by all having count(*) > 1) d") == [(0,)]
    floor = math.ceil(len(before) / 100)
    calls = len(_contacts_calls(sandbox))
    assert floor <= calls <= floor + 2, (calls, floor)

    # The next (incremental) run brings every edit and every new supplier.
    loader.run(entities=["suppliers"])
    now = _xero_suppliers(sandbox, grant, tenant)
    assert _loaded_ids(loader) == set(now)
    edited = {r[0] for r in loader.query("select contact_id from suppliers "
                                          "where website like 'https://edited-%'")}
    assert edited == {i for i, c in now.items() if str(c.get("Website", "")).startswith(
        "https://edited-")}
    assert len(now) == len(before) + created


# --- 2. high-volume organisations ----------------------------------------------------------------

def test_a_high_volume_organisation_is_read_without_the_filter_and_remembered(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader = _world(sandbox_factory, tmp_path, tmp_home, suppliers=250)
    tenant = grant.tenant_ids[0]
    expected = _xero_suppliers(sandbox, grant, tenant)
    sandbox.settings(high_volume_threshold=100)  # this organisation has more contacts
    sandbox.clear_requests()

    stats = loader.run()

    assert {e.entity: e.outcome for e in stats.entries()} == dict.fromkeys(
        ("suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options"), "ok")
    assert _loaded_ids(loader) == set(expected)
    assert not loader.count("suppliers", "is_supplier is not true")
    refused = [r for r in _contacts_calls(sandbox) if r["status"] == 400]
    assert len(refused) == 1  # found out once ...
    assert any("HighVolumeException" in w for e in stats.entries() for w in e.warnings)

    sandbox.clear_requests()
    loader.run(reconcile=True)  # ... and remembered: no filtered query is sent again
    contacts = _contacts_calls(sandbox)
    assert contacts
    assert all(r["status"] == 200 for r in contacts)
    assert all("where" not in r["query"] or "IsSupplier" not in r["query"]["where"]
               for r in contacts)


def test_a_400_on_one_table_never_takes_down_the_others(
    sandbox: SandboxHandle, loader: Loader
) -> None:
    tenant_a = sandbox.tenant_ids()[0]
    sandbox.fault(kind="status", status=400, path="/api.xro/2.0/Accounts", tenant_id=tenant_a,
                  count=1)
    stats = loader.run()
    outcomes = {(e.tenant_id, e.entity): e.outcome for e in stats.entries()}
    assert outcomes.pop((tenant_a, "accounts")) == "failed"
    assert set(outcomes.values()) == {"ok"}


# --- 3. reconciliation that costs little ---------------------------------------------------------

def _bytes(sandbox: SandboxHandle, tenant: str) -> int:
    stats = sandbox.stats()
    return int(stats["by_tenant"][tenant]["bytes_out"])


@pytest.mark.slow
def test_a_reconciliation_with_nothing_changed_costs_under_40_percent_of_a_full_read(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader = _world(sandbox_factory, tmp_path, tmp_home, suppliers=2000)
    tenant = grant.tenant_ids[0]
    sandbox.clear_requests()
    loader.run(entities=["suppliers"])
    full = _bytes(sandbox, tenant)

    sandbox.clear_requests()
    stats = loader.run(entities=["suppliers"], reconcile=True)
    cheap = _bytes(sandbox, tenant)

    assert sum(e.rows for e in stats.entries()) == 0
    assert cheap <= 0.4 * full, (cheap, full)


def test_reconciliation_finds_suppliers_gained_and_lost_without_updated_date_moving(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader = _world(sandbox_factory, tmp_path, tmp_home, suppliers=400,
                                    reconcile_sweep_parts=4)
    tenant = grant.tenant_ids[0]
    loader.run(entities=["suppliers"])
    gained = _non_supplier(sandbox, grant, tenant)
    lost = sorted(_loaded_ids(loader))[7]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="make_supplier", id=gained)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="make_supplier", id=lost, value=False)

    # A swap (one in, one out) leaves Xero's supplier count as it was: the rotating sweep
    # finds the newcomer within reconcile_sweep_parts reconciliations, and the one lost then.
    for _ in range(4):
        loader.run(entities=["suppliers"], reconcile=True)
        if _loaded_ids(loader, "is_supplier") >= {gained} and lost in _loaded_ids(
                loader, "is_supplier is false"):
            break
    assert gained in _loaded_ids(loader, "is_supplier")
    assert lost in _loaded_ids(loader, "is_supplier is false")

    # One-sided changes change the count: found by the very next reconciliation.
    another = sorted(_loaded_ids(loader, "is_supplier"))[3]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="make_supplier", id=another,
                   value=False)
    loader.run(entities=["suppliers"], reconcile=True)
    assert another in _loaded_ids(loader, "is_supplier is false")
    assert _loaded_ids(loader, "is_supplier") == set(_xero_suppliers(sandbox, grant, tenant))


# --- 6, 7, 8: 403 while connected, one organisation offline, compressed answers ----------------

def test_a_user_who_lost_the_role_marks_the_connection_and_is_left_alone(
    sandbox: SandboxHandle, loader: Loader, xero_grant: XeroGrant
) -> None:
    sandbox.set_role(xero_grant.user, "standard")
    stats = loader.run()
    assert {e.outcome for e in stats.entries()} == {"failed"}
    connections = loader.store.list_connections()
    assert {c.status for c in connections} == {"needs_reconnection"}
    assert all("lost the role or permission" in (c.status_reason or "") for c in connections)
    assert all(PermissionLost.__name__ in (e.error or "") or "403" in (e.error or "")
               for e in stats.entries())

    sandbox.clear_requests()
    again = loader.run()
    assert not sandbox.requests(path="/api.xro/2.0")  # nothing hammers it
    assert not [e for e in again.entries() if e.outcome == "failed"]


def test_an_organisation_offline_is_deferred_at_once_and_the_other_loads(
    sandbox: SandboxHandle, loader: Loader
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="offline", tenant_id=tenant_a, count=100)
    stats = loader.run()
    by = {(e.tenant_id, e.entity): e for e in stats.entries()}
    assert {e.outcome for (t, _), e in by.items() if t == tenant_a} == {"deferred"}
    assert all("offline" in (e.error or "") for (t, _), e in by.items() if t == tenant_a)
    assert {e.outcome for (t, _), e in by.items() if t == tenant_b} == {"ok"}
    # Deferred at the first answer: no retries spent on it.
    assert len(sandbox.requests(path="/api.xro/2.0", tenant_id=tenant_a)) <= 4


@pytest.mark.parametrize(("count", "outcome"), [(1, "ok"), (2, "failed")])
def test_a_damaged_compressed_body_is_retried_once_then_reported(
    sandbox: SandboxHandle, loader: Loader, count: int, outcome: str
) -> None:
    tenant_a, _ = sandbox.tenant_ids()
    sandbox.fault(kind="corrupt_gzip", path="/api.xro/2.0/Accounts", tenant_id=tenant_a,
                  count=count)
    stats = loader.run(entities=["accounts"])
    entry = next(e for e in stats.entries() if e.tenant_id == tenant_a)
    assert entry.outcome == outcome
    if outcome == "failed":
        assert "compressed" in (entry.error or "") or "not valid JSON" in (entry.error or "")


# --- 9. masked values ----------------------------------------------------------------------------

def test_a_masked_tax_number_never_overwrites_the_full_one(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox = sandbox_factory(tenants=4, suppliers=60, rate_limits=False)
    sandbox.reset()
    us = [t["tenantId"] for t in sandbox.tenants() if t["country_code"] == "US"]
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="masking")
    grant = make_grant(sandbox, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, grant))
    loader.run(entities=["suppliers"])
    full = dict(loader.query("select contact_id, tax_number from suppliers "
                             "where tax_number is not null and tax_number <> ''"))
    assert full

    # The user becomes a Standard user whom the organisations still let connect apps: Xero
    # masks US tax numbers for them. Touched suppliers come again in the next (incremental) read.
    sandbox.set_role(grant.user, "standard", connect_apps=True)
    assert us, "the sandbox should seed a US organisation among four"
    touched = [i for (i,) in loader.query(
        f"select contact_id from suppliers where tenant_id = '{us[0]}'")  # noqa: S608
        if i in full][:20]
    for contact_id in touched:
        sandbox.mutate(tenant_id=us[0], entity="contacts", op="update", id=contact_id,
                       fields={"Website": "https://touched.test"})
    stats = loader.run(entities=["suppliers"])

    after = dict(loader.query("select contact_id, tax_number from suppliers"))
    assert {k: after[k] for k in full} == full
    # Xero did mask them: what it serves this user now is masked, what we hold is not.
    served = _xero_suppliers(sandbox, grant, us[0])
    masked = {i for i in touched if i in served and "*" in str(served[i].get("TaxNumber"))}
    assert masked
    assert all("*" not in after[i] for i in masked)
    assert sum(e.rows for e in stats.entries()) >= len(touched)
