"""Xero's wire quirks, the models and the settings, without HTTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from freezegun import freeze_time

from connector import wire
from connector.errors import ConfigurationError, MalformedResponse, XeroError
from connector.identity import TokenSet, access_token_claims
from connector.models import Account, Contact, TaxRate, TrackingCategory, validate_record
from connector.settings import ENTITIES, XeroSettings, load_settings, parse_history
from connector.stats import SyncStats
from connector.usage import DailyUsage

# Shaped like Xero's own examples (field names and order, escaped dates, fixed decimals).
WIRE_SAMPLE = rb"""{"Id": "b1b9f3a0-6a4e-4c61-9a0b-2f0f7d1f0c55", "Status": "OK",
 "DateTimeUTC": "\/Date(1773130800000)\/",
 "Contacts": [{"ContactID": "bd2270c3-8706-4c11-9cfb-000b551c3f51", "ContactStatus": "ACTIVE",
   "Name": "ABC Furniture", "EmailAddress": "info@abc.test",
   "Addresses": [{"AddressType": "STREET", "City": "Wellington"}],
   "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "555"}],
   "UpdatedDateUTC": "\/Date(1503348544227+0000)\/", "IsSupplier": true,
   "IsCustomer": false, "Balances": {"AccountsPayable": {"Outstanding": 760.00}}}],
 "Accounts": [{"AccountID": "ebd06280-af70-4bed-97c6-7451a454ad85", "Code": "091",
   "Name": "Business Savings", "Type": "BANK", "Status": "ACTIVE", "Class": "ASSET",
   "EnablePaymentsToAccount": false, "UpdatedDateUTC": "\/Date(1573755038314+0000)\/"}],
 "TaxRates": [{"Name": "15% GST on Expenses", "TaxType": "INPUT2",
   "TaxComponents": [{"Name": "GST", "Rate": 15.0000, "IsCompound": false}],
   "Status": "ACTIVE", "DisplayTaxRate": 15.0000, "EffectiveRate": 15.0000}],
 "TrackingCategories": [{"TrackingCategoryID": "7f30c674-3a3c-4605-9e09-5dec3a74d1de",
   "Name": "Region", "Status": "ACTIVE", "Options": [
     {"TrackingOptionID": "9657765d-0c9f-45d4-ab73-416f5267c724", "Name": "North",
      "Status": "ACTIVE", "IsActive": true}]}]}"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1439434356790)/", datetime(2015, 8, 13, 2, 52, 36, 790000, tzinfo=UTC)),
        # the offset is decorative: the number is already UTC
        ("/Date(1439434356790+0000)/", datetime(2015, 8, 13, 2, 52, 36, 790000, tzinfo=UTC)),
        ("/Date(1439434356790+1300)/", datetime(2015, 8, 13, 2, 52, 36, 790000, tzinfo=UTC)),
        ("/Date(1439434356790-0800)/", datetime(2015, 8, 13, 2, 52, 36, 790000, tzinfo=UTC)),
        ("/Date(0+0000)/", datetime(1970, 1, 1, tzinfo=UTC)),
        ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
        ("/Date(-2208988800000+0000)/", datetime(1900, 1, 1, tzinfo=UTC)),
    ],
)
def test_net_dates_become_utc_whatever_the_offset(text: str, expected: datetime) -> None:
    parsed = wire.parse_net_date(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_escaped_slashes_on_the_wire_decode_to_the_same_date() -> None:
    body = b'{"Accounts": [{"AccountID": "x", "UpdatedDateUTC": "\\/Date(1584585851380+0000)\\/"}]}'
    record = wire.loads(body, endpoint="/Accounts")["Accounts"][0]
    assert wire.decode_dates(record)["UpdatedDateUTC"] == datetime(
        2020, 3, 19, 2, 44, 11, 380000, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["/Date()/", "/Date(abc)/", "Date(123)", "/Date(1+00)/x"])
def test_things_that_are_not_net_dates_are_refused(bad: str) -> None:
    assert not wire.is_net_date(bad)
    with pytest.raises(ValueError, match="not a Xero"):
        wire.parse_net_date(bad)


def test_net_date_round_trip() -> None:
    moment = datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=timezone(timedelta(hours=13)))
    assert wire.parse_net_date(wire.format_net_date(moment, "+1300")) == moment


