"""The sandbox's Accounting API: GET /api.xro/2.0/<resource>[/<id>] for one organisation.

Behaviour reproduced from Xero (see the project's REFERENCE.md, sections 3 and 4):

* the envelope `Id`/`Status`/`ProviderName`/`DateTimeUTC`, `\\/Date(ms+0000)\\/` dates, decimals
  at fixed scale; JSON only when `Accept` names application/json, XML otherwise (not 406);
* Contacts: `page` (1-based) and `pageSize` (default 100; above 1000 it is clamped to 1000, as
  Xero caps it), the lower-case `pagination` object only when `page` is sent; without `page`
  every contact comes in one response, without the paged-only fields (ContactGroups,
  PaymentTerms, Sales/PurchasesDefaultLineAmountType, MergedToContactID); `includeArchived`,
  `summaryOnly` (drops the heavy fields listed in SUMMARY_DROPPED; Xero's exact list is
  undocumented), `IDs`, `searchTerm`, `where`, `order` (ties broken by ContactID);
* `If-Modified-Since` on Contacts and Accounts: ISO 8601 (no zone = UTC) or an HTTP date,
  inclusive to the second (a record updated at 12:00:00.900 is returned for 12:00:00); a value
  that parses as neither is ignored, as RFC 9110 tells servers to do. What Xero answers on
  Accounts when nothing changed is uncertain (REFERENCE 3): 200 with an empty list (default),
  304 Not Modified with no body, or the header ignored (the whole chart), as the sandbox setting
  `accounts_not_modified` says (`ReadPolicy.accounts_not_modified`);
* high-volume organisations (more contacts, archived included, than the threshold the server
  passes in `ReadPolicy`): a Contacts collection read whose `where` or `order` leaves Xero's
  optimised fields, or that uses `searchTerm`, is 400 HighVolumeException (REFERENCE 0), and so
  is one without `page` ("such requests must page"; Xero staff on the same rule for Payments:
  "don't request all … in a single request"), unless it names its contacts with `IDs`;
* US organisations mask contacts' `TaxNumber` to its last four characters for a Standard user
  (one the organisation lets connect apps) (REFERENCE 0, "Roles"; the exact mask is unconfirmed);
* Accounts (not paged, archived included), TaxRates (no UpdatedDateUTC, DELETED rates stay
  visible with that status), TrackingCategories (`includeArchived` hides archived categories
  and options unless true), Organisation, Currencies, and single-item GETs (404 when unknown).

Default orders (Xero does not document them): Contacts by Name, Accounts by Code, TaxRates and
TrackingCategories by Name, each with the primary key as tie-break.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox import wire
from sandbox.wherequery import (
    BOOL,
    DATE,
    DECIMAL,
    GUID,
    STRING,
    QueryParseError,
    Where,
    parse_order,
    parse_where,
    sort_records,
)
from sandbox.world import LAZY, SKELETON_FIELDS, Organisation, Store

ACCOUNTING_RESOURCES = ("Contacts", "Accounts", "TaxRates", "TrackingCategories",
                        "Organisation", "Currencies")
REQUIRED_SCOPE = {
    "Contacts": "accounting.contacts",
    "Accounts": "accounting.settings",
    "TaxRates": "accounting.settings",
    "TrackingCategories": "accounting.settings",
    "Organisation": "accounting.settings",
    "Currencies": "accounting.settings",
}

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
PAGED_ONLY = ("ContactGroups", "PaymentTerms", "SalesDefaultLineAmountType",
              "PurchasesDefaultLineAmountType", "MergedToContactID")
SUMMARY_DROPPED = ("Addresses", "Phones", "ContactGroups", "ContactPersons", "PaymentTerms",
                   "Balances", "BatchPayments", "BrandingTheme", "Attachments", "Discount",
                   "SalesTrackingCategories", "PurchasesTrackingCategories", "Website")

# Xero's optimised Contacts fields (REFERENCE 4.1 and 0): anything else is refused on a
# high-volume organisation. `where` fields are top-level names, so `Balances.…` is refused too.
OPTIMISED_WHERE = frozenset({"ContactID", "Name", "EmailAddress", "AccountNumber"})
OPTIMISED_ORDER = frozenset({"ContactID", "UpdatedDateUTC", "Name"})
HIGH_VOLUME_MESSAGE = (
    "Your request is not filtering Contacts efficiently, given the extremely high volume for "
    "this organisation. Please check "
    "https://developer.xero.com/documentation/api/efficient-data-retrieval for tips on making "
    "Contact retrieval more efficient."
)
MASK_COUNTRIES = frozenset({"US"})
MASK_KEEP = 4

# Properties `where`/`order` know, with Xero's type names.
_CONTACT_FIELDS = {
    "ContactID": GUID, "MergedToContactID": GUID, "ContactNumber": STRING,
    "AccountNumber": STRING, "ContactStatus": STRING, "Name": STRING, "FirstName": STRING,
    "LastName": STRING, "CompanyNumber": STRING, "EmailAddress": STRING,
    "BankAccountDetails": STRING, "TaxNumber": STRING, "TaxNumberType": STRING,
    "AccountsReceivableTaxType": STRING, "AccountsPayableTaxType": STRING, "IsSupplier": BOOL,
    "IsCustomer": BOOL, "SalesDefaultLineAmountType": STRING,
    "PurchasesDefaultLineAmountType": STRING, "DefaultCurrency": STRING,
    "XeroNetworkKey": STRING, "SalesDefaultAccountCode": STRING,
    "PurchasesDefaultAccountCode": STRING, "TrackingCategoryName": STRING,
    "TrackingCategoryOption": STRING, "UpdatedDateUTC": DATE, "Website": STRING,
    "Discount": DECIMAL, "HasAttachments": BOOL, "HasValidationErrors": BOOL,
    "StatusAttributeString": STRING,
    "Balances.AccountsReceivable.Outstanding": DECIMAL,
    "Balances.AccountsReceivable.Overdue": DECIMAL,
    "Balances.AccountsPayable.Outstanding": DECIMAL,
    "Balances.AccountsPayable.Overdue": DECIMAL,
}
_ACCOUNT_FIELDS = {
    "AccountID": GUID, "Code": STRING, "Name": STRING, "Type": STRING, "Status": STRING,
    "Description": STRING, "BankAccountNumber": STRING, "BankAccountType": STRING,
    "CurrencyCode": STRING, "TaxType": STRING, "EnablePaymentsToAccount": BOOL,
    "ShowInExpenseClaims": BOOL, "Class": STRING, "SystemAccount": STRING,
    "ReportingCode": STRING, "ReportingCodeName": STRING, "HasAttachments": BOOL,
    "UpdatedDateUTC": DATE, "AddToWatchlist": BOOL,
}
_TAX_RATE_FIELDS = {
    "Name": STRING, "TaxType": STRING, "ReportTaxType": STRING, "Status": STRING,
    "CanApplyToAssets": BOOL, "CanApplyToEquity": BOOL, "CanApplyToExpenses": BOOL,
    "CanApplyToLiabilities": BOOL, "CanApplyToRevenue": BOOL, "DisplayTaxRate": DECIMAL,
    "EffectiveRate": DECIMAL,
}
_TRACKING_FIELDS = {"TrackingCategoryID": GUID, "Name": STRING, "Status": STRING}


class _Entity:
    """How one collection is read: its store, key, where-type, fields and default order."""

    def __init__(self, resource: str, entity: str, item: str, key: str,
                 fields: dict[str, str], default_order: str, modified_since: bool) -> None:
        self.resource, self.entity, self.item, self.key = resource, entity, item, key
        self.fields, self.default_order = fields, default_order
        self.modified_since = modified_since


_ENTITIES = {
    "Contacts": _Entity("Contacts", "contacts", "Contact", "ContactID", _CONTACT_FIELDS,
                        "Name ASC", True),
    "Accounts": _Entity("Accounts", "accounts", "Account", "AccountID", _ACCOUNT_FIELDS,
                        "Code ASC", True),
    "TaxRates": _Entity("TaxRates", "tax_rates", "TaxRate", "TaxType", _TAX_RATE_FIELDS,
                        "Name ASC", False),
    "TrackingCategories": _Entity("TrackingCategories", "tracking_categories",
                                  "TrackingCategory", "TrackingCategoryID", _TRACKING_FIELDS,
                                  "Name ASC", False),
}
_CANONICAL = {name.lower(): name for name in ACCOUNTING_RESOURCES}
_QUERY_CACHE_SIZE = 8


@dataclass(frozen=True)
class ReadPolicy:
    """What shapes an answer beyond the query: the sandbox's settings and who is calling."""

    # Contacts above which unoptimised Contacts queries are refused (None: never).
    high_volume_threshold: int | None = None
    # A (parseable) If-Modified-Since lets such a query through.
    modified_since_exempt: bool = False
    # The caller is a Standard user allowed to connect apps (not an admin).
    standard_user: bool = False
    # Accounts with If-Modified-Since and nothing changed: "empty" (200, an empty list), "304"
    # (Not Modified, no body) or "ignore" (the header is ignored: the whole chart).
    accounts_not_modified: str = "empty"


