"""Schedules per entity and per organisation: `xero-elt run` (cron) reads, per organisation,
only the entities whose interval has passed since their last successful read; the defaults are
settings, a connection may have its own, and forced runs read what they name.

Time moves with freezegun (in this process only: the sandbox keeps its own clock, so tokens and
rate windows behave as they would over a few seconds)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from pipelines import run as run_module
from pipelines.cli import main
from pipelines.run import RunReport
from sandbox.handle import SandboxHandle
from store import schedules
from tests.pipelines.conftest import Warehouse

ALL = ["suppliers", "accounts", "tax_rates", "tracking_categories"]


@pytest.fixture
def scheduled(duckdb_warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    """The warehouse, with schedules on (tests/conftest.py turns them off for other tests)."""
    monkeypatch.setenv("PIPELINES__SCHEDULE__ENABLED", "true")
    return duckdb_warehouse


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """This process's clock at ``moment``, ticking on from there."""
    with freeze_time(moment, tick=True):
        yield


def _read(report: RunReport) -> dict[str, list[str]]:
    """Per organisation, the entities a run read (its sync_runs rows)."""
    return {o["tenant_id"]: sorted(o["entities"]) for o in report.summary["organisations"]}


def _entities(*names: str) -> list[str]:
    """As a run reports them: tracking options come with their categories."""
    extra = ["tracking_options"] if "tracking_categories" in names else []
    return sorted([*names, *extra])


def _runs_of(warehouse: Warehouse, run_id: str) -> set[tuple[str, str]]:
    return {(str(t), str(e)) for t, e in warehouse.query(
        "SELECT tenant_id, entity FROM {ds}.sync_runs WHERE run_id = %s", run_id)}