def test_connections_dates_have_seven_fraction_digits_and_no_zone() -> None:
    parsed = wire.parse_iso_utc("2019-12-07T18:46:19.5165400")
    assert parsed == datetime(2019, 12, 7, 18, 46, 19, 516540, tzinfo=UTC)


def test_if_modified_since_is_utc_to_the_second() -> None:
    moment = datetime(2026, 3, 1, 14, 30, 5, 999000, tzinfo=timezone(timedelta(hours=-5)))
    assert wire.format_if_modified_since(moment) == "2026-03-01T19:30:05"


def test_amounts_keep_their_exact_decimal_value() -> None:
    data = wire.loads(b'{"Rate": 15.0000, "Total": 760.10, "Count": 3}', endpoint="/x")
    assert data["Rate"] == Decimal("15.0000")
    assert str(data["Total"]) == "760.10"
    assert wire.to_decimal(3) == Decimal(3)
    assert wire.to_decimal("12.5") == Decimal("12.5")
    with pytest.raises(ValueError, match="boolean"):
        wire.to_decimal(True)


def test_a_truncated_body_is_malformed_and_names_where() -> None:
    with pytest.raises(MalformedResponse) as error:
        wire.loads(b'{"Contacts": [{"ContactID": "a"', endpoint="/Contacts",
                   organisation="Acme Ltd", tenant_id="t-1")
    text = str(error.value)
    assert "/Contacts" in text
    assert "Acme Ltd" in text
    assert "t-1" in text


def test_an_envelope_without_its_collection_is_malformed_not_empty() -> None:
    with pytest.raises(MalformedResponse, match="no 'Accounts' list"):
        wire.unwrap({"Status": "OK"}, "Accounts", endpoint="/Accounts")
    assert wire.unwrap({"Accounts": []}, "Accounts", endpoint="/Accounts") == []


def test_problem_details_and_oauth_errors() -> None:
    body = (b'{"Type":null,"Title":"Unauthorized","Status":401,'
            b'"Detail":"TokenExpired: token expired at 04/09/2023 05:16:59"}')
    assert wire.problem_detail(body).startswith("TokenExpired")
    assert wire.oauth_error_code(b'{"error":"invalid_grant"}') == "invalid_grant"
    assert wire.oauth_error_code(b"<html>") is None


def test_models_accept_xero_shaped_records() -> None:
    payload = wire.loads(WIRE_SAMPLE, endpoint="/sample")
    for model, collection in [(Contact, "Contacts"), (Account, "Accounts"),
                              (TaxRate, "TaxRates"), (TrackingCategory, "TrackingCategories")]:
        for record in payload[collection]:
            first_field = next(iter(record))
            row, notes = validate_record(model, record)
            assert notes == [], (collection, notes)
            assert next(iter(row)) == first_field  # Xero's field order is kept
    contact = payload["Contacts"][0]
    assert contact["UpdatedDateUTC"] == datetime(2017, 8, 21, 20, 49, 4, 227000, tzinfo=UTC)
    assert contact["Balances"]["AccountsPayable"]["Outstanding"] == Decimal("760.00")


def test_a_model_converts_what_we_rely_on_and_keeps_unknown_fields() -> None:
    record = {"TaxType": "TAX001", "Name": "GST", "DisplayTaxRate": 15,
              "TaxComponents": [{"Name": "GST", "Rate": "15.0000", "Brand": "new"}],
              "SomethingNew": {"Nested": 1}}
    row, notes = validate_record(TaxRate, record)
    assert row["DisplayTaxRate"] == Decimal(15)
    assert row["TaxComponents"][0]["Rate"] == Decimal("15.0000")
    assert row["TaxComponents"][0]["Brand"] == "new"
    assert row["SomethingNew"] == {"Nested": 1}
    assert notes == []


def test_a_type_change_is_passed_on_and_noted() -> None:
    row, notes = validate_record(Account, {"AccountID": "297c2dc5-cc47-4afd-8ec8-74990b8761e9",
                                           "Name": 400, "EnablePaymentsToAccount": "yes"})
    assert row["Name"] == 400
    assert row["EnablePaymentsToAccount"] == "yes"
    assert sorted(notes) == ["EnablePaymentsToAccount: expected boolean, got str",
                             "Name: expected text, got int"]


