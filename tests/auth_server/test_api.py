"""The JSON API over real HTTP: keys, every route, errors, and the committed OpenAPI description
that each real answer is validated against."""

from __future__ import annotations

import json
import logging
import re
import socket
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
    record, key = auth.store.create_api_key("tests")
    key_id = record.key_id
    api = Api(auth, spec, key)
    invite = api.call("POST", "/invites", {"company": "Acme", "email": "a@acme.test"}).json()
    cid = invite["connection_id"]
    auth.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
    wait_for(lambda: auth.connection(cid).sync_state == "synced", timeout=180)
    auth.server.app.first_sync.join(120)
    assert duckdb_counts(database, org["tenantId"])["suppliers"] > 0

    answer = api.call("POST", f"/connections/{cid}/purge")
    assert answer.status_code == 202
    job = answer.json()["job"]
    assert (job["kind"], job["connection_id"]) == ("purge", cid)
    wait_for(lambda: auth.connection(cid).status == "purged", timeout=180)
    auth.server.app.jobs.join(60)

    assert set(duckdb_counts(database, org["tenantId"]).values()) == {0}
    assert auth.store.list_grants() == []  # revoked at Xero (nothing else used it), then deleted
    answer = api.call("GET", f"/connections/{cid}").json()
    record = answer["connection"]
    assert (record["status"], record["tenant_id"], record["organisation_name"]) == (
        "purged", None, None)
    assert record["purged_by"] == f"api:{key_id}"
    assert answer["jobs"][0]["id"] == job["id"]
    done = api.call("GET", f"/jobs/{job['id']}").json()["job"]
    assert (done["state"], done["outcome"]) == ("succeeded", "done")
    assert api.call("POST", f"/connections/{cid}/disconnect").status_code == 409
    types = [e.type for e in auth.store.list_webhook_events(connection_id=cid)]
    assert types[0] == "connection.purged"
    api.http.close()


def _raw(auth: RunningAuth, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (malformed ones included); the status, headers and body."""
    host, port = auth.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"POST /api/v1/invites HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     411, "length_required"),
    (b"POST /api/v1/invites HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
     413, "too_large"),
    (b"POST /api/v1/invites HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
     b"\r\nx", 400, "invalid_request"),
    (b"POST /api/v1/invites HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
     400, "invalid_request"),
    (b"GET /api/v1/connections HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
     431, "headers_too_large"),
    (b"GET /api/v1/connections HTTP/9.9\r\nHost: x\r\n\r\n", 505, "invalid_request"),
    (b"GET /api/v1/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"QUERY /api/v1/connections HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405,
     "method_not_allowed"),
    (b"TRACE /api/v1/invites HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405,
     "method_not_allowed"),
])
def test_errors_raised_before_routing_are_json_under_the_api(
        auth: RunningAuth, request_bytes: bytes, status: int, code: str) -> None:
    got, headers, body = _raw(auth, request_bytes)
    assert (got, headers["content-type"]) == (status, "application/json")
    assert json.loads(body)["error"]["code"] == code
    if status == 405:
        assert headers["allow"] in ("GET", "POST")


def test_outside_the_api_the_same_errors_stay_pages(auth: RunningAuth) -> None:
    too_large = _raw(auth, b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 99999999\r\n\r\n")
    unknown_method = _raw(auth, b"QUERY /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert too_large[0] == 413
    assert too_large[1]["content-type"].startswith("text/html")
    assert unknown_method[0] == 405
    assert unknown_method[1]["content-type"].startswith("text/html")
    assert unknown_method[1]["allow"] == "GET"


def test_a_bare_post_without_content_length_is_accepted(auth: RunningAuth) -> None:
    """The README's own `curl -X POST …/resend`: no body, no Content-Length (once a 411)."""
    _, key = auth.store.create_api_key("curl")
    made = auth.http(headers={"Authorization": f"Bearer {key}"}).post(
        "/api/v1/invites", json={"company": "Acme", "email": "a@acme.test"}).json()
    status, headers, body = _raw(auth, (
        f"POST /api/v1/connections/{made['connection_id']}/resend HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n").encode())
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body)["connection_id"] == made["connection_id"]


def test_deeply_nested_json_is_a_400_not_a_server_error(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    nested = b"[" * 10_000  # under the API's 16 KiB body limit; 100,000 are a 413 (above)
    with caplog.at_level(logging.INFO, logger="auth_server"):
        answer = api.http.post("/api/v1/invites", content=nested,
                               headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_non_json_body_is_415(api: Api) -> None:
    answer = api.call("POST", "/invites", content=b"company=A", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_xero_s_error_text_never_reaches_the_client(
        api: Api, auth: RunningAuth, org: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    invite = api.call("POST", "/invites", {"company": "Acme", "email": "a@acme.test"}).json()
    auth.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
    detail = "Xero-internal detail 7f3e: validation of connection failed"
    auth.sandbox.fault(kind="status", status=400, path="/connections", method="DELETE",
                       body=json.dumps({"Title": "Bad", "Detail": detail}),
                       content_type="application/json")
    with caplog.at_level(logging.WARNING, logger="auth_server"):
        answer = api.call("POST", f"/connections/{invite['connection_id']}/disconnect")
    error = answer.json()["error"]
    assert (answer.status_code, error["code"]) == (502, "xero_unavailable")
    assert "7f3e" not in answer.text
    assert "Detail" not in answer.text
    reference = re.search(r"XE-[0-9A-F]{6}", error["message"])
    assert reference is not None
    logged = [r.getMessage() for r in caplog.records if reference.group() in r.getMessage()]
    assert len(logged) == 1
    assert "7f3e" in logged[0]
    assert auth.connection(invite["connection_id"]).status == "connected"  # nothing changed


def test_wrong_keys_log_a_warning_per_free_failure_then_once_per_back_off(
        auth: RunningAuth, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="auth_server"), auth.http() as http:
        answers = [http.get("/api/v1/connections",
                            headers={"Authorization": f"Bearer wrong-{i:036d}"}).status_code
                   for i in range(20)]
    assert answers == [401] * 5 + [429] * 15
    lines = [r.getMessage() for r in caplog.records if "API key" in r.getMessage()]
    assert lines == ["API key wrong (from 127.0.0.1)"] * 5 + [
        "too many wrong API keys from 127.0.0.1: backing off"]
