"""High-volume organisations: above `high_volume_threshold` contacts (archived included), a
Contacts read that filters, orders or searches outside Xero's optimised fields, or that does not
page, is Xero's 400 HighVolumeException (REFERENCE 0). The threshold is lowered through the
settings call instead of seeding 100,000 contacts."""

from __future__ import annotations

from xml.etree import ElementTree

import httpx
import pytest

from sandbox.handle import SandboxHandle, XeroGrant

CONTACTS = "/api.xro/2.0/Contacts"
HIGH_VOLUME = {
    "ErrorNumber": 51,
    "Type": "HighVolumeException",
    "Message": "Your request is not filtering Contacts efficiently, given the extremely high "
    "volume for this organisation. Please check "
    "https://developer.xero.com/documentation/api/efficient-data-retrieval for tips on making "
    "Contact retrieval more efficient.",
}


def get_contacts(
    http: httpx.Client, grant: XeroGrant, path: str = CONTACTS, **params: object
) -> httpx.Response:
    return http.get(path, params=params, headers=grant.headers(grant.tenant_ids[0]))


@pytest.fixture
def high_volume(sandbox: SandboxHandle) -> SandboxHandle:
    """The default sandbox with its ~300-contact organisations counted as high-volume."""
    sandbox.settings(high_volume_threshold=100)
    return sandbox


@pytest.mark.parametrize(
    "params",
    [
        {"page": 1, "where": "IsSupplier==true"},
        {"where": "IsSupplier==true"},  # un-paged reads are refused alike
        {"page": 1, "where": 'Name.StartsWith("A") AND ContactStatus=="ACTIVE"'},
        {"page": 1, "where": "Balances.AccountsPayable.Outstanding>0"},
        {"page": 1, "order": "EmailAddress ASC"},
        {"page": 1, "order": "Name ASC, IsSupplier DESC"},
        {"page": 1, "searchTerm": "ltd"},
        {},  # such requests must page (REFERENCE 0), even without a filter
        {"includeArchived": "true", "summaryOnly": "true", "order": "ContactID ASC"},
    ],
)
def test_unoptimised_contacts_reads_are_refused(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client, params: dict
) -> None:
    response = get_contacts(http, xero_grant, **params)
    assert response.status_code == 400
    assert response.json() == HIGH_VOLUME


@pytest.mark.parametrize(
    "params",
    [
        {"page": 1},
        {"page": 3, "pageSize": 50, "includeArchived": "true", "summaryOnly": "true"},
        {"page": 1, "where": 'Name.StartsWith("A")'},
        {"page": 1, "where": 'EmailAddress!=null OR AccountNumber=="X"'},
        {"page": 1, "where": 'ContactID==Guid("00000000-0000-0000-0000-000000000000")'},
        {"page": 1, "order": "UpdatedDateUTC ASC"},
        {"page": 1, "order": "ContactID DESC, Name"},
        {"page": 1, "searchTerm": ""},
        # a reconciliation's slice: every contact's summary, by position in ContactID order
        {"page": 2, "pageSize": 100, "order": "ContactID ASC", "includeArchived": "true",
         "summaryOnly": "true"},
    ],
)
def test_optimised_contacts_reads_are_answered(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client, params: dict
) -> None:
    assert get_contacts(http, xero_grant, **params).status_code == 200


def test_ids_and_single_contacts_are_answered(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    high_volume.settings(high_volume_threshold=100_000)
    ids = [c["ContactID"] for c in get_contacts(http, xero_grant, page=1).json()["Contacts"][:3]]
    high_volume.settings(high_volume_threshold=100)
    by_ids = get_contacts(http, xero_grant, page=1, IDs=",".join(ids))
    assert sorted(c["ContactID"] for c in by_ids.json()["Contacts"]) == sorted(ids)
    unpaged = get_contacts(http, xero_grant, IDs=",".join(ids))  # a few named contacts
    assert sorted(c["ContactID"] for c in unpaged.json()["Contacts"]) == sorted(ids)
    assert get_contacts(http, xero_grant, f"{CONTACTS}/{ids[0]}").status_code == 200


def test_if_modified_since_does_not_exempt_a_request(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    headers = {**xero_grant.headers(xero_grant.tenant_ids[0]), "If-Modified-Since": "2026-01-01"}
    response = http.get(CONTACTS, params={"page": 1, "where": "IsSupplier==true"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["Type"] == "HighVolumeException"


def test_if_modified_since_exemption_can_be_switched_on(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    settings = high_volume.settings(high_volume_exempts_modified_since=True)
    assert settings["high_volume_exempts_modified_since"] is True
    headers = xero_grant.headers(xero_grant.tenant_ids[0])
    query = {"page": 1, "where": "IsSupplier==true"}
    since = http.get(CONTACTS, params=query, headers={**headers, "If-Modified-Since": "2026-01-01"})
    assert since.status_code == 200
    unreadable = {**headers, "If-Modified-Since": "last Tuesday"}  # ignored, so no exemption
    assert http.get(CONTACTS, params=query, headers=unreadable).status_code == 400
    assert http.get(CONTACTS, params=query, headers=headers).status_code == 400


def test_xml_twin_when_json_is_not_accepted(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    headers = xero_grant.headers(xero_grant.tenant_ids[0], json=False)
    response = http.get(CONTACTS, params={"page": 1, "where": "IsSupplier==true"}, headers=headers)
    assert response.status_code == 400
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own sandbox's output
    assert root.tag == "ApiException"
    assert root.findtext("ErrorNumber") == "51"
    assert root.findtext("Type") == "HighVolumeException"
    assert root.findtext("Message") == HIGH_VOLUME["Message"]


def test_the_threshold_counts_every_contact_archived_included(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = next(t for t in sandbox.tenants() if t["tenantId"] == xero_grant.tenant_ids[0])
    every = tenant["counts"]["contacts"]
    active = get_contacts(http, xero_grant, page=1, pageSize=1000).json()["pagination"]
    assert active["itemCount"] < every  # some are archived, and they count
    sandbox.settings(high_volume_threshold=every)
    assert get_contacts(http, xero_grant, page=1, where="IsSupplier==true").status_code == 200
    sandbox.settings(high_volume_threshold=every - 1)
    assert get_contacts(http, xero_grant, page=1, where="IsSupplier==true").status_code == 400


def test_default_threshold_and_other_endpoints_are_unaffected(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    assert sandbox.settings()["high_volume_threshold"] == 100_000
    assert get_contacts(http, xero_grant, page=1, where="IsSupplier==true").status_code == 200
    sandbox.settings(high_volume_threshold=0)
    accounts = get_contacts(http, xero_grant, "/api.xro/2.0/Accounts", where='Type=="BANK"')
    assert accounts.status_code == 200
    sandbox.reset()
    assert sandbox.settings()["high_volume_threshold"] == 100_000


def test_a_bad_query_is_still_a_parse_error(
    high_volume: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    response = get_contacts(http, xero_grant, page=1, where="IsSupplier==")
    assert response.status_code == 400
    assert response.json()["Type"] == "QueryParseException"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"high_volume_threshold": -1}, "'high_volume_threshold' must be a whole number >= 0"),
        ({"high_volume_threshold": "100"}, "'high_volume_threshold' must be a whole number"),
        ({"high_volume_exempts_modified_since": "yes"}, "must be true or false"),
    ],
)
def test_bad_settings_are_400_with_a_reason(
    sandbox: SandboxHandle, body: dict, message: str
) -> None:
    response = sandbox.http.post("/_sandbox/settings", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sandbox.settings()["high_volume_threshold"] == 100_000
