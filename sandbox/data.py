"""Deterministic seeded organisations, users and reference data for the sandbox Xero.

`seed_world(seed, tenants, suppliers, start)` builds the same world for the same arguments:
organisations in several regions (NZ, AU, GB, US, CA), their users, contacts (suppliers,
customers, archived, merged, GDPR-erased), a chart of accounts, the region's tax rates and
tracking categories. Records are dicts in Xero's field names and order holding wire-ready
values (`wire.MsDate`, `Decimal` at Xero's scale).

Large worlds stay cheap: a contact is stored as a skeleton (id, name, status, supplier and
customer flags, UpdatedDateUTC) and its remaining fields are built when served, from a seed of
its own, so 100,000 suppliers seed in about a second and take ~100 MB. A mutation stores the
full record it changed.
"""

from __future__ import annotations

import contextlib
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.wire import MsDate, datetime_to_ms, money, rate

DEFAULT_START = datetime(2026, 3, 1, tzinfo=UTC)
LAZY = "_lazy"  # key of a contact skeleton's detail seed; never rendered

# Fields a contact skeleton already holds (enough for status/flag filters, order and paging).
SKELETON_FIELDS = frozenset(
    {"ContactID", "Name", "ContactStatus", "IsSupplier", "IsCustomer", "UpdatedDateUTC",
     "MergedToContactID"}
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Store:
    """One entity's records by key, in insertion order, plus a version bumped by mutations."""

    BUILT_CACHE_SIZE = 10_000  # built contacts kept (~4.5 KB each): whole small worlds, not 100k

    def __init__(self, key: str, builder: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                 ) -> None:
        self.key = key
        self.records: dict[str, dict[str, Any]] = {}
        self.version = 0
        self._builder = builder
        # key -> (the skeleton it was built from, the built record); valid while that skeleton
        # is still the published record. Plain dict operations: safe under the GIL.
        self._built: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        self.records[record[self.key]] = record

    def full(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with every field. A lazy skeleton is built (~50 µs) and kept in a bounded
        cache: 100,000 built contacts would hold ~450 MB. Building reads only the skeleton and
        seed-time context, so it needs no lock."""
        if LAZY not in record or self._builder is None:
            return record
        key = record[self.key]
        hit = self._built.get(key)
        if hit is not None and hit[0] is record:
            return hit[1]
        built = self._builder(record)
        if len(self._built) >= self.BUILT_CACHE_SIZE:
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # a racing reader
                del self._built[next(iter(self._built))]
        self._built[key] = (record, built)
        return built

    def get(self, key: str) -> dict[str, Any] | None:
        record = self.records.get(key)
        return None if record is None else self.full(record)

    def put(self, record: dict[str, Any]) -> None:
        """Publish a new or changed record (copy-on-write: never edit a published dict)."""
        self.records[record[self.key]] = record
        self.version += 1

    def remove(self, key: str) -> None:
        del self.records[key]
        self.version += 1

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class Organisation:
    """One Xero organisation (tenant) and all its data; `lock` guards every mutation."""

    tenant_id: str
    name: str
    country_code: str
    base_currency: str
    short_code: str = ""
    slug: str = ""
    legal_name: str = ""
    timezone: str = ""
    created: datetime = DEFAULT_START
    contacts: Store = field(default_factory=lambda: Store("ContactID"))
    accounts: Store = field(default_factory=lambda: Store("AccountID"))
    tax_rates: Store = field(default_factory=lambda: Store("TaxType"))
    tracking_categories: Store = field(default_factory=lambda: Store("TrackingCategoryID"))
    currencies: list[dict[str, Any]] = field(default_factory=list)
    contact_groups: list[dict[str, Any]] = field(default_factory=list)
    # tracking (category, options) names at seed time, for contacts' tracking defaults
    seed_tracking: list[tuple[str, list[str]]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)  # the /Organisation record
    # add_field: entity -> {field: value}; change_type: entity -> {field: json type name}
    extra_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    type_changes: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    rng_seed: int = 0  # for records created later by mutations
    created_records: int = 0  # how many records mutations have created (seeds their ids)
    # (entity, store version, query...) -> selected records; see accounting._select
    query_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = field(
        default_factory=dict, repr=False, compare=False)

    def store(self, entity: str) -> Store:
        """The Store of `contacts`, `accounts`, `tax_rates` or `tracking_categories`."""
        stores = {"contacts": self.contacts, "accounts": self.accounts,
                  "tax_rates": self.tax_rates, "tracking_categories": self.tracking_categories}
        if entity not in stores:
            raise ValueError(f"unknown entity {entity!r}")
        return stores[entity]


@dataclass
class User:
    """A seeded Xero user who can sign in on the sandbox's consent page."""

    email: str
    password: str
    role: str  # "admin" | "standard"
    tenant_ids: list[str]
    first_name: str
    last_name: str
    xero_userid: str
    # A Standard user whom the organisation allows to connect apps (REFERENCE 0, "Roles"):
    # their grants keep working, with US contacts' TaxNumber masked.
    connect_apps: bool = False


@dataclass
class World:
    """Everything the sandbox serves: organisations by tenant id (seed order) and users."""

    organisations: dict[str, Organisation]
    users: list[User]


# --- regions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    code: str
    country: str
    currency: str
    timezone: str
    version: str
    phone_cc: str
    cities: tuple[tuple[str, str, str], ...]  # city, region, postal code
    suffixes: tuple[str, ...]
    input_tax: str
    output_tax: str
    no_tax: str
    tax_word: str
    foreign: tuple[str, ...]
    fy_end: tuple[int, int]  # day, month
    sales_tax_basis: str
    sales_tax_period: str


REGIONS: dict[str, Region] = {
    "NZ": Region("NZ", "New Zealand", "NZD", "NEWZEALANDSTANDARDTIME", "NZ", "64",
                 (("Wellington", "Wellington", "6011"), ("Auckland", "Auckland", "1010"),
                  ("Christchurch", "Canterbury", "8011"), ("Dunedin", "Otago", "9016"),
                  ("Hamilton", "Waikato", "3204"), ("Nelson", "Nelson", "7010")),
                 ("Limited", "Ltd", "Ltd", "& Co", "Group", "Services"),
                 "INPUT2", "OUTPUT2", "NONE", "GST", ("AUD", "USD", "GBP"), (31, 3),
                 "INVOICE", "TWOMONTHS"),
    "AU": Region("AU", "Australia", "AUD", "AUSEASTERNSTANDARDTIME", "AU", "61",
                 (("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"),
                  ("Brisbane", "QLD", "4000"), ("Perth", "WA", "6000"),
                  ("Adelaide", "SA", "5000"), ("Hobart", "TAS", "7000")),
                 ("Pty Ltd", "Pty Ltd", "Pty Limited", "& Co", "Group", "Services"),
                 "INPUT", "OUTPUT", "BASEXCLUDED", "GST", ("NZD", "USD", "SGD"), (30, 6),
                 "ACCRUALS", "QUARTERLY1"),
    "GB": Region("GB", "United Kingdom", "GBP", "GMTSTANDARDTIME", "UK", "44",
                 (("London", "Greater London", "EC1A 1BB"), ("Manchester", "Greater Manchester",
                  "M1 1AE"), ("Leeds", "West Yorkshire", "LS1 4AP"), ("Bristol", "Bristol",
                  "BS1 4DJ"), ("Edinburgh", "Midlothian", "EH1 1YZ"), ("Cardiff", "Glamorgan",
                  "CF10 1EP")),
                 ("Ltd", "Limited", "LLP", "& Sons", "Group", "Services"),
                 "INPUT2", "OUTPUT2", "NONE", "VAT", ("EUR", "USD"), (31, 3),
                 "ACCRUAL", "QUARTERLY"),
    "US": Region("US", "United States", "USD", "PACIFICSTANDARDTIME", "US", "1",
                 (("San Francisco", "CA", "94103"), ("Austin", "TX", "78701"),
                  ("New York", "NY", "10001"), ("Seattle", "WA", "98101"),
                  ("Chicago", "IL", "60601"), ("Denver", "CO", "80202")),
                 ("Inc", "LLC", "Corp", "& Co", "Group", "Supply Co"),
                 "INPUT", "OUTPUT", "NONE", "Sales Tax", ("CAD", "EUR", "MXN"), (31, 12),
                 "ACCRUAL", "NONE"),
    "CA": Region("CA", "Canada", "CAD", "EASTERNSTANDARDTIME", "GLOBAL", "1",
                 (("Toronto", "ON", "M5H 2N2"), ("Vancouver", "BC", "V6B 2T4"),
                  ("Montreal", "QC", "H2Y 1C6"), ("Calgary", "AB", "T2P 1J9"),
                  ("Ottawa", "ON", "K1P 1J1"), ("Halifax", "NS", "B3J 1S9")),
                 ("Ltd", "Inc", "Corp", "& Co", "Group", "Services"),
                 "INPUT", "OUTPUT", "NONE", "GST", ("USD", "EUR"), (31, 12),
                 "ACCRUAL", "QUARTERLY"),
}
REGION_ORDER = ("NZ", "AU", "GB", "US", "CA")

CURRENCY_NAMES = {
    "NZD": "New Zealand Dollar", "AUD": "Australian Dollar", "USD": "United States Dollar",
    "GBP": "British Pound", "EUR": "Euro", "CAD": "Canadian Dollar", "SGD": "Singapore Dollar",
    "MXN": "Mexican Peso",
}

ORG_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "NZ": (("Kauri Bay Trading Ltd", "kauribay"), ("Tui Street Bakery Ltd", "tuistreet")),
    "AU": (("Wattle & Gum Pty Ltd", "wattlegum"), ("Coral Coast Electrical Pty Ltd", "coralcoast")),
    "GB": (("Thistledown Supplies Ltd", "thistledown"), ("Harbourside Print Ltd", "harbourside")),
    "US": (("Redwood Outfitters Inc", "redwood"), ("Lone Star Kitchens LLC", "lonestar")),
    "CA": (("Maple Ridge Hardware Ltd", "mapleridge"), ("Northern Lights Studio Inc",
                                                          "northernlights")),
}

FIRST_NAMES = (
    "Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Charlotte", "Jack", "Mia", "William",
    "Ava", "James", "Grace", "Lucas", "Sophie", "Henry", "Ruby", "Leo", "Ella", "Mason", "Aroha",
    "Tama", "Priya", "Arjun", "Mei", "Wei", "Sione", "Ana", "Fatima", "Omar", "Zoe", "Ethan",
    "Hannah", "Samuel", "Chloe", "Daniel", "Emily", "Thomas", "Isabella", "Benjamin",
)
LAST_NAMES = (
    "Smith", "Williams", "Brown", "Wilson", "Taylor", "Jones", "Walker", "Ngata", "Patel", "Chen",
    "Singh", "Thompson", "White", "Harris", "Martin", "Anderson", "Clarke", "Young", "King",
    "Wright", "Tane", "Nguyen", "Kumar", "Li", "Fifita", "Roberts", "Hughes", "Campbell", "Reid",
    "Murphy", "O'Brien", "Kelly", "Scott", "Green", "Baker", "Hall", "Lewis", "Evans", "Moore",
)
NAME_WORDS = (
    "Harbour", "Summit", "Riverside", "Ironbark", "Southern", "Pacific", "Kowhai", "Totara",
    "Bluegum", "Granite", "Silverfern", "Coastal", "Meridian", "Northgate", "Westbrook",
    "Highland", "Redcliff", "Oakridge", "Pinnacle", "Lakeside", "Cedar", "Beacon", "Anchor",
    "Falcon", "Evergreen", "Sunrise", "Horizon", "Kingfisher", "Rata", "Matai", "Orchard",
    "Stonebridge", "Clearwater", "Thornbury", "Ashford", "Brightwater", "Copperleaf", "Driftwood",
    "Elmwood", "Fernhill", "Goldcrest", "Hillcrest", "Juniper", "Keystone", "Larchwood",
    "Millstream", "Nettlebed", "Oakhurst", "Parkside", "Quarry", "Rosewood", "Saltmarsh",
    "Tidewater", "Upland", "Valley", "Willowbank", "Yarrow", "Zephyr", "Bayview", "Crossroads",
)
TRADE_WORDS = (
    "Office Supplies", "Plumbing", "Electrical", "Freight", "Couriers", "Catering", "Cleaning",
    "Timber", "Hardware", "Printing", "Signs", "IT Services", "Software", "Consulting",
    "Accounting", "Legal", "Security", "Landscaping", "Packaging", "Engineering", "Logistics",
    "Stationery", "Coffee Roasters", "Fuel", "Tyres", "Electrical Wholesale", "Paints",
    "Roofing", "Scaffolding", "Uniforms", "Waste Services", "Water", "Telecom", "Insurance",
    "Recruitment", "Marketing", "Design", "Builders", "Glass", "Steel", "Fasteners", "Pumps",
    "Refrigeration", "Auto Parts", "Machinery Hire", "Labels", "Textiles", "Produce",
    "Seafood", "Dairy", "Meats", "Beverages", "Medical Supplies", "Lab Supplies", "Furniture",
    "Flooring", "Lighting", "Ventilation", "Pest Control", "Traffic Management",
)
STREETS = (
    "Queen Street", "High Street", "Main Road", "Victoria Avenue", "Station Road",
    "Church Street", "Market Street", "Harbour Road", "George Street", "King Street",
    "Park Lane", "Mill Road", "Bridge Street", "Elizabeth Street", "Wharf Road",
)
GROUP_NAMES = ("Preferred Suppliers", "Freight & Logistics", "Utilities", "Key Customers")


# --- tax rates --------------------------------------------------------------------------------
# (TaxType, Name, ReportTaxType, [(component, rate, compound, non-recoverable)], Status,
#  applies to (assets, equity, expenses, liabilities, revenue))
_TaxSpec = tuple[str, str, str, list[tuple[str, str, bool, bool]], str,
                 tuple[bool, bool, bool, bool, bool]]
_EXP = (True, True, True, True, False)
_REV = (True, True, False, True, True)
_ALL = (True, True, True, True, True)
_LIA = (False, False, False, True, False)
_ZRV = (False, False, False, True, True)

TAX_RATES: dict[str, list[_TaxSpec]] = {
    "NZ": [
        ("INPUT2", "15% GST on Expenses", "INPUT", [("GST", "15", False, False)], "ACTIVE", _EXP),
        ("OUTPUT2", "15% GST on Income", "OUTPUT", [("GST", "15", False, False)], "ACTIVE", _REV),
        ("GSTONIMPORTS", "GST on Imports", "GSTONIMPORTS", [("GST", "0", False, False)],
         "ACTIVE", _LIA),
        ("NONE", "No GST", "NONE", [("GST", "0", False, False)], "ACTIVE", _ALL),
        ("ZERORATED", "Zero Rated", "OUTPUT", [("GST", "0", False, False)], "ACTIVE", _ZRV),
        ("TAX001", "12.5% GST on Expenses (pre Oct 2010)", "INPUT",
         [("GST", "12.5", False, False)], "ARCHIVED", _EXP),
        ("TAX002", "Wine Levy (test)", "INPUT", [("Wine Levy", "2.25", False, False)],
         "DELETED", _EXP),
    ],
    "AU": [
        ("INPUT", "GST on Expenses", "INPUT", [("GST", "10", False, False)], "ACTIVE", _EXP),
        ("OUTPUT", "GST on Income", "OUTPUT", [("GST", "10", False, False)], "ACTIVE", _REV),
        ("CAPEXINPUT", "GST on Capital", "CAPEXINPUT", [("GST", "10", False, False)], "ACTIVE",
         _EXP),
        ("EXEMPTEXPENSES", "GST Free Expenses", "EXEMPTEXPENSES", [("GST", "0", False, False)],
         "ACTIVE", _EXP),
        ("EXEMPTOUTPUT", "GST Free Income", "EXEMPTOUTPUT", [("GST", "0", False, False)],
         "ACTIVE", _REV),
        ("EXEMPTCAPITAL", "GST Free Capital", "EXEMPTCAPITAL", [("GST", "0", False, False)],
         "ACTIVE", _EXP),
        ("EXEMPTEXPORT", "GST Free Exports", "EXEMPTEXPORT", [("GST", "0", False, False)],
         "ACTIVE", _REV),
        ("INPUTTAXED", "Input Taxed", "INPUTTAXED", [("GST", "0", False, False)], "ACTIVE",
         _ALL),
        ("BASEXCLUDED", "BAS Excluded", "BASEXCLUDED", [("GST", "0", False, False)], "ACTIVE",
         _ALL),
        ("GSTONIMPORTS", "GST on Imports", "GSTONIMPORTS", [("GST", "0", False, False)],
         "ACTIVE", _LIA),
        ("TAX001", "GST on Wine Purchases (WET)", "INPUT",
         [("WET", "29", False, False), ("GST", "10", True, False)], "ACTIVE", _EXP),
        ("TAX002", "GST on Expenses (legacy)", "INPUT", [("GST", "10", False, False)],
         "ARCHIVED", _EXP),
        ("TAX003", "Fuel Levy (test)", "INPUT", [("Fuel Levy", "2.25", False, False)],
         "DELETED", _EXP),
    ],
    "GB": [
        ("INPUT2", "20% (VAT on Expenses)", "INPUT", [("VAT", "20", False, False)], "ACTIVE",
         _EXP),
        ("OUTPUT2", "20% (VAT on Income)", "OUTPUT", [("VAT", "20", False, False)], "ACTIVE",
         _REV),
        ("RRINPUT", "5% (VAT on Expenses)", "INPUT", [("VAT", "5", False, False)], "ACTIVE", _EXP),
        ("RROUTPUT", "5% (VAT on Income)", "OUTPUT", [("VAT", "5", False, False)], "ACTIVE",
         _REV),
        ("ZERORATEDINPUT", "Zero Rated Expenses", "ZERORATEDINPUT", [("VAT", "0", False, False)],
         "ACTIVE", _EXP),
        ("ZERORATEDOUTPUT", "Zero Rated Income", "ZERORATEDOUTPUT",
         [("VAT", "0", False, False)], "ACTIVE", _REV),
        ("EXEMPTINPUT", "Exempt Expenses", "EXEMPTINPUT", [("VAT", "0", False, False)], "ACTIVE",
         _EXP),
        ("EXEMPTOUTPUT", "Exempt Income", "EXEMPTOUTPUT", [("VAT", "0", False, False)], "ACTIVE",
         _REV),
        ("NONE", "No VAT", "NONE", [("VAT", "0", False, False)], "ACTIVE", _ALL),
        ("ECZROUTPUT", "Zero Rated EC Goods Income", "ECOUTPUT", [("VAT", "0", False, False)],
         "ACTIVE", _REV),
        ("REVERSECHARGES", "Reverse Charge Expenses (20%)", "REVERSECHARGES",
         [("VAT", "20", False, False)], "ACTIVE", _EXP),
        ("TAX001", "17.5% (VAT on Expenses, 2010)", "INPUT", [("VAT", "17.5", False, False)],
         "ARCHIVED", _EXP),
        ("TAX002", "Plastic Levy (test)", "INPUT", [("Levy", "2.25", False, False)], "DELETED",
         _EXP),
    ],
    "US": [
        ("NONE", "Tax Exempt", "NONE", [("Tax Exempt", "0", False, False)], "ACTIVE", _ALL),
        ("INPUT", "Tax on Purchases", "INPUT", [("Tax on Purchases", "0", False, False)],
         "ACTIVE", _EXP),
        ("OUTPUT", "Tax on Sales", "OUTPUT", [("Tax on Sales", "0", False, False)], "ACTIVE",
         _REV),
        ("TAX001", "California Sales Tax", "USSALESTAX",
         [("State Tax", "6", False, False), ("County Tax", "1.25", False, False),
          ("City Tax", "1.375", False, False)], "ACTIVE", _REV),
        ("TAX002", "Texas Sales Tax", "USSALESTAX",
         [("State Tax", "6.25", False, False), ("City Tax", "2", False, False)], "ACTIVE", _REV),
        ("TAX003", "New York City Sales Tax", "USSALESTAX",
         [("State Tax", "4", False, False), ("City Tax", "4.5", False, False),
          ("MCTD", "0.375", False, False)], "ACTIVE", _REV),
        ("TAX004", "Washington Sales Tax (2019)", "USSALESTAX",
         [("State Tax", "6.5", False, False), ("City Tax", "3.6", False, False)], "ARCHIVED",
         _REV),
        ("TAX005", "State Tax (test)", "USSALESTAX", [("State Tax", "2.25", False, False)],
         "DELETED", _REV),
    ],
    "CA": [
        ("INPUT", "GST on Purchases", "INPUT", [("GST", "5", False, False)], "ACTIVE", _EXP),
        ("OUTPUT", "GST on Sales", "OUTPUT", [("GST", "5", False, False)], "ACTIVE", _REV),
        ("NONE", "Tax Exempt", "NONE", [("Tax Exempt", "0", False, False)], "ACTIVE", _ALL),
        ("TAX001", "HST (ON) on Sales", "OUTPUT", [("HST", "13", False, False)], "ACTIVE", _REV),
        ("TAX002", "GST + PST (BC) on Purchases", "INPUT",
         [("GST", "5", False, False), ("PST", "7", False, True)], "ACTIVE", _EXP),
        ("TAX003", "GST + QST (QC) on Sales", "OUTPUT",
         [("GST", "5", False, False), ("QST", "9.975", False, False)], "ACTIVE", _REV),
        ("TAX004", "GST + QST (QC, before 2013)", "OUTPUT",
         [("GST", "5", False, False), ("QST", "9.5", True, False)], "ARCHIVED", _REV),
        ("TAX005", "Eco Fee (test)", "INPUT", [("Eco Fee", "2.25", False, False)], "DELETED",
         _EXP),
    ],
}


def effective_rate(components: list[dict[str, Any]]) -> Decimal:
    """Simple components add up; compound ones apply on top of the simple total."""
    simple = sum((c["Rate"] for c in components if not c["IsCompound"]), Decimal(0))
    compound = sum((c["Rate"] * (1 + simple / 100) for c in components if c["IsCompound"]),
                   Decimal(0))
    return rate(simple + compound)


def build_tax_rate(spec: _TaxSpec) -> dict[str, Any]:
    """A TaxRate record in Xero's field order."""
    tax_type, name, report, comps, status, applies = spec
    components = [{"Name": c, "Rate": rate(r), "IsCompound": comp, "IsNonRecoverable": nonrec}
                  for c, r, comp, nonrec in comps]
    eff = effective_rate(components)
    return {
        "Name": name, "TaxType": tax_type, "ReportTaxType": report,
        "CanApplyToAssets": applies[0], "CanApplyToEquity": applies[1],
        "CanApplyToExpenses": applies[2], "CanApplyToLiabilities": applies[3],
        "CanApplyToRevenue": applies[4],
        "DisplayTaxRate": eff, "EffectiveRate": eff, "Status": status,
        "TaxComponents": components,
    }


# --- chart of accounts ------------------------------------------------------------------------
TYPE_CLASS = {
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET", "PREPAYMENT": "ASSET", "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY", "PAYG": "LIABILITY", "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE", "DIRECTCOSTS": "EXPENSE", "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE", "OTHERINCOME": "REVENUE", "REVENUE": "REVENUE", "SALES": "REVENUE",
}

# code, name, type, tax ("in"/"out"/"none"), system account, reporting code+name, status,
# description, flags (p=EnablePaymentsToAccount, e=ShowInExpenseClaims, w=AddToWatchlist)
_AccountSpec = tuple[str | None, str, str, str, str, tuple[str, str], str, str, str]
CHART: list[_AccountSpec] = [
    ("200", "Sales", "REVENUE", "out", "", ("REV.TRA.GOO", "Sale of goods"), "ACTIVE",
     "Income from any normal business activity", "w"),
    ("210", "Service Income", "SALES", "out", "", ("REV.TRA.SER", "Rendering of services"),
     "ACTIVE", "Income from services rendered", ""),
    ("260", "Other Revenue", "REVENUE", "out", "", ("REV.OTH", "Other revenue"), "ACTIVE",
     "Any other income that does not relate to normal business activities", ""),
    ("270", "Interest Income", "OTHERINCOME", "none", "", ("REV.INV.INT", "Interest income"),
     "ACTIVE", "Interest income", ""),
    ("300", "Purchases", "DIRECTCOSTS", "in", "", ("EXP.COS.PUR", "Purchases"), "ACTIVE",
     "Goods purchased with the intention of selling these to customers", ""),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "in", "", ("EXP.COS", "Cost of sales"),
     "ACTIVE", "Cost of goods sold by the business", ""),
    ("400", "Advertising", "OVERHEADS", "in", "", ("EXP.ADV", "Advertising"), "ACTIVE",
     "Expenses incurred for advertising while trying to increase sales", "e"),
    ("404", "Bank Fees", "OVERHEADS", "none", "", ("EXP.BAN", "Bank fees"), "ACTIVE",
     "Fees charged by your bank for transactions regarding your bank account(s).", ""),
    ("408", "Cleaning", "OVERHEADS", "in", "", ("EXP", "Expense"), "ACTIVE",
     "Expenses incurred for cleaning business property.", "e"),
    ("412", "Consulting & Accounting", "EXPENSE", "in", "", ("EXP.PRO", "Professional fees"),
     "ACTIVE", "Expenses related to paying consultants", "e"),
    ("416", "Depreciation", "DEPRECIATN", "none", "", ("EXP.DEP", "Depreciation"), "ACTIVE",
     "The amount of the asset's cost allocated as an expense for a period", ""),
    ("420", "Entertainment", "OVERHEADS", "in", "", ("EXP.ENT", "Entertainment"), "ACTIVE",
     "Expenses paid by company for the business but are not deductable", "e"),
    ("425", "Freight & Courier", "EXPENSE", "in", "", ("EXP.FRE", "Freight"), "ACTIVE",
     "Expenses incurred on courier & freight costs", "e"),
    ("429", "General Expenses", "OVERHEADS", "in", "", ("EXP", "Expense"), "ACTIVE",
     "General expenses related to the running of the business.", "e"),
    ("433", "Insurance", "EXPENSE", "in", "", ("EXP.INS", "Insurance"), "ACTIVE",
     "Expenses incurred for insuring the business' assets", ""),
    ("437", "Interest Expense", "OVERHEADS", "none", "", ("EXP.INT", "Interest expense"),
     "ACTIVE", "Any interest expenses paid to your tax authority, business bank accounts or "
     "credit card accounts.", ""),
    ("441", "Legal expenses", "OVERHEADS", "in", "", ("EXP.PRO.LEG", "Legal fees"), "ACTIVE",
     "Expenses incurred on any legal matters", ""),
    ("445", "Light, Power, Heating", "OVERHEADS", "in", "", ("EXP.UTI", "Utilities"), "ACTIVE",
     "Expenses incurred for lighting, powering or heating the premises", "e"),
    ("449", "Motor Vehicle Expenses", "OVERHEADS", "in", "", ("EXP.VEH", "Motor vehicle"),
     "ACTIVE", "Expenses incurred on the running of company motor vehicles", "e"),
    ("453", "Office Expenses", "OVERHEADS", "in", "", ("EXP.OFF", "Office expenses"), "ACTIVE",
     "General expenses related to the running of the business office.", "e"),
    ("461", "Printing & Stationery", "OVERHEADS", "in", "", ("EXP.OFF.PRI", "Printing"),
     "ACTIVE", "Expenses incurred by the entity as a result of printing and stationery", "e"),
    ("469", "Rent", "OVERHEADS", "in", "", ("EXP.REN", "Rent"), "ACTIVE",
     "The payment to lease a building or area.", ""),
    ("473", "Repairs and Maintenance", "OVERHEADS", "in", "", ("EXP.REP", "Repairs"), "ACTIVE",
     "Expenses incurred on a damaged or run down asset that will bring the asset back to its "
     "original condition.", "e"),
    ("477", "Wages and Salaries", "EXPENSE", "none", "", ("EXP.EMP.WAG", "Wages and salaries"),
     "ACTIVE", "Payment to employees in exchange for their resources", ""),
    ("485", "Subscriptions", "OVERHEADS", "in", "", ("EXP.SUB", "Subscriptions"), "ACTIVE",
     "E.g. Magazines, professional bodies", "e"),
    ("489", "Telephone & Internet", "OVERHEADS", "in", "", ("EXP.TEL", "Telephone"), "ACTIVE",
     "Expenditure incurred from any business-related phone calls, phone lines, or internet "
     "connections", "e"),
    ("493", "Travel - National", "OVERHEADS", "in", "", ("EXP.TRA.NAT", "Domestic travel"),
     "ACTIVE", "Expenses incurred from domestic travel which has a business purpose", "e"),
    ("494", "Travel - International", "OVERHEADS", "none", "",
     ("EXP.TRA.INT", "International travel"), "ACTIVE",
     "Expenses incurred from international travel which has a business purpose", "e"),
    ("497", "Bank Revaluations", "OVERHEADS", "none", "BANKCURRENCYGAIN",
     ("EXP.FOR", "Foreign currency gains and losses"), "ACTIVE",
     "Bank account revaluations due for foreign exchange rate changes", ""),
    ("498", "Unrealised Currency Gains", "OVERHEADS", "none", "UNREALISEDCURRENCYGAIN",
     ("EXP.FOR", "Foreign currency gains and losses"), "ACTIVE",
     "Unrealised currency gains on outstanding items", ""),
    ("499", "Realised Currency Gains", "OVERHEADS", "none", "REALISEDCURRENCYGAIN",
     ("EXP.FOR", "Foreign currency gains and losses"), "ACTIVE",
     "Gains or losses made due to currency exchange rate changes", ""),
    ("505", "Income Tax Expense", "EXPENSE", "none", "", ("EXP.INC", "Income tax expense"),
     "ACTIVE", "A percentage of total earnings paid to the government.", ""),
    ("610", "Accounts Receivable", "CURRENT", "none", "DEBTORS",
     ("ASS.CUR.REC.TRA", "Trade receivables"), "ACTIVE",
     "Outstanding invoices the company has issued out to the client but has not yet received "
     "in cash at balance date.", ""),
    ("620", "Prepayments", "PREPAYMENT", "none", "", ("ASS.CUR.REC.PRE", "Prepayments"),
     "ACTIVE", "An expenditure that has been paid for in advance.", ""),
    ("630", "Inventory", "INVENTORY", "none", "", ("ASS.CUR.INY", "Inventories"), "ACTIVE",
     "Value of tracked inventory items for resale.", ""),
    ("710", "Office Equipment", "FIXED", "in", "", ("ASS.NCA.FIX.OWN", "Office equipment"),
     "ACTIVE", "Office equipment that is owned and controlled by the business", ""),
    ("711", "Less Accumulated Depreciation on Office Equipment", "FIXED", "none", "",
     ("ASS.NCA.FIX.OWN.DEP", "Accumulated depreciation"), "ACTIVE",
     "The total amount of office equipment cost that has been consumed by the entity", ""),
    ("720", "Computer Equipment", "FIXED", "in", "", ("ASS.NCA.FIX.OWN", "Office equipment"),
     "ACTIVE", "Computer equipment that is owned and controlled by the business", ""),
    ("750", "Long-term Investments", "NONCURRENT", "none", "", ("ASS.NCA.INV", "Investments"),
     "ACTIVE", "Investments held for more than twelve months", ""),
    ("800", "Accounts Payable", "CURRLIAB", "none", "CREDITORS",
     ("LIA.CUR.PAY", "Trade payables"), "ACTIVE",
     "Outstanding invoices the company has received from suppliers but has not yet paid at "
     "balance date", ""),
    ("801", "Unpaid Expense Claims", "CURRLIAB", "none", "UNPAIDEXPCLM",
     ("LIA.CUR.PAY.EMP", "Unpaid expense claims"), "ACTIVE",
     "Expense claims typically made by employees/shareholder employees still outstanding.", ""),
    ("803", "Wages Payable", "CURRLIAB", "none", "WAGEPAYABLES",
     ("LIA.CUR.PAY.EMP", "Employee payables"), "ACTIVE",
     "Xero automatically updates this account for payroll entries", ""),
    ("820", "{tax} Payable", "CURRLIAB", "none", "GST", ("LIA.CUR.TAX.GST", "{tax}"), "ACTIVE",
     "The balance in this account represents {tax} owed to or from the tax authority.", ""),
    ("821", "{tax} on Imports", "CURRLIAB", "none", "GSTONIMPORTS",
     ("LIA.CUR.TAX.GST", "{tax}"), "ACTIVE", "{tax} paid to customs.", ""),
    ("825", "PAYG Withholdings Payable", "PAYG", "none", "", ("LIA.CUR.TAX.PAY", "PAYG"),
     "ACTIVE", "The amount of PAYE tax that is due to be paid", ""),
    ("830", "Income Tax Payable", "CURRLIAB", "none", "", ("LIA.CUR.TAX.INC", "Income tax"),
     "ACTIVE", "The amount of income tax that is due to be paid", ""),
    ("840", "Historical Adjustment", "CURRLIAB", "none", "HISTORICAL",
     ("LIA.CUR", "Current liabilities"), "ACTIVE",
     "For accountant adjustments", ""),
    ("850", "Suspense", "CURRLIAB", "none", "", ("LIA.CUR", "Current liabilities"), "ACTIVE",
     "An entry that allows an unknown transaction to be entered", ""),
    ("860", "Rounding", "CURRLIAB", "none", "ROUNDING", ("LIA.CUR", "Current liabilities"),
     "ACTIVE", "An adjustment entry to allow for rounding", ""),
    ("877", "Tracking Transfers", "CURRLIAB", "none", "TRACKINGTRANSFERS",
     ("LIA.CUR", "Current liabilities"), "ACTIVE",
     "Transfers between tracking categories", ""),
    ("880", "Owner A Drawings", "CURRLIAB", "none", "", ("EQU.DRA", "Drawings"), "ACTIVE",
     "Withdrawals by the owners", ""),
    ("900", "Loan", "TERMLIAB", "none", "", ("LIA.NCL.LOA", "Loans"), "ACTIVE",
     "Money that has been borrowed from a creditor", ""),
    ("910", "Lease Liability", "LIABILITY", "none", "", ("LIA.NCL.LEA", "Lease liabilities"),
     "ACTIVE", "Long-term lease obligations", ""),
    ("960", "Retained Earnings", "EQUITY", "none", "RETAINEDEARNINGS",
     ("EQU.RET", "Retained earnings"), "ACTIVE",
     "Do not Use", ""),
    ("970", "Owner A Share Capital", "EQUITY", "none", "", ("EQU.SHA", "Share capital"),
     "ACTIVE", "The value of shares purchased by the shareholders", ""),
    ("455", "Motor Vehicle Lease (old)", "OVERHEADS", "in", "", ("EXP.VEH", "Motor vehicle"),
     "ARCHIVED", "Lease payments on the former company vehicle", ""),
    ("465", "Entertainment - Non deductible (old)", "OVERHEADS", "none", "",
     ("EXP.ENT", "Entertainment"), "ARCHIVED", "Replaced by 420", ""),
    ("0455", "Sundry Expenses", "EXPENSE", "in", "", ("EXP", "Expense"), "ARCHIVED",
     "Imported from the previous system", ""),
]

