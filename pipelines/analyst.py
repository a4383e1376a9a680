"""Views of the current state for analysts.

`create_views(pipeline)` runs after every load (`pipelines/run.py`) and (re)creates, in the
pipeline's dataset, one view per question analysts ask first: which suppliers are active, what
the chart of accounts of each organisation is, which tracking options exist, what each tax rate
is. Every view:

- reads only the current version of a row (`_dlt_valid_to IS NULL` when the entity keeps
  history, scd2) and leaves out rows deleted at Xero (`is_deleted`, or `Status = 'DELETED'`,
  which is how Xero deletes tax rates);
- carries `tenant_id` and `organisation_name` (from `connections`, one name per organisation);
- has a fixed column list: a column the load has not seen yet is `NULL` of the right type, so
  the view works before Xero ever sends that field, and `CREATE OR REPLACE` keeps working;
- is skipped while a table it needs does not exist yet (e.g. an entity never loaded).

The SQL is plain enough to run unchanged on DuckDB and PostgreSQL (schema-qualified names, no
catalog, so a DuckDB file keeps working when copied or attached under another name).

The data dictionary (`docs/tables.md`) is a build tool's job: `python -m tools.dictionary`.
"""

# ruff: noqa: S608 - the SQL is built from identifiers (our constants, the destination's catalog),
# quoted by the destination; no value ever goes into it.
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("xero_elt.analyst")

# dlt data types as both DuckDB and PostgreSQL spell them (what dlt creates for each type).
SQL_TYPES = {
    "text": "VARCHAR",
    "bool": "BOOLEAN",
    "bigint": "BIGINT",
    "decimal": "NUMERIC(38,9)",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}


@dataclass(frozen=True)
class ViewColumn:
    """One column of a view: its name, dlt data type and meaning."""

    name: str
    data_type: str
    description: str


class Catalog:
    """The dataset's tables and their columns, as the destination sees them now."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.dataset = client.dataset_name
        rows = client.execute_sql(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s",
            self.dataset,
        )
        self.columns: dict[str, set[str]] = {}
        for table, column in rows or []:
            self.columns.setdefault(str(table), set()).add(str(column))

    def has(self, table: str) -> bool:
        """True when the table exists in the dataset; `table.column`: when that column does."""
        name, _, column = table.partition(".")
        return name in self.columns and (not column or column in self.columns[name])

    def table(self, name: str) -> str:
        """`"dataset"."name"`: schema-qualified, never catalog-qualified."""
        return f"{self.quote(self.dataset)}.{self.quote(name)}"

    def quote(self, identifier: str) -> str:
        """An identifier quoted for this destination."""
        return str(self.client.capabilities.escape_identifier(identifier))

    def pick(self, table: str, alias: str, column: str, data_type: str,
             name: str | None = None) -> str:
        """`alias.column AS name`, or a typed NULL while the table has no such column."""
        out = self.quote(name or column)
        if column in self.columns.get(table, set()):
            return f"{alias}.{self.quote(column)} AS {out}"
        return f"CAST(NULL AS {SQL_TYPES[data_type]}) AS {out}"

    def current(self, table: str, alias: str) -> list[str]:
        """Conditions for the current, not deleted version of a row."""
        cols = self.columns.get(table, set())
        conditions = []
        if "_dlt_valid_to" in cols:
            conditions.append(f"{alias}._dlt_valid_to IS NULL")
        if "is_deleted" in cols:
            conditions.append(f"{alias}.is_deleted IS NOT TRUE")
        if "status" in cols:
            conditions.append(f"COALESCE({alias}.status, '') <> 'DELETED'")
        return conditions

    def organisation_name(self, alias: str) -> tuple[str, str]:
        """(expression, join clause) giving the organisation's name for `alias.tenant_id`."""
        if not all(self.has(need) for need in ORGANISATIONS.requires):
            return "CAST(NULL AS VARCHAR)", ""
        names = _organisations_sql(self)
        join = f"LEFT JOIN ({names}) AS org ON org.tenant_id = {alias}.tenant_id"
        return "org.organisation_name", join


def _where(conditions: Sequence[str]) -> str:
    return ("WHERE " + "\n  AND ".join(conditions)) if conditions else ""