@pytest.mark.parametrize(
    ("record", "problem"),
    [({"Name": "no id", "UpdatedDateUTC": "/Date(0)/"}, "ContactID"),
     ({"ContactID": "not-a-guid", "UpdatedDateUTC": "/Date(0)/"}, "GUID"),
     ({"ContactID": "297c2dc5-cc47-4afd-8ec8-74990b8761e9"}, "UpdatedDateUTC")],
)
def test_a_record_missing_what_we_rely_on_is_refused(record: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_record(Contact, record)


def test_tokens_and_secrets_stay_out_of_reprs_and_errors() -> None:
    tokens = TokenSet.from_response({"access_token": "AT-SECRET", "refresh_token": "RT-SECRET",
                                     "expires_in": 1800, "scope": "openid"}, endpoint="/t")
    settings = XeroSettings(client_id="CID", client_secret="CS-SECRET")
    assert "SECRET" not in repr(tokens) + repr(settings) + str(settings)
    error = XeroError("refresh failed", organisation="Acme", tenant_id="t", entity="accounts",
                      endpoint="/Accounts", cause="HTTP 500")
    assert str(error) == ("refresh failed (organisation 'Acme', tenant t, entity accounts, "
                          "endpoint /Accounts): HTTP 500")


def test_access_token_claims_are_read_without_verification() -> None:
    payload = base64.urlsafe_b64encode(json.dumps(
        {"authentication_event_id": "e-1", "scope": ["openid"]}).encode()).rstrip(b"=")
    token = f"eyJhbGciOiJSUzI1NiJ9.{payload.decode()}.sig"
    assert access_token_claims(token)["authentication_event_id"] == "e-1"
    with pytest.raises(MalformedResponse):
        access_token_claims("opaque-token")


def test_settings_come_from_the_environment_and_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__XERO__API_URL", "http://127.0.0.1:9/api.xro/2.0/")
    monkeypatch.setenv("SOURCES__XERO__DAILY_CALL_BUDGET", "1000")
    monkeypatch.setenv("SOURCES__XERO__HISTORY", "accounts,tax_rates")
    settings = load_settings(page_size=500)
    assert settings.api_url == "http://127.0.0.1:9/api.xro/2.0"
    assert settings.daily_call_budget == 1000
    assert settings.page_size == 500
    assert settings.history == {"accounts", "tax_rates"}
    assert settings.token_url == "https://identity.xero.com/connect/token"
    assert settings.user_agent.startswith("xero-elt/")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, set()), ("all", set(ENTITIES)), (["suppliers"], {"suppliers"}),
     ('["accounts"]', {"accounts"}), ({"accounts": True, "tax_rates": False}, {"accounts"})],
)
def test_history_setting_shapes(value: object, expected: set[str]) -> None:
    assert parse_history(value) == expected


@pytest.mark.parametrize(
    "overrides",
    [{"page_size": 1001}, {"max_in_flight": 6}, {"schema_contract": "loose"},
     {"history": ["invoices"]}, {"api_url": "ftp://x"}, {"no_such_setting": 1}],
)
def test_bad_settings_are_clear_configuration_errors(overrides: dict) -> None:
    with pytest.raises(ConfigurationError, match=r"sources\.xero|unknown"):
        load_settings(**overrides)


def test_missing_client_id_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match="SOURCES__XERO__CLIENT_ID"):
        XeroSettings().require_client()


def test_daily_usage_counts_per_utc_day(tmp_path: Path) -> None:
    usage = DailyUsage(tmp_path)
    with freeze_time("2026-03-01 23:59:00"):
        usage.record("t-1", 3)
        assert usage.used("t-1") == 3
    with freeze_time("2026-03-02 00:00:30"):
        assert usage.used("t-1") == 0
        assert DailyUsage(tmp_path).record("t-1") == 1  # another process, same file


def test_stats_keep_the_first_outcome_per_entity() -> None:
    stats = SyncStats()
    stats.count_call("t", "accounts")
    stats.finish("t", "accounts", "deferred", "day limit")
    stats.finish("t", "accounts", "ok")
    entry = stats.get("t", "accounts")
    assert (entry.outcome, entry.error, entry.api_calls) == ("deferred", "day limit", 1)
    with pytest.raises(ValueError, match="unknown outcome"):
        stats.finish("t", "x", "great")
