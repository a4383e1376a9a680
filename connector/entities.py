"""The entity table: every table the source loads, where it comes from at Xero, how it is keyed.

This is the only list of entities in the project: the source builds one resource per row, the
settings check ``history`` against it, and ``xero-elt run --entities`` chooses from it. The order
is the load order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connector.errors import ConfigurationError
from connector.models import (
    Account,
    Contact,
    TaxRate,
    TrackingCategory,
    TrackingOption,
    XeroModel,
)

TRACKING_PATH = "TrackingCategories"


@dataclass(frozen=True)
class Entity:
    """One table: where it comes from at Xero and how it is keyed."""

    name: str
    path: str  # Accounting API path
    collection: str  # key of the records in Xero's envelope
    model: type[XeroModel]
    key: str  # Xero's key field
    incremental: bool = False  # True: cursor + If-Modified-Since; False: snapshot + diff
    # A snapshot entity Xero also reads with If-Modified-Since: most runs read only what changed,
    # and the whole snapshot (which alone shows deletions) every `accounts_snapshot_hours`.
    modified_since: bool = False
    params: tuple[tuple[str, str], ...] = ()
    comes_with: str | None = None  # selected whenever this other entity is (one call serves both)
    # Xero's lists of records read from it: the child tables `<name>__<list>`, whose keys are
    # declared (a list not named here still gets its keys, as data: connector.child_keys).
    children: tuple[str, ...] = ()


ENTITY_TABLE: dict[str, Entity] = {
    e.name: e
    for e in (
        # Suppliers are read by connector.suppliers (its own query, order and paging).
        Entity("suppliers", "Contacts", "Contacts", Contact, "ContactID", incremental=True,
               children=("Addresses", "Phones", "ContactPersons", "ContactGroups", "Attachments",
                         "PurchasesTrackingCategories", "SalesTrackingCategories")),
        Entity("accounts", "Accounts", "Accounts", Account, "AccountID", modified_since=True),
        Entity("tax_rates", "TaxRates", "TaxRates", TaxRate, "TaxType",
               children=("TaxComponents",)),
        Entity("tracking_categories", TRACKING_PATH, "TrackingCategories", TrackingCategory,
               "TrackingCategoryID", params=(("includeArchived", "true"),)),
        Entity("tracking_options", TRACKING_PATH, "TrackingCategories", TrackingOption,
               "TrackingOptionID", params=(("includeArchived", "true"),),
               comes_with="tracking_categories"),
    )
}

ENTITIES: tuple[str, ...] = tuple(ENTITY_TABLE)


def _snapshot_reads() -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    reads: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {}
    for entity in ENTITY_TABLE.values():
        if not entity.incremental:
            reads.setdefault(entity.path, (entity.path, entity.collection, entity.params))
    return tuple(reads.values())


SNAPSHOT_READS = _snapshot_reads()
"""(path, collection, params) of each call a run makes for the tables read whole, one per Xero
path (tracking options come with their categories): besides the supplier pages, a run makes
``len(SNAPSHOT_READS)`` calls per organisation."""


def select_entities(entities: Iterable[str] | str | None) -> list[str]:
    """The tables to load for a selection (a list or a comma-separated string; None: all).

    ``tracking_categories`` brings ``tracking_options`` along: one call gives both.

    Raises:
        ConfigurationError: an unknown entity is named.
    """
    if entities is None:
        return list(ENTITIES)
    raw = entities.split(",") if isinstance(entities, str) else entities
    names = {e.strip() for e in raw if e.strip()}
    unknown = names - set(ENTITIES)
    if unknown:
        raise ConfigurationError(
            f"unknown entities {sorted(unknown)}; choose from {', '.join(ENTITIES)}"
        )
    names |= {e.name for e in ENTITY_TABLE.values() if e.comes_with in names}
    return [e for e in ENTITIES if e in names]


__all__ = ["ENTITIES", "ENTITY_TABLE", "SNAPSHOT_READS", "TRACKING_PATH", "Entity",
           "select_entities"]
