"""The data dictionary: what every table, column and view means and where it comes from in Xero,
and `docs/tables.md`, generated from a loaded dlt schema plus these descriptions.

Descriptions are data: one block per table, one line per column, `column | Xero source |
meaning` (the source is `—` for what xero-elt adds itself). Columns are listed in this order in
the document whatever order a load met them in, so the document only changes when the schema or
a description does. A column a load has but this file does not describe is rendered as
**undocumented**, and `--check` fails on it.

    python -m tools.dictionary          # regenerate docs/tables.md
    python -m tools.dictionary --check  # exit 1, saying what drifted
"""
# ruff: noqa: E501 - the descriptions are tables, one line per column, easier to keep whole

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "tables.md"
REGENERATE = "python -m tools.dictionary"
UNDOCUMENTED = "**undocumented**"


@dataclass(frozen=True)
class ColumnDoc:
    """A column's Xero source (`—` when xero-elt adds it) and meaning."""

    source: str
    meaning: str


@dataclass(frozen=True)
class TableDoc:
    """A table: what a row is, where it comes from, and its columns in document order."""

    description: str
    columns: dict[str, ColumnDoc]


def _columns(text: str) -> dict[str, ColumnDoc]:
    """`name | source | meaning` lines into column docs (blank lines ignored)."""
    docs: dict[str, ColumnDoc] = {}
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        name, source, meaning = (part.strip() for part in line.split(" | ", 2))
        docs[name] = ColumnDoc(source, meaning)
    return docs


# Columns that mean the same wherever they appear (a table's own entry wins).
COMMON = _columns("""
tenant_id | xero-tenant-id | The Xero organisation the row belongs to (part of every top-level table's key). Join `organisations` on it for the name.
is_deleted | — | True once the row disappeared from Xero (deleted there); the row keeps its last values. False otherwise.
deleted_at | — | When a run first found the row missing at Xero (UTC); NULL while it exists.
_dlt_valid_from | — | History on (scd2): when this version was loaded (UTC).
_dlt_valid_to | — | History on (scd2): when this version was replaced or removed (UTC); NULL for the current version.
_dlt_load_id | — | The dlt load that wrote the row (see `_dlt_loads`).
_dlt_id | — | dlt's unique row id (random; with history on, a hash of the version, and child rows point at it with `_dlt_parent_id`).
_dlt_parent_id | — | History on only: the parent version's `_dlt_id` (join child to parent version on it).
_dlt_root_id | — | History on only: the top-level row's `_dlt_id` (the same as `_dlt_parent_id` one level down).
_dlt_list_idx | — | History on only: position in the Xero list the row came from (0-based); the same as `position`.
position | — | A child row's 0-based place in its parent's Xero list: with `tenant_id` and the parent's key, the child row's key.
_xero_tombstone | — | Bookkeeping, always empty: a load marks with it the row that clears a parent's list (a supplier that lost its last phone); that row deletes the parent's old rows and is never stored.
""")

_CONTACT = "GET /Contacts?where=IsSupplier==true&includeArchived=true"

