"""Background work through the API: one job per connection and kind, a cap on all of them,
jobs anyone can read, a failed purge reported, and keys with scopes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server import api, first_sync
from sandbox.handle import SandboxHandle, make_grant
from store import open_store, utcnow
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth
from tools.sandbox_setup import store_grant


class Gate:
    """Stands in for the ``pipelines`` subprocess of a job: records it, and holds it running
    until released (so the test can see what a busy server answers)."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.release = threading.Event()
        self.outcome = (True, "done")

    def __call__(self, store: Any, args: list[str], **_: Any) -> Any:
        def work() -> tuple[bool, str]:
            self.started.append(args)
            self.release.wait(30)
            return self.outcome

        return work


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    monkeypatch.setattr(api, "cli_work", held)
    monkeypatch.setattr(first_sync, "cli_work", held)
    yield held
    held.release.set()


@pytest.fixture
def busy_auth(sandbox: SandboxHandle, tmp_home: Path, gate: Gate) -> Iterator[RunningAuth]:
    running = start_auth(sandbox, tmp_home, on_connected=None, max_background_jobs=2)
    yield running
    gate.release.set()
    running.server.app.jobs.join(10)
    stop_auth(running)


def _connected(auth: RunningAuth, sandbox: SandboxHandle) -> list[str]:
    """Connect every sandbox organisation in the server's store; their connection ids."""
    grant = make_grant(sandbox, auth.app)
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    store_grant(auth.store, grant, names)
    return [c.connection_id for c in auth.store.list_connections(statuses=["connected"])]


def _client(auth: RunningAuth, scope: str = "admin") -> httpx.Client:
    _, key = auth.store.create_api_key(f"tests-{scope}", scope)
    return auth.http(headers={"Authorization": f"Bearer {key}"})


def test_five_purges_at_once_start_one_job_and_all_get_it(
        busy_auth: RunningAuth, sandbox: SandboxHandle, gate: Gate) -> None:
    cid = _connected(busy_auth, sandbox)[0]
    with _client(busy_auth) as http, ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(
            lambda _: http.post(f"/api/v1/connections/{cid}/purge"), range(5)))
    assert [a.status_code for a in answers] == [202] * 5
    assert len({a.json()["job"]["id"] for a in answers}) == 1
    assert len([j for j in busy_auth.store.list_jobs(cid) if j.kind == "purge"]) == 1
    assert len(gate.started) <= 1  # one process, however many asked


def test_a_sync_asked_twice_is_one_job_and_the_cap_answers_429(
        busy_auth: RunningAuth, sandbox: SandboxHandle, gate: Gate) -> None:
    first, second = _connected(busy_auth, sandbox)[:2]
    with _client(busy_auth) as http:
        one = http.post(f"/api/v1/connections/{first}/purge")
        again = http.post(f"/api/v1/connections/{first}/purge")
        two = http.post(f"/api/v1/connections/{second}/sync")
        two_again = http.post(f"/api/v1/connections/{second}/sync")
        # Two jobs run (the cap): a third is refused, and says when to come back.
        third = http.post(f"/api/v1/connections/{second}/purge")
        job = http.get(f"/api/v1/jobs/{one.json()['job']['id']}")
        gate.release.set()
        busy_auth.server.app.jobs.join(10)
        done = http.get(f"/api/v1/jobs/{one.json()['job']['id']}")
        unknown = http.get("/api/v1/jobs/job_0000000000000000")
    assert (one.status_code, again.status_code, two.status_code) == (202, 202, 202)
    assert again.json()["job"]["id"] == one.json()["job"]["id"]
    assert two_again.json()["job"]["id"] == two.json()["job"]["id"]
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "busy"
    assert int(third.headers["retry-after"]) >= 1
    assert job.json()["job"]["state"] in ("queued", "running")
    assert (done.json()["job"]["state"], done.json()["job"]["outcome"]) == ("succeeded", "done")
    assert unknown.status_code == 404
    # "Sync now" reads every entity, whatever the schedule says is due.
    (sync_args,) = [a for a in gate.started if a[0] == "run"]
    assert sync_args[-2:] == ["--entities", "suppliers,accounts,tax_rates,tracking_categories"]


