"""Each organisation's memory lives beside its data (``_xero_memory``), not in dlt's state: the
state stays small whatever the number of records, the memory round-trips through its rows, and
state an older version wrote moves into memory rows on the first run, with no reload and
nothing lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.memory import CURSORS_KEY, MEMORY_TABLE, supplier_rows
from connector.snapshot_state import _pack
from connector.suppliers import TARGETED, SupplierState, encode_ids
from sandbox.handle import SandboxHandle
from tests.connector.conftest import Loader

IDS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(6)]
SNAPSHOTS = ("accounts", "tax_rates", "tracking_categories", "tracking_options")
API = "/api.xro/2.0/"


def _as_stored(tenant: str, changes: list) -> list[dict[str, Any]]:
    rows = {r["record_id"]: r for r in supplier_rows(tenant, changes) if not r["forget"]}
    return list(rows.values())


def test_supplier_state_keeps_ids_and_hashes_in_memory_rows_and_little_in_dlt_state() -> None:
    state = SupplierState(cursor=datetime(2026, 12, 1, tzinfo=UTC), members=set(IDS[:4]),
                          recent={IDS[0]: ["h0", "2026-12-01T00:00:00+00:00"],
                                  IDS[5]: ["h5", "2026-12-01T00:00:01+00:00", TARGETED]})
    changes = state.memory_changes()
    assert {k for k, _ in changes} == set(IDS[:4]) | {IDS[5]}
    assert state.memory_changes() == []  # written once

    dumped = json.loads(json.dumps(state.dump()))
    assert not any(i in json.dumps(dumped) for i in IDS)
    again = SupplierState.load(dumped, _as_stored("t", changes))
    assert (again.members, again.recent, again.cursor) == (state.members, state.recent,
                                                           state.cursor)
    assert again.memory_changes() == []  # nothing to write when nothing changed

    # a member that leaves and a hash that falls out of the window are forgotten
    again.members.discard(IDS[3])
    again.recent.pop(IDS[5])
    assert sorted(again.memory_changes()) == [(IDS[3], None), (IDS[5], None)]


def test_an_unfinished_full_read_resumes_with_what_it_found() -> None:
    state = SupplierState(members=set(IDS[:2]), found={IDS[2], IDS[3]},
                          full_read={"watermark": "2026-12-01T00:00:00+00:00", "next_page": 3})
    changes = state.memory_changes()
    again = SupplierState.load(json.loads(json.dumps(state.dump())), _as_stored("t", changes))
    assert again.found == {IDS[2], IDS[3]}
    assert again.full_read == {"watermark": "2026-12-01T00:00:00+00:00", "next_page": 3}
    assert again.members == set(IDS[:4])  # those found so far count as held


def test_an_older_versions_state_is_read_and_written_whole_as_memory_rows() -> None:
    legacy = {"cursor": "2026-12-01T00:00:00+00:00", "sweep": 2,
              "members": encode_ids(IDS[:3]),
              "recent": {IDS[1]: ["h1", "2026-12-01T00:00:00+00:00"]},
              "full_read": {"watermark": "2026-12-02T00:00:00+00:00", "next_page": 2,
                            "members": [encode_ids(IDS[4:])]}}
    state = SupplierState.load(legacy, [{"record_id": "ignored", "member": True}])
    assert state.members == set(IDS[:3])
    assert state.found == set(IDS[4:])
    assert state.recent == {IDS[1]: ["h1", "2026-12-01T00:00:00+00:00"]}
    assert {k for k, _ in state.memory_changes()} == set(IDS[:3]) | set(IDS[4:])
    dumped = state.dump()
    assert dumped["v"] == 3
    assert dumped["full_read"] == {"watermark": "2026-12-02T00:00:00+00:00", "next_page": 2}


# --- through the pipeline --------------------------------------------------------------------

def _tenants_state(loader: Loader) -> dict[str, dict[str, Any]]:
    resources = loader.pipeline.state["sources"]["xero"]["resources"]
    return {entity: resources.get(entity, {}).get("tenants", {}) for entity in resources}


def _memory(loader: Loader) -> list[tuple]:
    return sorted(loader.query(
        f"select tenant_id, entity, record_id, member, hash, updated_at, targeted, "  # noqa: S608
        f"deleted_at, last_values from {MEMORY_TABLE} where record_id <> '{CURSORS_KEY}'"))


@pytest.mark.slow
def test_dlt_state_holds_no_per_record_data_and_the_memory_is_beside_the_data(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run()

    state = loader.pipeline.state["sources"]["xero"]
    for tenant in sandbox.tenants():
        tenant_id = tenant["tenantId"]
        per_org = {e: r.get("tenants", {}).get(tenant_id) for e, r in state["resources"].items()}
        assert all(v is None for v in per_org.values()), per_org  # cursors too: beside the data
        assert {e for e in state["resources"] if tenant_id in loader.cursors(e)} == set(
            state["resources"])
        members = loader.count(MEMORY_TABLE, f"tenant_id = '{tenant_id}' and entity = "
                               "'suppliers' and member")
        assert members == tenant["counts"]["suppliers"] - loader.count(
            "suppliers", f"tenant_id = '{tenant_id}' and not is_supplier")
        accounts = loader.count(MEMORY_TABLE, f"tenant_id = '{tenant_id}' and entity = "
                                f"'accounts' and last_values is not null and record_id <> "
                                f"'{CURSORS_KEY}'")
        assert accounts == tenant["counts"]["accounts"]


def _write_older_state(loader: Loader) -> None:
    """Put every organisation's memory back into dlt's state as the previous version kept it
    (suppliers: ids and hashes; snapshots: layout 2), and empty the memory table."""
    rows = loader.query(f"select tenant_id, entity, record_id, member, hash, updated_at, "  # noqa: S608
                        f"targeted, deleted_at, last_values from {MEMORY_TABLE} "
                        f"where record_id <> '{CURSORS_KEY}'")
    suppliers = loader.cursors("suppliers")
    by: dict[tuple[str, str], list[tuple]] = {}
    for row in rows:
        by.setdefault((row[0], row[1]), []).append(row[2:])
    with loader.pipeline.managed_state() as state:
        resources = state["sources"]["xero"]["resources"]
        for (tenant, entity), entries in by.items():
            tenants = resources[entity].setdefault("tenants", {})
            if entity == "suppliers":
                new = suppliers[tenant]
                tenants[tenant] = {
                    "cursor": new["cursor"], "reconciled_at": new["reconciled_at"],
                    "sweep": new["sweep"],
                    "members": encode_ids(r[0] for r in entries if r[1]),
                    "recent": {r[0]: [r[2], r[3], *([TARGETED] if r[4] else [])]
                               for r in entries if r[2] is not None},
                }
            else:
                tenants[tenant] = {"v": 2, "h": {r[0]: r[2] for r in entries},
                                   "deleted": {r[0]: r[5] for r in entries if r[5]},
                                   "last": _pack({r[0]: r[6] for r in entries})}
    with loader.pipeline.sql_client() as client:
        client.execute_sql(f"delete from {client.make_qualified_table_name(MEMORY_TABLE)}")  # noqa: S608


@pytest.mark.slow
def test_state_an_older_version_wrote_moves_beside_the_data_without_a_reload(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run()
    memory_before = _memory(loader)
    _write_older_state(loader)
    assert loader.count(MEMORY_TABLE) == 0
    old_size = len(json.dumps(_tenants_state(loader)))
    sandbox.clear_requests()

    stats = loader.run()

    # No reload: one incremental call per entity, not a data row written, only the memory.
    assert loader.rows_written() == {MEMORY_TABLE: len(memory_before)}
    assert all(e.rows == 0 and e.outcome == "ok" for e in stats.entries())
    for tenant_id in sandbox.tenant_ids():
        assert stats.api_calls(tenant_id) == 4
    assert _memory(loader) == memory_before
    assert not any(_tenants_state(loader).values())  # dlt's state: nothing per organisation
    tenants = {e: loader.cursors(e) for e in (*SNAPSHOTS, "suppliers")}
    # per organisation and snapshot entity only one digest of the whole snapshot stays (and
    # for accounts, read with If-Modified-Since, the cursor and when the chart was read whole)
    assert all(set(s) == ({"d", "cursor", "snapshot_at"} if e == "accounts" else {"d"})
               for e in SNAPSHOTS for s in tenants[e].values()), tenants
    assert all(json.loads(json.dumps(s))["v"] == 3 for s in tenants["suppliers"].values())
    assert len(json.dumps(tenants)) < old_size / 10

    # Nothing lost: a change loads exactly itself, and a deleted account is marked with the
    # last values the older state kept.
    tenant_id = sandbox.tenant_ids()[0]
    supplier = loader.query(f"select contact_id from suppliers where tenant_id = '{tenant_id}' "  # noqa: S608
                            "and is_supplier limit 1")[0][0]
    account, name = loader.query(f"select account_id, name from accounts where tenant_id = "  # noqa: S608
                                 f"'{tenant_id}' limit 1")[0]
    sandbox.mutate(tenant_id=tenant_id, entity="contacts", op="update", id=supplier,
                   fields={"Name": "Moved Memory Ltd"})
    sandbox.mutate(tenant_id=tenant_id, entity="accounts", op="delete", id=account)

    # (a deleted account shows in the whole chart, read when due)
    stats = loader.run(settings=loader.settings.replace(accounts_snapshot_hours=0))

    rows = {(e.tenant_id, e.entity): e.rows for e in stats.entries() if e.rows}
    assert rows == {(tenant_id, "suppliers"): 1, (tenant_id, "accounts"): 1}
    assert loader.query(f"select name, is_deleted from accounts where account_id = '{account}'"  # noqa: S608
                        ) == [(name, True)]
    assert loader.query(f"select name from suppliers where contact_id = '{supplier}'"  # noqa: S608
                        ) == [("Moved Memory Ltd",)]


@pytest.mark.slow
def test_a_no_change_run_reads_no_memory_and_a_change_reads_only_its_organisation(
    loader: Loader, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector import memory

    loader.run()
    reads: list[tuple[str, str]] = []
    real = memory.DestinationMemory.read

    def counting(self: Any, tenant_id: str, entity: str) -> list[dict[str, Any]]:
        reads.append((tenant_id, entity))
        return real(self, tenant_id, entity)

    monkeypatch.setattr(memory.DestinationMemory, "read", counting)
    loader.run()
    assert reads == []  # Xero sent nothing new: neither hashes nor ids were needed
    assert loader.rows_written() == {}

    tenant_id = sandbox.tenant_ids()[1]
    supplier = loader.query(f"select contact_id from suppliers where tenant_id = '{tenant_id}' "  # noqa: S608
                            "and is_supplier limit 1")[0][0]
    sandbox.mutate(tenant_id=tenant_id, entity="contacts", op="update", id=supplier,
                   fields={"Name": "Read Once Ltd"})
    loader.run()
    assert reads == [(tenant_id, "suppliers")]


@pytest.mark.slow
def test_memory_of_a_load_that_did_not_complete_does_not_count(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    """A run killed mid-load can commit a package's memory rows and not its data (each table is
    its own transaction); the package is then dropped. Its memory must not count: the next run
    reads the change again and loads it. (Its cursors rows do not count either: they are
    memory rows, which is what dlt's state rolling back with the package did before.)"""
    loader.run()
    tenant_id = sandbox.tenant_ids()[0]
    account = loader.query(f"select account_id from accounts where tenant_id = '{tenant_id}' "  # noqa: S608
                           "limit 1")[0][0]
    sandbox.mutate(tenant_id=tenant_id, entity="accounts", op="update", id=account,
                   fields={"Name": "Half Loaded"})
    stats = loader.run(entities=["accounts"])
    assert {(e.tenant_id, e.entity): e.rows for e in stats.entries() if e.rows} == {
        (tenant_id, "accounts"): 1}
    (load_id,) = loader.load_info.loads_ids
    # Roll the data and dlt's state back as a dropped package leaves them; its memory rows stay.
    loader.query(f"update accounts set name = 'Before' where account_id = '{account}'")  # noqa: S608
    loader.query(f"delete from _dlt_loads where load_id = '{load_id}'")  # noqa: S608
    assert loader.count(MEMORY_TABLE, f"load_id = '{load_id}' and record_id <> "
                        f"'{CURSORS_KEY}'") == 1

    stats = loader.run(entities=["accounts"])

    assert {(e.tenant_id, e.entity): e.rows for e in stats.entries() if e.rows} == {
        (tenant_id, "accounts"): 1}
    assert loader.query(f"select name from accounts where account_id = '{account}'"  # noqa: S608
                        ) == [("Half Loaded",)]
    # Compacted: one row per record, none of the load that never completed.
    assert loader.count(MEMORY_TABLE, f"load_id = '{load_id}'") == 0
    assert loader.query(f"select count(*), count(distinct (tenant_id, entity, record_id)) "  # noqa: S608
                        f"from {MEMORY_TABLE}")[0] == (loader.count(MEMORY_TABLE),) * 2


@pytest.mark.slow
def test_cursors_the_previous_version_kept_in_dlt_state_move_beside_the_data_without_a_reload(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run()
    entities = ("suppliers", *SNAPSHOTS)
    kept = {e: loader.cursors(e) for e in entities}
    with loader.pipeline.managed_state() as state:  # as the previous version left them
        for entity, tenants in kept.items():
            state["sources"]["xero"]["resources"][entity]["tenants"] = dict(tenants)
    loader.query(f"delete from {MEMORY_TABLE} where record_id = '{CURSORS_KEY}'")  # noqa: S608
    sandbox.clear_requests()

    stats = loader.run()

    # No reload: the incremental calls of a no-change run, no data row, no record's memory.
    assert loader.rows_written() == {}
    assert all(e.rows == 0 and e.outcome == "ok" for e in stats.entries())
    for tenant_id in sandbox.tenant_ids():
        assert stats.api_calls(tenant_id) == 4
    assert not any(_tenants_state(loader).values())  # moved out of dlt's state...
    assert {e: set(loader.cursors(e)) for e in entities} == {  # ...and beside the data
        e: set(t) for e, t in kept.items()}
