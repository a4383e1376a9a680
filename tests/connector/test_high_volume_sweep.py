"""A high-volume organisation's reconciliation reads a rotating slice of every contact's summary
(issue 25): about 1/``reconcile_sweep_parts`` of them each time, every flag flip found within the
rotation, and contacts added between reconciliations never make a slice skip anyone.

Real loopback HTTP to the sandbox, whose high-volume threshold is lowered so that an organisation
of about 1,200 contacts counts as one (Xero: about 100,000)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.handle import SandboxHandle, XeroGrant, make_grant
from store import open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings

# A sandbox load and a dozen runs each (~10-20 s a test): `make test` runs these.
pytestmark = pytest.mark.slow

PARTS = 5
PAGE = 100  # small pages, so an organisation of ~1,200 contacts has a dozen of them
CONTACTS = "/api.xro/2.0/Contacts"


def _world(sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
           ) -> tuple[SandboxHandle, XeroGrant, Loader, str]:
    """One high-volume organisation, its suppliers loaded by a first (full) read."""
    sandbox = sandbox_factory(tenants=1, suppliers=1000, rate_limits=False)
    sandbox.reset()
    sandbox.settings(high_volume_threshold=100)
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="high volume")
    grant = make_grant(sandbox, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(
        sandbox, grant, page_size=PAGE, reconcile_sweep_parts=PARTS))
    loader.run(entities=["suppliers"])
    return sandbox, grant, loader, grant.tenant_ids[0]


def _contacts(sandbox: SandboxHandle, grant: XeroGrant, tenant: str,
              page_size: int = 1000) -> list[dict[str, Any]]:
    """Every contact's summary in ContactID order, as a high-volume organisation allows it
    (paged, no filter); outside the connector."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        response = httpx.get(
            f"{sandbox.api_url}/Contacts", headers=grant.headers(tenant), timeout=60,
            params={"page": page, "pageSize": page_size, "order": "ContactID ASC",
                    "includeArchived": "true", "summaryOnly": "true"})
        response.raise_for_status()
        records = response.json()["Contacts"]
        out += records
        if len(records) < page_size:
            return out
        page += 1


def _sweep_pages(sandbox: SandboxHandle) -> list[int]:
    """The pages of every contact's summary the connector asked for since the last clear."""
    return [int(r["query"]["page"]) for r in sandbox.requests(path=CONTACTS)
            if r["query"].get("summaryOnly") == "true" and "IDs" not in r["query"]]


def _slices(pages: int) -> list[list[int]]:
    """The pages of each slice of a rotation: slice j ends at page floor(j * pages / parts)."""
    ends = [j * pages // PARTS for j in range(PARTS + 1)]
    return [list(range(ends[j] + 1, ends[j + 1] + 1)) for j in range(PARTS)]


def _bytes(sandbox: SandboxHandle, tenant: str) -> int:
    return int(sandbox.stats()["by_tenant"][tenant]["bytes_out"])


def _supplier_flags(loader: Loader) -> dict[str, bool]:
    return dict(loader.query("select contact_id, is_supplier from suppliers"))


def _flip(sandbox: SandboxHandle, tenant: str, contact: dict[str, Any]) -> bool:
    """Turn a contact's IsSupplier over without moving UpdatedDateUTC; returns the new flag."""
    value = not contact["IsSupplier"]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="make_supplier",
                   id=contact["ContactID"], value=value)
    return value


def _found(loader: Loader, flips: dict[str, bool]) -> set[str]:
    """The flipped contacts whose new flag is loaded."""
    flags = _supplier_flags(loader)
    return {i for i, value in flips.items() if flags.get(i) is value}


