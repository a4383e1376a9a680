"""Accounts read only what changed: ``If-Modified-Since`` the cursor (Xero's clock when the last
read began) minus the overlap on most runs, the whole chart (which alone shows a deleted account)
every ``accounts_snapshot_hours``, on ``reconcile`` and ``full_refresh``, on a first run and after
state an older version wrote; whichever way the sandbox answers an unchanged chart (an empty
list, 304, or the header ignored)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from connector.memory import CURSORS_KEY, MEMORY_TABLE
from connector.wire import format_if_modified_since
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store
from tests.connector.conftest import Loader, sandbox_settings

ACCOUNTS = "/api.xro/2.0/Accounts"
ONLY = ["accounts"]


def account_calls(sandbox: SandboxHandle, tenant_id: str | None = None) -> list[dict]:
    """The Accounts requests in the sandbox's log."""
    return [r for r in sandbox.requests(path=ACCOUNTS, tenant_id=tenant_id)
            if r["path"] == ACCOUNTS]


def table(loader: Loader, tenant_id: str) -> dict[str, tuple[str, bool]]:
    """The accounts table of one organisation: account_id -> (name, is_deleted)."""
    return {a: (n, d) for a, n, d in loader.query(
        "select account_id, name, is_deleted from accounts "  # noqa: S608
        f"where tenant_id = '{tenant_id}'")}


def xero_chart(sandbox: SandboxHandle, grant: XeroGrant, tenant_id: str) -> dict[str, str]:
    """The whole chart as Xero lists it now: AccountID -> Name."""
    answer = httpx.get(f"{sandbox.api_url}/Accounts", headers=grant.headers(tenant_id))
    answer.raise_for_status()
    return {a["AccountID"]: a["Name"] for a in answer.json()["Accounts"]}


def data_written(loader: Loader) -> dict[str, int]:
    """Rows the last load wrote to data tables (the memory table left out)."""
    return {t: n for t, n in loader.rows_written().items() if t != MEMORY_TABLE}


def accounts_state(loader: Loader) -> dict[str, dict[str, Any]]:
    """What is kept per organisation for accounts (its cursors row beside the data)."""
    return loader.cursors("accounts")


def an_account(loader: Loader, tenant_id: str, offset: int = 0) -> tuple[str, str]:
    return loader.query("select account_id, name from accounts "  # noqa: S608
                        f"where tenant_id = '{tenant_id}' order by account_id "
                        f"limit 1 offset {offset}")[0]