# Bank accounts: code (None = no code, which Xero allows for bank accounts), name, bank type,
# currency (None = base), number, flags
BANK_ACCOUNTS: list[tuple[str | None, str, str, str | None, str, str]] = [
    ("090", "Business Bank Account", "BANK", None, "0209087654321050", "pw"),
    ("091", "Business Savings Account", "BANK", None, "0209087654321051", ""),
    ("092", "Company Credit Card", "CREDITCARD", None, "4024000000001234", "p"),
    ("093", "{fx} Account", "BANK", "fx", "0209087654322070", ""),
    (None, "PayPal", "PAYPAL", None, "accounts@{slug}.test", ""),
    ("095", "Old Cheque Account", "BANK", None, "0209087654300001", "archived"),
]


# --- seeding ----------------------------------------------------------------------------------
def seed_world(seed: int = 42, tenants: int = 2, suppliers: int = 250,
               start: datetime | None = None) -> World:
    """Deterministic: same args -> same ids, names, values.

    `suppliers` per organisation (archived included); there are also some non-supplier
    contacts. `start` = the sandbox clock's start; records' UpdatedDateUTC fall before it.
    """
    if tenants < 1:
        raise ValueError("tenants must be at least 1")
    if suppliers < 0:
        raise ValueError("suppliers must not be negative")
    start = (start or DEFAULT_START).astimezone(UTC)
    rng = random.Random(seed)
    organisations: dict[str, Organisation] = {}
    users: list[User] = []
    for index in range(tenants):
        org_seed = rng.getrandbits(64)
        org = _seed_organisation(index, org_seed, suppliers, start)
        organisations[org.tenant_id] = org
        users.extend(_seed_users(random.Random(org_seed ^ 0x5EED), org))
    advisor_rng = random.Random(seed * 7919 + 1)
    users.append(User(
        email="advisor@ledgerworks.test", password=_password(advisor_rng), role="admin",
        tenant_ids=list(organisations), first_name="Morgan", last_name="Adviser",
        xero_userid=_uuid(advisor_rng)))
    return World(organisations=organisations, users=users)