class BadRequest(Exception):
    """A 400 in one of Xero's error shapes."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("Message", "Bad request"))
        self.body = body


def _query_parse(message: str) -> BadRequest:
    return BadRequest({"ErrorNumber": 16, "Type": "QueryParseException", "Message": message})


def _high_volume() -> BadRequest:
    return BadRequest({"ErrorNumber": 51, "Type": "HighVolumeException",
                       "Message": HIGH_VOLUME_MESSAGE})


def _validation(message: str) -> BadRequest:
    return BadRequest({"ErrorNumber": 10, "Type": "ValidationException",
                       "Message": "A validation exception occurred",
                       "Elements": [{"ValidationErrors": [{"Message": message}]}]})


# --- entry point ------------------------------------------------------------------------------
def handle_accounting(org: Organisation, resource: str, subpath: str | None,
                      query: dict[str, str], headers: dict[str, str],
                      now: datetime, provider_name: str, policy: ReadPolicy = ReadPolicy()
                      ) -> tuple[int, dict[str, str], bytes]:
    """GET /api.xro/2.0/<resource>[/<subpath>] for one organisation, after auth and limits.

    `headers` keys are lower-case. Returns (status, headers incl. Content-Type, body): JSON when
    Accept includes application/json, else XML; 400 QueryParseException/ValidationException and
    404 in Xero's shapes. Safe for concurrent readers while mutations happen.
    """
    as_json = "application/json" in headers.get("accept", "").lower()
    canonical = _CANONICAL.get(resource.strip("/").lower())
    if canonical is None:
        return _not_found()
    params = {key.lower(): value for key, value in query.items()}
    subpath = (subpath or "").strip("/") or None
    try:
        if canonical in ("Organisation", "Currencies"):
            if subpath:
                return _not_found()
            items = ([_organisation_record(org)] if canonical == "Organisation"
                     else [dict(c) for c in org.currencies])
            body = _envelope(now, provider_name)
            body["Organisations" if canonical == "Organisation" else "Currencies"] = items
            return _ok(body, as_json)
        entity = _ENTITIES[canonical]
        if subpath:
            item = _single(org, entity, subpath, params)
            if item is None:
                return _not_found()
            if _masks_tax_numbers(org, entity, policy):
                item = _masked(item)
            body = _envelope(now, provider_name)
            body[entity.resource] = [item]
            return _ok(body, as_json)
        body = _collection(org, entity, params, headers, now, provider_name, policy)
        if body is None:
            return 304, {}, b""
        return _ok(body, as_json)
    except BadRequest as exc:
        return _error(400, exc.body, as_json)


def _envelope(now: datetime, provider_name: str) -> dict[str, Any]:
    return {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": provider_name,
            "DateTimeUTC": wire.MsDate.from_datetime(now, offset=False)}


def _ok(body: dict[str, Any], as_json: bool) -> tuple[int, dict[str, str], bytes]:
    if as_json:
        return 200, {"Content-Type": "application/json; charset=utf-8"}, wire.dumps(body)
    return 200, {"Content-Type": "text/xml; charset=utf-8"}, wire.to_xml(body)


def _error(status: int, body: dict[str, Any], as_json: bool
           ) -> tuple[int, dict[str, str], bytes]:
    if as_json:
        return status, {"Content-Type": "application/json; charset=utf-8"}, wire.dumps(body)
    return status, {"Content-Type": "text/xml; charset=utf-8"}, wire.to_xml(body, "ApiException")


def _not_found() -> tuple[int, dict[str, str], bytes]:
    # Xero's 404 body is undocumented; SDKs show a generic text, so does the sandbox.
    return (404, {"Content-Type": "text/plain; charset=utf-8"},
            b"The resource you're looking for cannot be found")


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name.lower(), "").strip().lower() == "true"


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name.lower())
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw.strip())
    except ValueError as exc:
        raise _validation(f"'{raw}' is not a valid value for {name}") from exc


def _modified_since(headers: Mapping[str, str]) -> int | None:
    """The If-Modified-Since second (epoch seconds), or None when absent or unparseable."""
    raw = headers.get("if-modified-since")
    if not raw:
        return None
    try:
        stamp = wire.parse_http_timestamp(raw)
    except ValueError:
        return None
    return wire.datetime_to_ms(stamp) // 1000


# --- collections ------------------------------------------------------------------------------
def _collection(org: Organisation, entity: _Entity, params: Mapping[str, str],
                headers: Mapping[str, str], now: datetime, provider_name: str,
                policy: ReadPolicy) -> dict[str, Any] | None:
    """The envelope with the selected records; None for a 304 Not Modified (Accounts with
    ``accounts_not_modified`` "304", If-Modified-Since sent and nothing changed since)."""
    where = _parse_where(params.get("where"), entity)
    order = _parse_order(params.get("order"), entity)
    include_archived = _flag(params, "includeArchived")
    since = _modified_since(headers) if entity.modified_since else None
    accounts = entity.resource == "Accounts"
    if accounts and policy.accounts_not_modified == "ignore":
        since = None
    paged = entity.resource == "Contacts" and params.get("page") is not None
    page = page_size = 0
    if paged:
        page = max(1, _int_param(params, "page") or 1)
        size = _int_param(params, "pageSize")
        page_size = DEFAULT_PAGE_SIZE if size is None or size < 1 else min(size, MAX_PAGE_SIZE)
    ids = _ids(params.get("ids")) if entity.resource == "Contacts" else None
    search = params.get("searchterm", "").strip().lower() if entity.resource == "Contacts" else ""
    summary = entity.resource == "Contacts" and _flag(params, "summaryOnly")
    exempt = policy.modified_since_exempt and since is not None
    if entity.resource == "Contacts" and not exempt and _is_high_volume(org, policy) \
            and (_is_unoptimised(where, order, search) or (not paged and ids is None)):
        raise _high_volume()

    with org.lock:
        store = org.store(entity.entity)
        selected = _select(org, store, entity, where, order, include_archived, since, ids,
                           search, (params.get("where"), params.get("order")))
        total = len(selected)
        if accounts and since is not None and not selected \
                and policy.accounts_not_modified == "304":
            return None
        window = selected[(page - 1) * page_size: page * page_size] if paged else selected
        extras = dict(org.extra_fields.get(entity.entity, {}))
        changes = dict(org.type_changes.get(entity.entity, {}))
        option_extras = dict(org.extra_fields.get("tracking_options", {}))
        option_changes = dict(org.type_changes.get("tracking_options", {}))

    records = [store.full(r) for r in window]  # lazy contacts are built here, outside the lock
    drop: tuple[str, ...] = ()
    if entity.resource == "Contacts":
        drop = (SUMMARY_DROPPED if summary else ()) + (() if paged else PAGED_ONLY)
    items = [shape(r, drop, extras, changes) for r in records]
    if entity.resource == "TrackingCategories":
        items = [_with_options(item, include_archived, option_extras, option_changes)
                 for item in items]
    if _masks_tax_numbers(org, entity, policy):
        items = [_masked(item) for item in items]
    body = _envelope(now, provider_name)
    if paged:
        body["pagination"] = {"page": page, "pageSize": page_size,
                              "pageCount": -(-total // page_size), "itemCount": total}
    body[entity.resource] = items
    return body


def _is_high_volume(org: Organisation, policy: ReadPolicy) -> bool:
    """More contacts (archived included) than the threshold? One len(), not a scan."""
    threshold = policy.high_volume_threshold
    return threshold is not None and len(org.contacts) > threshold


def _is_unoptimised(where: Where | None, order: list[Any], search: str) -> bool:
    """Does a Contacts query filter, order or search outside Xero's optimised fields?"""
    if search:
        return True
    if where is not None and not where.fields <= OPTIMISED_WHERE:
        return True
    return any(key.path[0] not in OPTIMISED_ORDER for key in order)


