"""`POST /_sandbox/mutations`: change an organisation's data the ways Xero's data changes.

Body: `{"tenant_id", "entity", "op", "id", "fields", "touch_updated"}`, `op` one of

* `create`   – a realistic new record (`fields` override generated values); returns its id.
  An optional `id` (a UUID) fixes the new record's id (scheduled creates use it, so their id is
  known when they are armed); tax rates are keyed by `fields.TaxType` instead.
  Active contact names stay unique, as Xero requires (ValueError otherwise).
  Contacts start with IsSupplier/IsCustomer false, as in Xero (bills make a supplier; pass
  `fields` or use `make_supplier`). Tracking options need `category_id` (or
  `fields.TrackingCategoryID`). At most 2 ACTIVE and 4 tracking categories, as Xero allows.
* `update`   – set `fields`; `touch_updated` (default true) moves UpdatedDateUTC to `now`.
* `archive`  – status ARCHIVED (contacts: ContactStatus), UpdatedDateUTC moves.
* `delete`   – accounts, tracking categories and options vanish from GET; a tax rate gets
  Status DELETED and stays listed (Xero deletes tax rates by status); contacts cannot be
  deleted in Xero, so this is a ValueError (archive them).
* `make_supplier` – contact's IsSupplier becomes true (or `value`), UpdatedDateUTC untouched:
  in Xero the flag is derived from bills and does not move the cursor.
* `add_field` – `{"field", "value"}`: every record of the entity starts returning it.
* `change_type` – `{"field", "to"}` (string, number, integer, boolean, array, object; default
  string): the field's values change JSON type (dotted paths reach nested lists/objects,
  e.g. `TaxComponents.Rate`).

Entities: contacts, accounts, tax_rates (id = TaxType), tracking_categories, tracking_options
(id = TrackingOptionID). Every change happens under the organisation's lock and is published
copy-on-write, so readers never see half of it.
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.reference import TYPE_CLASS
from sandbox.seeding import build_contact_details, build_option, effective_rate, tax_codes
from sandbox.wire import MsDate, money, rate
from sandbox.world import LAZY, Organisation

# The sandbox's own model of Xero's records (it imports nothing of the product): entity -> key.
_KEYS = {"contacts": "ContactID", "accounts": "AccountID", "tax_rates": "TaxType",
         "tracking_categories": "TrackingCategoryID", "tracking_options": "TrackingOptionID"}
ENTITIES = tuple(_KEYS)
OPS = ("create", "update", "archive", "delete", "make_supplier", "add_field", "change_type")
JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object")
_MONEY_FIELDS = {"Discount", "Outstanding", "Overdue"}
_RATE_FIELDS = {"Rate", "DisplayTaxRate", "EffectiveRate"}
MAX_ACTIVE_CATEGORIES = 2
MAX_CATEGORIES = 4


def check_mutation(body: Any) -> tuple[str, str, dict[str, Any], bool]:
    """The (op, entity, fields, touch_updated) of a mutation body, checked without applying it.

    Raises ValueError with a clear message for bad bodies (the server answers 400 with it).
    """
    if not isinstance(body, dict):
        raise ValueError("mutation body must be a JSON object")
    op, entity = body.get("op"), body.get("entity")
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}; got {op!r}")
    if entity not in ENTITIES:
        raise ValueError(f"entity must be one of {', '.join(ENTITIES)}; got {entity!r}")
    fields = body.get("fields") or {}
    if not isinstance(fields, dict):
        raise ValueError("fields must be a JSON object")
    touch = body.get("touch_updated", True)
    if not isinstance(touch, bool):
        raise ValueError("touch_updated must be true or false")
    record_id = body.get("id")
    if op == "create" and record_id is not None:
        _given_id(entity, record_id)
    elif op not in ("create", "add_field", "change_type") and (
            not isinstance(record_id, str) or not record_id):
        raise ValueError(f"op {op!r} needs the record's id")
    return op, entity, fields, touch


def known_id(body: dict[str, Any]) -> str | None:
    """The id a checked mutation will answer with, if it is known before it is applied."""
    if body["op"] == "create":
        if body["entity"] == "tax_rates":
            tax_type = (body.get("fields") or {}).get("TaxType")
            return tax_type if isinstance(tax_type, str) else None
        return body.get("id")
    if body["op"] in ("add_field", "change_type"):
        return body.get("field")
    return body.get("id")


def _given_id(entity: str, record_id: Any) -> str:
    """The id a `create` was told to use (a UUID; tax rates take `fields.TaxType` instead)."""
    if entity == "tax_rates":
        raise ValueError("a created tax rate's id is its TaxType: give fields.TaxType, not id")
    try:
        return str(uuid.UUID(str(record_id)))
    except ValueError as exc:
        raise ValueError(f"a created record's id must be a UUID; got {record_id!r}") from exc


def apply_mutation(org: Organisation, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Apply one control-plane mutation; returns {"ok": True, "id": ...}.

    Raises ValueError with a clear message for bad bodies (the server answers 400 with it).
    """
    op, entity, fields, touch = check_mutation(body)
    stamp = MsDate.from_datetime(now)
    with org.lock:
        if op == "add_field":
            return _add_field(org, entity, body)
        if op == "change_type":
            return _change_type(org, entity, body)
        if op == "create":
            return {"ok": True, "id": _create(org, entity, fields, body, stamp)}
        record_id = body["id"]
        if entity == "tracking_options":
            _option_op(org, op, record_id, fields)
        elif op == "update":
            _update(org, entity, record_id, fields, stamp if touch else None)
        elif op == "archive":
            _update(org, entity, record_id, {_status_field(entity): "ARCHIVED"}, stamp)
        elif op == "delete":
            _delete(org, entity, record_id)
        elif op == "make_supplier":
            if entity != "contacts":
                raise ValueError("make_supplier applies to contacts only")
            value = body.get("value", True)
            if not isinstance(value, bool):
                raise ValueError("make_supplier value must be true or false")
            _update(org, entity, record_id, {"IsSupplier": value}, None)
        org.query_cache.clear()
        return {"ok": True, "id": record_id}


