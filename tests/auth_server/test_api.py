"""The JSON API over real HTTP: keys, every route, errors, and the committed OpenAPI description
that each real answer is validated against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.auth_server.helpers import RunningAuth, wait_for

SPEC = Path(__file__).parents[2] / "auth_server" / "openapi.json"


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SPEC.read_text()))


class Api:
    """An API client that validates every answer against the OpenAPI description."""

    def __init__(self, auth: RunningAuth, spec: OpenAPI, key: str) -> None:
        self.http = auth.http(headers={"Authorization": f"Bearer {key}"})
        self.spec = spec

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, "/api/v1" + path, json=body, **kwargs)
        assert response.headers["content-type"] == "application/json"
        assert "set-cookie" not in response.headers
        request = MockRequest("http://server", method.lower(), "/api/v1" + path,
                              headers={"Authorization": "Bearer x"},
                              data=json.dumps(body) if body is not None else None,
                              content_type="application/json")
        self.spec.validate_response(request, MockResponse(
            response.content, response.status_code, content_type="application/json"))
        return response


@pytest.fixture
def api(auth: RunningAuth, spec: OpenAPI) -> Api:
    _, key = auth.store.create_api_key("tests")
    client = Api(auth, spec, key)
    yield client  # type: ignore[misc]
    client.http.close()


def test_the_served_description_is_the_committed_one_and_valid(auth: RunningAuth) -> None:
    with auth.http() as http:
        served = http.get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(SPEC.read_text())
    assert (Path(__file__).parents[2] / "docs" / "api" / "openapi.json").read_text() == \
        SPEC.read_text()
    OpenAPI.from_dict(served.json())  # validates the document itself


def test_an_invite_made_through_the_api_connects_and_is_listed(
        api: Api, auth: RunningAuth, org: dict[str, Any]) -> None:
    made = api.call("POST", "/invites", {"company": "Acme", "email": "a@acme.test",
                                         "send_email": False})
    assert made.status_code == 201
    invite = made.json()
    assert invite["invite_id"] == invite["connection_id"]
    assert invite["link"].startswith(auth.url + "/invite/")
    assert auth.outbox() == []  # the platform sends the link itself

    customer = auth.customer()
    customer.connect(invite["link"], org["admin"])
    listed = api.call("GET", "/connections").json()["connections"]
    assert [(c["connection_id"], c["status"], c["tenant_id"]) for c in listed] == [
        (invite["connection_id"], "connected", org["tenantId"])]
    one = api.call("GET", f"/connections/{invite['connection_id']}").json()["connection"]
    assert one["organisation_name"] == org["name"]
    assert "grant_id" not in one
    assert "invite_token_hash" not in one

    synced = api.call("POST", f"/connections/{invite['connection_id']}/sync")
    assert synced.status_code == 202
    wait_for(lambda: len(auth.synced) >= 2)  # the first sync, then the one asked for

    gone = api.call("POST", f"/connections/{invite['connection_id']}/disconnect")
    assert gone.json()["connection"]["status"] == "disconnected"
    grant_id = auth.connection(invite["connection_id"]).grant_id
    assert auth.store.get_grant(grant_id).status == "revoked"  # type: ignore[arg-type]


def test_resend_and_withdraw(api: Api, auth: RunningAuth) -> None:
    first = api.call("POST", "/invites", {"company": "Beta", "email": "b@beta.test"}).json()
    assert len(auth.outbox()) == 1
    again = api.call("POST", f"/connections/{first['connection_id']}/resend").json()
    assert again["connection_id"] == first["connection_id"]
    assert again["link"] != first["link"]
    assert len(auth.outbox()) == 2
    with auth.http() as http:
        assert http.get(first["link"]).status_code == 404  # the old link stopped working
        assert http.get(again["link"]).status_code == 303  # on to the first step

    withdrawn = api.call("POST", f"/connections/{first['connection_id']}/withdraw")
    assert withdrawn.json()["connection"]["status"] == "disconnected"


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", "/invites", {"company": "", "email": "a@b.test"}, 422, "invalid_field"),
    ("POST", "/invites", {"company": "A", "email": "not-an-email"}, 422, "invalid_field"),
    ("POST", "/invites", {"company": "A", "email": "a@b.test", "extra": 1}, 400,
     "invalid_request"),
    ("GET", "/connections/con_000000000000", None, 404, "not_found"),
    ("GET", "/connections/nonsense", None, 404, "not_found"),
    ("POST", "/connections/con_000000000000/purge", None, 404, "not_found"),
])
def test_errors_have_stable_codes(api: Api, method: str, path: str, body: Any, status: int,
                                  code: str) -> None:
    answer = api.call(method, path, body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_sync_of_an_invite_that_has_not_connected_is_a_conflict(api: Api) -> None:
    made = api.call("POST", "/invites", {"company": "C", "email": "c@c.test"}).json()
    answer = api.call("POST", f"/connections/{made['connection_id']}/sync")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "conflict")


def test_unknown_routes_and_methods_answer_json(auth: RunningAuth) -> None:
    with auth.http() as http:
        missing = http.get("/api/v1/nothing")
        wrong = http.delete("/api/v1/connections")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")


def test_no_key_a_wrong_key_and_a_revoked_key_are_refused(auth: RunningAuth) -> None:
    record, key = auth.store.create_api_key("to revoke")
    with auth.http() as http:
        none = http.get("/api/v1/connections")
        wrong = http.get("/api/v1/connections",
                         headers={"Authorization": "Bearer " + "x" * 40})
        http.cookies.set("xelt_admin", key)
        cookie_only = http.get("/api/v1/connections")
        http.cookies.clear()
        good = http.get("/api/v1/connections", headers={"Authorization": f"Bearer {key}"})
        auth.store.revoke_api_key(record.key_id)
        revoked = http.get("/api/v1/connections", headers={"Authorization": f"Bearer {key}"})
        admin_token = http.get("/api/v1/connections", headers=dict(auth.admin().headers))
    assert good.status_code == 200
    for refused in (none, wrong, cookie_only, revoked, admin_token):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    assert key not in revoked.text


def test_wrong_keys_back_off_per_client_and_the_right_key_still_works(
        auth: RunningAuth) -> None:
    _, key = auth.store.create_api_key("right")
    with auth.http() as http:
        answers = [http.get("/api/v1/connections",
                            headers={"Authorization": f"Bearer wrong-{i:036d}"})
                   for i in range(7)]
        right = http.get("/api/v1/connections", headers={"Authorization": f"Bearer {key}"})
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 2
    assert answers[-1].json()["error"]["code"] == "too_many_attempts"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert right.status_code == 200


@pytest.mark.slow
def test_purge_through_the_api_removes_the_data_and_the_grant(
        auth_duckdb: tuple[RunningAuth, Path], spec: OpenAPI, org: dict[str, Any]) -> None:
    from tests.auth_server.conftest import duckdb_counts

    auth, database = auth_duckdb
    _, key = auth.store.create_api_key("tests")
    api = Api(auth, spec, key)
    invite = api.call("POST", "/invites", {"company": "Acme", "email": "a@acme.test"}).json()
    cid = invite["connection_id"]
    auth.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
    wait_for(lambda: auth.connection(cid).sync_state == "synced", timeout=180)
    auth.server.app.first_sync.join(120)
    assert duckdb_counts(database, org["tenantId"])["suppliers"] > 0

    answer = api.call("POST", f"/connections/{cid}/purge")
    assert answer.status_code == 202
    wait_for(lambda: auth.connection(cid).status == "purged", timeout=180)

    assert set(duckdb_counts(database, org["tenantId"]).values()) == {0}
    assert auth.store.list_grants() == []  # revoked at Xero (nothing else used it), then deleted
    record = api.call("GET", f"/connections/{cid}").json()["connection"]
    assert (record["status"], record["tenant_id"]) == ("purged", org["tenantId"])
    assert api.call("POST", f"/connections/{cid}/disconnect").status_code == 409
    types = [e.type for e in auth.store.list_webhook_events(connection_id=cid)]
    assert types[0] == "connection.purged"
    api.http.close()
