"""`GET`/`PUT /api/v1/connections/{id}/schedule`: a platform sets how often each entity of an
organisation is read (a customer on a premium plan); every answer is checked against the
served OpenAPI description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from auth_server.invites import create_invite
from store import schedules
from tests.auth_server.helpers import RunningAuth

SPEC = Path(__file__).parents[2] / "auth_server" / "openapi.json"
DEFAULTS = {"suppliers": 5, "accounts": 60, "tax_rates": 1440, "tracking_categories": 1440}


def _call(auth: RunningAuth, key: str, method: str, path: str,
          body: Any = None) -> httpx.Response:
    """One API call, its answer validated against the OpenAPI description."""
    with auth.http(headers={"Authorization": f"Bearer {key}"}) as http:
        response = http.request(method, "/api/v1" + path, json=body)
    assert response.headers["content-type"] == "application/json"
    spec = OpenAPI.from_dict(json.loads(SPEC.read_text()))
    request = MockRequest("http://server", method.lower(), "/api/v1" + path,
                          headers={"Authorization": "Bearer x"},
                          data=json.dumps(body) if body is not None else None,
                          content_type="application/json")
    spec.validate_response(request, MockResponse(response.content, response.status_code,
                                                 content_type="application/json"))
    return response


def _intervals(answer: httpx.Response) -> dict[str, int]:
    return {e: row["every_minutes"] for e, row in answer.json()["schedule"].items()}


def test_a_platform_sets_shows_and_clears_an_organisation_s_schedule(auth: RunningAuth) -> None:
    conn, _ = create_invite(auth.store, auth.settings, "Kauri Bay", "ap@kauri.test",
                            send_email=False)
    _, writer = auth.store.create_api_key("platform", "write")
    path = f"/connections/{conn.connection_id}/schedule"

    shown = _call(auth, writer, "GET", path)
    assert shown.status_code == 200
    assert _intervals(shown) == DEFAULTS
    assert shown.json()["schedule"]["suppliers"] == {"every_minutes": 5, "default_minutes": 5,
                                                     "overridden": False}

    changed = _call(auth, writer, "PUT", path, {"every_minutes": {"suppliers": 1,
                                                                  "accounts": 15}})
    assert changed.status_code == 200
    assert _intervals(changed) == {**DEFAULTS, "suppliers": 1, "accounts": 15}
    assert changed.json()["schedule"]["accounts"]["overridden"] is True
    assert auth.store.schedule_overrides() == {conn.connection_id: {"suppliers": 1,
                                                                    "accounts": 15}}
    # What the CLI and the runs read is the same record.
    assert _intervals(_call(auth, writer, "GET", path)) == _intervals(changed)

    cleared = _call(auth, writer, "PUT", path, {"every_minutes": {"accounts": None}})
    assert _intervals(cleared) == {**DEFAULTS, "suppliers": 1}


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"every_minutes": {"invoices": 5}}, 422, "unknown entity 'invoices'"),
    ({"every_minutes": {"tracking_options": 5}}, 422, "comes with tracking_categories"),
    ({"every_minutes": {"suppliers": 0}}, 422, "at least 1 minute"),
    ({"every_minutes": {"suppliers": 0.5}}, 422, "whole number of minutes"),
    ({"every_minutes": {"suppliers": 43201}}, 422, "at most 30 days"),
    ({"every_minutes": {"suppliers": "5m"}}, 422, "whole number of minutes"),
    ({"every_minutes": {"suppliers": True}}, 422, "whole number of minutes"),
    ({"every_minutes": []}, 422, "every_minutes must be a dict"),
    ({}, 400, "Send every_minutes"),
    ({"minutes": {}}, 400, "Unknown fields: minutes"),
])
def test_bad_schedules_are_refused_and_change_nothing(
        auth: RunningAuth, body: Any, status: int, says: str) -> None:
    conn, _ = create_invite(auth.store, auth.settings, "Kauri Bay", "ap@kauri.test",
                            send_email=False)
    _, writer = auth.store.create_api_key("platform", "write")
    answer = _call(auth, writer, "PUT", f"/connections/{conn.connection_id}/schedule", body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]["message"]
    assert auth.store.schedule_overrides() == {}


def test_scopes_unknown_and_purged_connections(auth: RunningAuth) -> None:
    conn, _ = create_invite(auth.store, auth.settings, "Kauri Bay", "ap@kauri.test",
                            send_email=False)
    _, reader = auth.store.create_api_key("dashboard", "read")
    _, writer = auth.store.create_api_key("platform", "write")
    path = f"/connections/{conn.connection_id}/schedule"
    body = {"every_minutes": {"suppliers": 1}}

    assert _call(auth, reader, "GET", path).status_code == 200
    refused = _call(auth, reader, "PUT", path, body)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert auth.store.schedule_overrides() == {}
    assert _call(auth, "not-a-key", "GET", path).status_code == 401

    for method in ("GET", "PUT"):
        missing = _call(auth, writer, method, "/connections/con_000000000000/schedule",
                        body if method == "PUT" else None)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"

    auth.store.update_connection(conn.connection_id, status="purged")
    gone = _call(auth, writer, "PUT", path, body)
    assert gone.status_code == 409
    assert gone.json()["error"]["code"] == "conflict"


def test_the_description_names_every_scheduled_entity() -> None:
    doc = json.loads(SPEC.read_text())
    put = doc["paths"]["/connections/{connection_id}/schedule"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert tuple(body["properties"]["every_minutes"]["properties"]) == \
        schedules.scheduled_entities()
    assert tuple(doc["components"]["schemas"]["Schedule"]["properties"]["schedule"][
        "properties"]) == schedules.scheduled_entities()