@dataclass(frozen=True)
class View:
    """A view: its name, the tables it needs, what it shows, and how to build its SQL."""

    name: str
    requires: tuple[str, ...]  # tables, or `table.column`
    description: str
    columns: tuple[ViewColumn, ...]
    build: Callable[[Catalog], str]

    def sql(self, catalog: Catalog) -> str:
        """The SELECT behind the view, for this catalog."""
        return self.build(catalog)


# --- the views ---------------------------------------------------------------------------

_TENANT = ViewColumn("tenant_id", "text", "The Xero organisation (tenant) id.")
_ORG = ViewColumn("organisation_name", "text",
                  "The organisation's name, from `connections` (one name per tenant).")


def _organisations_sql(cat: Catalog) -> str:
    table, has = "connections", cat.columns.get("connections", set())
    cols = [
        "c.tenant_id", "c.organisation_name",
        cat.pick(table, "c", "connection_id", "text"),
        cat.pick(table, "c", "status", "text", "connection_status"),
        cat.pick(table, "c", "connected_at", "timestamp"),
        cat.pick(table, "c", "last_synced_at", "timestamp"),
        cat.pick(table, "c", "last_sync_outcome", "text"),
    ]
    # The connected record first, then the most recent one.
    order = [expr for column, expr in (
        ("status", "CASE WHEN c.status = 'connected' THEN 0 ELSE 1 END"),
        ("connected_at", "c.connected_at DESC NULLS LAST"),
        ("connection_id", "c.connection_id"),
    ) if column in has] or ["c.tenant_id"]
    return (
        "SELECT tenant_id, organisation_name, connection_id, connection_status, connected_at,\n"
        "       last_synced_at, last_sync_outcome\n"
        f"FROM (SELECT {', '.join(cols)}, ROW_NUMBER() OVER (PARTITION BY c.tenant_id "
        f"ORDER BY {', '.join(order)}) AS pick\n"
        f"      FROM {cat.table(table)} AS c WHERE c.tenant_id IS NOT NULL) AS ranked\n"
        "WHERE pick = 1"
    )


ORGANISATIONS = View(
    "organisations", ("connections.tenant_id", "connections.organisation_name"),
    "One row per connected (or once connected) organisation: the easy way to put a name on a "
    "`tenant_id`. When an organisation was connected more than once, the connected record wins, "
    "then the most recent.",
    (
        _TENANT,
        ViewColumn("organisation_name", "text", "The organisation's name at Xero."),
        ViewColumn("connection_id", "text", "Our connection record (see `connections`)."),
        ViewColumn("connection_status", "text",
                   "`connected`, `needs_reconnection`, `disconnected`, ..."),
        ViewColumn("connected_at", "timestamp", "When the company was confirmed (UTC)."),
        ViewColumn("last_synced_at", "timestamp", "When a run last loaded it (UTC)."),
        ViewColumn("last_sync_outcome", "text", "`ok`, `partial` or `failed`."),
    ),
    _organisations_sql,
)


def _selection(cat: Catalog, table: str, alias: str,
               columns: Sequence[tuple[str, str] | tuple[str, str, str]]) -> list[str]:
    """`pick` for each (column, type[, output name])."""
    return [cat.pick(table, alias, *spec) for spec in columns]


_SUPPLIER_COLUMNS: tuple[tuple[str, str] | tuple[str, str, str], ...] = (
    ("contact_id", "text"), ("name", "text"), ("contact_number", "text"),
    ("account_number", "text"), ("email_address", "text"), ("first_name", "text"),
    ("last_name", "text"), ("company_number", "text"), ("tax_number", "text"),
    ("default_currency", "text"), ("accounts_payable_tax_type", "text"),
    ("purchases_default_account_code", "text"),
    ("payment_terms__bills__day", "bigint", "bills_due_day"),
    ("payment_terms__bills__type", "text", "bills_due_type"),
    ("balances__accounts_payable__outstanding", "decimal", "payable_outstanding"),
    ("balances__accounts_payable__overdue", "decimal", "payable_overdue"),
    ("updated_date_utc", "timestamp"),
)


