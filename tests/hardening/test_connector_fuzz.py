"""Fuzzed Xero payloads: every record either becomes a row or is reported and counted, never lost
silently, and one bad record never takes its organisation (or the others) down.

Two levels:

- the connector's record building (`_Run.build_row`: model validation, `/Date()/` decoding,
  amounts) with hypothesis-generated records: missing keys, wrong types, nulls everywhere, huge
  strings, unicode, dates at the edges, `/Date(…)/` with offsets and negatives;
- whole runs of `xero-elt run` against the sandbox after its records were given hostile values
  (`POST /_sandbox/mutations`): good records load, bad ones are counted in the summary.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector import source
from connector.client import Organisation
from connector.stats import SyncStats
from tests.hardening.conftest import CliHome, counts_by_tenant, expected_counts

pytestmark = pytest.mark.hardening

GUID = "7d9b9d4e-1c4b-4a3f-8f0e-00000000000{}"
GOOD = {
    "suppliers": {"ContactID": GUID.format(1), "UpdatedDateUTC": "/Date(1700000000000+0000)/",
                  "Name": "Acme", "ContactStatus": "ACTIVE", "IsSupplier": True,
                  "Discount": Decimal("2.5"), "EmailAddress": "a@acme.test",
                  "Addresses": [{"AddressType": "POBOX", "City": "Wellington"}],
                  "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "123"}]},
    "accounts": {"AccountID": GUID.format(2), "Code": "200", "Name": "Sales", "Type": "REVENUE",
                 "Status": "ACTIVE", "EnablePaymentsToAccount": False,
                 "UpdatedDateUTC": "/Date(1700000000000+1300)/"},
    "tax_rates": {"TaxType": "OUTPUT2", "Name": "GST on Income", "Status": "ACTIVE",
                  "EffectiveRate": Decimal("15.0"),
                  "TaxComponents": [{"Name": "GST", "Rate": Decimal("15.0"),
                                     "IsCompound": False}]},
    "tracking_categories": {"TrackingCategoryID": GUID.format(3), "Name": "Region",
                            "Status": "ACTIVE"},
    "tracking_options": {"TrackingOptionID": GUID.format(4), "Name": "North",
                         "Status": "ACTIVE", "TrackingCategoryID": GUID.format(3)},
}
KEYS = {"suppliers": ("ContactID", "UpdatedDateUTC"), "accounts": ("AccountID",),
        "tax_rates": ("TaxType",), "tracking_categories": ("TrackingCategoryID",),
        "tracking_options": ("TrackingOptionID",)}

# Within the range a datetime can hold (year 1..9999), as Xero's own dates are.
safe_millis = st.integers(-62_000_000_000_000, 253_000_000_000_000)
net_dates = st.builds(lambda ms, off: f"/Date({ms}{off})/", safe_millis,
                      st.sampled_from(["", "+0000", "+1300", "-0500", "+13", "-1200"]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.text(max_size=40), st.just("x" * 100_000), st.just("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e ünï €"),
    st.just("<script>alert(1)</script>"), net_dates, st.just("/Date(abc)/"),
    st.just("2024-02-30T00:00:00"), st.just("0001-01-01T00:00:00"),
)
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def build(entity: str, raw: dict[str, Any]) -> tuple[dict[str, Any] | None, SyncStats]:
    """The connector's own record building for one raw record of one organisation."""
    run = object.__new__(source._Run)  # only build_row/bad_record are used: stats is enough
    run.stats = SyncStats()
    org = Organisation("tenant-1", "grant-1", "Fuzz & Co")
    return run.build_row(org, source.ENTITY_TABLE[entity], raw), run.stats


def check_built_or_reported(entity: str, raw: dict[str, Any]) -> None:
    """The promise for one record: a row with sound keys, or a report and a count."""
    original = copy.deepcopy(raw)
    row, stats = build(entity, raw)
    entry = stats.get("tenant-1", entity)
    if row is None:
        assert entry is not None
        assert entry.skipped_records == 1, original
        assert entry.warnings
        assert "Fuzz & Co" in entry.warnings[0]
        return
    assert row["tenant_id"] == "tenant-1"
    for key in KEYS[entity]:
        assert row[key] not in (None, ""), (key, original)
    if entity == "suppliers":
        stamp = row["UpdatedDateUTC"]
        assert isinstance(stamp, datetime)
        assert stamp.tzinfo is not None
        assert stamp.utcoffset() == UTC.utcoffset(None)
    source._canonical(original)  # what the state keeps must serialise too