def counts(org: Organisation) -> dict[str, int]:
    """Record counts of one organisation, archived (and visible DELETED tax rates) included."""
    with org.lock:
        contacts = list(org.contacts.records.values())
        categories = list(org.tracking_categories.records.values())
        return {
            "contacts": len(contacts),
            "suppliers": sum(1 for c in contacts if c.get("IsSupplier") is True),
            "accounts": len(org.accounts),
            "tax_rates": len(org.tax_rates),
            "tracking_categories": len(categories),
            "tracking_options": sum(len(c.get("Options") or []) for c in categories),
        }


def _password(rng: random.Random) -> str:
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "Sbx-" + "".join(rng.choice(alphabet) for _ in range(12))


def _seed_users(rng: random.Random, org: Organisation) -> list[User]:
    admin_first, admin_last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    staff_first, staff_last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return [
        User(email=f"admin@{org.slug}.test", password=_password(rng), role="admin",
             tenant_ids=[org.tenant_id], first_name=admin_first, last_name=admin_last,
             xero_userid=_uuid(rng)),
        User(email=f"staff@{org.slug}.test", password=_password(rng), role="standard",
             tenant_ids=[org.tenant_id], first_name=staff_first, last_name=staff_last,
             xero_userid=_uuid(rng)),
    ]