TABLES: dict[str, TableDoc] = {
    "suppliers": TableDoc(
        "One row per supplier contact of an organisation (archived ones included): Xero's "
        f"Contacts read with `{_CONTACT}`, incrementally with `If-Modified-Since`, plus a full "
        "reconciliation read once a day. Key `(tenant_id, contact_id)`. Contacts are never "
        "deleted at Xero, only archived (`contact_status`).",
        _columns("""
contact_id | Contact.ContactID | The contact's id at Xero.
name | Contact.Name | The contact's name (unique among active contacts).
contact_status | Contact.ContactStatus | ACTIVE, ARCHIVED (also merged duplicates) or GDPRREQUEST (personal data erased).
is_supplier | Contact.IsSupplier | True once a bill was entered against the contact (computed by Xero).
is_customer | Contact.IsCustomer | True once a sales invoice was entered against the contact.
updated_date_utc | Contact.UpdatedDateUTC | When the contact last changed at Xero (UTC); the incremental cursor. Balances and the supplier/customer flags change without moving it.
contact_number | Contact.ContactNumber | A code from an external system (set through the API only).
account_number | Contact.AccountNumber | A user-defined account number.
first_name | Contact.FirstName | First name of the primary person.
last_name | Contact.LastName | Last name of the primary person.
email_address | Contact.EmailAddress | Email address of the primary person.
company_number | Contact.CompanyNumber | Company registration number.
tax_number | Contact.TaxNumber | Tax number (ABN, GST, VAT or TIN, by country).
tax_number_type | Contact.TaxNumberType | US: SSN, EIN, ITIN or ATIN.
bank_account_details | Contact.BankAccountDetails | Bank account number of the contact.
website | Contact.Website | Website address.
default_currency | Contact.DefaultCurrency | Default currency (ISO 4217 code).
accounts_payable_tax_type | Contact.AccountsPayableTaxType | Default tax on bills: a `tax_rates.tax_type`.
accounts_receivable_tax_type | Contact.AccountsReceivableTaxType | Default tax on sales: a `tax_rates.tax_type`.
purchases_default_account_code | Contact.PurchasesDefaultAccountCode | Default account on bills: an `accounts.code`.
sales_default_account_code | Contact.SalesDefaultAccountCode | Default account on sales: an `accounts.code`.
purchases_default_line_amount_type | Contact.PurchasesDefaultLineAmountType | Bills default to INCLUSIVE, EXCLUSIVE or NONE (tax).
sales_default_line_amount_type | Contact.SalesDefaultLineAmountType | Sales default to INCLUSIVE, EXCLUSIVE or NONE (tax).
payment_terms__bills__day | Contact.PaymentTerms.Bills.Day | Bills are due on this day (meaning set by the type).
payment_terms__bills__type | Contact.PaymentTerms.Bills.Type | DAYSAFTERBILLDATE, DAYSAFTERBILLMONTH, OFCURRENTMONTH or OFFOLLOWINGMONTH.
payment_terms__sales__day | Contact.PaymentTerms.Sales.Day | Sales invoices are due on this day.
payment_terms__sales__type | Contact.PaymentTerms.Sales.Type | As for bills.
balances__accounts_payable__outstanding | Contact.Balances.AccountsPayable.Outstanding | What the organisation owes the contact (contact's currency). Changes without moving `updated_date_utc`, so it may lag until the next reconciliation.
balances__accounts_payable__overdue | Contact.Balances.AccountsPayable.Overdue | The overdue part of it.
balances__accounts_receivable__outstanding | Contact.Balances.AccountsReceivable.Outstanding | What the contact owes the organisation.
balances__accounts_receivable__overdue | Contact.Balances.AccountsReceivable.Overdue | The overdue part of it.
batch_payments__bank_account_number | Contact.BatchPayments.BankAccountNumber | Batch payments: bank account number.
batch_payments__bank_account_name | Contact.BatchPayments.BankAccountName | Batch payments: account name.
batch_payments__details | Contact.BatchPayments.Details | Batch payments: particulars.
batch_payments__code | Contact.BatchPayments.Code | Batch payments: code.
batch_payments__reference | Contact.BatchPayments.Reference | Batch payments: reference.
branding_theme__branding_theme_id | Contact.BrandingTheme.BrandingThemeID | Branding theme used on the contact's documents.
branding_theme__name | Contact.BrandingTheme.Name | Its name.
branding_theme__logo_url | Contact.BrandingTheme.LogoUrl | Its logo.
branding_theme__type | Contact.BrandingTheme.Type | Its type (INVOICE).
branding_theme__sort_order | Contact.BrandingTheme.SortOrder | Its position in Xero's list.
branding_theme__created_date_utc | Contact.BrandingTheme.CreatedDateUTC | When it was created (UTC).
discount | Contact.Discount | Default discount rate, in percent.
merged_to_contact_id | Contact.MergedToContactID | For a merged (archived) duplicate: the `contact_id` it was merged into.
xero_network_key | Contact.XeroNetworkKey | Xero-to-Xero network key.
tracking_category_name | Contact.TrackingCategoryName | Default tracking category (by name).
tracking_category_option | Contact.TrackingCategoryOption | Default tracking option (by name).
has_attachments | Contact.HasAttachments | True when files are attached to the contact.
has_validation_errors | Contact.HasValidationErrors | True when Xero flags validation errors on the contact.
status_attribute_string | Contact.StatusAttributeString | Xero's status text (e.g. ERROR with validation errors).
"""),
    ),
    "suppliers__addresses": TableDoc(
        "A supplier's addresses (Contact.Addresses[]): usually one POBOX and one STREET, even "
        "when empty. Key `(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
address_type | Address.AddressType | POBOX (postal) or STREET.
address_line1 | Address.AddressLine1 | First address line.
address_line2 | Address.AddressLine2 | Second address line.
address_line3 | Address.AddressLine3 | Third address line.
address_line4 | Address.AddressLine4 | Fourth address line.
city | Address.City | Town or city.
region | Address.Region | State, region or county.
postal_code | Address.PostalCode | Postal code.
country | Address.Country | Country.
attention_to | Address.AttentionTo | Attention of.
"""),
    ),
    "suppliers__phones": TableDoc(
        "A supplier's phone numbers (Contact.Phones[]): DEFAULT, DDI, MOBILE and FAX, even when "
        "empty. Key `(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
phone_type | Phone.PhoneType | DEFAULT, DDI, MOBILE, FAX or OFFICE.
phone_number | Phone.PhoneNumber | The number.
phone_area_code | Phone.PhoneAreaCode | Area code.
phone_country_code | Phone.PhoneCountryCode | Country code.
"""),
    ),
    "suppliers__contact_persons": TableDoc(
        "Further people at a supplier (Contact.ContactPersons[]). Key `(tenant_id, "
        "contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
first_name | ContactPerson.FirstName | First name.
last_name | ContactPerson.LastName | Last name.
email_address | ContactPerson.EmailAddress | Email address.
include_in_emails | ContactPerson.IncludeInEmails | True when Xero copies this person on emails.
"""),
    ),
    "suppliers__contact_groups": TableDoc(
        "Contact groups a supplier belongs to (Contact.ContactGroups[]). Key `(tenant_id, "
        "contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
contact_group_id | ContactGroup.ContactGroupID | The group's id.
name | ContactGroup.Name | The group's name.
status | ContactGroup.Status | ACTIVE or DELETED.
"""),
    ),
    "suppliers__attachments": TableDoc(
        "Files attached to a supplier (Contact.Attachments[]), metadata only. Key "
        "`(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
attachment_id | Attachment.AttachmentID | The attachment's id.
file_name | Attachment.FileName | File name.
url | Attachment.Url | Where Xero serves it (needs an access token).
mime_type | Attachment.MimeType | Its MIME type.
content_length | Attachment.ContentLength | Its size in bytes.
include_online | Attachment.IncludeOnline | True when shown with online documents.
"""),
    ),
    "suppliers__purchases_tracking_categories": TableDoc(
        "Default tracking for a supplier's bills (Contact.PurchasesTrackingCategories[]), by "
        "name. Key `(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
tracking_category_name | TrackingCategoryName | The tracking category's name.
tracking_option_name | TrackingOptionName | The option's name.
"""),
    ),
    "suppliers__sales_tracking_categories": TableDoc(
        "Default tracking for a contact's sales (Contact.SalesTrackingCategories[]), by name. "
        "Key `(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
tracking_category_name | TrackingCategoryName | The tracking category's name.
tracking_option_name | TrackingOptionName | The option's name.
"""),
    ),
    "suppliers__validation_errors": TableDoc(
        "Validation errors Xero reports on a contact (Contact.ValidationErrors[]). Key "
        "`(tenant_id, contact_id, position)`; join `suppliers` on `(tenant_id, contact_id)`.",
        _columns("""
contact_id | Contact.ContactID | The supplier the row belongs to.
message | ValidationError.Message | The error.
"""),
    ),
    "accounts": TableDoc(
        "The chart of accounts: one row per account of an organisation, from `GET /Accounts` "
        "(one call, compared with the previous run's snapshot). Key `(tenant_id, account_id)`. "
        "An account deleted at Xero stays with `is_deleted` true; archived ones have status "
        "ARCHIVED.",
        _columns("""
account_id | Account.AccountID | The account's id at Xero.
code | Account.Code | The account code, e.g. `400` (text: leading zeros matter, e.g. `091`).
name | Account.Name | The account's name.
type | Account.Type | E.g. BANK, CURRENT, EXPENSE, OVERHEADS, REVENUE, SALES, DIRECTCOSTS, EQUITY.
class | Account.Class | ASSET, EQUITY, EXPENSE, LIABILITY or REVENUE (derived from the type).
status | Account.Status | ACTIVE or ARCHIVED (DELETED ones disappear from Xero: see `is_deleted`).
tax_type | Account.TaxType | Default tax: a `tax_rates.tax_type`.
description | Account.Description | Description (not on bank accounts).
bank_account_number | Account.BankAccountNumber | Bank accounts: the account number.
bank_account_type | Account.BankAccountType | Bank accounts: BANK, CREDITCARD or PAYPAL.
currency_code | Account.CurrencyCode | Bank accounts: the currency (ISO 4217).
system_account | Account.SystemAccount | For Xero's system accounts: DEBTORS, CREDITORS, GST, RETAINEDEARNINGS, ...
reporting_code | Account.ReportingCode | Reporting code, e.g. EXP or REV.TRA.GOO.
reporting_code_name | Account.ReportingCodeName | The reporting code's name.
enable_payments_to_account | Account.EnablePaymentsToAccount | True when payments can be made to it.
show_in_expense_claims | Account.ShowInExpenseClaims | True when staff can use it in expense claims.
add_to_watchlist | Account.AddToWatchlist | True when shown on the dashboard's watchlist.
has_attachments | Account.HasAttachments | True when files are attached.
updated_date_utc | Account.UpdatedDateUTC | When the account last changed at Xero (UTC).
"""),
    ),
    "tax_rates": TableDoc(
        "One row per tax rate of an organisation, from `GET /TaxRates` (one call, compared with "
        "the previous snapshot). Key `(tenant_id, tax_type)`: tax rates have no GUID. Xero "
        "deletes a tax rate by setting its status to DELETED; the row stays.",
        _columns("""
tax_type | TaxRate.TaxType | The rate's code: built-in ones vary by country (INPUT2, OUTPUT2, NONE, ...), user-made ones look like TAX002.
name | TaxRate.Name | The rate's name.
status | TaxRate.Status | ACTIVE, ARCHIVED, PENDING or DELETED.
report_tax_type | TaxRate.ReportTaxType | How the rate is reported (INPUT, OUTPUT, EXEMPTOUTPUT, ...).
display_tax_rate | TaxRate.DisplayTaxRate | The total rate shown in Xero, in percent (e.g. 15.0000).
effective_rate | TaxRate.EffectiveRate | The rate actually applied, in percent (compound components included).
can_apply_to_assets | TaxRate.CanApplyToAssets | True when usable on asset accounts.
can_apply_to_equity | TaxRate.CanApplyToEquity | True when usable on equity accounts.
can_apply_to_expenses | TaxRate.CanApplyToExpenses | True when usable on expense accounts.
can_apply_to_liabilities | TaxRate.CanApplyToLiabilities | True when usable on liability accounts.
can_apply_to_revenue | TaxRate.CanApplyToRevenue | True when usable on revenue accounts.
"""),
    ),
    "tax_rates__tax_components": TableDoc(
        "The components a tax rate adds up from (TaxRate.TaxComponents[]). Key `(tenant_id, "
        "tax_type, position)`; join `tax_rates` on `(tenant_id, tax_type)`; "
        "`tax_rates_current` sums them.",
        _columns("""
tax_type | TaxRate.TaxType | The tax rate the component belongs to.
name | TaxComponent.Name | The component's name (e.g. GST).
rate | TaxComponent.Rate | Its rate, in percent.
is_compound | TaxComponent.IsCompound | True when applied on top of the simple components.
is_non_recoverable | TaxComponent.IsNonRecoverable | Canada: true when it cannot be reclaimed.
"""),
    ),
    "tracking_categories": TableDoc(
        "One row per tracking category of an organisation (e.g. Region, Department), from "
        "`GET /TrackingCategories?includeArchived=true` (one call shared with the options). "
        "Key `(tenant_id, tracking_category_id)`. Xero allows two active categories.",
        _columns("""
tracking_category_id | TrackingCategory.TrackingCategoryID | The category's id at Xero.
name | TrackingCategory.Name | The category's name.
status | TrackingCategory.Status | ACTIVE or ARCHIVED (deleted ones disappear: see `is_deleted`).
"""),
    ),
    "tracking_options": TableDoc(
        "One row per option of a tracking category (TrackingCategory.Options[]), a table of its "
        "own so a deleted option is marked rather than silently replaced. Key "
        "`(tenant_id, tracking_option_id)`.",
        _columns("""
tracking_option_id | TrackingOption.TrackingOptionID | The option's id at Xero.
tracking_category_id | TrackingCategory.TrackingCategoryID | The category it belongs to (join `tracking_categories`).
name | TrackingOption.Name | The option's name.
status | TrackingOption.Status | ACTIVE or ARCHIVED (deleted ones disappear: see `is_deleted`).
is_active | TrackingOption.IsActive | Xero's flag: status is ACTIVE.
is_archived | TrackingOption.IsArchived | Xero's flag: status is ARCHIVED.
has_validation_errors | TrackingOption.HasValidationErrors | True when Xero flags validation errors.
"""),
    ),
    "sync_runs": TableDoc(
        "One row per run, organisation and entity, written by every `xero-elt run`: how fresh "
        "the data is and what each run cost. Key `(run_id, tenant_id, entity)`.",
        _columns("""
run_id | — | The run (its start time, UTC, and a random suffix).
tenant_id | — | The organisation loaded.
entity | — | suppliers, accounts, tax_rates, tracking_categories or tracking_options.
organisation_name | — | The organisation's name when the run started.
started_at | — | When the run started this entity for this organisation (UTC).
finished_at | — | When it finished (UTC).
rows_loaded | — | Rows written (new, changed or newly deleted).
api_calls | — | Calls made to Xero's Accounting API.
bytes_received | — | Bytes Xero sent in answer, as sent (gzip): what Xero's monthly egress allowance meters.
bytes_decoded | — | The same answers unzipped.
skipped_records | — | Records Xero sent that failed their model and were left out (the log names each).
outcome | — | ok, failed, skipped (not connected) or deferred (daily call budget reached).
error | — | What went wrong, when it did (never a token).
"""),
    ),
    "connections": TableDoc(
        "One row per connection record of xero-elt (an invite and, once confirmed, an "
        "organisation), written by every run from the local store; never a secret. Key "
        "`connection_id`. `organisations` picks one name per tenant from it.",
        _columns("""
connection_id | — | Our connection id (what `xero-elt connections` and `disconnect` show).
tenant_id | Connection.tenantId | The organisation, once the company is confirmed (NULL before, and once purging or purged).
organisation_name | Connection.tenantName | The organisation's name at Xero (once confirmed; NULL once purging or purged).
company | — | The company named in the invite (NULL once purging or purged).
status | — | invited, link_opened, incomplete, connected, needs_reconnection, disconnected, expired, purging (a purge was asked for: no run loads it) or purged (its data removed on request; the record stays as the audit trail, with nothing else about the organisation).
status_reason | — | Why it has that status (e.g. the grant was revoked).
invited_at | — | When the invite was created (UTC).
connected_at | — | When the company was confirmed (UTC).
disconnected_at | — | When it was disconnected (UTC).
last_synced_at | — | When a run last loaded it (UTC).
purged_at | — | When its data was purged on request (UTC); the record stays as the audit trail.
last_sync_rows | — | Rows that run wrote.
last_sync_outcome | — | ok, partial or failed.
purged_at | — | When the organisation was purged (UTC); who asked is in the store (`purged_by`, the API's `GET …/connections/{id}`).
"""),
    ),
    "_xero_memory": TableDoc(
        "Each organisation's memory of its records, kept beside its data instead of in dlt's "
        "state (`connector/memory.py`): which contacts are suppliers, a content hash per "
        "record, a snapshot's last values and when a key was found missing, and per organisation "
        "and entity the run's cursors and flags (`record_id` `~cursors`). Appended in the "
        "load package of the rows it describes; a row counts once its load is in `_dlt_loads` "
        "(the newest per record), runs delete the rest after loading. Read one organisation at "
        "a time; not for analysis (the views never read it).",
        _columns("""
entity | — | The table the record belongs to (suppliers, accounts, tax_rates, tracking_categories, tracking_options).
record_id | — | The record's Xero key (ContactID in lower case, AccountID, TaxType, TrackingCategoryID, TrackingOptionID); `~cursors` for the organisation's cursors and flags of the entity.
member | — | Suppliers: true while the contact is held as a supplier (reconciliation compares it with Xero's list).
hash | — | A content hash of the record as Xero last sent it (suppliers: only near the cursor, to drop re-sent unchanged rows).
updated_at | Contact.UpdatedDateUTC | Suppliers: the record's UpdatedDateUTC when its hash was taken (UTC).
targeted | — | Suppliers: the hash was taken by a webhook-driven read.
found_by | — | Suppliers: the start (Xero's clock) of the full read that found the contact; an interrupted full read resumes with it.
deleted_at | — | Snapshot tables: when the key was found missing at Xero (UTC).
last_values | — | Snapshot tables: the record's last values as Xero sent them (JSON), to mark its deletion with; on a `~cursors` row, the cursors and flags (JSON: the read's cursor, the last whole snapshot, the reconciliation's place).
forget | — | True: the record is forgotten from this row's load on (runs then delete the record's rows).
load_id | — | The dlt load that wrote the row (`_dlt_loads.load_id`): rows of a load that never completed do not count.
"""),
    ),
}

DLT_TABLES = {
    "_dlt_loads": "One row per load (`load_id`, `inserted_at`, `status` 0 = done).",
    "_dlt_pipeline_state": "The pipeline's state: nothing per organisation (the cursors and "
                           "the per-record memory are in `_xero_memory`, loaded with the data); "
                           "runs keep the newest two copies.",
    "_dlt_version": "Every version of the dlt schema the dataset went through.",
}

INTRO = """\
# Tables and views

Generated by `{regenerate}` from the dlt schema of a demo-like load (the sandbox's seed 42: two
organisations with 250 suppliers each, a first run, a few changes at Xero, an incremental run)
and the descriptions in `tools/dictionary.py` (views: `pipelines/analyst.py`). Do not edit
it by hand: change those and regenerate. `tests/pipelines/test_analyst_dictionary.py` fails when
a fresh load and this document drift.

## Conventions

- **Dataset** `xero` (a setting): a schema in PostgreSQL, and a schema inside the DuckDB file
  (`xero_elt.duckdb`, so `SELECT ... FROM xero.suppliers`).
- **Names** are snake_case versions of Xero's: `UpdatedDateUTC` → `updated_date_utc`. Nested
  objects are flattened with `__` (`PaymentTerms.Bills.Day` → `payment_terms__bills__day`);
  lists become child tables named `<table>__<list>` (`suppliers__addresses`).
- **Child tables** are keyed by `tenant_id`, their parent's key under the parent's column name
  (`contact_id`, `tax_type`) and `position`, the row's 0-based place in Xero's list: join
  `suppliers__phones` to `suppliers` on `(tenant_id, contact_id)`. A supplier that loses a phone
  loses its row. Each load of a parent replaces all its child rows. With history on, dlt nests
  the child tables instead: a child row belongs to one version of its parent, joined on
  `child._dlt_parent_id = parent._dlt_id`.
- **Organisations**: every row of every Xero table, child tables included, has `tenant_id`. The
  organisation's name is one join away: `JOIN xero.organisations USING (tenant_id)`.
- **Types** (dlt's names; what DuckDB / PostgreSQL call them):

  | type | DuckDB | PostgreSQL | used for |
  |---|---|---|---|
  | text | VARCHAR | varchar | ids, codes, names, statuses |
  | bool | BOOLEAN | boolean | flags |
  | bigint | BIGINT | bigint | counts, days |
  | decimal | DECIMAL(38,9) | numeric(38,9) | money and rates, exact (Xero sends 2 and 4 decimals) |
  | timestamp | TIMESTAMP WITH TIME ZONE | timestamp with time zone | instants, stored in UTC |

- **Deleted at Xero**: accounts, tracking categories and options that disappear from Xero stay
  with `is_deleted = true` and `deleted_at` (an account within `accounts_snapshot_hours`, 24 by
  default: runs between read only the accounts that changed); tax rates are deleted by
  `status = 'DELETED'`;
  suppliers are never deleted, only archived (`contact_status`). The views leave all of these out.
- **History** (`[sources.xero] history = ["accounts", ...]`): such a table keeps every version
  of a row, with `_dlt_valid_from` and `_dlt_valid_to` (NULL for the current version); the
  current state is `WHERE _dlt_valid_to IS NULL`. The views do that for you.
- **New fields** that Xero starts sending become new columns on the next run (listed here after
  regenerating).
"""


def _type(column: dict[str, Any]) -> str:
    text = str(column.get("data_type", "?"))
    if column.get("primary_key"):
        text += ", key"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def doc_for(table: str, column: str) -> ColumnDoc | None:
    """The description of a table's column, its own or the common one."""
    own = TABLES.get(table)
    if own is not None and column in own.columns:
        return own.columns[column]
    return COMMON.get(column)


def _ordered(table: str, columns: Iterable[str]) -> list[str]:
    """Keys first, then the dictionary's order, then the rest by name; dlt's columns last."""
    present = list(columns)
    own = list(TABLES[table].columns) if table in TABLES else []
    rank: dict[str, int] = {}
    for name in ("tenant_id", *own, "is_deleted", "deleted_at", *COMMON):
        rank.setdefault(name, len(rank))
    return sorted(present, key=lambda c: (c.startswith("_dlt"), rank.get(c, len(rank)), c))


def loaded_columns(schema: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{table: {column: dlt column schema}} of the data tables (dlt's own left out)."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for name, table in schema.tables.items():
        if name.startswith("_dlt"):
            continue
        cols = {c: v for c, v in table.get("columns", {}).items() if v.get("data_type")}
        if cols:
            tables[name] = cols
    return tables


def _table_order(tables: Iterable[str]) -> list[str]:
    known = list(TABLES)
    return sorted(tables, key=lambda t: (known.index(t) if t in known else len(known), t))


def undocumented(schema: Any) -> list[str]:
    """`table.column` (or `table`) the schema has and the dictionary does not describe."""
    missing = []
    for table, columns in loaded_columns(schema).items():
        if table not in TABLES:
            missing.append(table)
        missing += [f"{table}.{c}" for c in columns if doc_for(table, c) is None]
    return sorted(missing)


def render(schema: Any) -> str:
    """The whole document for a loaded dlt schema."""
    from pipelines.analyst import VIEWS

    out = [INTRO.format(regenerate=REGENERATE)]
    out.append("## Views (current state)\n")
    out.append("Created in the dataset after every run, in DuckDB and PostgreSQL alike.\n")
    for view in VIEWS:
        out.append(f"### `{view.name}` (view)\n\n{view.description}\n")
        out.append("| column | type | meaning |\n|---|---|---|")
        out += [f"| `{c.name}` | {c.data_type} | {_cell(c.description)} |" for c in view.columns]
        out.append("")
    out.append("## Tables\n")
    tables = loaded_columns(schema)
    for table in _table_order(tables):
        doc = TABLES.get(table)
        info = schema.tables[table]
        parent = info.get("parent")
        out.append(f"### `{table}`\n")
        out.append(doc.description if doc else UNDOCUMENTED)
        how = f"child table of `{parent}`" if parent else \
            f"loaded with write disposition `{_disposition(info)}`"
        out.append(f"\n_{how}_\n")
        out.append("| column | type | from Xero | meaning |\n|---|---|---|---|")
        for column in _ordered(table, tables[table]):
            col_doc = doc_for(table, column)
            source, meaning = (col_doc.source, col_doc.meaning) if col_doc else ("", UNDOCUMENTED)
            out.append(f"| `{column}` | {_type(tables[table][column])} | {_cell(source)} | "
                       f"{_cell(meaning)} |")
        out.append("")
    out.append("## dlt's own tables\n")
    out += [f"- `{name}`: {text}" for name, text in DLT_TABLES.items()]
    return "\n".join(out) + "\n"


def _disposition(table: dict[str, Any]) -> str:
    disposition = table.get("write_disposition", "append")
    strategy = (table.get("x-merge-strategy") or "")
    return f"{disposition} ({strategy})" if strategy and strategy != "delete-insert" \
        else str(disposition)


_HEADING = re.compile(r"^### `([^`]+)`")
_ROW = re.compile(r"^\| `([^`]+)` \|")


def documented_columns(text: str) -> dict[str, list[str]]:
    """{table or view: [columns]} as a document lists them."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = heading.group(1)
            found[current] = []
        elif current and (row := _ROW.match(line)):
            found[current].append(row.group(1))
    return found


def drift(document: str, fresh: str) -> list[str]:
    """What differs between the document on disk and a fresh rendering, line by line."""
    if document == fresh:
        return []
    have, want = documented_columns(document), documented_columns(fresh)
    problems = []
    for table in sorted(set(have) | set(want)):
        if table not in have:
            problems.append(f"`{table}` is new (not in the document)")
        elif table not in want:
            problems.append(f"`{table}` is in the document but no longer loaded")
        else:
            added = [c for c in want[table] if c not in have[table]]
            removed = [c for c in have[table] if c not in want[table]]
            if added:
                problems.append(f"`{table}`: new columns {', '.join(added)}")
            if removed:
                problems.append(f"`{table}`: columns gone {', '.join(removed)}")
    missing = [line for line in fresh.splitlines() if UNDOCUMENTED in line]
    if missing:
        problems.append(f"{len(missing)} undocumented table(s)/column(s): describe them in "
                        "tools/dictionary.py")
    if not problems:
        problems.append("descriptions or types changed")
    return problems


def command(*, check: bool, sandbox_url: str | None, output: Path | None) -> int:
    """Regenerate (or with `check`, verify) the document from a fresh reference load."""
    from tools.reference_load import reference_load, sandbox_process

    target = output or DOCUMENT
    with tempfile.TemporaryDirectory(prefix="xero-elt-dictionary-") as scratch:
        if sandbox_url:
            load = reference_load(sandbox_url, Path(scratch))
            fresh = render(load.schema)
        else:
            with sandbox_process() as url:
                load = reference_load(url, Path(scratch))
                fresh = render(load.schema)
    missing = undocumented(load.schema)
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    if check:
        problems = drift(current, fresh)
        if problems:
            print(f"{target} is out of date with a fresh load:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            print(f"Regenerate it with `{REGENERATE}` (and describe new columns in "
                  "tools/dictionary.py).", file=sys.stderr)
            return 1
        print(f"{target} matches a fresh load")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(fresh, encoding="utf-8")
    print(f"wrote {target}")
    if missing:
        print("undocumented (describe them in tools/dictionary.py): " + ", ".join(missing),
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.dictionary [--check] [--sandbox URL] [--output PATH]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.dictionary",
                                     description="regenerate docs/tables.md from a fresh "
                                                 "demo-like load")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the document is out of date")
    parser.add_argument("--sandbox", metavar="URL",
                        help="use this running sandbox (freshly reset) instead of starting one")
    parser.add_argument("--output", type=Path, default=None,
                        help="the document (default docs/tables.md)")
    args = parser.parse_args(argv)
    return command(check=args.check, sandbox_url=args.sandbox, output=args.output)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main())