@pytest.mark.parametrize("entity", list(GOOD))
@given(data=st.data())
@FUZZ
def test_any_field_of_any_entity_becomes_a_row_or_a_counted_report(entity: str,
                                                                  data: Any) -> None:
    raw = copy.deepcopy(GOOD[entity])
    for name in data.draw(st.lists(st.sampled_from([*raw, "NewField", "Ünïcode ключ"]),
                                   max_size=4, unique=True)):
        action = data.draw(st.sampled_from(["drop", "null", "junk"]))
        if action == "drop":
            raw.pop(name, None)
        elif action == "null":
            raw[name] = None
        else:
            raw[name] = data.draw(junk)
    check_built_or_reported(entity, raw)


@given(stamp=net_dates)
@example(stamp="/Date(-1000)/")
@example(stamp="/Date(0+1300)/")
@example(stamp="/Date(253402300799999-0500)/")
@example(stamp="/Date(-62135596800000)/")
@FUZZ
def test_net_dates_with_offsets_and_negatives_are_utc_epoch_milliseconds(stamp: str) -> None:
    raw = {**GOOD["suppliers"], "UpdatedDateUTC": stamp}
    row, _ = build("suppliers", raw)
    assert row is not None
    millis = int(re.match(r"/Date\((-?\d+)", stamp).group(1))  # type: ignore[union-attr]
    expected = datetime(1970, 1, 1, tzinfo=UTC).timestamp() + millis / 1000
    assert row["UpdatedDateUTC"].timestamp() == pytest.approx(expected, abs=0.001)


@pytest.mark.parametrize(("entity", "field", "value"), [
    ("suppliers", "UpdatedDateUTC", "/Date(99999999999999999)/"),
    ("suppliers", "UpdatedDateUTC", "/Date(-99999999999999)/"),
    ("accounts", "UpdatedDateUTC", "/Date(253402300800000)/"),
    ("accounts", "Name", "/Date(99999999999999999+0000)/"),
    ("suppliers", "UpdatedDateUTC", "9999-12-31T23:59:59-05:00"),
    ("suppliers", "UpdatedDateUTC", "0001-01-01T00:00:00+05:00"),
])
def test_dates_beyond_the_calendar_are_reported_not_raised(entity: str, field: str,
                                                           value: str) -> None:
    check_built_or_reported(entity, {**GOOD[entity], field: value})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "1e999999999", "sNaN"])
def test_amounts_that_no_decimal_column_can_hold_are_not_passed_on_as_decimals(
    value: str,
) -> None:
    row, _ = build("suppliers", {**GOOD["suppliers"], "Discount": value})
    assert row is not None
    amount = row["Discount"]
    assert not isinstance(amount, Decimal) or (amount.is_finite() and
                                               amount.adjusted() < 29), amount


# -- through the sandbox and the real CLI --------------------------------------------------------

def _first(sb: Any, tenant_id: str, path: str, collection: str) -> list[dict[str, Any]]:
    import httpx

    from sandbox.handle import make_grant

    app = sb.create_app(name="peek")
    grant = make_grant(sb, app, tenant_ids=[tenant_id])
    answer = httpx.get(f"{sb.api_url}/{path}", headers=grant.headers(tenant_id),
                       params={"where": "IsSupplier==true", "includeArchived": "true"}
                       if path == "Contacts" else None)
    return answer.json()[collection]


