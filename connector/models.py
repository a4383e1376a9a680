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
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
)

from connector import wire

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


def _as_is(value: Any) -> Any:
    return value


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
Text = Annotated[Any, _lenient("text", _as_is, (str,))]
Flag = Annotated[Any, _lenient("boolean", _as_is, (bool,))]
Amount = Annotated[Any, BeforeValidator(_amount)]
Moment = Annotated[Any, _lenient("timestamp", lambda v: wire.to_utc(_datetime(v)),
                                 (str, datetime))]
Count = Annotated[Any, _lenient("integer", _as_is, (int,))]


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


def validate_record(model: type[XeroModel], record: dict) -> tuple[dict, list[str]]:
    """Check a record against its model and return (row, type-change notes).

    The row is the record with dates and amounts converted and every unknown field kept.
    ``record`` itself is changed in place (its ``/Date()/`` strings become datetimes).

    Raises:
        ValueError: the record lacks a field we rely on (the message names the fields).
    """
    wire.decode_dates(record)
    context: dict[str, Any] = {}
    try:
        parsed = model.model_validate(record, context=context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(record)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ValueError(problems) from None
    dumped = parsed.model_dump(exclude_unset=True)
    row = {name: dumped[name] for name in record if name in dumped}  # keep Xero's field order
    return row, context.get("type_changes", [])


__all__ = [
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
