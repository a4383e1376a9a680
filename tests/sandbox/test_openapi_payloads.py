"""Sandbox payloads against Xero's own schema, REFERENCE.md's field lists and the shared examples.

* every page of the four endpoints (plus Organisation and Currencies) of every seeded region is
  validated with openapi-core against Xero's OpenAPI spec (v16.1.0), over loopback HTTP;
* every field REFERENCE.md lists for the four entities appears in some sandbox record;
* the shared example payloads and the sandbox's payloads reduce to the same {field: JSON type}.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.conftest import SandboxFactory
from tests.sandbox.test_accounting_http import XeroApi

try:  # openapi-core >= 0.19 exports Config at the top level
    from openapi_core import Config
except ImportError:  # pragma: no cover
    from openapi_core.unmarshalling.configurations import Config  # type: ignore[no-redef]

# The shared Xero reference sits beside the project (`../shared/xero-api`, next to the checkout);
# XERO_API_REFERENCE points elsewhere. CI must have it: there a missing spec fails, never skips.
PROJECT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("XERO_API_REFERENCE") or PROJECT.parent / "shared" / "xero-api")
SPEC = SHARED / "openapi" / "xero_accounting.yaml"
EXAMPLES = SHARED / "examples"
REFERENCE = SHARED / "REFERENCE.md"
_MISSING = f"Xero's OpenAPI spec not found at {SPEC} (set XERO_API_REFERENCE)"

if not SPEC.exists() and os.environ.get("CI", "").lower() == "true":
    pytest.fail(_MISSING, pytrace=False)
# Every page of every entity validated against the spec (~10 s): `make test` runs it.
pytestmark = [pytest.mark.skipif(not SPEC.exists(), reason=_MISSING), pytest.mark.slow]

COLLECTIONS = {
    "Contacts": "Contacts",
    "Accounts": "Accounts",
    "TaxRates": "TaxRates",
    "TrackingCategories": "TrackingCategories",
    "Organisation": "Organisations",
    "Currencies": "Currencies",
}


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(SPEC.read_text(), Loader=loader)  # noqa: S506 - safe loader
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def xero(sandbox_factory: SandboxFactory) -> Iterator[XeroApi]:
    """Five organisations, one per region (NZ, AU, GB, US, CA); 230 suppliers for a few pages."""
    handle = sandbox_factory(seed=21, tenants=5, suppliers=230, rate_limits=False)
    handle.reset()
    api = XeroApi(handle, app_name="openapi-tests")
    yield api
    api.close()


def validate(
    openapi: OpenAPI,
    resource: str,
    params: dict[str, str],
    status: int,
    body: bytes,
    content_type: str,
) -> None:
    request = MockRequest(
        "https://api.xero.com",
        "get",
        f"/api.xro/2.0/{resource}",
        args=params,
        headers={"xero-tenant-id": "t"},
    )
    response = MockResponse(body, status, content_type=content_type.split(";")[0])
    openapi.validate_response(request, response)


def walk(xero: XeroApi, tenant: int) -> Iterator[tuple[str, dict[str, str], Any]]:
    """Every page of every endpoint for one tenant, as (resource, params, httpx response)."""
    for archived in ("false", "true"):
        page = 1
        while True:
            params = {"page": str(page), "includeArchived": archived}
            response = xero.get("Contacts", params, tenant=tenant)
            yield "Contacts", params, response
            if page >= response.json()["pagination"]["pageCount"]:
                break
            page += 1
    yield "Contacts", {}, xero.get("Contacts", {}, tenant=tenant)
    yield (
        "Contacts",
        {"summaryOnly": "true"},
        xero.get("Contacts", {"summaryOnly": "true"}, tenant=tenant),
    )
    for resource in ("Accounts", "TaxRates", "Organisation", "Currencies"):
        yield resource, {}, xero.get(resource, tenant=tenant)
    for archived in ("false", "true"):
        params = {"includeArchived": archived}
        yield "TrackingCategories", params, xero.get("TrackingCategories", params, tenant=tenant)


def test_every_page_validates_against_xeros_openapi(xero: XeroApi, openapi: OpenAPI) -> None:
    seen: dict[str, int] = {}
    for tenant in range(len(xero.tenants)):
        for resource, params, response in walk(xero, tenant):
            assert response.status_code == 200, response.text
            validate(
                openapi, resource, params, 200, response.content, response.headers["content-type"]
            )
            seen[resource] = seen.get(resource, 0) + len(response.json()[COLLECTIONS[resource]])
    assert seen["Contacts"] > 5 * 230
    assert set(seen) == set(COLLECTIONS)


def test_single_item_responses_validate(xero: XeroApi, openapi: OpenAPI) -> None:
    contact = xero.all_contacts()[0]
    response = xero.get(f"Contacts/{contact['ContactID']}")
    request = MockRequest(
        "https://api.xero.com",
        "get",
        f"/api.xro/2.0/Contacts/{contact['ContactID']}",
        view_args={"ContactID": contact["ContactID"]},
    )
    openapi.validate_response(request, MockResponse(response.content, 200))
    account = xero.ok("Accounts")["Accounts"][0]
    response = xero.get(f"Accounts/{account['AccountID']}")
    request = MockRequest(
        "https://api.xero.com",
        "get",
        f"/api.xro/2.0/Accounts/{account['AccountID']}",
        view_args={"AccountID": account["AccountID"]},
    )
    openapi.validate_response(request, MockResponse(response.content, 200))


def test_validation_catches_a_wrong_type(openapi: OpenAPI, xero: XeroApi) -> None:
    """The check above can fail: a quoted boolean or an unknown enum is reported."""
    body = xero.ok("Contacts", {"page": "1", "pageSize": "2"})
    body["Contacts"][0]["IsSupplier"] = "true"
    with pytest.raises(Exception, match=r"(?i)invalid|valid"):
        validate(
            openapi, "Contacts", {"page": "1"}, 200, json.dumps(body).encode(), "application/json"
        )
    accounts = xero.ok("Accounts")
    accounts["Accounts"][0]["Class"] = "SPARKLES"
    with pytest.raises(Exception, match=r"(?i)invalid|valid"):
        validate(openapi, "Accounts", {}, 200, json.dumps(accounts).encode(), "application/json")


def test_error_bodies_validate(xero: XeroApi, openapi: OpenAPI) -> None:
    response = xero.get("Contacts", {"where": 'IsSupplier=="true"'})
    assert response.status_code == 400
    body = response.json()
    assert body == {"ErrorNumber": 16, "Type": "QueryParseException", "Message": body["Message"]}
    shared = json.loads((EXAMPLES / "error_400_query_parse.json").read_text())
    assert type_map([body]) == type_map([shared])


# --- field lists from REFERENCE.md -------------------------------------------------------------
# Fields REFERENCE lists that a GET of these entities does not return, with why.
NOT_IN_GET = {
    "Contact": {
        "SkypeUserName",  # listed as gone from the current spec
        "ValidationErrors",
        "Message",
    },  # only in write responses
    "Account": {"ValidationErrors"},  # only in write responses
    "TrackingCategory": {"TrackingOptionID", "Option"},  # only when embedded in transactions
}
_NAME = re.compile(r"`([A-Z][A-Za-z0-9]+)`")


def reference_fields() -> dict[str, set[str]]:
    """Field names (nested ones included) REFERENCE.md's section 4 lists per entity."""
    text = REFERENCE.read_text()
    sections = {
        "Contact": ("### 4.1", "### 4.2"),
        "Account": ("### 4.2", "### 4.3"),
        "TaxRate": ("### 4.3", "### 4.4"),
    }
    fields: dict[str, set[str]] = {}
    for entity, (start, end) in sections.items():
        names: set[str] = set()
        for line in text[text.index(start) : text.index(end)].splitlines():
            if line.startswith("| `") or line.startswith("| (`"):
                cells = line.split("|")[1:3]  # the field and its type; notes hold examples
                names.update(_NAME.findall(" ".join(cells)))
                stem = re.match(r"\| `(CanApplyTo)Assets`", line)
                if stem:  # "`CanApplyToAssets`, `…Equity`, …" abbreviates the siblings
                    names.update(f"CanApplyTo{word}" for word in re.findall(r"…(\w+)", line))
        fields[entity] = names
    tracking = text[text.index("### 4.4") : text.index("### 4.5")]
    for entity in ("TrackingCategory", "TrackingOption"):
        paragraph = tracking[tracking.index(f"\n{entity}:") :]
        paragraph = paragraph[: paragraph.index("\n\n", 1)]
        fields[entity] = set(_NAME.findall(paragraph)) - {"ACTIVE", "ARCHIVED", "DELETED"}
    fields["Address"] = {
        "AddressType",
        "AddressLine1",
        "AddressLine2",
        "AddressLine3",
        "AddressLine4",
        "City",
        "Region",
        "PostalCode",
        "Country",
        "AttentionTo",
    }
    fields["Phone"] = {"PhoneType", "PhoneNumber", "PhoneAreaCode", "PhoneCountryCode"}
    return fields