def _org_identity(index: int) -> tuple[str, str, str]:
    country = REGION_ORDER[index % len(REGION_ORDER)]
    names = ORG_NAMES[country]
    round_ = index // len(REGION_ORDER)
    name, slug = names[round_ % len(names)]
    if round_ >= len(names):
        suffix = round_ // len(names) + 1
        name, slug = f"{name} {suffix}", f"{slug}{suffix}"
    return country, name, slug


_SHORT_CODE_CHARS = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _seed_organisation(index: int, org_seed: int, suppliers: int, start: datetime
                       ) -> Organisation:
    rng = random.Random(org_seed)
    country, name, slug = _org_identity(index)
    region = REGIONS[country]
    created = start - timedelta(days=400 + rng.randrange(900), seconds=rng.randrange(86_400))
    created = created.replace(microsecond=(rng.randrange(1000) * 1000))
    org = Organisation(
        tenant_id=_uuid(rng), name=name, country_code=country, base_currency=region.currency,
        short_code="!" + "".join(rng.choice(_SHORT_CODE_CHARS) for _ in range(5)),
        slug=slug, legal_name=name, timezone=region.timezone, created=created,
        rng_seed=org_seed,
    )
    org.currencies = [{"Code": code, "Description": CURRENCY_NAMES[code]}
                      for code in (region.currency, *region.foreign)]
    _seed_tax_rates(org)
    _seed_accounts(org, rng, start)
    _seed_tracking(org, rng)
    org.seed_tracking = [(c["Name"], [o["Name"] for o in c["Options"] if o["Status"] == "ACTIVE"])
                         for c in org.tracking_categories.records.values()
                         if c["Status"] == "ACTIVE"]
    org.contact_groups = [{"ContactGroupID": _uuid(rng), "Name": group, "Status": "ACTIVE",
                           "Contacts": []} for group in GROUP_NAMES]
    org.contacts = Store("ContactID", builder=lambda skel: build_contact_details(org, skel))
    _seed_contacts(org, rng, suppliers, start)
    org.profile = _organisation_profile(org, rng)
    return org