def test_one_reconciliation_reads_one_part_of_the_summaries_and_a_rotation_reads_them_all(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader, tenant = _world(sandbox_factory, tmp_path, tmp_home)
    pages = math.ceil(len(_contacts(sandbox, grant, tenant)) / PAGE)
    slices = _slices(pages)
    sandbox.clear_requests()
    _contacts(sandbox, grant, tenant, page_size=PAGE)  # every summary, as each one cost before
    whole = _bytes(sandbox, tenant)

    sandbox.clear_requests()
    stats = loader.run(entities=["suppliers"], reconcile=True)

    assert sum(e.rows for e in stats.entries()) == 0
    assert _sweep_pages(sandbox) == slices[0]
    cost = _bytes(sandbox, tenant)  # the incremental read, and the slice
    assert cost <= whole * (len(slices[0]) / pages) * 1.15, (cost, whole)
    calls = sandbox.requests(path=CONTACTS)
    assert all(r["status"] == 200 and "page" in r["query"] for r in calls)
    assert not [r for r in calls if "IsSupplier" in r["query"].get("where", "")]

    # The next reconciliations read the next slices: one rotation reads every page once.
    for expected in [*slices[1:], slices[0]]:  # ... and starts again
        sandbox.clear_requests()
        loader.run(entities=["suppliers"], reconcile=True)
        assert _sweep_pages(sandbox) == expected


def test_a_flag_flip_in_every_slice_is_found_within_the_rotation_both_ways(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader, tenant = _world(sandbox_factory, tmp_path, tmp_home)
    contacts = _contacts(sandbox, grant, tenant)
    slices = _slices(math.ceil(len(contacts) / PAGE))
    loader.run(entities=["suppliers"], reconcile=True)  # slice 0 read: the sweep moves on

    # In every slice, one contact becomes a supplier and one stops being one (slice 0's just
    # after it was read: the worst case, found only when the rotation comes back to it).
    flips: dict[str, bool] = {}
    by_slice: list[set[str]] = []
    for pages in slices:
        chunk = contacts[(pages[0] - 1) * PAGE:pages[-1] * PAGE]
        chosen = [next(c for c in chunk if c["IsSupplier"] is flag
                       and c["ContactStatus"] == "ACTIVE") for flag in (False, True)]
        by_slice.append({c["ContactID"] for c in chosen})
        for contact in chosen:
            flips[contact["ContactID"]] = _flip(sandbox, tenant, contact)
    assert len(by_slice) == PARTS
    assert not _found(loader, flips)

    found_after: list[set[str]] = []
    for _ in range(PARTS):
        loader.run(entities=["suppliers"], reconcile=True)
        found_after.append(_found(loader, flips))

    assert found_after[-1] == set(flips)
    # Slice by slice: the k-th reconciliation finds slice k's flips, slice 0's come last.
    for k in range(1, PARTS):
        assert found_after[k - 1] == set().union(*by_slice[1:k + 1])
    flags = _supplier_flags(loader)
    assert {flags[i] for i in flips} == {True, False}  # both directions, loaded as such


def test_contacts_added_between_reconciliations_make_no_slice_skip_anyone(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    sandbox, grant, loader, tenant = _world(sandbox_factory, tmp_path, tmp_home)
    contacts = _contacts(sandbox, grant, tenant)
    loader.run(entities=["suppliers"], reconcile=True)  # slice 0 read

    # Flip the contacts on both sides of every page boundary after slice 0, and the last one:
    # where a slice would skip someone if positions moved the wrong way.
    first_unread = _slices(math.ceil(len(contacts) / PAGE))[0][-1] * PAGE
    positions = {p for b in range(first_unread, len(contacts), PAGE) for p in (b - 1, b)}
    positions.add(len(contacts) - 1)
    flips = {contacts[p]["ContactID"]: _flip(sandbox, tenant, contacts[p]) for p in positions}

    # Before every reconciliation, new contacts sort before everyone (ContactID order): every
    # contact not yet read moves forward, across slice boundaries.
    inserted = 0
    rotation_done = False
    for _ in range(PARTS - 1):
        for _ in range(30):
            inserted += 1
            sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                           id=f"00000000-0000-4000-8000-{inserted:012x}",
                           fields={"Name": f"Inserted contact {inserted}"})
        sandbox.clear_requests()
        loader.run(entities=["suppliers"], reconcile=True)
        pages = _sweep_pages(sandbox)
        rotation_done = pages[-1] == math.ceil((len(contacts) + inserted) / PAGE)
    assert rotation_done  # the rotation reached the end within reconcile_sweep_parts

    assert _found(loader, flips) == set(flips)