def test_a_no_change_run_asks_for_changed_accounts_and_loads_none(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run(entities=ONLY)
    cursors = {t: datetime.fromisoformat(s["cursor"]) for t, s in accounts_state(loader).items()}
    sandbox.clear_requests()

    stats = loader.run(entities=ONLY)

    assert loader.rows_written() == {}
    for tenant_id in sandbox.tenant_ids():
        (call,) = account_calls(sandbox, tenant_id)
        # The cursor is Xero's clock when the first read began; the overlap (60 s) before it.
        assert call["headers"]["if-modified-since"] == format_if_modified_since(
            cursors[tenant_id] - timedelta(seconds=60))
        assert call["status"] == 200
        entry = stats.get(tenant_id, "accounts")
        assert (entry.rows, entry.outcome, entry.api_calls) == (0, "ok", 1)
        assert entry.bytes_decoded < 300  # the envelope and an empty list, not the chart


def test_an_edited_account_arrives_on_the_next_run_and_once(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run(entities=ONLY)
    tenant_a, tenant_b = sandbox.tenant_ids()
    account, _ = an_account(loader, tenant_a)
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="update", id=account,
                   fields={"Name": "Renamed Since"})
    sandbox.clear_requests()

    stats = loader.run(entities=ONLY)

    assert all("if-modified-since" in c["headers"] for c in account_calls(sandbox))
    assert data_written(loader) == {"accounts": 1}
    assert table(loader, tenant_a)[account] == ("Renamed Since", False)
    assert stats.get(tenant_a, "accounts").rows == 1
    assert stats.get(tenant_b, "accounts").rows == 0
    # Still inside the overlap, Xero sends it again; its content did not change: not loaded.
    loader.run(entities=ONLY)
    assert loader.rows_written() == {}


@pytest.mark.parametrize("whole_by", ["interval", "reconcile", "full_refresh"])
def test_a_deleted_account_is_marked_by_the_whole_chart_not_by_a_partial_answer(
    loader: Loader, sandbox: SandboxHandle, whole_by: str
) -> None:
    loader.run(entities=ONLY)
    tenant_a = sandbox.tenant_ids()[0]
    account, name = an_account(loader, tenant_a)
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=account)

    loader.run(entities=ONLY)  # what changed: nothing; a deletion does not show there

    assert loader.rows_written() == {}
    assert table(loader, tenant_a)[account] == (name, False)

    sandbox.clear_requests()
    if whole_by == "interval":
        # The last whole chart is older than accounts_snapshot_hours (24): this run reads it.
        with freeze_time(datetime.now(UTC) + timedelta(hours=24, minutes=1), tick=True):
            loader.run(entities=ONLY)
            marked = table(loader, tenant_a)[account]
            loader.run(entities=ONLY)  # the next one reads what changed again
            assert all("if-modified-since" in c["headers"]
                       for c in account_calls(sandbox)[2:])
            assert loader.rows_written() == {}
    else:
        loader.run(entities=ONLY, **{whole_by: True})
        marked = table(loader, tenant_a)[account]

    assert all("if-modified-since" not in c["headers"] for c in account_calls(sandbox)[:2])
    assert marked == (name, True)
    assert loader.count("accounts", "is_deleted") == 1


@pytest.mark.parametrize("answer", ["empty", "304", "ignore"])
def test_each_answer_to_an_unchanged_chart_gives_the_same_table(
    loader: Loader, sandbox: SandboxHandle, xero_grant: XeroGrant, answer: str
) -> None:
    sandbox.settings(accounts_not_modified=answer)
    tenant_a, tenant_b = sandbox.tenant_ids()
    loader.run(entities=ONLY)
    edited, _ = an_account(loader, tenant_a)
    deleted, deleted_name = an_account(loader, tenant_a, offset=1)
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="update", id=edited,
                   fields={"Name": "Edited Meanwhile"})
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=deleted)

    loader.run(entities=ONLY)  # one change for A, none for B
    assert data_written(loader) == {"accounts": 1}
    sandbox.clear_requests()
    stats = loader.run(entities=ONLY)  # no change anywhere (A's edit is inside the overlap)

    assert loader.rows_written() == {}
    for tenant_id in (tenant_a, tenant_b):
        (call,) = account_calls(sandbox, tenant_id)  # one call: a 304 is not retried
        assert "if-modified-since" in call["headers"]
        assert call["status"] == (304 if answer == "304" and tenant_id == tenant_b else 200)
        entry = stats.get(tenant_id, "accounts")
        assert (entry.outcome, entry.error, entry.api_calls, entry.warnings) == ("ok", None, 1, [])
    # Every account as Xero lists it; the deleted one not marked by a partial (or ignored) read.
    expected_b = {a: (n, False) for a, n in xero_chart(sandbox, xero_grant, tenant_b).items()}
    assert table(loader, tenant_b) == expected_b
    expected_a = {a: (n, False) for a, n in xero_chart(sandbox, xero_grant, tenant_a).items()}
    assert expected_a[edited] == ("Edited Meanwhile", False)
    assert table(loader, tenant_a) == {**expected_a, deleted: (deleted_name, False)}

    loader.run(entities=ONLY, settings=loader.settings.replace(accounts_snapshot_hours=0))

    assert table(loader, tenant_a) == {**expected_a, deleted: (deleted_name, True)}
    assert table(loader, tenant_b) == expected_b