def _seed_tax_rates(org: Organisation) -> None:
    for spec in TAX_RATES[org.country_code]:
        org.tax_rates.add(build_tax_rate(spec))


def tax_codes(org: Organisation) -> dict[str, str]:
    """The region's tax codes for purchases, sales and no tax."""
    region = REGIONS[org.country_code]
    return {"in": region.input_tax, "out": region.output_tax, "none": region.no_tax}


def _seed_accounts(org: Organisation, rng: random.Random, start: datetime) -> None:
    region = REGIONS[org.country_code]
    taxes = tax_codes(org)
    base_ms = datetime_to_ms(org.created)  # a chart imported at sign-up shares one timestamp
    fx = region.foreign[0]
    for code, name, bank_type, currency, number, flags in BANK_ACCOUNTS:
        name = name.replace("{fx}", fx)
        record: dict[str, Any] = {"AccountID": _uuid(rng)}
        if code is not None:
            record["Code"] = code
        record.update({
            "Name": name, "Status": "ARCHIVED" if "archived" in flags else "ACTIVE",
            "Type": "BANK", "TaxType": taxes["none"], "Class": "ASSET",
            "EnablePaymentsToAccount": "p" in flags, "ShowInExpenseClaims": False,
            "BankAccountNumber": number.replace("{slug}", org.slug),
            "BankAccountType": bank_type,
            "CurrencyCode": fx if currency == "fx" else org.base_currency,
            "ReportingCode": "ASS.CUR.CAS.BAN", "ReportingCodeName": "Cash at bank",
            "HasAttachments": False,
            "UpdatedDateUTC": MsDate(_later(rng, base_ms, start, 0.5)),
            "AddToWatchlist": "w" in flags,
        })
        org.accounts.add(record)
    for code, name, type_, tax, system, (rcode, rname), status, desc, flags in CHART:
        word = region.tax_word
        record = {"AccountID": _uuid(rng), "Code": code, "Name": name.replace("{tax}", word),
                  "Status": status, "Type": type_, "TaxType": taxes[tax],
                  "Description": desc.replace("{tax}", word), "Class": TYPE_CLASS[type_]}
        if system:
            record["SystemAccount"] = system
        record.update({
            "EnablePaymentsToAccount": "p" in flags, "ShowInExpenseClaims": "e" in flags,
            "BankAccountType": "", "ReportingCode": rcode,
            "ReportingCodeName": rname.replace("{tax}", word),
            "HasAttachments": rng.random() < 0.05,
            "UpdatedDateUTC": MsDate(_later(rng, base_ms, start,
                                            0.9 if status == "ARCHIVED" else 0.25)),
            "AddToWatchlist": "w" in flags,
        })
        org.accounts.add(record)