def _masks_tax_numbers(org: Organisation, entity: _Entity, policy: ReadPolicy) -> bool:
    return (entity.resource == "Contacts" and policy.standard_user
            and org.country_code in MASK_COUNTRIES)


def mask_tax_number(value: str) -> str:
    """Every character but the last four replaced by `*` (Xero's exact mask is unconfirmed)."""
    return "*" * max(0, len(value) - MASK_KEEP) + value[-MASK_KEEP:]


def _masked(contact: dict[str, Any]) -> dict[str, Any]:
    """The contact (a fresh dict from `shape`, so it may be changed) with TaxNumber masked."""
    value = contact.get("TaxNumber")
    if isinstance(value, str) and value:
        contact["TaxNumber"] = mask_tax_number(value)
    return contact


def _parse_where(text: str | None, entity: _Entity) -> Where | None:
    if text is None or text.strip() == "":
        return None
    try:
        return parse_where(text, entity.fields, entity.item, frozenset({entity.key}))
    except QueryParseError as exc:
        raise _query_parse(str(exc)) from exc


def _parse_order(text: str | None, entity: _Entity) -> list[Any]:
    try:
        return parse_order(text if text and text.strip() else entity.default_order,
                           entity.fields, entity.item)
    except QueryParseError as exc:
        raise _query_parse(str(exc)) from exc


