"""Background jobs in the store: one open job per connection and kind, even with servers racing;
a cap; a job whose runner died is closed, never blocking its connection for good; and what a
purge leaves of an organisation in the store."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from store import Store, StoreError, utcnow
from store.jobs import ABANDONED_AFTER, JobsBusy


def _connection(store: Store) -> str:
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash="h",
                                   invite_expires_at=utcnow())
    store.update_connection(conn.connection_id, status="connected", tenant_id="t-1",
                            organisation_name="Acme Ltd")
    return conn.connection_id


def test_one_open_job_per_connection_and_kind_however_many_ask_at_once(store: Store) -> None:
    cid = _connection(store)
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda _: store.open_job("purge", cid, requested_by="t"),
                               range(8)))
    assert len({job.job_id for job, _ in opened}) == 1
    assert sum(created for _, created in opened) == 1
    sync, created = store.open_job("sync", cid, requested_by="t")
    assert created
    assert sync.kind == "sync"


def test_the_cap_counts_open_jobs_and_a_finished_one_frees_its_place(store: Store) -> None:
    cid = _connection(store)
    job, _ = store.open_job("sync", cid, requested_by="t", cap=1)
    with pytest.raises(JobsBusy):
        store.open_job("purge", cid, requested_by="t", cap=1)
    store.start_job(job.job_id)
    done = store.finish_job(job.job_id, ok=True, outcome="done")
    assert (done.state, done.outcome) == ("succeeded", "done")
    assert done.started_at is not None
    assert done.finished_at is not None
    assert store.open_job("purge", cid, requested_by="t", cap=1)[1]


def test_a_job_whose_runner_died_is_closed_and_the_connection_can_ask_again(
        store: Store) -> None:
    cid = _connection(store)
    job, _ = store.open_job("purge", cid, requested_by="t")
    store.start_job(job.job_id)
    assert store.close_abandoned_jobs(now=utcnow() + ABANDONED_AFTER / 2) == 0
    assert store.close_abandoned_jobs(now=utcnow() + ABANDONED_AFTER + timedelta(seconds=1)) == 1
    closed = store.get_job(job.job_id)
    assert closed.state == "failed"
    assert "abandoned" in (closed.outcome or "")
    assert "purge.failed" in [e.type for e in store.list_webhook_events(connection_id=cid)]
    assert store.open_job("purge", cid, requested_by="t")[1]


def test_an_unknown_job_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.get_job("job_nothing")


def test_forgetting_an_organisation_keeps_the_events_but_not_what_they_said_of_it(
        store: Store) -> None:
    cid = _connection(store)  # connected: a connection.connected event names the organisation
    store.count_api_calls("t-1", "2026-12-07", 5)
    store.count_api_calls("t-2", "2026-12-07", 3)
    store.forget_organisation(cid, "t-1")
    for event in store.list_webhook_events(connection_id=cid):
        conn = json.loads(event.body)["data"]["connection"]
        assert (conn["tenant_id"], conn["organisation_name"], conn["company"]) == (None, None, "")
        assert conn["connection_id"] == cid
    assert store.api_calls("t-1", "2026-12-07") == 0
    assert store.api_calls("t-2", "2026-12-07") == 3
