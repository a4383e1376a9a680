"""Targeted supplier syncs from Xero's webhook events (`xero-elt run --webhook-events`).

In-process: exactly the contacts named are read (one `IDs=` call for up to `ids_per_call`),
suppliers loaded, a non-supplier read and ignored, an ex-supplier marked `is_supplier` false, the
events marked processed only after the load; a scheduled run holding the organisation's lock
makes the targeted run wait (exit 75, events still pending) and it catches up afterwards; the
scheduled incremental run afterwards loads nothing new.

End to end (slow): the sandbox delivers signed events to a running auth server, whose default
subprocess loads the new supplier into DuckDB (and PostgreSQL) within 60 seconds.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from auth_server.xero_webhooks import PATH
from pipelines import exitcodes
from pipelines.runlocks import organisation_locks
from pipelines.status import collect
from sandbox.handle import SandboxHandle
from store import Store
from store.xero_events import parse_event
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import wait_for
from tests.pipelines.conftest import Warehouse

# Loads through dlt (and, end to end, subprocesses): `make test` runs these, `make test-fast`
# does not.
pytestmark = pytest.mark.slow

KEY = "xero-webhook-key-for-tests-0123456789"


def store_events(store: Store, tenant_id: str, contact_ids: list[str]) -> None:
    """What the receiver stores for a verified delivery naming these contacts."""
    now = datetime.now(UTC)
    events = [parse_event({"resourceId": c, "tenantId": tenant_id, "eventType": "UPDATE",
                           "eventCategory": "CONTACT",
                           "eventDateUtc": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}, now)
              for c in contact_ids]
    assert all(events)
    store.receive_xero_events([e for e in events if e], handshake=False, now=now)


def contacts_calls(sandbox: SandboxHandle, tenant_id: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(path="/api.xro/2.0/Contacts")
            if r["tenant_id"] == tenant_id]


def supplier_row(warehouse: Warehouse, contact_id: str) -> list[tuple[Any, ...]]:
    return warehouse.query("SELECT name, is_supplier FROM {ds}.suppliers WHERE contact_id = %s",
                           contact_id)


def suppliers_loaded(report: Any, tenant_id: str) -> int:
    org = next(o for o in report.summary["organisations"] if o["tenant_id"] == tenant_id)
    return int(org["entities"]["suppliers"]["rows_loaded"])


def test_a_targeted_run_reads_exactly_the_named_contacts(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle) -> None:
    store, tenant = duckdb_warehouse.store, sandbox.tenant_ids()[0]
    duckdb_warehouse.run_ok(tenants=[tenant])
    supplier = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                              fields={"Name": "Fresh Supplier Ltd", "IsSupplier": True})["id"]
    customer = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                              fields={"Name": "Only A Customer", "IsSupplier": False,
                                      "IsCustomer": True})["id"]
    held = duckdb_warehouse.query("SELECT contact_id FROM {ds}.suppliers WHERE tenant_id = %s"
                                  " AND is_supplier LIMIT 1", tenant)[0][0]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=held,
                   fields={"IsSupplier": False}, touch_updated=True)
    store_events(store, tenant, [supplier, customer, held, supplier.upper()])
    sandbox.clear_requests()

    report = duckdb_warehouse.run_ok(tenants=[tenant], webhook_events=True)

    calls = contacts_calls(sandbox, tenant)
    assert len(calls) == 1, calls  # three contacts, one IDs= call
    assert sorted(calls[0]["query"]["IDs"].split(",")) == sorted(
        c.lower() for c in (supplier, customer, held))
    assert report.summary["webhook_events"] == 3  # the upper-case duplicate is one event
    assert report.summary["options"]["entities"] == ["suppliers"]
    assert supplier_row(duckdb_warehouse, supplier) == [("Fresh Supplier Ltd", True)]
    assert supplier_row(duckdb_warehouse, customer) == []
    assert supplier_row(duckdb_warehouse, held)[0][1] is False
    assert store.xero_webhook_health().pending == 0
    runs = duckdb_warehouse.query("SELECT entity, api_calls, outcome FROM {ds}.sync_runs"
                                  " WHERE run_id = %s", report.summary["run_id"])
    assert runs == [("suppliers", 1, "ok")]

    sandbox.clear_requests()
    again = duckdb_warehouse.run_ok(tenants=[tenant], webhook_events=True)
    assert again.summary["webhook_events"] == 0
    assert contacts_calls(sandbox, tenant) == []  # nothing pending: no call at all

    scheduled = duckdb_warehouse.run_ok(tenants=[tenant], entities=["suppliers"])
    assert suppliers_loaded(scheduled, tenant) == 0  # the targeted read already loaded them


def test_many_events_are_read_in_calls_of_ids_per_call(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle) -> None:
    store, tenant = duckdb_warehouse.store, sandbox.tenant_ids()[0]
    duckdb_warehouse.run_ok(tenants=[tenant])
    held = [r[0] for r in duckdb_warehouse.query(
        "SELECT contact_id FROM {ds}.suppliers WHERE tenant_id = %s LIMIT 120", tenant)]
    store_events(store, tenant, held)
    sandbox.clear_requests()
    duckdb_warehouse.run_ok(tenants=[tenant], webhook_events=True)
    calls = contacts_calls(sandbox, tenant)
    assert sorted(len(c["query"]["IDs"].split(",")) for c in calls) == [20, 50, 50]
    assert store.xero_webhook_health().pending == 0


def test_events_wait_for_a_scheduled_run_holding_the_lock(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle) -> None:
    store, tenant = duckdb_warehouse.store, sandbox.tenant_ids()[0]
    duckdb_warehouse.run_ok(tenants=[tenant])
    supplier = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                              fields={"Name": "Arrived During A Run", "IsSupplier": True})["id"]
    with store.exclusive(organisation_locks([tenant])):  # a scheduled run of it is going on
        store_events(store, tenant, [supplier])
        busy = duckdb_warehouse.run(tenants=[tenant], webhook_events=True)
        assert busy.exit_code == exitcodes.LOCKED
        assert collect(store)["webhooks"]["pending"] == 1  # not lost, not processed
    report = duckdb_warehouse.run_ok(tenants=[tenant], webhook_events=True)
    assert report.summary["webhook_events"] == 1
    assert supplier_row(duckdb_warehouse, supplier) == [("Arrived During A Run", True)]
    hooks = collect(store)["webhooks"]
    assert hooks["pending"] == 0
    assert hooks["last_lag_s"] is not None  # received -> loaded, shown by `xero-elt status`


def test_a_failed_targeted_read_leaves_the_events_pending(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle) -> None:
    store, tenant = duckdb_warehouse.store, sandbox.tenant_ids()[0]
    duckdb_warehouse.run_ok(tenants=[tenant])
    supplier = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                              fields={"Name": "Behind A 503", "IsSupplier": True})["id"]
    store_events(store, tenant, [supplier])
    sandbox.fault(kind="status", status=503, path="/api.xro/2.0/Contacts", tenant_id=tenant,
                  count=20)
    failed = duckdb_warehouse.run(tenants=[tenant], webhook_events=True)
    assert failed.exit_code != 0
    assert store.xero_webhook_health().pending == 1
    sandbox.clear_faults()
    duckdb_warehouse.run_ok(tenants=[tenant], webhook_events=True)
    assert supplier_row(duckdb_warehouse, supplier) == [("Behind A 503", True)]
    assert store.xero_webhook_health().pending == 0


def _end_to_end(warehouse: Warehouse, sandbox: SandboxHandle, tmp_home: Path) -> None:
    """Sandbox -> signed delivery -> auth server -> `pipelines run --webhook-events` subprocess
    -> the warehouse, within 60 s and at the call floor; then the scheduled run loads nothing."""
    tenant = sandbox.tenant_ids()[0]
    warehouse.run_ok(tenants=[tenant])
    auth = start_auth(sandbox, tmp_home, xero_webhook_key=KEY, xero_webhook_coalesce_seconds=1)
    try:
        sandbox.settings(webhook_batch_seconds=0.3)
        sandbox._call("POST", "/webhooks", {"url": auth.url + PATH, "key": KEY})
        wait_for(lambda: sandbox._call("GET", "/webhooks")["status"] != "pending", timeout=20)
        assert sandbox._call("GET", "/webhooks")["status"] == "ok"
        sandbox.clear_requests()
        name = f"Webhook Supplier {uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        supplier = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                                  fields={"Name": name, "IsSupplier": True})["id"]
        wait_for(lambda: any(e.status == "processed"
                             for e in warehouse.store.list_xero_events(tenant)), timeout=60)
        seconds = time.monotonic() - started
        auth.server.app.targeted_sync.join(60)  # type: ignore[union-attr]
        log = (tmp_home / "logs" / f"targeted-sync-{tenant}.log").read_text()
        assert seconds < 60, log[-3000:]
        print(f"supplier created at Xero -> loaded: {seconds:.1f} s")
        assert supplier_row(warehouse, supplier) == [(name, True)]
        stats = sandbox.stats()["by_path"]
        assert stats["/api.xro/2.0/Contacts"]["total"] == 1, stats  # the floor: one IDs= call
        calls = contacts_calls(sandbox, tenant)
        assert calls[0]["query"]["IDs"] == supplier.lower()
        other = {p: s["total"] for p, s in stats.items() if p != "/api.xro/2.0/Contacts"}
        print(f"other calls (tokens, connections): {other}")
        assert set(other) <= {"/connect/token", "/connections"}
    finally:
        stop_auth(auth)
    scheduled = warehouse.run_ok(tenants=[tenant], entities=["suppliers"])
    assert suppliers_loaded(scheduled, tenant) == 0


def test_end_to_end_a_new_supplier_reaches_duckdb_within_a_minute(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle, tmp_home: Path) -> None:
    _end_to_end(duckdb_warehouse, sandbox, tmp_home)


def test_end_to_end_a_flood_of_1000_new_suppliers_is_loaded_whole_in_few_reads(
        duckdb_warehouse: Warehouse, sandbox: SandboxHandle, tmp_home: Path) -> None:
    warehouse, tenant = duckdb_warehouse, sandbox.tenant_ids()[0]
    warehouse.run_ok(tenants=[tenant])
    auth = start_auth(sandbox, tmp_home, xero_webhook_key=KEY, xero_webhook_coalesce_seconds=1)
    try:
        sandbox.settings(webhook_batch_seconds=0.3)
        sandbox._call("POST", "/webhooks", {"url": auth.url + PATH, "key": KEY})
        wait_for(lambda: sandbox._call("GET", "/webhooks")["status"] == "ok", timeout=20)
        sandbox.clear_requests()
        started = time.monotonic()
        created = {sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                                  fields={"Name": f"Flood {i}", "IsSupplier": True})["id"].lower()
                   for i in range(1000)}
        print(f"1000 contacts created in {time.monotonic() - started:.1f} s")
        wait_for(lambda: len(warehouse.store.list_xero_events(tenant, limit=5000)) == 1000,
                 timeout=60)
        wait_for(lambda: warehouse.store.xero_webhook_health().pending == 0, timeout=120)
        auth.server.app.targeted_sync.join(60)  # type: ignore[union-attr]
        print(f"all 1000 loaded after {time.monotonic() - started:.1f} s")
    finally:
        stop_auth(auth)
    loaded = {r[0] for r in warehouse.query(
        "SELECT contact_id FROM {ds}.suppliers WHERE name LIKE 'Flood %%'")}
    assert loaded == created
    calls = contacts_calls(sandbox, tenant)
    runs = warehouse.query("SELECT DISTINCT run_id FROM {ds}.sync_runs WHERE entity = 'suppliers'"
                           " AND tenant_id = %s", tenant)
    print(f"{len(calls)} Contacts calls in {len(runs) - 1} targeted run(s)")
    assert len(calls) <= 20 + 4, len(calls)  # 20 is the floor at 50 IDs a call
    assert len(runs) - 1 <= 5  # the first full run, then a few targeted ones


@pytest.fixture
def postgres_store(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store on PostgreSQL (a database of its own) for this test and its subprocesses."""
    import psycopg2

    name = f"xero_elt_hooks_{secrets.token_hex(4)}"
    admin = psycopg2.connect(postgres_database, connect_timeout=3)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = f"{postgres_database.rsplit('/', 1)[0]}/{name}"
    monkeypatch.setenv("XERO_ELT_STORE_URL", url)
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", Fernet.generate_key().decode())
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.postgres
def test_end_to_end_a_new_supplier_reaches_postgres_within_a_minute(
        postgres_store: str, postgres_warehouse: Warehouse, sandbox: SandboxHandle,
        tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Store and destination on PostgreSQL (`postgres_store` comes first: the store is opened
    with its URL)."""
    assert postgres_warehouse.store.backend == "postgres"
    # The subprocess the auth server starts reads its destination from the environment.
    monkeypatch.setenv("PIPELINES__DESTINATION", "postgres")
    monkeypatch.setenv("PIPELINES__DATASET_NAME", postgres_warehouse.dataset)
    _end_to_end(postgres_warehouse, sandbox, tmp_home)
