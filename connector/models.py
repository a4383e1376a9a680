"""Pydantic models of the four entities, in Xero's field names: the fields we rely on, checked.

What a model does:

- requires the keys we load by (``ContactID``, ``AccountID``, ``TaxType``, ``TrackingCategoryID``,
  ``TrackingOptionID``) and, for contacts, the ``UpdatedDateUTC`` cursor;
- turns ``/Date()/`` strings into UTC datetimes and money/rates into ``Decimal``;
- keeps every other field as it came (``extra="allow"``): a field Xero starts sending becomes a new
  column, and a documented field whose type changes is passed on as is (dlt makes a variant
  column) and reported as a warning.

What a model does not do: it is not handed to dlt as ``columns=`` (that would freeze types and
drop new columns). A record that fails its model is reported with its organisation and id and left
out; the rest load.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
)

from connector import wire

POSITION = "position"
"""A child row's 0-based place in Xero's list (with ``tenant_id`` and the parent's key, the
child table's natural key)."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _guid(value: Any) -> str:
    if not isinstance(value, str) or not _GUID.match(value):
        raise ValueError("must be a GUID")
    return value


def _non_empty_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be non-empty text")
    return value


def _datetime(value: Any) -> Any:
    if isinstance(value, str) and wire.is_net_date(value):
        return wire.parse_net_date(value)
    if isinstance(value, str):
        return wire.parse_iso_utc(value)
    return value


def _note(info: ValidationInfo, expected: str, value: Any) -> None:
    """Remember a documented field whose value has an unexpected type (reported, not fatal)."""
    if info.context is not None and info.field_name is not None:
        info.context.setdefault("type_changes", []).append(
            f"{info.field_name}: expected {expected}, got {type(value).__name__}"
        )


def _lenient(expected: str, convert: Any, accepts: tuple[type, ...]) -> Any:
    """A validator that converts when it can and otherwise keeps the value, noting the change."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if isinstance(value, accepts) and not (isinstance(value, bool) and bool not in accepts):
            try:
                return convert(value)
            except (ValueError, ArithmeticError):
                pass
        _note(info, expected, value)
        return value

    return BeforeValidator(validate)


def _kept(expected: str, strict: Any) -> Any:
    """A documented field kept as it came: a value of its type is checked in pydantic's core
    (no Python call per value, which the lenient validator costs); any other is noted and
    passed on, like ``_lenient``."""

    def other(value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            _note(info, expected, value)
        return value

    # pydantic checks None (a nullable schema) before the union: no Python call for it either.
    kind = strict | Annotated[Any, BeforeValidator(other)] | None
    return Annotated[kind, Field(union_mode="left_to_right")]


def _unloadable_amount(value: Any) -> bool:
    """A value dlt would still read as a decimal although no decimal column can hold it."""
    if isinstance(value, float):
        return True  # only non-finite or astronomically large floats get here
    if not isinstance(value, str):
        return False
    try:
        Decimal(value)
    except ArithmeticError:
        return False  # plain text: dlt keeps it in a variant column
    return True


def _amount(value: Any, info: ValidationInfo) -> Any:
    """Like the other lenient fields, except that an amount no decimal column can hold (NaN,
    Infinity, 1E+999999) becomes NULL: passed on, it would fail the whole load package."""
    if value is None:
        return None
    if isinstance(value, Decimal | int | str | float) and not isinstance(value, bool):
        try:
            return wire.to_decimal(value)
        except (ValueError, ArithmeticError):
            pass
    _note(info, "decimal", value)
    if _unloadable_amount(value) or isinstance(value, Decimal):
        if info.context is not None:
            info.context.setdefault("type_changes", []).append(
                f"{info.field_name}: {str(value)[:40]!r} fits no decimal column; loaded as NULL")
        return None
    return value


# Required, strictly checked: what rows are keyed and ordered by.
Guid = Annotated[str, BeforeValidator(_guid)]
Key = Annotated[str, BeforeValidator(_non_empty_text)]
Timestamp = Annotated[datetime, BeforeValidator(_datetime), AfterValidator(wire.to_utc)]
# Documented, lenient: converted when possible, else passed on (dlt variant column) and reported.
# Fields whose value the model never changes: a row takes them from the record as they came.
_CHECKS_ONLY = (_guid, _non_empty_text)
Text = _kept("text", StrictStr)
Flag = _kept("boolean", StrictBool)
Amount = Annotated[Any, BeforeValidator(_amount)]
Moment = Annotated[Any, _lenient("timestamp", lambda v: wire.to_utc(_datetime(v)),
                                 (str, datetime))]
Count = _kept("integer", StrictInt)
_KEPT_AS_IS = tuple(get_args(kind)[0] for kind in (Text, Flag, Count))


class XeroModel(BaseModel):
    """Base: Xero's names, unknown fields kept, no coercion beyond what a field declares."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- Contacts (suppliers) -------------------------------------------------------------------

class Address(XeroModel):
    """One of a contact's addresses (``POBOX``, ``STREET``)."""

    AddressType: Text = None
    AddressLine1: Text = None
    City: Text = None
    Region: Text = None
    PostalCode: Text = None
    Country: Text = None


class Phone(XeroModel):
    """One of a contact's phones (``DEFAULT``, ``DDI``, ``MOBILE``, ``FAX``, ``OFFICE``)."""

    PhoneType: Text = None
    PhoneNumber: Text = None
    PhoneAreaCode: Text = None
    PhoneCountryCode: Text = None


class Contact(XeroModel):
    """A contact read with ``where=IsSupplier==true``; keyed by ``ContactID``, ordered by
    ``UpdatedDateUTC`` (the incremental cursor)."""

    ContactID: Guid
    UpdatedDateUTC: Timestamp
    Name: Text = None
    ContactStatus: Text = None  # ACTIVE, ARCHIVED, GDPRREQUEST
    IsSupplier: Flag = None
    IsCustomer: Flag = None
    EmailAddress: Text = None
    AccountNumber: Text = None
    ContactNumber: Text = None
    TaxNumber: Text = None
    MergedToContactID: Text = None
    DefaultCurrency: Text = None
    AccountsPayableTaxType: Text = None
    PurchasesDefaultAccountCode: Text = None
    Discount: Amount = None
    Addresses: list[Address] | None = None
    Phones: list[Phone] | None = None


# --- Accounts -------------------------------------------------------------------------------

class Account(XeroModel):
    """An account of the chart; ``Code`` stays text (leading zeros matter)."""

    AccountID: Guid
    Code: Text = None
    Name: Text = None
    Type: Text = None
    Class: Text = None
    Status: Text = None  # ACTIVE, ARCHIVED, DELETED
    TaxType: Text = None
    Description: Text = None
    BankAccountNumber: Text = None
    CurrencyCode: Text = None
    SystemAccount: Text = None
    ReportingCode: Text = None
    EnablePaymentsToAccount: Flag = None
    ShowInExpenseClaims: Flag = None
    HasAttachments: Flag = None
    UpdatedDateUTC: Moment = None


# --- Tax rates ------------------------------------------------------------------------------

class TaxComponent(XeroModel):
    """One component of a tax rate (no identity of its own: a child table)."""

    Name: Text = None
    Rate: Amount = None
    IsCompound: Flag = None
    IsNonRecoverable: Flag = None


class TaxRate(XeroModel):
    """A tax rate, keyed by its ``TaxType`` code (there is no GUID)."""

    TaxType: Key
    Name: Text = None
    Status: Text = None  # ACTIVE, DELETED, ARCHIVED, PENDING
    ReportTaxType: Text = None
    DisplayTaxRate: Amount = None
    EffectiveRate: Amount = None
    CanApplyToAssets: Flag = None
    CanApplyToEquity: Flag = None
    CanApplyToExpenses: Flag = None
    CanApplyToLiabilities: Flag = None
    CanApplyToRevenue: Flag = None
    TaxComponents: list[TaxComponent] | None = None


# --- Tracking categories and options ----------------------------------------------------------

class TrackingOption(XeroModel):
    """An option of a tracking category (loaded as a table of its own)."""

    TrackingOptionID: Guid
    Name: Text = None
    Status: Text = None  # ACTIVE, ARCHIVED, DELETED


class TrackingCategory(XeroModel):
    """A tracking category with its options (archived ones included)."""

    TrackingCategoryID: Guid
    Name: Text = None
    Status: Text = None  # ACTIVE, ARCHIVED, DELETED
    Options: list[TrackingOption] | None = None


def validate_record(model: type[XeroModel], record: dict, tenant_id: str | None = None,
                    key: str | None = None) -> tuple[dict, list[str]]:
    """Check a record against its model and return (row, type-change notes).

    The row is the record with dates and amounts converted and every unknown field kept, as
    ``model_dump(exclude_unset=True)`` would give it (nested models: their fields, then the
    unknown ones), built without that second walk. ``record`` itself is changed in place: its
    ``/Date()/`` strings become datetimes and, with ``tenant_id``, every dict inside a list (a
    child-table row) gets ``tenant_id``, in the same walk; with ``key`` (the record's key field,
    ``ContactID``), a child row one level down also gets its parent's key under that name and
    ``position``, its 0-based place in Xero's list: the child table's natural key.

    Raises:
        ValueError: the record lacks a field we rely on (the message names the fields).
    """
    _prepare(record, tenant_id, (key, record.get(key)) if key is not None else None)
    context: dict[str, Any] = {}
    try:
        parsed = model.model_validate(record, context=context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(record)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ValueError(problems) from None
    converted = _converted(type(parsed))
    row = {name: getattr(parsed, name) if name in converted else value
           for name, value in record.items()}  # Xero's field order
    for name, sub in _nested(type(parsed)).items():
        items = row.get(name)
        if items is not None:
            row[name] = [_sub_row(sub, item, raw) for item, raw in zip(items, record[name],
                                                                         strict=True)]
    return row, context.get("type_changes", [])


def _prepare(record: dict, tenant_id: str | None,
             parent: tuple[str, Any] | None = None) -> None:
    """One walk: ``/Date()/`` strings → UTC datetimes, ``tenant_id`` on dicts inside lists (and,
    one level down from a record, ``parent``'s key and the position)."""
    for key, item in record.items():
        kind = type(item)
        if kind is str:
            if item.startswith("/Date(") and wire.is_net_date(item):
                record[key] = wire.parse_net_date(item)
        elif kind is list:
            _prepare_list(item, tenant_id, parent)
        elif kind is dict:
            _prepare(item, tenant_id)


def _prepare_list(items: list, tenant_id: str | None,
                  parent: tuple[str, Any] | None = None) -> None:
    for index, item in enumerate(items):
        kind = type(item)
        if kind is dict:
            if tenant_id is not None:
                item["tenant_id"] = tenant_id
            if parent is not None:
                item[parent[0]] = parent[1]
                item[POSITION] = index
            _prepare(item, tenant_id)
        elif kind is str:
            if item.startswith("/Date(") and wire.is_net_date(item):
                items[index] = wire.parse_net_date(item)
        elif kind is list:
            _prepare_list(item, tenant_id)


def _sub_row(model: type[XeroModel], item: XeroModel, raw: dict) -> dict:
    """A nested model as ``model_dump(exclude_unset=True)`` orders it: its fields, then the
    unknown ones; values the model converts from ``item``, the others as they came."""
    fields, converted = _fields(model), _converted(model)
    row = {name: getattr(item, name) if name in converted else raw[name]
           for name in fields if name in raw}
    for name, sub in _nested(model).items():
        if row.get(name) is not None:
            row[name] = [_sub_row(sub, each, part) for each, part in zip(row[name], raw[name],
                                                                           strict=True)]
    if len(row) < len(raw):
        row.update((name, value) for name, value in raw.items() if name not in row)
    return row


_FIELDS: dict[type, tuple[str, ...]] = {}
_CONVERTED: dict[type, frozenset[str]] = {}
_NESTED: dict[type, dict[str, type[XeroModel]]] = {}


def _fields(model: type[XeroModel]) -> tuple[str, ...]:
    """A model's declared fields, in declaration order (``model_dump``'s order)."""
    names = _FIELDS.get(model)
    if names is None:
        names = _FIELDS[model] = tuple(model.model_fields)
    return names


def _converted(model: type[XeroModel]) -> frozenset[str]:
    """A model's declared fields whose value the model may change (dates, amounts, nested
    models): the row takes those from the model, every other field as it came."""
    names = _CONVERTED.get(model)
    if names is None:
        names = _CONVERTED[model] = frozenset(
            name for name, info in model.model_fields.items()
            if info.annotation not in _KEPT_AS_IS
            and not any(getattr(m, "func", None) in _CHECKS_ONLY for m in info.metadata))
    return names


def _nested(model: type[XeroModel]) -> dict[str, type[XeroModel]]:
    """A model's fields that hold a list of models (``list[Address] | None``)."""
    found = _NESTED.get(model)
    if found is None:
        found = {}
        for name, info in model.model_fields.items():
            for arg in get_args(info.annotation):
                inner = get_args(arg)
                if inner and isinstance(inner[0], type) and issubclass(inner[0], XeroModel):
                    found[name] = inner[0]
        _NESTED[model] = found
    return found


__all__ = [
    "POSITION",
    "Account",
    "Address",
    "Contact",
    "Phone",
    "TaxComponent",
    "TaxRate",
    "TrackingCategory",
    "TrackingOption",
    "XeroModel",
    "validate_record",
]