def all_keys(value: Any) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        keys = set(value)
        for item in value.values():
            keys |= all_keys(item)
        return keys
    if isinstance(value, list):
        return set().union(*(all_keys(item) for item in value)) if value else set()
    return set()


def test_every_reference_field_appears_in_sandbox_data(xero: XeroApi) -> None:
    wanted = reference_fields()
    assert {
        "BankAccountDetails",
        "Outstanding",
        "IncludeOnline",
        "LogoUrl",
        "TrackingOptionName",
    } <= wanted["Contact"]
    assert "ReportingCodeName" in wanted["Account"]
    assert {"TaxComponents", "IsNonRecoverable", "CanApplyToRevenue"} <= wanted["TaxRate"]
    assert {"Options", "TrackingCategoryID"} <= wanted["TrackingCategory"]
    assert "TrackingCategoryID" in wanted["TrackingOption"]
    present: dict[str, set[str]] = {key: set() for key in wanted}
    for tenant in range(len(xero.tenants)):
        contacts = xero.all_contacts(tenant)
        present["Contact"] |= all_keys(contacts)
        for contact in contacts:
            present["Address"] |= all_keys(contact.get("Addresses", []))
            present["Phone"] |= all_keys(contact.get("Phones", []))
        present["Account"] |= all_keys(xero.ok("Accounts", tenant=tenant)["Accounts"])
        present["TaxRate"] |= all_keys(xero.ok("TaxRates", tenant=tenant)["TaxRates"])
        tracking = xero.ok("TrackingCategories", {"includeArchived": "true"}, tenant=tenant)
        for category in tracking["TrackingCategories"]:
            present["TrackingCategory"] |= set(category)
            present["TrackingOption"] |= all_keys(category["Options"])
            # options come nested: their TrackingCategoryID is the enclosing category's
            present["TrackingOption"].add("TrackingCategoryID")
    for entity, names in wanted.items():
        missing = names - present[entity] - NOT_IN_GET.get(entity, set())
        assert not missing, f"{entity}: {sorted(missing)}"