def _ids(raw: str | None) -> set[str] | None:
    if raw is None or not raw.strip():
        return None
    ids: set[str] = set()
    for part in raw.split(","):
        try:
            ids.add(str(uuid.UUID(part.strip())))
        except ValueError as exc:
            raise _validation(f"'{part.strip()}' is not a valid ContactID") from exc
    return ids


def _select(org: Organisation, store: Store, entity: _Entity, where: Where | None,
            order: list[Any], include_archived: bool, since: int | None,
            ids: set[str] | None, search: str, raw: tuple[str | None, str | None]
            ) -> list[dict[str, Any]]:
    """Filtered and ordered records (call under the org lock); memoised per store version."""
    cache = org.query_cache
    cache_key = (entity.entity, store.version, raw, include_archived, since,
                 frozenset(ids) if ids is not None else None, search,
                 tuple(sorted(org.type_changes.get(entity.entity, {}).items())))
    hit = cache.get(cache_key)
    if hit is not None:
        return hit
    needs_full = search or (where is not None and not where.fields <= SKELETON_FIELDS) or any(
        key.path[0] not in SKELETON_FIELDS for key in order)
    records: list[dict[str, Any]] = list(store.records.values())
    if needs_full:  # filter and sort built records, keep (and cache) the skeletons
        records = [store.full(r) for r in records]
    changes = org.type_changes.get(entity.entity, {})
    if entity.resource in ("Contacts", "TrackingCategories") and not include_archived:
        status_field = "ContactStatus" if entity.resource == "Contacts" else "Status"
        records = [r for r in records if r.get(status_field) != "ARCHIVED"]
    if ids is not None:
        records = [r for r in records if r[entity.key] in ids]
    if since is not None:
        records = [r for r in records if _updated_second(r) >= since]
    if search:
        records = [r for r in records if _search_hit(r, search)]
    if where is not None:
        view = [shape(r, (), {}, changes) for r in records] if changes else records
        records = [r for r, v in zip(records, view, strict=True) if where.matches(v)]
    records = sort_records(records, order, entity.key)  # type: ignore[arg-type]
    if needs_full:
        records = [store.records[r[entity.key]] for r in records]
    if len(cache) >= _QUERY_CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[cache_key] = records
    return records


