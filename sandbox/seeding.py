"""Seeding: deterministic organisations, users and records for the sandbox Xero, from the
reference data (``sandbox.reference``) into the world model (``sandbox.world``).

``seed_world(seed, tenants, suppliers, start)`` builds the same world for the same arguments:
organisations in several regions (NZ, AU, GB, US, CA), their users, contacts (suppliers,
customers, archived, merged, GDPR-erased), a chart of accounts, the region's tax rates and
tracking categories. A contact is seeded as a skeleton; ``build_contact_details`` builds the rest
when it is served (and when a mutation changes it).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.reference import (
    BANK_ACCOUNTS,
    CHART,
    CURRENCY_NAMES,
    FIRST_NAMES,
    GROUP_NAMES,
    LAST_NAMES,
    NAME_WORDS,
    ORG_NAMES,
    REGION_ORDER,
    REGIONS,
    STREETS,
    TAX_RATES,
    TRACKING,
    TRADE_WORDS,
    TYPE_CLASS,
    Region,
    TaxSpec,
)
from sandbox.wire import MsDate, datetime_to_ms, money, rate
from sandbox.world import DEFAULT_START, LAZY, Organisation, Store, User, World


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def effective_rate(components: list[dict[str, Any]]) -> Decimal:
    """Simple components add up; compound ones apply on top of the simple total."""
    simple = sum((c["Rate"] for c in components if not c["IsCompound"]), Decimal(0))
    compound = sum((c["Rate"] * (1 + simple / 100) for c in components if c["IsCompound"]),
                   Decimal(0))
    return rate(simple + compound)


def build_tax_rate(spec: TaxSpec) -> dict[str, Any]:
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