def test_the_customer_s_first_sync_is_never_refused_by_the_cap(
        busy_auth: RunningAuth, sandbox: SandboxHandle, gate: Gate) -> None:
    first, second = _connected(busy_auth, sandbox)[:2]
    with _client(busy_auth) as http:
        assert http.post(f"/api/v1/connections/{first}/purge").status_code == 202
        assert http.post(f"/api/v1/connections/{second}/sync").status_code == 202
        assert http.post(f"/api/v1/connections/{second}/purge").status_code == 429
    # Both slots are taken; a customer who confirms a company now still gets a first sync.
    tenant = busy_auth.store.get_connection(second).tenant_id
    new = busy_auth.store.create_connection("Newco", "a@newco.test", invite_token_hash="h-new",
                                            invite_expires_at=utcnow())
    new = busy_auth.store.update_connection(new.connection_id, status="connected",
                                            tenant_id=tenant, organisation_name="Newco")
    job = busy_auth.server.app.first_sync.start(new)  # as the confirm page does: not capped
    assert job is not None
    assert (job.kind, job.connection_id, job.requested_by) == ("sync", new.connection_id,
                                                               "first sync")


def test_a_failed_purge_is_reported_and_can_be_asked_again(
        busy_auth: RunningAuth, sandbox: SandboxHandle, gate: Gate) -> None:
    cid = _connected(busy_auth, sandbox)[0]
    gate.outcome = (False, "failed (exit 1); see logs/purge.log")
    gate.release.set()
    with _client(busy_auth) as http:
        first = http.post(f"/api/v1/connections/{cid}/purge").json()["job"]
        busy_auth.server.app.jobs.join(10)
        failed = http.get(f"/api/v1/jobs/{first['id']}").json()["job"]
        again = http.post(f"/api/v1/connections/{cid}/purge").json()["job"]
        busy_auth.server.app.jobs.join(10)
        page = busy_auth.admin().get("/admin")
    assert failed["state"] == "failed"
    assert again["id"] != first["id"]
    events = busy_auth.store.list_webhook_events(connection_id=cid)
    assert "purge.failed" in [e.type for e in events]
    body = json.loads(next(e for e in events if e.type == "purge.failed").body)
    assert body["data"]["connection"]["connection_id"] == cid
    assert "purge failed" in page.text


@pytest.mark.parametrize(("scope", "allowed"), [
    ("read", {"GET"}),
    ("write", {"GET", "invite", "sync"}),
    ("admin", {"GET", "invite", "sync", "purge"}),
])
def test_keys_have_scopes(busy_auth: RunningAuth, sandbox: SandboxHandle, gate: Gate,
                          scope: str, allowed: set[str],
                          caplog: pytest.LogCaptureFixture) -> None:
    gate.release.set()
    cids = _connected(busy_auth, sandbox)
    caplog.set_level(logging.INFO, logger="auth_server.api")
    with _client(busy_auth, scope) as http:
        answers = {
            "GET": http.get("/api/v1/connections"),
            "invite": http.post("/api/v1/invites", json={"company": "Acme",
                                                          "email": "a@acme.test"}),
            "sync": http.post(f"/api/v1/connections/{cids[0]}/sync"),
            "purge": http.post(f"/api/v1/connections/{cids[1]}/purge"),
        }
        busy_auth.server.app.jobs.join(10)
    for action, answer in answers.items():
        if action in allowed:
            assert answer.status_code in (200, 201, 202), (action, answer.text)
        else:
            assert answer.status_code == 403, (action, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
    key_id = busy_auth.store.list_api_keys()[-1].key_id
    acted = [r.getMessage() for r in caplog.records if key_id in r.getMessage()]
    assert len(acted) == len(allowed - {"GET"}) + len(set(answers) - allowed)


def test_keys_made_before_scopes_keep_every_right(tmp_home: Path) -> None:
    store = open_store(tmp_home)
    record, _ = store.create_api_key("old")
    assert record.scope == "admin"
    assert store.get_api_key(record.key_id).allows("admin")