def _later(rng: random.Random, base_ms: int, start: datetime, chance: float) -> int:
    """Mostly `base_ms` (ties on purpose); with `chance` a later edit before `start`."""
    if rng.random() >= chance:
        return base_ms
    end_ms = datetime_to_ms(start) - 60_000
    return base_ms + rng.randrange(max(1, end_ms - base_ms))


TRACKING: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Region", "ACTIVE", [("North", "ACTIVE"), ("South", "ACTIVE"), ("Central", "ACTIVE"),
                          ("East", "ACTIVE"), ("West (closed)", "ARCHIVED")]),
    ("Department", "ACTIVE", [("Sales", "ACTIVE"), ("Operations", "ACTIVE"),
                              ("Administration", "ACTIVE"), ("Warehouse", "ACTIVE"),
                              ("Marketing (old)", "ARCHIVED")]),
    ("Project (2024)", "ARCHIVED", [("Fit-out", "ARCHIVED"), ("Rebrand", "ARCHIVED"),
                                    ("Website", "ACTIVE")]),
]


def build_option(option_id: str, name: str, status: str) -> dict[str, Any]:
    """A TrackingOption as nested in GET /TrackingCategories."""
    return {"TrackingOptionID": option_id, "Name": name, "Status": status,
            "HasValidationErrors": False, "IsDeleted": status == "DELETED",
            "IsArchived": status == "ARCHIVED", "IsActive": status == "ACTIVE"}


def _seed_tracking(org: Organisation, rng: random.Random) -> None:
    for name, status, options in TRACKING:
        org.tracking_categories.add({
            "Name": name, "Status": status, "TrackingCategoryID": _uuid(rng),
            "Options": [build_option(_uuid(rng), opt, opt_status) for opt, opt_status in options],
        })