def _updated_second(record: Mapping[str, Any]) -> int:
    value = record.get("UpdatedDateUTC")
    return value.ms // 1000 if isinstance(value, wire.MsDate) else -(2**62)


def _search_hit(record: Mapping[str, Any], term: str) -> bool:
    for name in ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"):
        value = record.get(name)
        if isinstance(value, str) and term in value.lower():
            return True
    return False


def _single(org: Organisation, entity: _Entity, subpath: str, params: Mapping[str, str]
            ) -> dict[str, Any] | None:
    with org.lock:
        store = org.store(entity.entity)
        record = store.get(subpath)
        is_guid = False
        if record is None and entity.key.endswith("ID"):
            try:
                record = store.get(str(uuid.UUID(subpath)))
                is_guid = True
            except ValueError:
                record = None
        if record is None and entity.resource == "Contacts" and not is_guid:
            record = next((full for full in map(store.full, store.records.values())
                           if full.get("ContactNumber") == subpath), None)
        if record is None and entity.resource == "TaxRates":
            record = next((r for r in store.records.values()
                           if r["TaxType"].lower() == subpath.lower()), None)
        if record is None:
            return None
        extras = dict(org.extra_fields.get(entity.entity, {}))
        changes = dict(org.type_changes.get(entity.entity, {}))
        option_extras = dict(org.extra_fields.get("tracking_options", {}))
        option_changes = dict(org.type_changes.get("tracking_options", {}))
    item = shape(record, (), extras, changes)
    if entity.resource == "TrackingCategories":
        item = _with_options(item, _flag(params, "includeArchived"), option_extras,
                             option_changes)
    return item