def _no_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the run opens a dlt pipeline."""
    import dlt

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a run with nothing due opened a dlt pipeline")

    monkeypatch.setattr(dlt, "pipeline", refuse)


def test_the_defaults_decide_what_each_run_reads(
    scheduled: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenants = sorted(sandbox.tenant_ids())
    start = datetime.now(UTC)
    first = scheduled.run_ok()  # a first load reads everything
    assert _read(first) == {t: _entities(*ALL) for t in tenants}
    assert first.summary["due"] == dict.fromkeys(tenants, ALL)

    # Two minutes later nothing is due: no pipeline, no Xero call, exit 0, and it says so.
    sandbox.clear_requests()
    with monkeypatch.context() as patch, at(start + timedelta(minutes=2)), \
            caplog.at_level(logging.INFO, logger="xero_elt.run"):
        _no_pipeline(patch)
        quiet = scheduled.run_ok()
    assert quiet.summary["due"] == {}
    assert quiet.summary["organisations"] == []
    assert quiet.summary["next_due_at"] is not None
    assert "nothing due: 2 organisation(s) read within their intervals" in caplog.text
    assert [r for r in sandbox.requests() if r["path"].startswith("/api.xro/")] == []

    # After five minutes: suppliers only.
    with at(start + timedelta(minutes=6)):
        fresh = scheduled.run_ok()
    assert _read(fresh) == {t: ["suppliers"] for t in tenants}
    assert fresh.summary["due"] == {t: ["suppliers"] for t in tenants}
    assert _runs_of(scheduled, fresh.summary["run_id"]) == {(t, "suppliers") for t in tenants}
    paths = {r["path"] for r in sandbox.requests() if r["path"].startswith("/api.xro/")}
    assert paths == {"/api.xro/2.0/Contacts"}

    # After an hour: accounts too.
    with at(start + timedelta(minutes=61)):
        hourly = scheduled.run_ok()
    assert _read(hourly) == {t: ["accounts", "suppliers"] for t in tenants}

    # After a day: everything.
    with at(start + timedelta(days=1, minutes=1)):
        daily = scheduled.run_ok()
    assert _read(daily) == {t: _entities(*ALL) for t in tenants}


def test_an_organisation_s_own_interval_applies_to_it_alone(
    scheduled: Warehouse, sandbox: SandboxHandle,
) -> None:
    premium, standard = sandbox.tenant_ids()
    store = scheduled.store
    (conn,) = store.connections_for_tenant(premium)
    store.set_schedule(conn.connection_id, {"suppliers": 1, "accounts": 2})
    start = datetime.now(UTC)
    scheduled.run_ok()

    with at(start + timedelta(minutes=3)):
        report = scheduled.run_ok()
    assert _read(report) == {premium: ["accounts", "suppliers"]}

    # One run, different entities for different organisations (one load, one source).
    with at(start + timedelta(minutes=6)):
        mixed = scheduled.run_ok()
    assert _read(mixed) == {premium: ["accounts", "suppliers"], standard: ["suppliers"]}
    assert _runs_of(scheduled, mixed.summary["run_id"]) == {
        (premium, "accounts"), (premium, "suppliers"), (standard, "suppliers")}

    store.set_schedule(conn.connection_id, {"accounts": None})  # back to the default (hourly)
    with at(start + timedelta(minutes=8)):
        report = scheduled.run_ok()
    assert _read(report) == {premium: ["suppliers"]}


def test_named_entities_and_forced_runs_read_what_they_name(
    scheduled: Warehouse, sandbox: SandboxHandle,
) -> None:
    tenants = sorted(sandbox.tenant_ids())
    start = datetime.now(UTC)
    scheduled.run_ok()
    with at(start + timedelta(minutes=1)):
        named = scheduled.run_ok(entities=["tax_rates"])
        reconciled = scheduled.run_ok(reconcile=True)
        nothing = scheduled.run_ok()
    assert _read(named) == {t: ["tax_rates"] for t in tenants}
    assert named.summary["due"] is None  # not a scheduled run
    assert _read(reconciled) == {t: _entities(*ALL) for t in tenants}
    assert nothing.summary["due"] == {}
    # A forced read counts as a read: tax rates are not due again for a day.
    with at(start + timedelta(minutes=61)):
        hourly = scheduled.run_ok()
    assert _read(hourly) == {t: ["accounts", "suppliers"] for t in tenants}


def test_a_failed_read_stays_due(scheduled: Warehouse, sandbox: SandboxHandle) -> None:
    tenants = sorted(sandbox.tenant_ids())
    start = datetime.now(UTC)
    scheduled.run_ok()
    sandbox.fault(kind="status", status=503, path="/api.xro/2.0/Contacts", tenant_id=tenants[0],
                  count=-1)
    with at(start + timedelta(minutes=6)):
        failed = scheduled.run()
    assert failed.exit_code == 3, failed.summary
    sandbox.clear_faults()
    with at(start + timedelta(minutes=7)):
        retried = scheduled.run_ok()
    assert _read(retried) == {tenants[0]: ["suppliers"]}


def test_cli_schedule_set_show_clear_and_status(
    scheduled: Warehouse, sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = sandbox.tenant_ids()[0]
    (conn,) = scheduled.store.connections_for_tenant(tenant)
    assert main(["schedule", "set", "--tenant", tenant, "--entity", "suppliers",
                 "--every", "1m"]) == 0
    assert "suppliers every 1m" in capsys.readouterr().out
    assert main(["schedule", "set", "--connection", conn.connection_id, "--entity",
                 "tax_rates", "--every", "2d"]) == 0
    capsys.readouterr()
    assert main(["schedule", "show", "--json", "--connection", conn.connection_id]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["defaults"] == {"suppliers": 5, "accounts": 60, "tax_rates": 1440,
                               "tracking_categories": 1440}
    (org,) = doc["organisations"]
    assert org["entities"]["suppliers"]["every_minutes"] == 1
    assert org["entities"]["suppliers"]["overridden"] is True
    assert org["entities"]["tax_rates"]["every_minutes"] == 2880
    assert org["entities"]["accounts"] == {"every_minutes": 60, "overridden": False,
                                           "last_read_at": None, "next_due_at": None,
                                           "due": True}

    # Bad input: exit 2 with the reason.
    for argv, message in (
        (["set", "--tenant", tenant, "--entity", "invoices", "--every", "5m"],
         "unknown entity 'invoices'"),
        (["set", "--tenant", tenant, "--entity", "suppliers", "--every", "30s"],
         "at least 1 minute"),
        (["set", "--tenant", tenant, "--entity", "suppliers", "--every", "0"],
         "at least 1 minute"),
        (["set", "--tenant", tenant, "--entity", "suppliers", "--every", "soon"],
         "e.g. 5m, 1h or 1d"),
        (["set", "--connection", "con_000000", "--entity", "suppliers", "--every", "5m"],
         "unknown connection 'con_000000'"),
        (["clear", "--tenant", "no-such-tenant"], "no connection for tenant"),
    ):
        assert main(["schedule", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv

    # status shows each organisation's schedule: intervals and next due times.
    start = datetime.now(UTC)
    scheduled.run_ok()
    main(["status", "--json"])
    doc = json.loads(capsys.readouterr().out)
    mine = next(o for o in doc["organisations"] if o["tenant_id"] == tenant)
    suppliers = mine["schedule"]["suppliers"]
    assert suppliers["every_minutes"] == 1
    assert suppliers["due"] is False
    next_due = datetime.fromisoformat(suppliers["next_due_at"])
    assert start + timedelta(minutes=1) <= next_due <= datetime.now(UTC) + timedelta(minutes=1)
    main(["status"])
    text = capsys.readouterr().out
    assert "schedule               suppliers 1m* (next " in text
    assert "tax_rates 2d*" in text

    assert main(["schedule", "clear", "--tenant", tenant, "--entity", "suppliers"]) == 0
    assert scheduled.store.schedule_overrides() == {conn.connection_id: {"tax_rates": 2880}}
    assert main(["schedule", "clear", "--tenant", tenant]) == 0
    assert "1 override(s) cleared" in capsys.readouterr().out
    assert scheduled.store.schedule_overrides() == {}


def test_the_cli_run_summary_says_nothing_is_due(
    scheduled: Warehouse, capsys: pytest.CaptureFixture[str],
) -> None:
    scheduled.run_ok()
    assert main(["run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["due"] == {}
    assert doc["organisations"] == []
    assert doc["outcome"] == "ok"


def test_bad_default_intervals_are_a_usage_error(
    scheduled: Warehouse, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduled.run_ok()
    monkeypatch.setenv("PIPELINES__SCHEDULE__ACCOUNTS_MINUTES", "0")
    report = scheduled.run()
    assert report.exit_code == 2
    assert "[pipelines.schedule] accounts_minutes" in report.summary["error"]


def test_parse_every_and_the_entity_list() -> None:
    assert schedules.scheduled_entities() == tuple(ALL)
    assert [schedules.parse_every(t) for t in ("5m", "5", "90m", "1h", "1d", "120s")] == [
        5, 5, 90, 60, 1440, 2]
    assert [schedules.every_text(m) for m in (5, 90, 60, 1440, 2880)] == [
        "5m", "90m", "1h", "1d", "2d"]
    with pytest.raises(schedules.BadSchedule, match="at most 30 days"):
        schedules.parse_every("31d")
    with pytest.raises(schedules.BadSchedule, match="whole minutes"):
        schedules.parse_every("90s")
    assert run_module.scheduled(run_module.RunOptions(webhook_events=True)) is False


def test_per_organisation_runs_ask_the_same_question(
    scheduled: Warehouse, sandbox: SandboxHandle,
) -> None:
    """Dagster's layout (a pipeline per organisation) shares the last reads of the dataset."""
    tenants = sorted(sandbox.tenant_ids())
    start = datetime.now(UTC)
    scheduled.run_ok()
    with at(start + timedelta(minutes=2)):
        quiet = scheduled.run_ok(layout="per_organisation")
    assert (quiet.summary["due"], quiet.summary["organisations"]) == ({}, [])
    assert quiet.summary["next_due_at"] is not None
    with at(start + timedelta(minutes=6)):
        fresh = scheduled.run_ok(layout="per_organisation")
    assert fresh.summary["due"] == {t: ["suppliers"] for t in tenants}
    assert _read(fresh) == {t: ["suppliers"] for t in tenants}