# --- contacts ---------------------------------------------------------------------------------
def _seed_contacts(org: Organisation, rng: random.Random, suppliers: int, start: datetime
                   ) -> None:
    """Skeletons: suppliers (some archived, merged, erased), then customers and others."""
    customers = max(3, suppliers // 5)
    start_ms = datetime_to_ms(start)
    year_ms = 365 * 86_400_000
    used: dict[str, int] = {}
    words, trades = NAME_WORDS, TRADE_WORDS
    suffixes = REGIONS[org.country_code].suffixes
    firsts, lasts = FIRST_NAMES, LAST_NAMES
    rand, randrange, getrandbits = rng.random, rng.randrange, rng.getrandbits
    active_suppliers: list[str] = []
    previous_ms = start_ms - year_ms
    add = org.contacts.add
    total = suppliers + customers
    for index in range(total):
        is_supplier = index < suppliers
        roll = rand()
        if roll < 0.12:
            updated = previous_ms  # same timestamp as the previous one: a bulk import
        else:
            updated = start_ms - 60_000 - randrange(year_ms)
            if roll < 0.3:
                updated -= updated % 1000
        previous_ms = updated
        if rand() < 0.15:
            name = f"{firsts[randrange(len(firsts))]} {lasts[randrange(len(lasts))]}"
        else:
            name = (f"{words[randrange(len(words))]} {trades[randrange(len(trades))]} "
                    f"{suffixes[randrange(len(suffixes))]}")
        seen = used.get(name)
        if seen is None:
            used[name] = 1
        else:
            used[name] = seen + 1
            name = f"{name} ({seen + 1})"
        status = "ACTIVE"
        merged_to = None
        if is_supplier:
            pick = rand()
            if index == 3 or (index > 8 and pick < 0.05):
                status = "ARCHIVED"
            elif (index == 5 or (index > 8 and pick < 0.07)) and active_suppliers:
                status = "ARCHIVED"
                merged_to = active_suppliers[randrange(len(active_suppliers))]
                name = f"{name} (duplicate)"
            elif index == 7 or (index > 8 and pick < 0.075):
                status = "GDPRREQUEST"
            is_customer = rand() < 0.1
        else:
            is_customer = rand() < 0.9 or index == suppliers
            if rand() < 0.06:
                status = "ARCHIVED"
        if status == "GDPRREQUEST":
            name = "Erased contact " + str(index + 1)
        contact_id = str(uuid.UUID(int=getrandbits(128), version=4))
        skeleton: dict[str, Any] = {
            "ContactID": contact_id, "ContactStatus": status, "Name": name,
            "UpdatedDateUTC": MsDate(updated), "IsSupplier": is_supplier,
            "IsCustomer": is_customer, LAZY: getrandbits(63),
        }
        if merged_to is not None:
            skeleton["MergedToContactID"] = merged_to
        if is_supplier and status == "ACTIVE":
            active_suppliers.append(contact_id)
        add(skeleton)


def _domain(name: str, slug_rng: random.Random) -> str:
    word = "".join(ch for ch in name.lower().split(" (")[0] if ch.isalnum())[:24]
    return f"{word or 'contact'}{slug_rng.randrange(10, 99)}.test"


def _address(r: random.Random, region: Region, kind: str, filled: bool, attention: str = ""
             ) -> dict[str, Any]:
    if not filled:
        if kind == "POBOX":
            return {"AddressType": kind, "AddressLine1": "", "AddressLine2": "",
                    "AddressLine3": "", "AddressLine4": "", "City": "", "Region": "",
                    "PostalCode": "", "Country": ""}
        return {"AddressType": kind, "City": "", "Region": "", "PostalCode": "", "Country": ""}
    city, reg, postcode = region.cities[r.randrange(len(region.cities))]
    if kind == "POBOX":
        line1 = f"PO Box {r.randrange(10, 99999)}"
    else:
        line1 = f"{r.randrange(1, 400)} {STREETS[r.randrange(len(STREETS))]}"
    address: dict[str, Any] = {"AddressType": kind, "AddressLine1": line1}
    if r.random() < 0.25:
        address["AddressLine2"] = f"Unit {r.randrange(1, 40)}"
    if r.random() < 0.05:
        address["AddressLine3"] = "Level 2"
        address["AddressLine4"] = "Rear entrance"
    address.update({"City": city, "Region": reg, "PostalCode": postcode,
                    "Country": region.country})
    if attention:
        address["AttentionTo"] = attention
    return address


def _phone(r: random.Random, region: Region, kind: str, filled: bool) -> dict[str, Any]:
    if not filled:
        return {"PhoneType": kind, "PhoneNumber": "", "PhoneAreaCode": "",
                "PhoneCountryCode": ""}
    return {"PhoneType": kind, "PhoneNumber": f"{r.randrange(200, 999)}-{r.randrange(1000, 9999)}",
            "PhoneAreaCode": str(r.randrange(2, 99)),
            "PhoneCountryCode": region.phone_cc if r.random() < 0.5 else ""}


def _tax_number(r: random.Random, country: str, person: bool) -> tuple[str, str | None]:
    if country == "NZ":
        return f"{r.randrange(10, 140):03d}-{r.randrange(100, 999)}-{r.randrange(100, 999)}", None
    if country == "AU":
        digits = f"{r.randrange(10**10, 10**11)}"
        return f"{digits[:2]} {digits[2:5]} {digits[5:8]} {digits[8:]}", None
    if country == "GB":
        return f"GB{r.randrange(10**8, 10**9)}", None
    if country == "US":
        if person:
            return (f"{r.randrange(100, 899)}-{r.randrange(10, 99)}-{r.randrange(1000, 9999)}",
                    "SSN")
        return f"{r.randrange(10, 99)}-{r.randrange(10**6, 10**7)}", "EIN"
    return f"{r.randrange(10**8, 10**9)}RT0001", None


def _bank_details(r: random.Random, country: str) -> str:
    if country == "NZ":
        return (f"{r.randrange(1, 38):02d}-{r.randrange(1000, 9999)}-"
                f"{r.randrange(10**6, 10**7):07d}-{r.randrange(0, 99):02d}")
    if country == "AU":
        return f"{r.randrange(10, 99)}{r.randrange(1000, 9999)} {r.randrange(10**7, 10**8)}"
    if country == "GB":
        return f"{r.randrange(10, 99)}-{r.randrange(10, 99)}-{r.randrange(10, 99)} " \
               f"{r.randrange(10**7, 10**8)}"
    if country == "US":
        return f"{r.randrange(10**8, 10**9)} {r.randrange(10**9, 10**10)}"
    return f"{r.randrange(10**4, 10**5)}-{r.randrange(100, 999)} {r.randrange(10**6, 10**7)}"


def _amount(r: random.Random, chance: float, top: int) -> Decimal:
    if r.random() >= chance:
        return money(0)
    return money(Decimal(r.randrange(100, top * 100)) / 100)


def build_contact_details(org: Organisation, skeleton: dict[str, Any]) -> dict[str, Any]:
    """A full contact in Xero's field order, from its skeleton and its own detail seed."""
    r = random.Random(skeleton[LAZY])
    region = REGIONS[org.country_code]
    taxes = tax_codes(org)
    status = skeleton["ContactStatus"]
    erased = status == "GDPRREQUEST"
    supplier, customer = skeleton["IsSupplier"], skeleton["IsCustomer"]
    name = skeleton["Name"]
    first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
    person = (not erased and " " in name and len(name.split()) == 2
              and name.split()[0] in FIRST_NAMES)
    if person:
        first, last = name.split()
    domain = _domain(name, r)
    c: dict[str, Any] = {"ContactID": skeleton["ContactID"]}
    if not erased and r.random() < 0.35:
        c["ContactNumber"] = f"{'SUP' if supplier else 'CUS'}-{r.randrange(1, 99999):05d}"
    if not erased and r.random() < 0.4:
        c["AccountNumber"] = f"{r.randrange(1000, 999999)}"
    c["ContactStatus"] = status
    c["Name"] = name
    if not erased and (person or r.random() < 0.7):
        c["FirstName"], c["LastName"] = first, last
    if not erased and not person and r.random() < 0.3:
        c["CompanyNumber"] = f"{r.randrange(10**6, 10**8)}"
    if erased:
        c["EmailAddress"] = ""
    elif r.random() < 0.85:
        c["EmailAddress"] = (f"{first.lower()}@{domain}" if person or r.random() < 0.3
                             else f"accounts@{domain}")
    else:
        c["EmailAddress"] = ""
    c["BankAccountDetails"] = "" if erased or r.random() < 0.4 else _bank_details(r, region.code)
    if not erased and r.random() < 0.7:
        number, number_type = _tax_number(r, region.code, person)
        c["TaxNumber"] = number
        if number_type:
            c["TaxNumberType"] = number_type
    if customer and r.random() < 0.8:
        c["AccountsReceivableTaxType"] = taxes["out"]
    if supplier and r.random() < 0.8:
        c["AccountsPayableTaxType"] = taxes["in"] if r.random() < 0.9 else taxes["none"]
    attention = f"{first} {last}" if r.random() < 0.2 else ""
    c["Addresses"] = [
        _address(r, region, "STREET", not erased and r.random() < 0.5),
        _address(r, region, "POBOX", not erased and r.random() < 0.65, attention),
    ]
    phone_default = not erased and r.random() < 0.75
    c["Phones"] = [
        _phone(r, region, "DDI", not erased and r.random() < 0.15),
        _phone(r, region, "DEFAULT", phone_default),
        _phone(r, region, "FAX", not erased and r.random() < 0.05),
        _phone(r, region, "MOBILE", not erased and r.random() < 0.35),
    ]
    c["UpdatedDateUTC"] = skeleton["UpdatedDateUTC"]
    groups = org.contact_groups
    c["ContactGroups"] = ([dict(groups[r.randrange(len(groups))])]
                          if not erased and r.random() < 0.2 else [])
    c["IsSupplier"] = supplier
    c["IsCustomer"] = customer
    if not erased and r.random() < 0.6:
        c["SalesDefaultLineAmountType"] = r.choice(("INCLUSIVE", "EXCLUSIVE", "EXCLUSIVE"))
        c["PurchasesDefaultLineAmountType"] = r.choice(("INCLUSIVE", "EXCLUSIVE", "NONE"))
    if not erased and r.random() < 0.9:
        c["DefaultCurrency"] = (org.base_currency if r.random() < 0.9
                                else region.foreign[r.randrange(len(region.foreign))])
    if not erased and r.random() < 0.03:
        c["XeroNetworkKey"] = f"{r.getrandbits(64):016x}"
    if customer and not erased and r.random() < 0.2:
        c["Discount"] = money(r.choice((2.5, 5, 7.5, 10)))
    if not erased and r.random() < 0.3:
        c["Website"] = f"https://www.{domain.replace('.test', '.example')}"
    if customer and not erased and r.random() < 0.3:
        c["BrandingTheme"] = {
            "BrandingThemeID": str(uuid.UUID(int=org.rng_seed & ((1 << 128) - 1), version=4)),
            "Name": "Standard", "LogoUrl": f"https://in.xero.com/logo?id={org.slug}",
            "Type": "INVOICE", "SortOrder": 0,
            "CreatedDateUTC": MsDate(datetime_to_ms(org.created)),
        }
    if supplier and not erased and r.random() < 0.8:
        c["PurchasesDefaultAccountCode"] = r.choice(("300", "310", "429", "453", "461", "489"))
    if customer and not erased and r.random() < 0.8:
        c["SalesDefaultAccountCode"] = r.choice(("200", "210", "260"))
    tracking = org.seed_tracking
    if tracking and not erased and r.random() < 0.1:
        cat_name, option_names = tracking[r.randrange(len(tracking))]
        opt_name = option_names[r.randrange(len(option_names))] if option_names else ""
        pair = {"TrackingCategoryName": cat_name, "TrackingOptionName": opt_name}
        c["SalesTrackingCategories"] = [pair] if customer else []
        c["PurchasesTrackingCategories"] = [dict(pair)] if supplier else []
        if r.random() < 0.3:
            c["TrackingCategoryName"] = cat_name
            c["TrackingCategoryOption"] = opt_name
    if supplier and not erased and r.random() < 0.4:
        c["BatchPayments"] = {
            "BankAccountNumber": c["BankAccountDetails"] or _bank_details(r, region.code),
            "BankAccountName": name[:30], "Details": "Supplier payment",
            "Code": "", "Reference": f"INV{r.randrange(100, 9999)}",
        }
    c["Balances"] = {
        "AccountsReceivable": {"Outstanding": _amount(r, 0.5 if customer else 0, 20000),
                               "Overdue": _amount(r, 0.2 if customer else 0, 5000)},
        "AccountsPayable": {"Outstanding": _amount(r, 0.6 if supplier else 0, 30000),
                            "Overdue": _amount(r, 0.2 if supplier else 0, 8000)},
    }
    if not erased and r.random() < 0.5:
        terms: dict[str, Any] = {}
        if supplier:
            terms["Bills"] = {"Day": r.choice((7, 14, 20, 30)),
                              "Type": r.choice(("DAYSAFTERBILLDATE", "OFFOLLOWINGMONTH",
                                                "DAYSAFTERBILLMONTH"))}
        if customer or r.random() < 0.3:
            terms["Sales"] = {"Day": r.choice((7, 14, 20)),
                              "Type": r.choice(("DAYSAFTERBILLDATE", "OFCURRENTMONTH",
                                                "OFFOLLOWINGMONTH"))}
        c["PaymentTerms"] = terms
    if "MergedToContactID" in skeleton:
        c["MergedToContactID"] = skeleton["MergedToContactID"]
    persons: list[dict[str, Any]] = []
    if not erased and not person:
        for _ in range(r.choice((0, 0, 0, 1, 1, 2))):
            pf, pl = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
            local = f"{pf.lower()}.{pl.lower().replace(chr(39), '')}"
            persons.append({"FirstName": pf, "LastName": pl,
                            "EmailAddress": f"{local}@{domain}",
                            "IncludeInEmails": r.random() < 0.5})
    c["ContactPersons"] = persons
    has_attachments = not erased and r.random() < 0.03
    c["HasAttachments"] = has_attachments
    if has_attachments:
        file_name = f"w9-{r.randrange(1000, 9999)}.pdf"
        c["Attachments"] = [{
            "AttachmentID": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "FileName": file_name,
            "Url": f"https://api.xero.com/api.xro/2.0/Contacts/{c['ContactID']}/Attachments/"
                   f"{file_name}",
            "MimeType": "application/pdf", "ContentLength": r.randrange(10_000, 900_000),
            "IncludeOnline": False,
        }]
    c["HasValidationErrors"] = False
    if r.random() < 0.02:
        c["StatusAttributeString"] = "OK"
    return c


def _organisation_profile(org: Organisation, rng: random.Random) -> dict[str, Any]:
    region = REGIONS[org.country_code]
    city, reg, postcode = region.cities[0]
    tax_number, _ = _tax_number(rng, org.country_code, person=False)
    return {
        "APIKey": "", "Name": org.name, "LegalName": org.legal_name, "PaysTax": True,
        "Version": region.version, "OrganisationType": "COMPANY",
        "BaseCurrency": org.base_currency, "CountryCode": org.country_code,
        "IsDemoCompany": False, "OrganisationStatus": "ACTIVE",
        "RegistrationNumber": f"{rng.randrange(10**6, 10**8)}", "TaxNumber": tax_number,
        "FinancialYearEndDay": region.fy_end[0], "FinancialYearEndMonth": region.fy_end[1],
        "SalesTaxBasis": region.sales_tax_basis, "SalesTaxPeriod": region.sales_tax_period,
        "DefaultSalesTax": "Tax Exclusive", "DefaultPurchasesTax": "Tax Inclusive",
        "CreatedDateUTC": MsDate(datetime_to_ms(org.created)), "OrganisationEntityType": "COMPANY",
        "Timezone": org.timezone, "ShortCode": org.short_code, "OrganisationID": org.tenant_id,
        "Edition": "BUSINESS", "Class": "STANDARD",
        "LineOfBusiness": "Wholesale trade",
        "Addresses": [
            {"AddressType": "STREET", "AddressLine1": f"{rng.randrange(1, 300)} "
             f"{STREETS[rng.randrange(len(STREETS))]}", "City": city, "Region": reg,
             "PostalCode": postcode, "Country": region.country},
            {"AddressType": "POBOX", "AddressLine1": f"PO Box {rng.randrange(10, 9999)}",
             "City": city, "Region": reg, "PostalCode": postcode, "Country": region.country},
        ],
        "Phones": [{"PhoneType": "OFFICE", "PhoneNumber": f"{rng.randrange(200, 999)}-"
                    f"{rng.randrange(1000, 9999)}", "PhoneAreaCode": "4",
                    "PhoneCountryCode": region.phone_cc}],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }
