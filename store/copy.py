"""Copying one store into another (``xero-elt store copy --to URL``): SQLite to PostgreSQL when
a platform outgrows cron, or back. Every organisation keeps its grant, so nobody is invited again.

What it copies is data (``COPIED``): each table's rows, keyed by primary key; the tokens of a
grant are decrypted with the source's key and encrypted again with the target's
(``XERO_ELT_TARGET_SECRET_KEY``). What it leaves is listed, with the reason, in ``NOT_COPIED``;
every table of the schema is in one of the two (a test holds the list to the migrations).

The rule for a row the target has already: the same row (tokens compared decrypted) is "already
there" and left as it is, which makes a second copy change nothing; a different row under the
same key is a conflict, and the copy refuses before writing anything (neither side wins: a
target that has lived on its own, e.g. refreshed a grant since the first copy, holds the newer
truth, and a source that moved on holds the other). Rows only the target has are kept. Either
every missing row lands, in one transaction, or none does: a new row that collides with a
target row of another key on a unique column (an API key's hash, an invite's token hash) fails
the write as a whole.

The source must be still while it is copied (stop ``xero-elt serve`` and the cron job): the
tables are read one after another, and a grant rotated between the read and the switch-over
would leave the target with a refresh token Xero has already replaced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from store.base import Store
from store.config import SQLITE_PREFIX, open_store
from store.keys import KEY_ENV
from store.records import StoreConfigError, StoreError
from store.sql import Row

TARGET_KEY_ENV = "XERO_ELT_TARGET_SECRET_KEY"


@dataclass(frozen=True)
class Table:
    """One table the copy carries over: its primary key, and its columns encrypted at rest."""

    name: str
    key: tuple[str, ...]
    encrypted: tuple[str, ...] = ()


# In the order they are written: a connection refers to its grant.
COPIED: tuple[Table, ...] = (
    Table("grants", ("grant_id",), ("access_token_enc", "refresh_token_enc")),
    # Copied as they are, invite token hashes included, so an invite link sent before the move
    # still opens on the target.
    Table("connections", ("connection_id",)),
    # Hashes of the keys: copied as they are, so the platform's keys keep working.
    Table("api_keys", ("key_id",)),
    # Today's calls count against the daily budget; without them the target would allow a day's
    # budget again on the day of the move.
    Table("api_usage", ("tenant_id", "day")),
    # The outbox, delivered or not: its history (and what is still to send) moves with it. A
    # delivery lease (``claimed_until``) of the stopped server lapses on its own.
    Table("webhook_events", ("event_id",)),
    Table("xero_events", ("tenant_id", "resource_id", "event_date", "event_type")),
    Table("xero_webhook_health", ("name",)),
    # Jobs and their outcomes (``GET /api/v1/jobs/{id}`` keeps answering). One left running by
    # the stopped server has no heartbeat any more and is closed as failed when next asked.
    Table("jobs", ("job_id",)),
    # A customer's own intervals, and when each entity was last read: without them the target
    # would read every organisation in full on its first run.
    Table("schedule_overrides", ("connection_id", "entity")),
    Table("entity_reads", ("target", "tenant_id", "entity")),
)

NOT_COPIED: Mapping[str, str] = {
    "flows": "short-lived state of a running auth server, minutes to days: OAuth flows in "
             "progress, browser visits and admin sessions (expiring), and its CSRF key (which "
             "the target's server makes for itself). A customer in the middle of a flow opens "
             "the invite link again; an administrator signs in again",
    "store_migrations": "the target's own: opening it applies every schema step",
    "xero_app_budget": "leases of the app's Xero calls of the last minute or so: they expire "
                       "on their own, and the workers moving to the target take fresh ones",
    "xero_app_pause": "a 'no Xero calls before' mark of at most a Retry-After; the target's "
                      "first 429 sets its own",
}


class CopyRefused(StoreError):
    """The copy did not start, and wrote nothing; ``exit_code`` says why (2: configuration)."""

    exit_code = 2


class CopyConflict(CopyRefused):
    """The target holds different rows under keys the source has; nothing was written."""

    exit_code = 1


@dataclass(frozen=True)
class TableCount:
    """What the copy did with one table."""

    table: str
    copied: int
    already_there: int


def target_key(environ: Mapping[str, str] | None = None) -> str:
    """The target's Fernet key from ``XERO_ELT_TARGET_SECRET_KEY``.

    Raises:
        CopyRefused: it is missing or not a Fernet key (the message never quotes it).
    """
    environ = os.environ if environ is None else environ
    key = environ.get(TARGET_KEY_ENV, "").strip()
    if not key:
        raise CopyRefused(
            f"{TARGET_KEY_ENV} is not set: the target store's encryption key (generate one "
            "with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'); nothing was copied")
    try:
        Fernet(key.encode())
    except ValueError:
        raise CopyRefused(f"{TARGET_KEY_ENV} is not a Fernet key (32 url-safe base64-encoded "
                          "bytes); nothing was copied") from None
    return key


def target_url(to: str) -> str:
    """``--to`` as a store URL: ``postgresql://…`` and ``sqlite:///PATH`` as the store setting
    takes them; anything without a scheme is a SQLite file's path."""
    to = to.strip()
    if not to:
        raise CopyRefused("--to needs a store URL: postgresql://… or sqlite:///PATH")
    if "://" not in to:
        return SQLITE_PREFIX + str(Path(to).expanduser().absolute())
    return to