def _with_options(category: dict[str, Any], include_archived: bool,
                  extras: Mapping[str, Any], changes: Mapping[str, str]) -> dict[str, Any]:
    options = category.get("Options")
    if not isinstance(options, list):
        return category
    kept = [o for o in options if include_archived or o.get("Status") != "ARCHIVED"]
    kept = sorted(kept, key=lambda o: (str(o.get("Name", "")).lower(),
                                       str(o.get("TrackingOptionID"))))
    return {**category, "Options": [shape(o, (), extras, changes) for o in kept]}


def _organisation_record(org: Organisation) -> dict[str, Any]:
    with org.lock:
        profile = dict(org.profile)
    profile["Name"] = org.name
    return profile


# --- shaping: dropped fields, added fields, changed types --------------------------------------
def shape(record: Mapping[str, Any], drop: tuple[str, ...], extras: Mapping[str, Any],
          changes: Mapping[str, str]) -> dict[str, Any]:
    """The record as served: without `drop`, plus `extras`, with `changes` (path -> type)."""
    out = {k: v for k, v in record.items() if k != LAZY and k not in drop}
    for name, value in extras.items():
        out.setdefault(name, value)
    for path, type_name in changes.items():
        out = _change_path(out, path.split("."), type_name)
    return out


def _change_path(value: Any, parts: list[str], type_name: str) -> Any:
    if isinstance(value, list):
        return [_change_path(item, parts, type_name) for item in value]
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    copy = dict(value)
    if len(parts) == 1:
        copy[parts[0]] = convert_type(copy[parts[0]], type_name)
    else:
        copy[parts[0]] = _change_path(copy[parts[0]], parts[1:], type_name)
    return copy


def convert_type(value: Any, type_name: str) -> Any:
    """`value` as JSON type `type_name` (string, number, integer, boolean, array, object)."""
    if value is None:
        return None
    if type_name == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, wire.MsDate):
            return value.to_datetime().strftime("%Y-%m-%dT%H:%M:%S")
        if isinstance(value, list | dict):
            return wire.dumps(value).decode()
        return str(value)
    if type_name in ("number", "integer"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, wire.MsDate):
            return value.ms
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return value
        return int(number) if type_name == "integer" else number
    if type_name == "boolean":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)
    if type_name == "array":
        return value if isinstance(value, list) else [value]
    if type_name == "object":
        return value if isinstance(value, dict) else {"Value": value}
    raise ValueError(f"unknown type {type_name!r}")