def _active_suppliers_sql(cat: Catalog) -> str:
    org, join = cat.organisation_name("s")
    org += " AS organisation_name"
    cols = ["s.tenant_id", org, *_selection(cat, "suppliers", "s", _SUPPLIER_COLUMNS)]
    conditions = ["s.contact_status = 'ACTIVE'", *cat.current("suppliers", "s")]
    if "is_supplier" in cat.columns["suppliers"]:
        # connector.suppliers.is_supplier(..., unknown=True) in SQL: the table holds what the
        # supplier filter chose, and only an explicit false takes a supplier away.
        conditions.append("s.is_supplier IS NOT FALSE")
    return (f"SELECT {', '.join(cols)}\nFROM {cat.table('suppliers')} AS s\n{join}\n"
            f"{_where(conditions)}")


ACTIVE_SUPPLIERS = View(
    "active_suppliers", ("suppliers",),
    "Suppliers that can be used today: `ContactStatus` ACTIVE (not archived, not GDPR-erased), "
    "current version only when suppliers keep history.",
    (
        _TENANT, _ORG,
        ViewColumn("contact_id", "text", "Contact.ContactID."),
        ViewColumn("name", "text", "Contact.Name."),
        ViewColumn("contact_number", "text", "Contact.ContactNumber (an external system's code)."),
        ViewColumn("account_number", "text", "Contact.AccountNumber (user-defined)."),
        ViewColumn("email_address", "text", "Contact.EmailAddress."),
        ViewColumn("first_name", "text", "Contact.FirstName (of the primary person)."),
        ViewColumn("last_name", "text", "Contact.LastName."),
        ViewColumn("company_number", "text", "Contact.CompanyNumber (registration number)."),
        ViewColumn("tax_number", "text", "Contact.TaxNumber (ABN, GST, VAT or TIN)."),
        ViewColumn("default_currency", "text", "Contact.DefaultCurrency (ISO 4217)."),
        ViewColumn("accounts_payable_tax_type", "text",
                   "Contact.AccountsPayableTaxType: a `tax_rates.tax_type` code."),
        ViewColumn("purchases_default_account_code", "text",
                   "Contact.PurchasesDefaultAccountCode: an `accounts.code`."),
        ViewColumn("bills_due_day", "bigint", "Contact.PaymentTerms.Bills.Day."),
        ViewColumn("bills_due_type", "text",
                   "Contact.PaymentTerms.Bills.Type (e.g. DAYSAFTERBILLDATE, OFFOLLOWINGMONTH)."),
        ViewColumn("payable_outstanding", "decimal",
                   "Contact.Balances.AccountsPayable.Outstanding (contact's currency)."),
        ViewColumn("payable_overdue", "decimal", "Contact.Balances.AccountsPayable.Overdue."),
        ViewColumn("updated_date_utc", "timestamp", "Contact.UpdatedDateUTC (UTC)."),
    ),
    _active_suppliers_sql,
)


_ACCOUNT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("account_id", "text"), ("code", "text"), ("name", "text"), ("type", "text"),
    ("class", "text"), ("status", "text"), ("tax_type", "text"), ("description", "text"),
    ("reporting_code", "text"), ("reporting_code_name", "text"), ("system_account", "text"),
    ("bank_account_number", "text"), ("bank_account_type", "text"), ("currency_code", "text"),
    ("enable_payments_to_account", "bool"), ("show_in_expense_claims", "bool"),
    ("updated_date_utc", "timestamp"),
)


def _chart_of_accounts_sql(cat: Catalog) -> str:
    org, join = cat.organisation_name("a")
    org += " AS organisation_name"
    cols = ["a.tenant_id", org, *_selection(cat, "accounts", "a", _ACCOUNT_COLUMNS)]
    return (f"SELECT {', '.join(cols)}\nFROM {cat.table('accounts')} AS a\n{join}\n"
            f"{_where(cat.current('accounts', 'a'))}")


