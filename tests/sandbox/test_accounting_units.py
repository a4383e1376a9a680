"""The fiddly parts in-process: the where/order parser, wire formats, If-Modified-Since parsing,
type changes, and readers running while mutations happen."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from sandbox import wire
from sandbox.accounting import convert_type, handle_accounting, shape
from sandbox.mutations import apply_mutation
from sandbox.seeding import seed_world
from sandbox.wherequery import (
    BOOL,
    DATE,
    DECIMAL,
    GUID,
    STRING,
    QueryParseError,
    parse_order,
    parse_where,
    sort_records,
)

FIELDS = {
    "ContactID": GUID,
    "Name": STRING,
    "IsSupplier": BOOL,
    "UpdatedDateUTC": DATE,
    "Discount": DECIMAL,
    "EmailAddress": STRING,
    "Balances.AccountsPayable.Outstanding": DECIMAL,
}
ID = "3ec601ad-eddc-4ccb-a8ac-736e88293b1b"
RECORD = {
    "ContactID": ID,
    "Name": "Harbour Plumbing Ltd",
    "IsSupplier": True,
    "UpdatedDateUTC": wire.MsDate(1735732800500),
    "Discount": Decimal("5.00"),
    "Balances": {"AccountsPayable": {"Outstanding": Decimal("120.50")}},
}
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def matches(where: str, record: dict = RECORD) -> bool:
    return parse_where(where, FIELDS, "Contact", frozenset({"ContactID"})).matches(record)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("IsSupplier==true", True),
        ("IsSupplier == false", False),
        ("isSUPPLIER==TRUE", True),  # names and keywords ignore case
        ("IsSupplier=true", True),  # Dynamic LINQ's single '='
        ("!(IsSupplier==true)", False),
        ("NOT IsSupplier", False),
        ("IsSupplier", True),
        ('Name=="harbour plumbing ltd"', True),  # string comparison ignores case
        ('Name!="Other"', True),
        ('Name<>"Other"', True),
        ('Name.StartsWith("Harb")', True),
        ('Name.EndsWith("LTD")', True),
        ('Name.Contains("plumb")', True),
        ('Name.ToLower()=="harbour plumbing ltd"', True),
        ('Name.StartsWith("x") OR Name.Contains("Ltd")', True),
        ('Name.StartsWith("x") || (IsSupplier==true && Discount>1)', True),
        ('Name.StartsWith("x") or IsSupplier==true and Discount>10', False),  # AND binds tighter
        ("EmailAddress==null", True),
        ("EmailAddress!=null", False),
        ("Name!=null", True),
        (f'ContactID==Guid("{ID}")', True),
        (f'ContactID==Guid("{ID.upper()}")', True),
        ('ContactID!=Guid("00000000-0000-0000-0000-000000000000")', True),
        ("UpdatedDateUTC>=DateTime(2025,01,01)", True),
        ("UpdatedDateUTC>DateTime(2025,01,01,12,00,00)", True),
        ("UpdatedDateUTC<DateTime(2025,01,01,12,00,00)", False),
        ("Discount==5", True),
        ("Discount>=5.00 AND Discount<5.01", True),
        ("Balances.AccountsPayable.Outstanding>100", True),
        ("Discount>-1", True),
    ],
)
def test_where_semantics(where: str, expected: bool) -> None:
    assert matches(where) is expected


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            'IsSupplier=="true"',
            "Operator '==' incompatible with operand types 'Boolean?' and 'String'",
        ),
        (
            '"true"==IsSupplier',
            "Operator '==' incompatible with operand types 'String' and 'Boolean?'",
        ),
        (f'ContactID=="{ID}"', "Operator '==' incompatible with operand types 'Guid' and 'String'"),
        ("Name==5", "Operator '==' incompatible with operand types 'String' and 'Int32'"),
        (
            "IsSupplier>true",
            "Operator '>' incompatible with operand types 'Boolean?' and 'Boolean'",
        ),
        ("", "Expression expected"),
        ("   ", "Expression expected"),
        ("IsSupplier==", "Expression expected"),
        ("(IsSupplier==true", "')' or operator expected"),
        ("IsSupplier==true)", "Syntax error"),
        ("Name", "Expression of type 'Boolean' expected"),
        ('Name.Explode("x")', "No applicable method 'Explode' exists in type 'String'"),
        (
            'IsSupplier.StartsWith("x")',
            "No applicable method 'StartsWith' exists in type 'Boolean'",
        ),
        ('Colour=="red"', "No property or field 'Colour' exists in type 'Contact'"),
        ('Name=="open', "Unterminated string literal"),
        ('ContactID==Guid("nope")', "'nope' is not a valid Guid"),
        ("UpdatedDateUTC>DateTime(2025,13,01)", "Invalid DateTime: month must be in 1..12"),
        ("UpdatedDateUTC>DateTime(2025,1)", "No matching constructor in type 'DateTime'"),
        (
            "IsSupplier==true AND Name",
            "Operator '&&' incompatible with operand types 'Boolean' and 'String'",
        ),
        ("Name == 'single'", "Syntax error '''"),
    ],
)
def test_where_errors_read_like_xero(where: str, message: str) -> None:
    with pytest.raises(QueryParseError) as caught:
        parse_where(where, FIELDS, "Contact", frozenset({"ContactID"}))
    assert str(caught.value) == message


def test_where_reports_the_fields_it_reads() -> None:
    where = parse_where(
        "IsSupplier==true AND Balances.AccountsPayable.Outstanding>0", FIELDS, "Contact"
    )
    assert where.fields == {"IsSupplier", "Balances"}


def test_order_parsing_and_stable_sort() -> None:
    keys = parse_order("UpdatedDateUTC ASC, Name DESC", FIELDS, "Contact")
    assert [(k.path, k.descending) for k in keys] == [
        (("UpdatedDateUTC",), False),
        (("Name",), True),
    ]
    assert parse_order("name", FIELDS, "Contact")[0].path == ("Name",)
    for bad in ("Name SIDEWAYS", "Colour ASC", "Name ASC,"):
        with pytest.raises(QueryParseError):
            parse_order(bad, FIELDS, "Contact")
    rows = [
        {"ContactID": "b", "Name": "x", "UpdatedDateUTC": wire.MsDate(2)},
        {"ContactID": "a", "Name": "y", "UpdatedDateUTC": wire.MsDate(2)},
        {"ContactID": "c", "Name": None, "UpdatedDateUTC": wire.MsDate(1)},
        {"ContactID": "d", "Name": "Y", "UpdatedDateUTC": wire.MsDate(2)},
    ]
    by_date = sort_records(rows, parse_order("UpdatedDateUTC ASC", FIELDS, "Contact"), "ContactID")
    assert [r["ContactID"] for r in by_date] == ["c", "a", "b", "d"]  # ties by ContactID
    by_name = sort_records(rows, parse_order("Name DESC", FIELDS, "Contact"), "ContactID")
    assert [r["ContactID"] for r in by_name] == ["a", "d", "b", "c"]  # nulls last descending


# --- wire -------------------------------------------------------------------------------------
def test_dumps_escapes_dates_and_keeps_decimal_scale() -> None:
    body = wire.dumps(
        {
            "When": wire.MsDate(1439434356790),
            "Env": wire.MsDate(5, offset=False),
            "Rate": Decimal("15.0000"),
            "Money": Decimal("760.00"),
            "Text": 'a/b \u00e9 "q"',
            "Flag": True,
            "Empty": [],
        }
    )
    text = body.decode()
    assert '"When":"\\/Date(1439434356790+0000)\\/"' in text
    assert '"Env":"\\/Date(5)\\/"' in text
    assert '"Rate":15.0000' in text
    assert '"Money":760.00' in text
    assert '"Text":"a/b \u00e9 \\"q\\""' in text  # only dates get escaped slashes
    decoded = json.loads(body)
    assert decoded["When"] == "/Date(1439434356790+0000)/"
    assert decoded["Rate"] == 15.0
    assert decoded == wire.plain(
        {
            "When": wire.MsDate(1439434356790),
            "Env": wire.MsDate(5, offset=False),
            "Rate": Decimal("15.0000"),
            "Money": Decimal("760.00"),
            "Text": 'a/b \u00e9 "q"',
            "Flag": True,
            "Empty": [],
        }
    )


def test_xml_shape() -> None:
    xml = wire.to_xml(
        {
            "Id": "x",
            "Contacts": [
                {
                    "Name": "A & B",
                    "IsSupplier": False,
                    "Addresses": [{"City": ""}],
                    "Phones": [],
                    "UpdatedDateUTC": wire.MsDate(1000),
                }
            ],
        }
    ).decode()
    assert xml.startswith("<Response")
    assert "<Contacts><Contact><Name>A &amp; B</Name><IsSupplier>false</IsSupplier>" in xml
    assert "<Addresses><Address><City /></Address></Addresses><Phones />" in xml
    assert "<UpdatedDateUTC>1970-01-01T00:00:01.000</UpdatedDateUTC>" in xml
    assert wire.singular("TrackingCategories") == "TrackingCategory"
    assert wire.singular("TaxRates") == "TaxRate"
    assert wire.singular("Currencies") == "Currency"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-02T03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05.1234567", datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2020-02-06T12:17:43.202-08:00", datetime(2020, 2, 6, 20, 17, 43, 202000, tzinfo=UTC)),
        ("2025-01-02T05:04:05+0200", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02 03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02", datetime(2025, 1, 2, tzinfo=UTC)),
        ("Thu, 02 Jan 2025 03:04:05 GMT", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_if_modified_since_formats(value: str, expected: datetime) -> None:
    assert wire.parse_http_timestamp(value) == expected


@pytest.mark.parametrize("value", ["", "yesterday", "2025-13-40T00:00:00", "12:00"])
def test_if_modified_since_rejects_garbage(value: str) -> None:
    with pytest.raises(ValueError, match=r"ISO 8601|HTTP date|out of range|must be in"):
        wire.parse_http_timestamp(value)


def test_msdate_round_trip() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=13)))
    stamp = wire.MsDate.from_datetime(moment)
    assert stamp.to_datetime() == moment
    assert stamp.wire() == f"/Date({int(moment.timestamp() * 1000)}+0000)/"


# --- shaping ----------------------------------------------------------------------------------
def test_shape_drops_adds_and_changes_types() -> None:
    record = {"A": 1, "Drop": 2, "Rates": [{"Rate": Decimal("1.5000")}], "_lazy": 3}
    out = shape(record, ("Drop",), {"New": "x", "A": 99}, {"Rates.Rate": "string"})
    assert out == {"A": 1, "Rates": [{"Rate": "1.5000"}], "New": "x"}
    assert record["Rates"][0]["Rate"] == Decimal("1.5000")  # the stored record is untouched
    assert convert_type(True, "string") == "true"
    assert convert_type("12.50", "number") == Decimal("12.50")
    assert convert_type(Decimal("3.7"), "integer") == 3
    assert convert_type("yes", "boolean") is True
    assert convert_type(5, "array") == [5]
    assert convert_type(wire.MsDate(0), "string") == "1970-01-01T00:00:00"


# --- handle_accounting in-process --------------------------------------------------------------
@pytest.fixture
def org():  # type: ignore[no-untyped-def]
    return next(iter(seed_world(seed=8, tenants=1, suppliers=60, start=NOW).organisations.values()))


def call(
    org,
    resource: str,
    query: dict[str, str] | None = None,
    sub: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    status, hdrs, body = handle_accounting(
        org,
        resource,
        sub,
        query or {},
        {"accept": "application/json", **(headers or {})},
        NOW,
        "unit",
    )
    assert hdrs["Content-Type"].startswith(("application/json", "text/plain"))
    return status, (json.loads(body) if hdrs["Content-Type"].startswith("application") else {})


def test_resource_names_and_query_keys_ignore_case(org) -> None:  # type: ignore[no-untyped-def]
    status, body = call(org, "contacts", {"PAGE": "1", "PageSize": "7"})
    assert status == 200
    assert len(body["Contacts"]) == 7
    assert call(org, "Invoices")[0] == 404
    assert call(org, "Organisation", sub="x")[0] == 404


def test_zero_and_negative_paging_values(org) -> None:  # type: ignore[no-untyped-def]
    _, body = call(org, "Contacts", {"page": "0", "pageSize": "0"})
    assert body["pagination"]["page"] == 1
    assert body["pagination"]["pageSize"] == 100


def test_contact_number_lookup_and_tax_type_case(org) -> None:  # type: ignore[no-untyped-def]
    _, everything = call(org, "Contacts", {"page": "1", "includeArchived": "true"})
    numbered = next(c for c in everything["Contacts"] if c.get("ContactNumber"))
    status, body = call(org, "Contacts", sub=numbered["ContactNumber"])
    assert status == 200
    assert body["Contacts"][0]["ContactID"] == numbered["ContactID"]
    assert call(org, "TaxRates", sub="input2")[1]["TaxRates"][0]["TaxType"] == "INPUT2"


def test_where_after_change_type_sees_served_values(org) -> None:  # type: ignore[no-untyped-def]
    apply_mutation(
        org, {"entity": "accounts", "op": "change_type", "field": "Code", "to": "integer"}, NOW
    )
    _, body = call(org, "Accounts")
    assert all(isinstance(a["Code"], int) for a in body["Accounts"] if "Code" in a)
    assert call(org, "Accounts", {"where": 'Type=="BANK"'})[0] == 200


def test_readers_never_see_half_a_mutation(org) -> None:  # type: ignore[no-untyped-def]
    """A writer renames a contact and its email together; readers must see matching pairs."""
    _, body = call(org, "Contacts", {"page": "1"})
    target = body["Contacts"][0]["ContactID"]
    stop = threading.Event()
    problems: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            apply_mutation(
                org,
                {
                    "entity": "contacts",
                    "op": "update",
                    "id": target,
                    "fields": {"Name": f"Pair {n}", "EmailAddress": f"pair{n}@x.test"},
                },
                NOW,
            )

    def reader() -> None:
        for _ in range(60):
            status, page = call(org, "Contacts", {"IDs": target, "page": "1"})
            contact = page["Contacts"][0]
            if status != 200 or (
                contact["Name"].startswith("Pair")
                and contact["EmailAddress"] != f"pair{contact['Name'][5:]}@x.test"
            ):
                problems.append(f"{contact['Name']} / {contact['EmailAddress']}")
            one = call(org, "Contacts", sub=target)[1]["Contacts"][0]
            if (
                one["Name"].startswith("Pair")
                and one["EmailAddress"] != f"pair{one['Name'][5:]}@x.test"
            ):
                problems.append(f"single {one['Name']} / {one['EmailAddress']}")

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(timeout=60)
    stop.set()
    threads[0].join(timeout=10)
    assert not problems


def test_mutation_errors_are_clear(org) -> None:  # type: ignore[no-untyped-def]
    contact_id = next(iter(org.contacts.records))
    cases = [
        ({"entity": "contacts", "op": "delete", "id": contact_id}, "cannot be deleted"),
        (
            {
                "entity": "contacts",
                "op": "update",
                "id": contact_id,
                "fields": {"ContactID": "other"},
            },
            "ContactID cannot be changed",
        ),
        ({"entity": "accounts", "op": "make_supplier", "id": "x"}, "contacts only"),
        ({"entity": "tracking_options", "op": "create", "fields": {}}, "category_id"),
        ({"entity": "contacts", "op": "add_field", "field": "X"}, "value"),
        (
            {"entity": "contacts", "op": "update", "id": "nope", "fields": {"Name": "x"}},
            "no contacts record",
        ),
        (
            {"entity": "contacts", "op": "update", "id": contact_id, "touch_updated": "no"},
            "touch_updated",
        ),
        ([], "JSON object"),
        ({"entity": "contacts", "op": "create",
          "fields": {"Name": next(c["Name"] for c in org.contacts.records.values()
                                  if c["ContactStatus"] == "ACTIVE")}}, "must be unique"),
    ]
    for body, text in cases:
        with pytest.raises(ValueError, match=text):
            apply_mutation(org, body, NOW)  # type: ignore[arg-type]


def test_touch_updated_false_and_make_supplier_keep_the_stamp(org) -> None:  # type: ignore
    skeleton = next(c for c in org.contacts.records.values() if not c["IsSupplier"])
    before = skeleton["UpdatedDateUTC"]
    apply_mutation(
        org, {"entity": "contacts", "op": "make_supplier", "id": skeleton["ContactID"]}, NOW
    )
    apply_mutation(
        org,
        {
            "entity": "contacts",
            "op": "update",
            "id": skeleton["ContactID"],
            "fields": {"Website": "https://x.test"},
            "touch_updated": False,
        },
        NOW,
    )
    after = org.contacts.get(skeleton["ContactID"])
    assert after is not None
    assert after["IsSupplier"] is True
    assert after["UpdatedDateUTC"] == before
    apply_mutation(org, {"entity": "contacts", "op": "archive", "id": skeleton["ContactID"]}, NOW)
    archived = org.contacts.get(skeleton["ContactID"])
    assert archived is not None
    assert archived["ContactStatus"] == "ARCHIVED"
    assert archived["UpdatedDateUTC"] == wire.MsDate.from_datetime(NOW)
