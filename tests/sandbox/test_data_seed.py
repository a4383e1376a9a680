"""The seeded world: deterministic, realistic in shape, and cheap at 100,000 suppliers."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from sandbox import wire
from sandbox.accounting import handle_accounting
from sandbox.reference import REGIONS, TYPE_CLASS
from sandbox.seeding import seed_world
from sandbox.world import DEFAULT_START, Organisation, counts

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
JSON = {"accept": "application/json"}


def _all_contacts(org: Organisation) -> list[dict]:
    return [org.contacts.full(c) for c in list(org.contacts.records.values())]


def _body(org: Organisation, resource: str, query: dict[str, str] | None = None) -> bytes:
    status, _, body = handle_accounting(org, resource, None, query or {}, JSON, START, "t")
    assert status == 200
    return body


def test_same_arguments_same_world() -> None:
    first = seed_world(seed=11, tenants=3, suppliers=120, start=START)
    second = seed_world(seed=11, tenants=3, suppliers=120, start=START)
    assert list(first.organisations) == list(second.organisations)
    assert [(u.email, u.password, u.xero_userid) for u in first.users] == [
        (u.email, u.password, u.xero_userid) for u in second.users
    ]
    for a, b in zip(first.organisations.values(), second.organisations.values(), strict=True):
        for resource in ("Contacts", "Accounts", "TaxRates", "TrackingCategories", "Organisation"):
            query = {"page": "1", "pageSize": "1000", "includeArchived": "true"}
            # bodies differ only in the per-response Id
            assert _strip_id(_body(a, resource, query)) == _strip_id(_body(b, resource, query))
    other = seed_world(seed=12, tenants=3, suppliers=120, start=START)
    assert list(other.organisations) != list(first.organisations)


def _strip_id(body: bytes) -> bytes:
    return body.split(b'"Status"', 1)[1]


def test_suppliers_means_supplier_contacts_per_organisation() -> None:
    world = seed_world(seed=1, tenants=2, suppliers=300, start=START)
    for org in world.organisations.values():
        numbers = counts(org)
        assert numbers["suppliers"] == 300
        assert numbers["contacts"] > 300  # customers and others too
        statuses = Counter(
            c["ContactStatus"] for c in org.contacts.records.values() if c["IsSupplier"]
        )
        assert statuses["ARCHIVED"] > 0
        assert statuses["GDPRREQUEST"] > 0
        customers = [c for c in org.contacts.records.values() if not c["IsSupplier"]]
        assert any(c["IsCustomer"] for c in customers)
        assert any(not c["IsCustomer"] for c in customers)


def test_tiny_world_still_has_the_interesting_cases() -> None:
    org = next(
        iter(seed_world(seed=5, tenants=1, suppliers=10, start=START).organisations.values())
    )
    contacts = _all_contacts(org)
    assert any(c["ContactStatus"] == "ARCHIVED" and "MergedToContactID" not in c for c in contacts)
    assert any("MergedToContactID" in c for c in contacts)
    assert any(c["ContactStatus"] == "GDPRREQUEST" for c in contacts)


def test_regions_users_and_organisations() -> None:
    world = seed_world(seed=2, tenants=5, suppliers=20, start=START)
    orgs = list(world.organisations.values())
    assert [o.country_code for o in orgs] == ["NZ", "AU", "GB", "US", "CA"]
    assert len({o.name for o in orgs}) == 5
    for org in orgs:
        assert org.base_currency == REGIONS[org.country_code].currency
        assert org.short_code.startswith("!")
        assert org.timezone
        emails = {u.email: u for u in world.users if org.tenant_id in u.tenant_ids}
        assert emails[f"admin@{org.slug}.test"].role == "admin"
        assert emails[f"staff@{org.slug}.test"].role == "standard"
    multi = [u for u in world.users if len(u.tenant_ids) > 1]
    assert multi
    assert multi[0].role == "admin"
    assert set(multi[0].tenant_ids) == set(world.organisations)
    assert all(u.password for u in world.users)


def test_contacts_look_like_xero_suppliers() -> None:
    world = seed_world(seed=9, tenants=4, suppliers=400, start=START)
    start_ms = wire.datetime_to_ms(START)
    for org in world.organisations.values():
        contacts = _all_contacts(org)
        for contact in contacts:
            assert [a["AddressType"] for a in contact["Addresses"]] == ["STREET", "POBOX"]
            assert [p["PhoneType"] for p in contact["Phones"]] == [
                "DDI",
                "DEFAULT",
                "FAX",
                "MOBILE",
            ]
            assert contact["UpdatedDateUTC"].ms < start_ms
        assert any(c["Addresses"][1].get("City") for c in contacts)
        assert any(c["Addresses"][0].get("City") == "" for c in contacts)
        assert any(c["Phones"][1]["PhoneNumber"] for c in contacts)
        assert any(c["Phones"][2]["PhoneNumber"] == "" for c in contacts)
        assert any(c.get("TaxNumber") for c in contacts)
        assert any(c.get("BankAccountDetails") for c in contacts)
        assert any(c.get("ContactPersons") for c in contacts)
        assert any(c.get("PaymentTerms") for c in contacts)
        assert any(c.get("DefaultCurrency") not in (None, org.base_currency) for c in contacts)
        stamps = Counter(c["UpdatedDateUTC"].ms for c in contacts)
        assert max(stamps.values()) > 1, "identical timestamps exist (paging/incremental ties)"
        oldest = min(c["UpdatedDateUTC"].ms for c in contacts)
        assert start_ms - oldest > 300 * 86_400_000, "spread over about a year"
        active = Counter(c["Name"] for c in contacts if c["ContactStatus"] == "ACTIVE")
        assert max(active.values()) == 1, "names are unique among active contacts"
        merged = [c for c in contacts if "MergedToContactID" in c]
        by_id = {c["ContactID"]: c for c in contacts}
        for contact in merged:
            assert contact["ContactStatus"] == "ARCHIVED"
            assert by_id[contact["MergedToContactID"]]["ContactStatus"] == "ACTIVE"
    us = next(o for o in world.organisations.values() if o.country_code == "US")
    assert {c.get("TaxNumberType") for c in _all_contacts(us)} >= {"EIN", "SSN"}


def test_chart_of_accounts_has_real_shape() -> None:
    world = seed_world(seed=4, tenants=2, suppliers=5, start=START)
    for org in world.organisations.values():
        accounts = list(org.accounts.records.values())
        assert {a["Class"] for a in accounts} == {
            "ASSET",
            "EQUITY",
            "EXPENSE",
            "LIABILITY",
            "REVENUE",
        }
        for account in accounts:
            assert TYPE_CLASS[account["Type"]] == account["Class"]
        types = {a["Type"] for a in accounts}
        assert types >= {
            "BANK",
            "CURRENT",
            "CURRLIAB",
            "DEPRECIATN",
            "DIRECTCOSTS",
            "EQUITY",
            "EXPENSE",
            "FIXED",
            "INVENTORY",
            "LIABILITY",
            "NONCURRENT",
            "OTHERINCOME",
            "OVERHEADS",
            "PREPAYMENT",
            "REVENUE",
            "SALES",
            "TERMLIAB",
        }
        systems = {a.get("SystemAccount") for a in accounts}
        assert systems >= {"DEBTORS", "CREDITORS", "GST", "ROUNDING", "RETAINEDEARNINGS"}
        banks = [a for a in accounts if a["Type"] == "BANK"]
        assert {b["BankAccountType"] for b in banks} >= {"BANK", "CREDITCARD", "PAYPAL"}
        assert all(b["CurrencyCode"] and "BankAccountNumber" in b for b in banks)
        assert any(b["CurrencyCode"] != org.base_currency for b in banks)
        assert any("Code" not in b for b in banks), "Xero bank accounts may have no code"
        assert any(a.get("Code", "").startswith("0") for a in accounts)
        assert any(a["Status"] == "ARCHIVED" for a in accounts)
        assert all(a["ReportingCode"] and a["ReportingCodeName"] for a in accounts)
        codes = [a["Code"] for a in accounts if "Code" in a]
        assert len(codes) == len(set(codes))
        stamps = Counter(a["UpdatedDateUTC"].ms for a in accounts)
        assert max(stamps.values()) > 1


@pytest.mark.parametrize("country", ["NZ", "AU", "GB", "US", "CA"])
def test_tax_rates_of_the_region(country: str) -> None:
    index = ["NZ", "AU", "GB", "US", "CA"].index(country)
    org = list(
        seed_world(seed=4, tenants=index + 1, suppliers=5, start=START).organisations.values()
    )[index]
    rates = list(org.tax_rates.records.values())
    assert {r["Status"] for r in rates} == {"ACTIVE", "ARCHIVED", "DELETED"}
    region = REGIONS[country]
    types = {r["TaxType"] for r in rates}
    assert {region.input_tax, region.output_tax, region.no_tax} <= types
    for item in rates:
        simple = sum(c["Rate"] for c in item["TaxComponents"] if not c["IsCompound"])
        if not any(c["IsCompound"] for c in item["TaxComponents"]):
            assert item["EffectiveRate"] == simple
        assert item["EffectiveRate"].as_tuple().exponent == -4
    if country in ("AU", "CA"):
        assert any(c["IsCompound"] for r in rates for c in r["TaxComponents"])
    if country == "CA":
        assert any(c["IsNonRecoverable"] for r in rates for c in r["TaxComponents"])
        qst = next(r for r in rates if r["TaxType"] == "TAX004")
        assert str(qst["EffectiveRate"]) == "14.9750"  # 5 + 9.5 compounded on top of GST


def test_tracking_categories_within_xero_limits() -> None:
    org = next(iter(seed_world(seed=4, tenants=1, suppliers=5, start=START).organisations.values()))
    categories = list(org.tracking_categories.records.values())
    assert len(categories) <= 4
    assert sum(c["Status"] == "ACTIVE" for c in categories) <= 2
    assert any(c["Status"] == "ARCHIVED" for c in categories)
    options = [o for c in categories for o in c["Options"]]
    assert {o["Status"] for o in options} == {"ACTIVE", "ARCHIVED"}
    assert counts(org)["tracking_options"] == len(options)


def test_default_start_is_fixed_for_determinism() -> None:
    a = seed_world(seed=1, tenants=1, suppliers=3)
    b = seed_world(seed=1, tenants=1, suppliers=3, start=DEFAULT_START)
    assert _strip_id(_body(next(iter(a.organisations.values())), "Contacts")) == _strip_id(
        _body(next(iter(b.organisations.values())), "Contacts")
    )


def test_seeding_100k_suppliers_is_fast() -> None:
    started = time.perf_counter()
    world = seed_world(seed=42, tenants=1, suppliers=100_000, start=START)
    seeded = time.perf_counter() - started
    org = next(iter(world.organisations.values()))
    assert counts(org)["suppliers"] == 100_000
    started = time.perf_counter()
    body = _body(
        org,
        "Contacts",
        {
            "page": "57",
            "pageSize": "1000",
            "where": "IsSupplier==true",
            "order": "UpdatedDateUTC ASC",
        },
    )
    first_page = time.perf_counter() - started
    started = time.perf_counter()
    _body(
        org,
        "Contacts",
        {
            "page": "58",
            "pageSize": "1000",
            "where": "IsSupplier==true",
            "order": "UpdatedDateUTC ASC",
        },
    )
    next_page = time.perf_counter() - started
    print(
        f"\n100k suppliers: seed {seeded:.2f}s, first page {first_page:.2f}s "
        f"(filter+sort), next page {next_page:.2f}s, page bytes {len(body)}"
    )
    assert seeded < 30  # generous: measured ~0.7s on 2 shared cores; this only catches blow-ups