# Each snapshot entity, its key column and when the first whole read after a deletion comes.
# Tax rates and tracking are read whole, daily. Accounts are read hourly but only what changed
# (If-Modified-Since); the whole chart comes with the first hourly read once
# accounts_snapshot_hours (24) have passed since the last whole one: here the read at 23 h 50
# was a partial one, so the whole chart comes at 24 h 50 (a day plus at most one accounts
# interval, as docs/deploy.md says).
DELETIONS = {
    "accounts": ("account_id", timedelta(days=1, minutes=51)),
    "tax_rates": ("tax_type", timedelta(days=1, minutes=1)),
    "tracking_categories": ("tracking_category_id", timedelta(days=1, minutes=1)),
    "tracking_options": ("tracking_option_id", timedelta(days=1, minutes=1)),
}


@pytest.mark.parametrize("entity", sorted(DELETIONS))
def test_a_deletion_is_found_by_the_first_whole_read_and_not_before(
    scheduled: Warehouse, sandbox: SandboxHandle, entity: str,
) -> None:
    key, found_after = DELETIONS[entity]
    tenant = sorted(sandbox.tenant_ids())[0]
    start = datetime.now(UTC)
    scheduled.run_ok()
    (gone,) = scheduled.query(
        f"SELECT {key} FROM {{ds}}.{entity} WHERE tenant_id = %s ORDER BY {key} LIMIT 1",  # noqa: S608 - names from DELETIONS
        tenant)[0]
    sandbox.mutate(tenant_id=tenant, entity=entity, op="delete", id=gone)

    def deleted() -> bool:
        rows = scheduled.query(
            f"SELECT is_deleted FROM {{ds}}.{entity} WHERE tenant_id = %s AND {key} = %s",  # noqa: S608
            tenant, gone)
        return any(bool(r[0]) for r in rows)

    # Five-minute and hourly runs before the whole read is due: the deletion is not seen yet.
    before = [timedelta(minutes=m) for m in (6, 61, 23 * 60 + 50)]
    before += [timedelta(days=1, minutes=1)] if found_after > timedelta(days=1, minutes=1) else []
    for moment in before:
        with at(start + moment):
            scheduled.run_ok()
        assert not deleted(), f"{entity}: marked {moment} on, before its whole read"
    with at(start + found_after):
        whole = scheduled.run_ok()
    assert entity in _read(whole)[tenant]
    assert deleted(), f"{entity}: {found_after} on, the deletion is still not marked"