def open_target(to: str, *, key: str, home: Path | str | None = None) -> Store:
    """The target store, migrated to the current schema, with the target's key.

    Raises:
        CopyRefused: the URL is not a store URL.
        StoreError: it cannot be opened or migrated.
    """
    try:
        return open_store(home, url=target_url(to), secret_key=key)
    except StoreConfigError as exc:
        raise CopyRefused(f"--to: {exc}") from None


def _identity(store: Store) -> tuple[Any, ...]:
    """What tells two handles on one store apart from two stores (a path can be spelt many
    ways, a server reached under several names)."""
    if store.backend == "sqlite":
        st = os.stat(store.path)  # type: ignore[attr-defined]
        return ("sqlite", st.st_dev, st.st_ino)
    row = store._read("SELECT current_database() AS db, current_setting('port') AS port,"
                      " pg_postmaster_start_time()::text AS started")[0]
    return ("postgres", row["db"], row["port"], row["started"])


def _plain(value: Any) -> Any:
    """A column value in one shape for both backends (PostgreSQL reads BYTEA as memoryview)."""
    return bytes(value) if isinstance(value, memoryview) else value


def _key_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column] for column in table.key)


def _read_rows(store: Store, table: Table, *, side: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every row of ``table`` by primary key, encrypted columns decrypted (in memory only)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    # Table names come from COPIED, never from input.
    for raw in store._read(f"SELECT * FROM {table.name}"):  # noqa: S608
        row = {column: _plain(value) for column, value in dict(raw).items()}
        for column in table.encrypted:
            row[column] = _decrypted(store, table, row, column, side=side)
        rows[_key_of(table, row)] = row
    return rows


def _decrypted(store: Store, table: Table, row: Row, column: str, *, side: str) -> str:
    try:
        return store._decrypt(row[column])
    except StoreError:
        which = (f"the source's key ({KEY_ENV} or its key file)" if side == "source"
                 else f"{TARGET_KEY_ENV}")
        raise CopyRefused(
            f"{which} cannot decrypt {table.name} {'/'.join(map(str, _key_of(table, row)))} "
            f"in the {side} ({store.where}): it is not the key that row was written with; "
            "nothing was copied") from None


@dataclass
class _Plan:
    table: Table
    columns: list[str]
    missing: list[dict[str, Any]]
    already_there: int


def _plan(source: Store, target: Store, table: Table) -> tuple[_Plan, list[str]]:
    """What to write into ``table``, and the conflicts found (as messages without values)."""
    theirs = _read_rows(source, table, side="source")
    ours = _read_rows(target, table, side="target")
    conflicts = []
    missing = []
    for key, row in theirs.items():
        there = ours.get(key)
        if there is None:
            missing.append(row)
            continue
        differing = sorted(c for c in row if row[c] != there.get(c))
        if differing:
            conflicts.append(f"{table.name} {'/'.join(map(str, key))} "
                             f"(differs in {', '.join(differing)})")
    columns = sorted(next(iter(theirs.values()))) if theirs else []
    return _Plan(table, columns, missing, len(theirs) - len(missing)), conflicts


def _check_stores(source: Store, target: Store) -> None:
    """Refuse a copy of a store into itself."""
    if _identity(source) == _identity(target):
        raise CopyRefused(f"the target {target.where} is the configured store itself; "
                          "nothing was copied")


def copy_store(source: Store, target: Store) -> list[TableCount]:
    """Copy every row of ``COPIED`` from ``source`` into ``target``; what happened per table.

    Raises:
        CopyRefused: the target is the source, or a key cannot decrypt a grant (nothing written).
        CopyConflict: the target holds different rows under the source's keys (nothing written).
        StoreError: a database error (the write is one transaction: nothing landed).
    """
    _check_stores(source, target)
    plans: list[_Plan] = []
    conflicts: list[str] = []
    for table in COPIED:
        plan, found = _plan(source, target, table)
        plans.append(plan)
        conflicts += found
    if conflicts:
        shown = "; ".join(conflicts[:10])
        more = f"; and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        raise CopyConflict(
            f"the target {target.where} holds {len(conflicts)} row(s) that differ from the "
            f"source's under the same key: {shown}{more}. Neither side wins: nothing was "
            "copied (copy into an empty store, or find out which side is current)")
    with target._write() as tx:
        for plan in plans:
            if not plan.missing:
                continue
            names = ", ".join(plan.columns)
            marks = ",".join("?" * len(plan.columns))
            # Column names are the source's own (the same release's schema as the target's).
            sql = f"INSERT INTO {plan.table.name} ({names}) VALUES ({marks})"  # noqa: S608
            for row in plan.missing:
                tx.execute(sql, [_stored(target, plan.table, column, row[column])
                                 for column in plan.columns])
    return [TableCount(p.table.name, len(p.missing), p.already_there) for p in plans]


def _stored(target: Store, table: Table, column: str, value: Any) -> Any:
    """A value as the target keeps it: encrypted columns under the target's key."""
    return target._encrypt(value) if column in table.encrypted else value


def summary(counts: Sequence[TableCount]) -> tuple[int, int]:
    """Rows copied, and rows already there, over every table."""
    return sum(c.copied for c in counts), sum(c.already_there for c in counts)