def _status_field(entity: str) -> str:
    return "ContactStatus" if entity == "contacts" else "Status"


def _coerce(name: str, value: Any) -> Any:
    """JSON values into the sandbox's wire-ready types (decimals at Xero's scale)."""
    if isinstance(value, dict):
        return {k: _coerce(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(name, v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name in _MONEY_FIELDS:
            return money(value)
        if name in _RATE_FIELDS:
            return rate(value)
        if isinstance(value, float):
            return Decimal(str(value))
    return value


def _find(org: Organisation, entity: str, record_id: str) -> dict[str, Any]:
    store = org.store(entity)
    record = store.get(record_id)
    if record is None and entity != "tax_rates":
        try:
            record = store.get(str(uuid.UUID(record_id)))
        except ValueError:
            record = None
    if record is None:
        raise ValueError(f"no {entity} record with id {record_id!r} in tenant {org.tenant_id}")
    return record


def _update(org: Organisation, entity: str, record_id: str, fields: dict[str, Any],
            stamp: MsDate | None) -> None:
    store = org.store(entity)
    current = _find(org, entity, record_id)
    key = store.key
    if key in fields and fields[key] != current[key]:
        raise ValueError(f"{key} cannot be changed")
    changed = {k: v for k, v in current.items() if k != LAZY}
    for name, value in fields.items():
        changed[name] = _coerce(name, copy.deepcopy(value))
    if entity == "accounts" and "Type" in fields:
        changed["Class"] = TYPE_CLASS.get(str(fields["Type"]), changed.get("Class"))
    if entity == "tax_rates" and "TaxComponents" in fields:
        eff = effective_rate(changed["TaxComponents"])
        changed["DisplayTaxRate"] = changed["EffectiveRate"] = eff
    if entity == "tracking_categories" and fields.get("Status") == "ACTIVE" \
            and current.get("Status") != "ACTIVE":
        _check_active_categories(org, adding=1)
    if entity == "contacts" and changed.get("ContactStatus") == "ACTIVE" and (
            "Name" in fields or current.get("ContactStatus") != "ACTIVE"):
        _check_unique_name(org, str(changed.get("Name", "")), changed["ContactID"])
    if stamp is not None and entity in ("contacts", "accounts"):
        changed["UpdatedDateUTC"] = stamp
    store.put(changed)


def _check_unique_name(org: Organisation, name: str, contact_id: str) -> None:
    """Xero: "The contact name must be unique across all active contacts"."""
    wanted = name.strip().lower()
    for other in org.contacts.records.values():
        if other["ContactID"] != contact_id and other.get("ContactStatus") == "ACTIVE" \
                and str(other.get("Name", "")).strip().lower() == wanted:
            raise ValueError(f"The contact name {name} is already assigned to another contact. "
                             "The contact name must be unique across all active contacts.")


def _delete(org: Organisation, entity: str, record_id: str) -> None:
    record = _find(org, entity, record_id)
    store = org.store(entity)
    if entity == "contacts":
        raise ValueError("contacts cannot be deleted in Xero; archive them instead "
                         "(op 'archive')")
    if entity == "tax_rates":
        store.put({**record, "Status": "DELETED"})
        return
    store.remove(record[store.key])


def _option_op(org: Organisation, op: str, option_id: str, fields: dict[str, Any]) -> None:
    for category in list(org.tracking_categories.records.values()):
        options = category.get("Options") or []
        for index, option in enumerate(options):
            if option.get("TrackingOptionID") != option_id:
                continue
            new_options = list(options)
            if op == "delete":
                del new_options[index]
            elif op in ("update", "archive"):
                changed = dict(option)
                changes = fields if op == "update" else {"Status": "ARCHIVED"}
                for name, value in changes.items():
                    if name == "TrackingOptionID" and value != option_id:
                        raise ValueError("TrackingOptionID cannot be changed")
                    changed[name] = _coerce(name, copy.deepcopy(value))
                status = changed.get("Status")
                if "Status" in changes and status in ("ACTIVE", "ARCHIVED", "DELETED"):
                    changed.update(IsActive=status == "ACTIVE", IsArchived=status == "ARCHIVED",
                                   IsDeleted=status == "DELETED")
                new_options[index] = changed
            else:
                raise ValueError(f"op {op!r} does not apply to tracking_options")
            org.tracking_categories.put({**category, "Options": new_options})
            org.query_cache.clear()
            return
    raise ValueError(f"no tracking option with id {option_id!r} in tenant {org.tenant_id}")


def _check_active_categories(org: Organisation, adding: int) -> None:
    categories = list(org.tracking_categories.records.values())
    active = sum(1 for c in categories if c.get("Status") == "ACTIVE")
    if active + adding > MAX_ACTIVE_CATEGORIES:
        raise ValueError(f"Xero allows at most {MAX_ACTIVE_CATEGORIES} active tracking "
                         "categories; archive one first")


# --- create -----------------------------------------------------------------------------------
def _new_rng(org: Organisation) -> random.Random:
    org.created_records += 1
    return random.Random(f"{org.tenant_id}:{org.created_records}")


def _create(org: Organisation, entity: str, fields: dict[str, Any], body: dict[str, Any],
            stamp: MsDate) -> str:
    rng = _new_rng(org)
    new_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # drawn even when given
    if body.get("id") is not None:
        new_id = _given_id(entity, body["id"])
    if entity == "contacts":
        record = _new_contact(org, rng, new_id, fields, stamp)
    elif entity == "accounts":
        record = _new_account(org, rng, new_id, fields, stamp)
    elif entity == "tax_rates":
        record = _new_tax_rate(org, fields)
        new_id = record["TaxType"]
    elif entity == "tracking_categories":
        record = _new_category(org, rng, new_id, fields)
    else:
        _new_option(org, new_id, fields, body)
        org.query_cache.clear()
        return new_id
    key = _KEYS[entity]
    if record[key] in org.store(entity).records:
        raise ValueError(f"{key} {record[key]!r} already exists")
    org.store(entity).put(record)
    org.query_cache.clear()
    return str(record[key])


def _apply_fields(record: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    for name, value in fields.items():
        record[name] = _coerce(name, copy.deepcopy(value))
    return record


def _new_contact(org: Organisation, rng: random.Random, new_id: str, fields: dict[str, Any],
                 stamp: MsDate) -> dict[str, Any]:
    name = fields.get("Name") or f"New Supplier {org.created_records} {rng.choice(('Ltd', 'Co'))}"
    skeleton = {"ContactID": new_id, "ContactStatus": "ACTIVE", "Name": name,
                "UpdatedDateUTC": stamp, "IsSupplier": False, "IsCustomer": False,
                LAZY: rng.getrandbits(63)}
    record = build_contact_details(org, skeleton)
    record["UpdatedDateUTC"] = stamp
    _apply_fields(record, fields)
    record["ContactID"] = new_id
    if record.get("ContactStatus") == "ACTIVE":
        _check_unique_name(org, str(record.get("Name", "")), new_id)
    return record


def _new_account(org: Organisation, rng: random.Random, new_id: str, fields: dict[str, Any],
                 stamp: MsDate) -> dict[str, Any]:
    used = {r.get("Code") for r in org.accounts.records.values()}
    code = next((str(c) for c in range(400, 1000) if str(c) not in used), None)
    type_ = str(fields.get("Type", "EXPENSE"))
    record: dict[str, Any] = {
        "AccountID": new_id, "Code": code, "Name": f"New Account {org.created_records}",
        "Status": "ACTIVE", "Type": type_, "TaxType": tax_codes(org)["in"],
        "Description": "Created in the sandbox", "Class": TYPE_CLASS.get(type_, "EXPENSE"),
        "EnablePaymentsToAccount": False, "ShowInExpenseClaims": rng.random() < 0.5,
        "BankAccountType": "", "ReportingCode": "EXP", "ReportingCodeName": "Expense",
        "HasAttachments": False, "UpdatedDateUTC": stamp, "AddToWatchlist": False,
    }
    if record["Code"] is None:
        del record["Code"]
    _apply_fields(record, fields)
    record["AccountID"] = new_id
    if any(r.get("Code") == record.get("Code") and r["AccountID"] != new_id
           for r in org.accounts.records.values() if record.get("Code")):
        raise ValueError(f"Please enter a unique Code. {record.get('Code')!r} is in use")
    return record


def _new_tax_rate(org: Organisation, fields: dict[str, Any]) -> dict[str, Any]:
    used = set(org.tax_rates.records)
    tax_type = fields.get("TaxType") or next(
        f"TAX{n:03d}" for n in range(1, 1000) if f"TAX{n:03d}" not in used)
    components = _coerce("TaxComponents", copy.deepcopy(fields.get("TaxComponents") or [
        {"Name": "Tax", "Rate": 5, "IsCompound": False, "IsNonRecoverable": False}]))
    for component in components:
        component.setdefault("IsCompound", False)
        component.setdefault("IsNonRecoverable", False)
        component["Rate"] = rate(component.get("Rate", 0))
    eff = effective_rate(components)
    record: dict[str, Any] = {
        "Name": f"Sandbox Rate {org.created_records}", "TaxType": tax_type,
        "ReportTaxType": "INPUT", "CanApplyToAssets": True, "CanApplyToEquity": True,
        "CanApplyToExpenses": True, "CanApplyToLiabilities": True, "CanApplyToRevenue": False,
        "DisplayTaxRate": eff, "EffectiveRate": eff, "Status": "ACTIVE",
        "TaxComponents": components,
    }
    _apply_fields(record, {k: v for k, v in fields.items() if k != "TaxComponents"})
    return record


def _new_category(org: Organisation, rng: random.Random, new_id: str, fields: dict[str, Any]
                  ) -> dict[str, Any]:
    categories = list(org.tracking_categories.records.values())
    if len(categories) >= MAX_CATEGORIES:
        raise ValueError(f"Xero allows at most {MAX_CATEGORIES} tracking categories")
    status = fields.get("Status", "ACTIVE")
    if status == "ACTIVE":
        _check_active_categories(org, adding=1)
    options = [build_option(str(uuid.UUID(int=rng.getrandbits(128), version=4)), name, "ACTIVE")
               for name in ("Option A", "Option B")]
    record: dict[str, Any] = {"Name": f"Category {org.created_records}", "Status": status,
                              "TrackingCategoryID": new_id, "Options": options}
    _apply_fields(record, {k: v for k, v in fields.items() if k != "Options"})
    record["TrackingCategoryID"] = new_id
    return record


def _new_option(org: Organisation, new_id: str, fields: dict[str, Any], body: dict[str, Any]
                ) -> None:
    category_id = body.get("category_id") or fields.get("TrackingCategoryID")
    if not isinstance(category_id, str):
        raise ValueError("creating a tracking option needs category_id "
                         "(the TrackingCategoryID it belongs to)")
    category = org.tracking_categories.get(category_id)
    if category is None:
        raise ValueError(f"no tracking category {category_id!r} in tenant {org.tenant_id}")
    status = str(fields.get("Status", "ACTIVE"))
    option = build_option(new_id, str(fields.get("Name") or f"Option {org.created_records}"),
                          status)
    _apply_fields(option, {k: v for k, v in fields.items()
                           if k not in ("TrackingCategoryID", "TrackingOptionID", "Status")})
    org.tracking_categories.put({**category, "Options": [*category["Options"], option]})


# --- schema changes ---------------------------------------------------------------------------
def _add_field(org: Organisation, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("field")
    if not isinstance(name, str) or not name:
        raise ValueError("add_field needs 'field' (the new field's name) and 'value'")
    if "value" not in body:
        raise ValueError("add_field needs 'value'")
    org.extra_fields.setdefault(entity, {})[name] = _coerce(name, copy.deepcopy(body["value"]))
    _bump(org, entity)
    return {"ok": True, "id": name}


def _change_type(org: Organisation, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("field")
    if not isinstance(name, str) or not name:
        raise ValueError("change_type needs 'field' and optionally 'to' (a JSON type)")
    to = body.get("to", body.get("type", "string"))
    if to not in JSON_TYPES:
        raise ValueError(f"change_type 'to' must be one of {', '.join(JSON_TYPES)}; got {to!r}")
    org.type_changes.setdefault(entity, {})[name] = to
    _bump(org, entity)
    return {"ok": True, "id": name}


def _bump(org: Organisation, entity: str) -> None:
    target = "tracking_categories" if entity == "tracking_options" else entity
    org.store(target).version += 1
    org.query_cache.clear()