CHART_OF_ACCOUNTS = View(
    "chart_of_accounts", ("accounts",),
    "Each organisation's chart of accounts as it is now: active and archived accounts, deleted "
    "ones left out.",
    (
        _TENANT, _ORG,
        ViewColumn("account_id", "text", "Account.AccountID."),
        ViewColumn("code", "text", "Account.Code (text: leading zeros matter, e.g. `091`)."),
        ViewColumn("name", "text", "Account.Name."),
        ViewColumn("type", "text", "Account.Type (e.g. EXPENSE, REVENUE, BANK)."),
        ViewColumn("class", "text", "Account.Class: ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE."),
        ViewColumn("status", "text", "Account.Status: ACTIVE or ARCHIVED."),
        ViewColumn("tax_type", "text", "Account.TaxType: a `tax_rates.tax_type` code."),
        ViewColumn("description", "text", "Account.Description."),
        ViewColumn("reporting_code", "text", "Account.ReportingCode (e.g. EXP, REV.TRA.GOO)."),
        ViewColumn("reporting_code_name", "text", "Account.ReportingCodeName."),
        ViewColumn("system_account", "text",
                   "Account.SystemAccount (e.g. DEBTORS, CREDITORS; empty for others)."),
        ViewColumn("bank_account_number", "text", "Account.BankAccountNumber (bank accounts)."),
        ViewColumn("bank_account_type", "text", "Account.BankAccountType (bank accounts)."),
        ViewColumn("currency_code", "text", "Account.CurrencyCode (bank accounts)."),
        ViewColumn("enable_payments_to_account", "bool", "Account.EnablePaymentsToAccount."),
        ViewColumn("show_in_expense_claims", "bool", "Account.ShowInExpenseClaims."),
        ViewColumn("updated_date_utc", "timestamp", "Account.UpdatedDateUTC (UTC)."),
    ),
    _chart_of_accounts_sql,
)


def _tracking_options_sql(cat: Catalog) -> str:
    org, join = cat.organisation_name("o")
    org += " AS organisation_name"
    conditions = cat.current("tracking_options", "o")
    if cat.has("tracking_categories"):
        category_filter = _where(
            [c for c in cat.current("tracking_categories", "k") if "_dlt_valid_to" in c])
        categories = (
            f"LEFT JOIN (SELECT k.* FROM {cat.table('tracking_categories')} AS k "
            f"{category_filter}) AS c\n"
            "  ON c.tenant_id = o.tenant_id AND c.tracking_category_id = o.tracking_category_id"
        )
        category_cols = [
            cat.pick("tracking_categories", "c", "name", "text", "category_name"),
            cat.pick("tracking_categories", "c", "status", "text", "category_status"),
        ]
        # An option of a deleted category is gone too.
        conditions += [c for c in cat.current("tracking_categories", "c")
                       if "_dlt_valid_to" not in c]
        category_active = "c.status = 'ACTIVE'" if "status" in cat.columns[
            "tracking_categories"] else "TRUE"
    else:
        categories = ""
        category_cols = ["CAST(NULL AS VARCHAR) AS category_name",
                         "CAST(NULL AS VARCHAR) AS category_status"]
        category_active = "TRUE"
    option_active = "o.status = 'ACTIVE'" if "status" in cat.columns["tracking_options"] \
        else "TRUE"
    cols = [
        "o.tenant_id", org,
        cat.pick("tracking_options", "o", "tracking_category_id", "text"),
        *category_cols,
        cat.pick("tracking_options", "o", "tracking_option_id", "text"),
        cat.pick("tracking_options", "o", "name", "text", "option_name"),
        cat.pick("tracking_options", "o", "status", "text", "option_status"),
        f"COALESCE({option_active} AND {category_active}, FALSE) AS is_active",
    ]
    return (f"SELECT {', '.join(cols)}\nFROM {cat.table('tracking_options')} AS o\n"
            f"{categories}\n{join}\n{_where(conditions)}")


TRACKING_OPTIONS_CURRENT = View(
    "tracking_options_current", ("tracking_options",),
    "Tracking options with their category's name, active and archived, deleted ones (or those "
    "of a deleted category) left out.",
    (
        _TENANT, _ORG,
        ViewColumn("tracking_category_id", "text", "TrackingCategory.TrackingCategoryID."),
        ViewColumn("category_name", "text", "TrackingCategory.Name (e.g. Region)."),
        ViewColumn("category_status", "text", "TrackingCategory.Status: ACTIVE or ARCHIVED."),
        ViewColumn("tracking_option_id", "text", "TrackingOption.TrackingOptionID."),
        ViewColumn("option_name", "text", "TrackingOption.Name (e.g. North)."),
        ViewColumn("option_status", "text", "TrackingOption.Status: ACTIVE or ARCHIVED."),
        ViewColumn("is_active", "bool",
                   "True when both the option and its category are ACTIVE (usable on new "
                   "transactions)."),
    ),
    _tracking_options_sql,
)


