"""Positional paging under concurrent edits, and the scheduled mutations that make such edits
land between two page requests deterministically (`"after_requests": N`)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, XeroGrant

CONTACTS = "/api.xro/2.0/Contacts"


def page_ids(
    http: httpx.Client, grant: XeroGrant, page: int, size: int = 100, tenant: str | None = None
) -> list[str]:
    """ContactIDs of one page in `UpdatedDateUTC ASC` order."""
    response = http.get(
        CONTACTS,
        params={"page": page, "pageSize": size, "order": "UpdatedDateUTC ASC"},
        headers=grant.headers(tenant or grant.tenant_ids[0]),
    )
    assert response.status_code == 200, response.text
    return [c["ContactID"] for c in response.json()["Contacts"]]


def test_an_edit_between_pages_moves_the_contact_and_skips_one(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    everything = page_ids(http, xero_grant, 1, size=1000)
    edited = everything[10]
    answer = sandbox.schedule_mutation(
        1, tenant_id=tenant, entity="contacts", op="update", id=edited,
        fields={"Website": "https://moved.example"}, touch_updated=True,
    )  # fmt: skip
    assert answer == {"ok": True, "scheduled": True, "id": edited}

    first = page_ids(http, xero_grant, 1)  # let through: the edit is still armed
    second = page_ids(http, xero_grant, 2)  # the edit lands just before this answer
    third = page_ids(http, xero_grant, 3)

    assert first == everything[:100]
    assert second == everything[101:201]  # every later contact moved one place back ...
    skipped = everything[100]
    assert skipped not in first + second + third  # ... so an untouched one was never read
    assert third[-1] == edited  # the edited contact is now last
    assert first.count(edited) == 1  # and was read twice
    assert third.count(edited) == 1

    schedule = sandbox.scheduled_mutations()
    assert schedule["armed"] == []
    [applied] = schedule["applied"]
    assert applied["request"]["query"]["page"] == "2"
    assert applied["id"] == edited
    assert applied["error"] is None


def test_several_armed_mutations_fire_on_their_own_requests(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first_tenant, second_tenant = xero_grant.tenant_ids
    ids = page_ids(http, xero_grant, 1)
    for after, contact in ((0, ids[0]), (2, ids[1])):
        sandbox.schedule_mutation(
            after, tenant_id=first_tenant, entity="contacts", op="archive", id=contact
        )
    sandbox.schedule_mutation(
        0, tenant_id=first_tenant, entity="accounts", op="add_field", field="Colour",
        value="teal", path="/api.xro/2.0/Accounts",
    )  # fmt: skip
    assert [m["after_requests"] for m in sandbox.scheduled_mutations()["armed"]] == [0, 2, 0]

    page_ids(http, xero_grant, 1, tenant=second_tenant)  # another tenant: not counted
    after_one = page_ids(http, xero_grant, 1)
    assert ids[0] not in after_one
    assert ids[1] in after_one
    assert ids[1] in page_ids(http, xero_grant, 1)  # the second armed one lets this through
    assert [m["after_requests"] for m in sandbox.scheduled_mutations()["armed"]] == [0, 0]
    assert ids[1] not in page_ids(http, xero_grant, 1)  # ... and lands before this one
    armed = sandbox.scheduled_mutations()["armed"]
    assert [m["mutation"]["op"] for m in armed] == ["add_field"]  # Accounts not read yet

    accounts = http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(first_tenant))
    assert all(a["Colour"] == "teal" for a in accounts.json()["Accounts"])
    applied = sandbox.scheduled_mutations()["applied"]
    assert [(m["mutation"]["op"], m["request"]["path"]) for m in applied] == [
        ("archive", CONTACTS),
        ("archive", CONTACTS),
        ("add_field", "/api.xro/2.0/Accounts"),
    ]


def test_a_scheduled_create_names_its_id_in_advance(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    answer = sandbox.schedule_mutation(
        0, tenant_id=tenant, entity="contacts", op="create", fields={"Name": "Late Arrival Ltd"}
    )
    new_id = str(uuid.UUID(answer["id"]))
    assert sandbox.scheduled_mutations()["armed"][0]["id"] == new_id
    # The single-contact GET is itself a matching request: the create lands just before it.
    response = http.get(f"{CONTACTS}/{new_id}", headers=xero_grant.headers(tenant))
    assert response.status_code == 200
    assert response.json()["Contacts"][0]["Name"] == "Late Arrival Ltd"


def test_refused_requests_do_not_count(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    first = page_ids(http, xero_grant, 1)[0]
    sandbox.schedule_mutation(0, tenant_id=tenant, entity="contacts", op="archive", id=first)
    bad = http.get(CONTACTS, headers={"Authorization": "Bearer nope", "xero-tenant-id": tenant})
    assert bad.status_code == 401
    assert len(sandbox.scheduled_mutations()["armed"]) == 1


def test_a_mutation_that_fails_is_recorded_and_the_request_answered(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    missing = str(uuid.uuid4())
    sandbox.schedule_mutation(0, tenant_id=tenant, entity="contacts", op="update", id=missing)
    assert len(page_ids(http, xero_grant, 1)) == 100
    [applied] = sandbox.scheduled_mutations()["applied"]
    assert missing in applied["error"]


def test_reset_disarms_scheduled_mutations(
    sandbox: SandboxHandle, xero_grant: XeroGrant
) -> None:
    tenant = xero_grant.tenant_ids[0]
    sandbox.schedule_mutation(5, tenant_id=tenant, entity="contacts", op="create")
    assert len(sandbox.scheduled_mutations()["armed"]) == 1
    sandbox.reset()
    assert sandbox.scheduled_mutations() == {"armed": [], "applied": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"after_requests": -1}, "'after_requests' must be a whole number >= 0"),
        ({"after_requests": "1"}, "'after_requests' must be a whole number >= 0"),
        ({"after_requests": True}, "'after_requests' must be a whole number >= 0"),
        ({"path": "/api.xro/2.0/Contacts"}, "'after_requests' must be a whole number >= 0"),
        ({"after_requests": 0, "path": "Contacts"}, "'path' must be a path prefix"),
        ({"after_requests": 0, "op": "explode"}, "op must be one of"),
        ({"after_requests": 0, "op": "update", "id": None}, "needs the record's id"),
        ({"after_requests": 0, "op": "create", "id": "not-a-uuid"}, "must be a UUID"),
    ],
)
def test_bad_schedules_are_400_with_a_reason(
    sandbox: SandboxHandle, tenant_ids: list[str], body: dict, message: str
) -> None:
    full = {"tenant_id": tenant_ids[0], "entity": "contacts", "op": "archive", "id": "x", **body}
    response = sandbox.http.post("/_sandbox/mutations", json=full)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sandbox.scheduled_mutations()["armed"] == []


def test_unknown_tenant_is_404(sandbox: SandboxHandle) -> None:
    with pytest.raises(SandboxError, match="404"):
        sandbox.schedule_mutation(0, tenant_id=str(uuid.uuid4()), entity="contacts", op="create")


def test_an_id_unknown_when_armed_is_reported_once_applied(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    answer = sandbox.schedule_mutation(
        0, tenant_id=tenant, entity="tax_rates", op="create", path="/api.xro/2.0/TaxRates"
    )
    assert answer == {"ok": True, "scheduled": True, "id": None}  # TaxType is chosen on create
    rates = http.get("/api.xro/2.0/TaxRates", headers=xero_grant.headers(tenant)).json()
    [applied] = sandbox.scheduled_mutations()["applied"]
    assert applied["id"] in {r["TaxType"] for r in rates["TaxRates"]}
