"""A page's rows as Arrow tables (``connector.arrow_pages``): dlt's names, types and variant
columns, child tables keyed by natural keys, tombstones for parents whose list emptied. The
loads themselves are covered against the sandbox (``test_row_shape``, ``test_child_tables``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from connector.arrow_pages import TOMBSTONE, PageTables

T = "tenant-1"


def _build(rows: list[dict[str, Any]], known: dict[str, Any] | None = None,
           children: tuple[str, ...] = ()) -> dict[str, pa.Table]:
    return PageTables("suppliers", "ContactID").build(rows, "1.5", known or {}, children)


def test_objects_flatten_and_lists_become_child_tables_keyed_by_their_parent() -> None:
    tables = _build([{
        "tenant_id": T, "ContactID": "c1", "Name": "Acme",
        "PaymentTerms": {"Bills": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}},
        "Balances": {"AccountsPayable": {"Outstanding": Decimal("12.5000")}},
        "UpdatedDateUTC": datetime(2026, 1, 2, tzinfo=UTC),
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": ""}, {"PhoneType": "FAX"}],
        "ContactGroups": [{"Name": "A", "Contacts": []}, {"Name": "B", "Contacts": [{"x": 1}]}],
        "Codes": ["x", "y"],
    }])
    parent = tables["suppliers"]
    assert parent.column("payment_terms__bills__day").to_pylist() == [20]
    assert parent.schema.field("balances__accounts_payable__outstanding").type == \
        pa.decimal128(38, 9)
    assert parent.schema.field("updated_date_utc").type == pa.timestamp("us", tz="UTC")
    assert not parent.schema.field("tenant_id").nullable
    assert {"_dlt_load_id", "_dlt_id"} <= set(parent.column_names)
    phones = tables["suppliers__phones"].to_pylist()
    assert [(p["tenant_id"], p["contact_id"], p["position"], p["phone_type"], p["phone_number"])
            for p in phones] == [(T, "c1", 0, "DEFAULT", ""), (T, "c1", 1, "FAX", None)]
    groups = tables["suppliers__contact_groups"].to_pylist()
    # An empty list inside a child row is nothing (as dlt has it); a filled one is JSON text.
    assert [g["contacts"] for g in groups] == [None, '[{"x": 1}]']
    assert [c["value"] for c in tables["suppliers__codes"].to_pylist()] == ["x", "y"]


def test_a_value_of_another_type_goes_to_a_variant_column() -> None:
    known = {"suppliers": {"updated_date_utc": {"data_type": "timestamp"},
                           "rank": {"data_type": "double"}}}
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    table = _build([{"tenant_id": T, "ContactID": "c1", "UpdatedDateUTC": moment, "Rank": 1},
                    {"tenant_id": T, "ContactID": "c2", "UpdatedDateUTC": 1767312000000,
                     "Rank": 2.5}], known)["suppliers"]
    assert table.column("updated_date_utc").to_pylist() == [moment, None]
    assert table.column("updated_date_utc__v_bigint").to_pylist() == [None, 1767312000000]
    assert table.column("rank").to_pylist() == [1.0, 2.5]  # an int fits a double (coerced)


def test_a_new_text_column_of_timestamps_is_a_timestamp_and_long_decimals_are_rounded() -> None:
    table = _build([{"tenant_id": T, "ContactID": "c1", "SeenAt": "2026-01-02T03:04:05Z",
                     "Rate": Decimal("0.1234567891")}])["suppliers"]
    assert table.schema.field("seen_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("rate").to_pylist() == [Decimal("0.123456789")]


def test_a_parent_whose_list_emptied_gets_one_tombstone_where_rows_may_exist() -> None:
    rows = [{"tenant_id": T, "ContactID": "c1", "Phones": [{"PhoneType": "DEFAULT"}]},
            {"tenant_id": T, "ContactID": "c2", "Phones": []},
            {"tenant_id": T, "ContactID": "c2", "Phones": []}]  # twice in a page: one tombstone
    known = {"suppliers": {}, "suppliers__phones": {}}
    phones = _build(rows, known, ("suppliers__phones", "suppliers__addresses"))
    found = phones["suppliers__phones"].to_pylist()
    assert [(p["contact_id"], p["position"], p[TOMBSTONE]) for p in found] == \
        [("c1", 0, None), ("c2", -1, True)]
    # A child table the dataset does not have yet has no old rows to clear.
    assert "suppliers__addresses" not in phones
    # Without a schema (a first load) nothing is cleared.
    assert [p["contact_id"] for p in _build(rows)["suppliers__phones"].to_pylist()] == ["c1"]