_TAX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tax_type", "text"), ("name", "text"), ("status", "text"), ("report_tax_type", "text"),
    ("display_tax_rate", "decimal"), ("effective_rate", "decimal"),
)
def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


_TAX_FLAGS = ("can_apply_to_assets", "can_apply_to_equity", "can_apply_to_expenses",
              "can_apply_to_liabilities", "can_apply_to_revenue")


def _tax_rates_sql(cat: Catalog) -> str:
    org, join = cat.organisation_name("t")
    org += " AS organisation_name"
    components = "tax_rates__tax_components"
    if cat.has(components) and "rate" in cat.columns[components]:
        compound = "is_compound" if "is_compound" in cat.columns[components] \
            else "CAST(FALSE AS BOOLEAN) AS is_compound"
        if "_dlt_parent_id" in cat.columns[components]:
            # With history the components are nested in each version of their tax rate;
            # DISTINCT: a version whose content returns keeps one set of components.
            key, position, on = "_dlt_parent_id", "_dlt_list_idx", "tc._dlt_parent_id = t._dlt_id"
        else:  # a table of its own, keyed by its tax rate's natural key
            key, position = "tenant_id, tax_type", "position"
            on = "tc.tenant_id = t.tenant_id AND tc.tax_type = t.tax_type"
        parts = (
            f"LEFT JOIN (SELECT {key}, SUM(rate) AS component_rate_total, "
            "COUNT(*) AS component_count, BOOL_OR(is_compound) AS has_compound_component "
            f"FROM (SELECT DISTINCT {key}, {position}, rate, {compound} "
            f"FROM {cat.table(components)}) AS d GROUP BY {key}) AS tc\n  ON {on}"
        )
        part_cols = ["tc.component_rate_total AS component_rate_total",
                     "COALESCE(tc.component_count, 0) AS component_count",
                     "COALESCE(tc.has_compound_component, FALSE) AS has_compound_component"]
    else:
        parts = ""
        part_cols = ["CAST(NULL AS NUMERIC(38,9)) AS component_rate_total",
                     "CAST(0 AS BIGINT) AS component_count",
                     "FALSE AS has_compound_component"]
    cols = [
        "t.tenant_id", org, *_selection(cat, "tax_rates", "t", _TAX_COLUMNS), *part_cols,
        *(cat.pick("tax_rates", "t", flag, "bool") for flag in _TAX_FLAGS),
    ]
    return (f"SELECT {', '.join(cols)}\nFROM {cat.table('tax_rates')} AS t\n{parts}\n{join}\n"
            f"{_where(cat.current('tax_rates', 't'))}")


TAX_RATES_CURRENT = View(
    "tax_rates_current", ("tax_rates",),
    "Tax rates in use or archived, with their total and effective rates; deleted rates (Xero "
    "marks them `DELETED`) left out.",
    (
        _TENANT, _ORG,
        ViewColumn("tax_type", "text", "TaxRate.TaxType: the rate's code (e.g. INPUT2, TAX002)."),
        ViewColumn("name", "text", "TaxRate.Name."),
        ViewColumn("status", "text", "TaxRate.Status: ACTIVE, ARCHIVED or PENDING."),
        ViewColumn("report_tax_type", "text", "TaxRate.ReportTaxType."),
        ViewColumn("display_tax_rate", "decimal",
                   "TaxRate.DisplayTaxRate: the total rate shown in Xero, in percent."),
        ViewColumn("effective_rate", "decimal",
                   "TaxRate.EffectiveRate: the rate actually applied (compound components "
                   "included), in percent."),
        ViewColumn("component_rate_total", "decimal",
                   "Sum of TaxRate.TaxComponents[].Rate, in percent (NULL without components)."),
        ViewColumn("component_count", "bigint", "How many components the rate has."),
        ViewColumn("has_compound_component", "bool",
                   "True when a component is compound (applied on top of the others), so the "
                   "effective rate exceeds the plain sum."),
        *(ViewColumn(flag, "bool", f"TaxRate.{_pascal(flag)}.") for flag in _TAX_FLAGS),
    ),
    _tax_rates_sql,
)


