"""The sandbox's world model: organisations and their records, users, and the store that keeps
one entity's records (contacts as cheap skeletons built in full when served).

Records are dicts in Xero's field names and order holding wire-ready values (``wire.MsDate``,
``Decimal`` at Xero's scale). Large worlds stay cheap: a contact is stored as a skeleton (id,
name, status, supplier and customer flags, UpdatedDateUTC) and its remaining fields are built
when served, from a seed of its own (``sandbox.seeding.build_contact_details``), so 100,000
suppliers seed in about a second and take ~100 MB. A mutation stores the full record it changed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_START = datetime(2026, 3, 1, tzinfo=UTC)
LAZY = "_lazy"  # key of a contact skeleton's detail seed; never rendered

# Fields a contact skeleton already holds (enough for status/flag filters, order and paging).
SKELETON_FIELDS = frozenset(
    {"ContactID", "Name", "ContactStatus", "IsSupplier", "IsCustomer", "UpdatedDateUTC",
     "MergedToContactID"}
)


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