# --- the shared examples parse the same way -----------------------------------------------------
def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "msdate" if re.fullmatch(r"/Date\(-?\d+([+-]\d{4})?\)/", value) else "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def type_map(records: list[Any], prefix: str = "") -> dict[str, set[str]]:
    """Reduce records to {dotted field path: JSON types seen}; list items use `[]`."""
    found: dict[str, set[str]] = {}
    for record in records:
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            path = f"{prefix}{key}"
            found.setdefault(path, set()).add(json_type(value))
            if isinstance(value, dict):
                nested = type_map([value], path + ".")
            elif isinstance(value, list):
                nested = type_map(value, path + "[].")
            else:
                continue
            for sub, types in nested.items():
                found.setdefault(sub, set()).update(types)
    return found


EXAMPLE_FILES = {
    "Contacts": [
        "contacts.json",
        "contact_single.json",
        "contacts_suppliers_page.reconstructed.json",
    ],
    "Accounts": ["accounts.json", "account_single.json", "accounts_full.reconstructed.json"],
    "TaxRates": ["tax_rates.json", "tax_rate_status_deleted.json"],
    "TrackingCategories": [
        "tracking_categories.json",
        "tracking_categories_with_options.reconstructed.json",
    ],
}
# Example fields the sandbox spells or sends differently, with why.
EXAMPLE_ONLY = {"Contacts.TaxNumbeType"}  # the spec examples' typo of TaxNumberType


@pytest.mark.parametrize("resource", list(EXAMPLE_FILES))
def test_examples_and_sandbox_parse_the_same(xero: XeroApi, resource: str) -> None:
    examples: list[Any] = []
    envelope_types: dict[str, set[str]] = {}
    for name in EXAMPLE_FILES[resource]:
        payload = json.loads((EXAMPLES / name).read_text())
        examples.extend(payload[resource])
        for key in ("Id", "Status", "ProviderName", "DateTimeUTC", "pagination"):
            if key in payload:
                envelope_types.setdefault(key, set()).add(json_type(payload[key]))
    ours: list[Any] = []
    sandbox_envelope: dict[str, Any] = {}
    for tenant in range(len(xero.tenants)):
        if resource == "Contacts":
            body = xero.ok(
                "Contacts",
                {"page": "1", "pageSize": "1000", "includeArchived": "true"},
                tenant=tenant,
            )
        elif resource == "TrackingCategories":
            body = xero.ok(resource, {"includeArchived": "true"}, tenant=tenant)
        else:
            body = xero.ok(resource, tenant=tenant)
        sandbox_envelope = body
        ours.extend(body[resource])
    theirs, mine = type_map(examples), type_map(ours)
    for path, types in theirs.items():
        if f"{resource}.{path}" in EXAMPLE_ONLY:
            continue
        assert path in mine, f"{resource}: the examples have {path}, the sandbox never sends it"
        assert types <= mine[path], f"{resource}.{path}: examples {types}, sandbox {mine[path]}"
    for key, types in envelope_types.items():
        assert json_type(sandbox_envelope.get(key)) in types, key


def test_wire_sample_decodes_like_sandbox_output(xero: XeroApi) -> None:
    """The escaped `\\/Date()\\/` and fixed decimals of the wire sample decode as ours do."""
    text = (EXAMPLES / "wire_format_sample.txt").read_text()
    sample = json.loads(text[text.index("{") :])
    ours = xero.ok("TaxRates")
    assert json_type(sample["DateTimeUTC"]) == json_type(ours["DateTimeUTC"]) == "msdate"
    sample_rate = sample["TaxRates"][0]
    our_rate = next(r for r in ours["TaxRates"] if r["TaxType"] == sample_rate["TaxType"])
    assert type_map([sample_rate]) == {
        k: v for k, v in type_map([our_rate]).items() if k in type_map([sample_rate])
    }
    assert our_rate["EffectiveRate"] == sample_rate["EffectiveRate"] == 15.0