def _sync_freshness_sql(cat: Catalog) -> str:
    org, join = cat.organisation_name("r")
    runs = cat.table("sync_runs")
    return (
        f"SELECT r.tenant_id, COALESCE({org}, r.organisation_name) AS "
        "organisation_name, r.entity, r.started_at AS last_run_at, r.outcome AS last_outcome, "
        "r.error AS last_error, ok.last_ok_at, ok.runs_ok\n"
        "FROM (SELECT s.tenant_id, s.organisation_name, s.entity, s.started_at, s.outcome, "
        "s.error, ROW_NUMBER() OVER (PARTITION BY s.tenant_id, s.entity ORDER BY s.started_at "
        f"DESC, s.run_id DESC) AS pick FROM {runs} AS s) AS r\n"
        "LEFT JOIN (SELECT tenant_id, entity, MAX(finished_at) AS last_ok_at, COUNT(*) AS runs_ok "
        f"FROM {runs} WHERE outcome = 'ok' GROUP BY tenant_id, entity) AS ok\n"
        "  ON ok.tenant_id = r.tenant_id AND ok.entity = r.entity\n"
        f"{join}\nWHERE r.pick = 1"
    )


SYNC_FRESHNESS = View(
    "sync_freshness", ("sync_runs",),
    "How fresh each organisation's entities are: the latest run's outcome and the last "
    "successful load, from `sync_runs`.",
    (
        _TENANT, _ORG,
        ViewColumn("entity", "text", "suppliers, accounts, tax_rates, tracking_categories or "
                   "tracking_options."),
        ViewColumn("last_run_at", "timestamp", "When the latest run started this entity (UTC)."),
        ViewColumn("last_outcome", "text", "That run's outcome: ok, failed, skipped, deferred."),
        ViewColumn("last_error", "text", "That run's error, if any."),
        ViewColumn("last_ok_at", "timestamp",
                   "When the last successful load of this entity finished (UTC): the data is "
                   "at least this fresh."),
        ViewColumn("runs_ok", "bigint", "How many runs loaded this entity successfully."),
    ),
    _sync_freshness_sql,
)

VIEWS: tuple[View, ...] = (
    ORGANISATIONS,
    ACTIVE_SUPPLIERS,
    CHART_OF_ACCOUNTS,
    TRACKING_OPTIONS_CURRENT,
    TAX_RATES_CURRENT,
    SYNC_FRESHNESS,
)


def _replace_view(client: Any, catalog: Catalog, view: View) -> None:
    name = catalog.table(view.name)
    select = view.sql(catalog)
    try:
        client.execute_sql(f"CREATE OR REPLACE VIEW {name} AS\n{select}")
    except Exception:
        # PostgreSQL refuses to change a view's column types in place (e.g. a column that was
        # a typed NULL and now comes from the table): drop and create, atomically.
        with client.begin_transaction():
            client.execute_sql(f"DROP VIEW IF EXISTS {name}")
            client.execute_sql(f"CREATE VIEW {name} AS\n{select}")


def create_views(pipeline: Any) -> list[str]:
    """Create or replace the current-state views in the pipeline's dataset; their names.

    A view whose tables do not exist yet is skipped; one that fails is logged and skipped, so
    the others are still created.
    """
    created: list[str] = []
    with pipeline.sql_client() as client:
        catalog = Catalog(client)
        for view in VIEWS:
            if not all(catalog.has(table) for table in view.requires):
                continue
            try:
                _replace_view(client, catalog, view)
            except Exception as exc:
                log.warning("could not create view %s: %s", view.name, " ".join(str(exc).split()))
                continue
            created.append(view.name)
    return created


def drop_views(pipeline: Any) -> list[str]:
    """Drop the views this module creates (those that exist); their names.

    PostgreSQL refuses to drop a table a view depends on, so anything that drops tables (dlt's
    `refresh`, `dlt pipeline drop`) should drop the views first; the next run recreates them.
    """
    dropped: list[str] = []
    with pipeline.sql_client() as client:
        catalog = Catalog(client)
        for view in reversed(VIEWS):
            if catalog.has(view.name):
                client.execute_sql(f"DROP VIEW IF EXISTS {catalog.table(view.name)}")
                dropped.append(view.name)
    return dropped