def test_state_written_before_the_cursor_moves_on_with_one_whole_chart_and_no_reload(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run(entities=ONLY)
    kept = accounts_state(loader)
    with loader.pipeline.managed_state() as state:  # as the previous version left it
        tenants = state["sources"]["xero"]["resources"]["accounts"].setdefault("tenants", {})
        for tenant_id, marks in kept.items():
            tenants[tenant_id] = {"d": marks["d"]}
    loader.query(f"delete from {MEMORY_TABLE} where record_id = '{CURSORS_KEY}'")  # noqa: S608
    sandbox.clear_requests()

    loader.run(entities=ONLY)

    assert all("if-modified-since" not in c["headers"] for c in account_calls(sandbox))
    assert loader.rows_written() == {}  # the same chart: nothing reloaded, no memory written
    assert all(set(s) == {"d", "cursor", "snapshot_at"} for s in accounts_state(loader).values())
    sandbox.clear_requests()
    loader.run(entities=ONLY)
    assert all("if-modified-since" in c["headers"] for c in account_calls(sandbox))


def test_the_state_stays_small_and_zero_hours_reads_the_whole_chart_every_run(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run(entities=ONLY, settings=loader.settings.replace(accounts_snapshot_hours=0))
    sandbox.clear_requests()
    loader.run(entities=ONLY, settings=loader.settings.replace(accounts_snapshot_hours=0))
    assert account_calls(sandbox)
    assert all("if-modified-since" not in c["headers"] for c in account_calls(sandbox))
    assert loader.rows_written() == {}
    for marks in accounts_state(loader).values():
        assert set(marks) == {"d", "cursor", "snapshot_at"}
        assert len(str(marks)) < 200


def test_with_history_a_change_brings_the_whole_chart_and_no_change_loads_nothing(
    tmp_path: Path, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, xero_grant, history=["accounts"]))
    loader.run(entities=ONLY)
    tenant_a, tenant_b = sandbox.tenant_ids()
    total = loader.count("accounts")
    sandbox.clear_requests()

    loader.run(entities=ONLY)  # no change: one If-Modified-Since call each, nothing loaded

    assert loader.rows_written() == {}
    assert [("if-modified-since" in c["headers"]) for c in account_calls(sandbox)] == [True] * 2

    edited, name = an_account(loader, tenant_a)
    deleted, deleted_name = an_account(loader, tenant_a, offset=1)
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="update", id=edited,
                   fields={"Name": "Renamed In History"})
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=deleted)
    sandbox.clear_requests()

    loader.run(entities=ONLY)

    # A: the change shows, so the whole chart follows (scd2 retires what a load leaves out);
    # B: nothing changed, one call.
    calls_a = account_calls(sandbox, tenant_a)
    assert [("if-modified-since" in c["headers"]) for c in calls_a] == [True, False]
    assert len(account_calls(sandbox, tenant_b)) == 1
    versions = ("select name, is_deleted, _dlt_valid_to is null from accounts "
                "where account_id = '{}' order by _dlt_valid_from")
    assert loader.query(versions.format(edited)) == [(name, False, False),
                                                     ("Renamed In History", False, True)]
    # The whole chart was read: the deleted account is marked now too.
    assert loader.query(versions.format(deleted)) == [(deleted_name, False, False),
                                                      (deleted_name, True, True)]
    # Nothing else got a new version, in either organisation.
    assert loader.count("accounts", "_dlt_valid_to is null") == total
    assert loader.count("accounts") == total + 2


def test_with_history_a_deletion_alone_waits_for_the_whole_chart(
    tmp_path: Path, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    settings = sandbox_settings(sandbox, xero_grant, history=["accounts"])
    loader = Loader(tmp_path, store, settings)
    loader.run(entities=ONLY)
    tenant_a = sandbox.tenant_ids()[0]
    account, name = an_account(loader, tenant_a)
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=account)
    versions = ("select name, is_deleted, _dlt_valid_to is null from accounts "  # noqa: S608
                f"where account_id = '{account}' order by _dlt_valid_from")

    loader.run(entities=ONLY)
    assert loader.query(versions) == [(name, False, True)]

    loader.run(entities=ONLY, settings=settings.replace(accounts_snapshot_hours=0))
    assert loader.query(versions) == [(name, False, False), (name, True, True)]