HOSTILE_SUPPLIER_FIELDS = [
    {"Name": "x" * 100_000},
    {"Name": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e ünï € <script>alert(1)</script>"},
    {"EmailAddress": None, "TaxNumber": 12345, "AccountNumber": ["a", None]},
    {"IsCustomer": "yes", "DefaultCurrency": {"code": None}},
    {"Phones": "not a list"},  # a documented list that is not one: reported, skipped
    {"Addresses": [None, 3]},  # items that are not addresses: reported, skipped
]
HOSTILE_ACCOUNT_FIELDS = [
    {"Code": 200, "Name": None, "Description": "é" * 5000},
    {"EnablePaymentsToAccount": "true", "Type": None, "TaxType": []},
    {"Name": "<img src=x onerror=alert(1)>", "Class": 7},
]


def test_hostile_records_at_xero_load_or_are_counted_and_nothing_else_is_lost(
    cli_home: CliHome,
) -> None:
    home, sb = cli_home, cli_home.sandbox
    victim, bystander = sb.tenant_ids()
    suppliers = _first(sb, victim, "Contacts", "Contacts")
    accounts = _first(sb, victim, "Accounts", "Accounts")
    for record, fields in zip(suppliers, HOSTILE_SUPPLIER_FIELDS, strict=False):
        sb.mutate(tenant_id=victim, entity="contacts", op="update", id=record["ContactID"],
                  fields=fields)
    for record, fields in zip(accounts, HOSTILE_ACCOUNT_FIELDS, strict=False):
        sb.mutate(tenant_id=victim, entity="accounts", op="update", id=record["AccountID"],
                  fields=fields)
    sb.mutate(tenant_id=victim, entity="accounts", op="add_field", field="Ünïcode Field",
              value={"deep": [None, {"x": "y" * 1000}]})
    sb.mutate(tenant_id=victim, entity="tax_rates", op="change_type",
              field="TaxComponents.Rate", to="string")

    result = home.run()

    assert result.code == 0, result
    expected = expected_counts(sb)
    loaded = counts_by_tenant(home.db)
    victim_entities = result.org(victim)["entities"]
    skipped = 2  # Phones "not a list" and Addresses [None, 3]
    assert loaded[("suppliers", victim)] == expected[("suppliers", victim)] - skipped
    note = victim_entities["suppliers"]["error"] or ""
    assert f"skipped {skipped} " in note, victim_entities["suppliers"]  # counted, not silent
    assert "Phones" in result.stderr
    assert "Addresses" in result.stderr
    for table in ("accounts", "tax_rates", "tracking_categories", "tracking_options"):
        assert loaded[(table, victim)] == expected[(table, victim)], table
    for table in ("suppliers", "accounts", "tax_rates", "tracking_categories",
                  "tracking_options"):
        assert loaded[(table, bystander)] == expected[(table, bystander)], table
    assert result.org(bystander)["outcome"] == "ok"

    import duckdb

    with duckdb.connect(str(home.db), read_only=True) as db:
        names = {r[0] for r in db.execute(
            "select name from xero.suppliers where tenant_id = ?", [victim]).fetchall()}
        tables = {r[0] for r in db.execute(
            "select table_name from information_schema.tables where table_schema='xero'"
        ).fetchall()}
    assert "x" * 100_000 in names  # huge strings load whole
    assert "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e ünï € <script>alert(1)</script>" in names
    assert "accounts___n_code_field__deep" in tables  # the new nested field, as a child table


def _poison(home: CliHome, value: str) -> tuple[str, str, dict[str, Any]]:
    """One supplier of the first organisation gets an amount no decimal column can hold."""
    sb = home.sandbox
    victim, bystander = sb.tenant_ids()
    record = _first(sb, victim, "Contacts", "Contacts")[0]
    sb.mutate(tenant_id=victim, entity="contacts", op="update", id=record["ContactID"],
              fields={"Discount": value})
    return victim, bystander, record


def test_a_package_that_can_never_load_is_dropped_and_the_next_run_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: a run that left a package dlt can never normalize made every later run retry
    it first and fail again. The connector no longer passes such values on (the tests above), so
    the package is made directly: an amount no decimal column can hold."""
    import dlt

    from pipelines.destinations import Target
    from pipelines.loading import finish_pending

    db = tmp_path / "w.duckdb"
    target = Target(name="duckdb", dataset="xero", destination=dlt.destinations.duckdb(str(db)),
                    loader_file_format="parquet", description="test")
    pipeline = dlt.pipeline(pipeline_name="poisoned", destination=target.destination,
                            dataset_name="xero", pipelines_dir=str(tmp_path / "p"))
    columns = {"amount": {"data_type": "decimal"}}
    pipeline.run([{"id": 1, "amount": Decimal("1.5")}], table_name="t", columns=columns,
                 loader_file_format="parquet")
    pipeline.extract([{"id": 2, "amount": Decimal("NaN")}], table_name="t", columns=columns,
                     loader_file_format="parquet")
    assert pipeline.has_pending_data

    with caplog.at_level("ERROR"):
        assert finish_pending(pipeline, target) == 1
    assert "dropping it" in caplog.text
    assert not pipeline.has_pending_data
    pipeline.run([{"id": 3, "amount": Decimal("2.5")}], table_name="t", columns=columns,
                 loader_file_format="parquet")
    with pipeline.sql_client() as client:
        assert sorted(r[0] for r in client.execute_sql("select id from t")) == [1, 3]


def test_an_amount_no_column_can_hold_fails_nobody_else(cli_home: CliHome) -> None:
    home = cli_home
    _, bystander, _ = _poison(home, "NaN")
    result = home.run()
    assert result.org(bystander)["outcome"] == "ok", result
