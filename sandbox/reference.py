"""The sandbox's reference data: regions (countries, currencies, cities, tax words), names for
organisations, people and businesses, each region's tax rates, the chart of accounts, bank
accounts and tracking categories, as Xero's demo companies have them. Data only: seeding
(``sandbox.seeding``) turns it into records."""

from __future__ import annotations

from dataclasses import dataclass


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
TaxSpec = tuple[str, str, str, list[tuple[str, str, bool, bool]], str,
                 tuple[bool, bool, bool, bool, bool]]
_EXP = (True, True, True, True, False)
_REV = (True, True, False, True, True)
_ALL = (True, True, True, True, True)
_LIA = (False, False, False, True, False)
_ZRV = (False, False, False, True, True)

TAX_RATES: dict[str, list[TaxSpec]] = {
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
AccountSpec = tuple[str | None, str, str, str, str, tuple[str, str], str, str, str]
CHART: list[AccountSpec] = [
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


# --- tracking categories ----------------------------------------------------------------------
TRACKING: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Region", "ACTIVE", [("North", "ACTIVE"), ("South", "ACTIVE"), ("Central", "ACTIVE"),
                          ("East", "ACTIVE"), ("West (closed)", "ARCHIVED")]),
    ("Department", "ACTIVE", [("Sales", "ACTIVE"), ("Operations", "ACTIVE"),
                              ("Administration", "ACTIVE"), ("Warehouse", "ACTIVE"),
                              ("Marketing (old)", "ARCHIVED")]),
    ("Project (2024)", "ARCHIVED", [("Fit-out", "ARCHIVED"), ("Rebrand", "ARCHIVED"),
                                    ("Website", "ACTIVE")]),
]
