"""`xero-elt purge --connection ID [--yes] [--wait SECONDS]`: remove one organisation everywhere.

What a purge removes (docs/reliability.md, "Purge", lists it with what stays and why):

1. the destination, for every destination named (``--destination``, repeatable; default the
   configured one): the organisation's rows in every table with a ``tenant_id`` column, in the
   dataset and in dlt's staging dataset (``<dataset>_staging``, which keeps the last merge's
   rows); every copy of dlt's state in ``_dlt_pipeline_state`` rewritten without the
   organisation's entries, and the rows of its own pipeline (``per_organisation`` layout) deleted;
2. this machine's dlt working folders (every pipeline under ``XERO_ELT_HOME/pipelines``, whatever
   destination it loads): the organisation's entries in ``state.json``, its own pipeline folder,
   the loaded packages (their ``.restore`` copies of the state), dlt's ``trace.pickle``, and any
   load package a killed run left (aborted: dlt rolls the state back, the other organisations'
   data is read from Xero again);
3. our own files: the first-sync, sync and targeted-sync logs of the connection, its invite
   emails in the outbox, and its entries in ``runs.jsonl`` (the run's figures stay, the
   organisation's id, name and errors go);
4. the store: tokens (at Xero too, the grant revoked when nothing else uses it), Xero's webhook
   events and call counts of the organisation, its fields in the webhook outbox's events; the
   connection record stays as the audit trail (status ``purged``, ``purged_at``, ``purged_by``)
   with no tenant id, organisation name, company or email.

Purge and runs exclude each other: the connection is marked ``purging`` first (no run selects it
any more, and a run already under way drops it before it loads, see ``pipelines/loading.py``);
then the purge takes this machine's run lock and the organisation's lock (waiting up to
``--wait``) and each dataset's load turn, the same locks in the same order as a run. Every step is
idempotent: a purge that failed (a destination down, a lock not freed in time) leaves the
connection ``purging`` and can simply run again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines import exitcodes
from pipelines.layout import BATCHES, remove_dead_batches

log = logging.getLogger("xero_elt.purge")

STATE_TABLE = "_dlt_pipeline_state"
# How long a purge waits for a run of the organisation (or this machine's shared run) to finish.
DEFAULT_WAIT_SECONDS = 900.0
REDACTED = "[purged]"


def add_parser(sub: Any) -> None:
    """Add `purge` to the command tree."""
    purge = sub.add_parser("purge", help="remove an organisation's data, dlt state and tokens")
    purge.add_argument("--connection", required=True, metavar="ID",
                       help="the connection_id `xero-elt connections` shows")
    purge.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    purge.add_argument("--destination", action="append", dest="destinations", metavar="NAME",
                       help="purge this destination (repeatable; default the configured one)")
    purge.add_argument("--dataset", help="dataset (schema) name (default xero)")
    purge.add_argument("--wait", type=float, default=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                       help="wait this long for a run of the organisation to finish "
                            f"(default {DEFAULT_WAIT_SECONDS:.0f})")
    purge.add_argument("--by", default=None, metavar="WHO",
                       help="who asked, for the audit record (default the OS user)")


def drop_tenant(node: Any, tenant_id: str) -> int:
    """Remove every dict entry keyed by ``tenant_id`` under ``node``; how many were removed."""
    removed = 0
    if isinstance(node, dict):
        if tenant_id in node:
            del node[tenant_id]
            removed += 1
        for value in node.values():
            removed += drop_tenant(value, tenant_id)
    elif isinstance(node, list):
        for value in node:
            removed += drop_tenant(value, tenant_id)
    return removed


# -- 1. the destination ---------------------------------------------------------------------------

def _tenant_tables(client: Any, schema: str) -> list[str]:
    rows = client.execute_sql(  # base tables only: the analyst views follow them
        "SELECT DISTINCT c.table_name FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
        " AND t.table_name = c.table_name WHERE c.table_schema = %s"
        " AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'", schema)
    return sorted(str(table) for (table,) in rows or [])


def _delete_rows(client: Any, tenant_id: str) -> dict[str, int]:
    """Delete the organisation's rows from every tenant table of the client's current dataset."""
    deleted: dict[str, int] = {}
    for table in _tenant_tables(client, client.dataset_name):
        name = client.make_qualified_table_name(table)
        before = client.execute_sql(
            f"SELECT count(*) FROM {name} WHERE tenant_id = %s", tenant_id)  # noqa: S608
        client.execute_sql(f"DELETE FROM {name} WHERE tenant_id = %s", tenant_id)  # noqa: S608
        deleted[table] = int(before[0][0]) if before else 0
    return deleted


def _rewrite_state_rows(client: Any, tenant_id: str, own_pipeline: str) -> int:
    """Every copy of dlt's state in the dataset, without the organisation; how many changed."""
    from dlt.common.versioned_state import compress_state, decompress_state

    has_state = client.execute_sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s"
        " AND table_name = %s", client.dataset_name, STATE_TABLE)
    if not has_state or not has_state[0][0]:
        return 0
    table = client.make_qualified_table_name(STATE_TABLE)
    changed = client.execute_sql(
        f"SELECT count(*) FROM {table} WHERE pipeline_name = %s", own_pipeline)  # noqa: S608
    client.execute_sql(f"DELETE FROM {table} WHERE pipeline_name = %s",  # noqa: S608
                       own_pipeline)
    count = int(changed[0][0]) if changed else 0
    keys = client.execute_sql(f"SELECT pipeline_name, version, _dlt_load_id FROM {table}")  # noqa: S608
    for pipeline_name, version, load_id in keys or []:
        # One copy at a time: with 1,000 organisations a copy is ~18 MB.
        rows = client.execute_sql(
            f"SELECT state FROM {table} WHERE pipeline_name = %s AND version = %s"  # noqa: S608
            " AND _dlt_load_id = %s", pipeline_name, version, load_id)
        if not rows:
            continue
        state = decompress_state(rows[0][0])
        if drop_tenant(state, tenant_id):
            client.execute_sql(
                f"UPDATE {table} SET state = %s WHERE pipeline_name = %s"  # noqa: S608
                " AND version = %s AND _dlt_load_id = %s",
                compress_state(state), pipeline_name, version, load_id)  # type: ignore[arg-type]
            count += 1
    return count


def purge_destination(store: Any, target: Any, tenant_id: str) -> dict[str, int]:
    """Step 1 for one destination, in its dataset's load turn; rows deleted per table (the
    staging dataset's counted under ``<table> (staging)``)."""
    import dlt

    from pipelines.layout import organisation_pipeline_name
    from pipelines.runlocks import TurnTakingPipeline

    pipeline = TurnTakingPipeline(dlt.pipeline(
        pipeline_name=target.pipeline_name, destination=target.destination,
        dataset_name=target.dataset, pipelines_dir=str(store.home / "pipelines")), store, target)
    deleted: dict[str, int] = {}
    with pipeline.sql_client() as client:
        if client.has_dataset():
            deleted.update(_delete_rows(client, tenant_id))
            states = _rewrite_state_rows(client, tenant_id,
                                         organisation_pipeline_name(target, tenant_id))
            log.info("%s: %d copies of dlt's state rewritten", target.name, states)
        with client.with_staging_dataset():
            if client.has_dataset():
                for table, count in _delete_rows(client, tenant_id).items():
                    deleted[f"{table} (staging)"] = count
    return deleted


# -- 2. dlt's working folders ---------------------------------------------------------------------

def _own_pipeline_suffixes(tenant_id: str) -> tuple[str, ...]:
    """How an organisation's own pipeline folder ends (pipelines/layout.py names it)."""
    import hashlib

    digest = hashlib.sha256(tenant_id.lower().encode()).hexdigest()[:12]
    return (f"__{tenant_id.replace('-', '_').lower()}", f"__{digest}")


def _abort_pending(folder: Path) -> None:
    """Abort load packages a killed run left in ``folder``: they may hold the organisation's rows.
    dlt rolls its state back with them, so the other organisations' data is read again."""
    import dlt

    pending = [p for p in (folder / "load" / "new", folder / "load" / "normalized",
                           folder / "normalize" / "extracted") if p.is_dir() and any(p.iterdir())]
    if not pending:
        return
    pipeline = dlt.attach(pipeline_name=folder.name, pipelines_dir=str(folder.parent))
    log.warning("aborting the load packages an interrupted run left in %s (their data is read "
                "from Xero again by the next run)", folder.name)
    pipeline.abort_packages()


def forget_in_pipelines(pipelines_dir: Path, tenant_id: str) -> int:
    """Step 2; how many pipeline folders were changed."""
    from dlt.common.versioned_state import json_decode_state, json_encode_state

    if not pipelines_dir.is_dir():
        return 0
    changed = 0
    suffixes = _own_pipeline_suffixes(tenant_id)
    # A killed batch run's folder may hold a package with the organisation's rows (a living
    # batch of it cannot: the purge holds its lock).
    changed += remove_dead_batches(pipelines_dir)
    for folder in sorted(p for p in pipelines_dir.iterdir() if p.is_dir()):
        if folder.name == BATCHES:
            continue
        if folder.name.endswith(suffixes):
            shutil.rmtree(folder)
            changed += 1
            continue
        _abort_pending(folder)
        state_file = folder / "state.json"
        if state_file.exists():
            state = json_decode_state(state_file.read_text(encoding="utf-8"))
            if drop_tenant(state, tenant_id):
                _write_atomically(state_file, json_encode_state(state))  # type: ignore[arg-type]
        loaded = folder / "load" / "loaded"
        if loaded.is_dir():  # finished packages: kept only as history, each with a state copy
            for package in loaded.iterdir():
                shutil.rmtree(package, ignore_errors=True)
        (folder / "trace.pickle").unlink(missing_ok=True)  # the last run's trace and its errors
        changed += 1
    return changed


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".purge-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- 3. our own files -----------------------------------------------------------------------------

def _needles(conn: Any) -> list[str]:
    """What identifies the organisation in a text (never the connection id: the audit keeps it;
    nor the invited email, which one person's other organisations share)."""
    return [n for n in (conn.tenant_id, conn.organisation_name, conn.company) if n]


def _redact(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        return REDACTED if any(n in value for n in needles) else value
    if isinstance(value, list):
        return [_redact(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, needles) for k, v in value.items()}
    return value


def _forget_in_history(path: Path, conn: Any) -> None:
    """``runs.jsonl`` without the organisation: its entries keep their figures (rows, calls,
    durations, outcomes) and lose its ids, name and errors."""
    if not path.exists():
        return
    needles = _needles(conn)
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            summary = json.loads(line)
        except ValueError:
            lines.append(_redact(line, needles))
            continue
        for org in summary.get("organisations") or []:
            if org.get("tenant_id") == conn.tenant_id or org.get(
                    "connection_id") == conn.connection_id:
                org.update(tenant_id=None, organisation_name=None, error=None)
                for entity in (org.get("entities") or {}).values():
                    entity["error"] = None
        lines.append(json.dumps(_redact(summary, needles), default=str))
    _write_atomically(path, "".join(f"{line}\n" for line in lines))
    path.chmod(0o600)


def _redact_in_place(path: Path, needles: list[str]) -> None:
    """Replace the lines naming the organisation in the same file (a writer appending to it
    keeps its place)."""
    with open(path, "r+", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines(keepends=True)
        kept = [REDACTED + "\n" if any(n in line for n in needles) else line for line in lines]
        if kept != lines:
            fh.seek(0)
            fh.write("".join(kept))
            fh.truncate()


def forget_in_files(home: Path, conn: Any) -> list[str]:
    """Step 3; the files removed."""
    removed = []
    names = [n for n in (conn.connection_id, conn.tenant_id) if n]
    for folder in (home / "logs", home / "outbox"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith("purge-"):
                # The purge's own log, which this purge may be writing to: kept (it names the
                # connection and counts), with what earlier failed tries said redacted in place.
                _redact_in_place(path, _needles(conn))
            elif any(n in path.name for n in names):
                path.unlink(missing_ok=True)
                removed.append(path.name)
    _forget_in_history(home / "runs.jsonl", conn)
    return removed


# -- 4. tokens and the store ----------------------------------------------------------------------

def purge_tokens(store: Any, xero: Any, conn: Any) -> None:
    """At Xero (when nothing else uses the grant), then here."""
    from auth_server.connections import delete_at_xero, discard_pending, release_grant

    discard_pending(store, xero, conn.connection_id)
    if conn.grant_id and conn.xero_connection_id:  # 404 or a dead grant: already gone there
        delete_at_xero(store, xero, conn.grant_id, conn.xero_connection_id)
    grant_id = conn.grant_id
    store.update_connection(conn.connection_id, grant_id=None, xero_connection_id=None,
                            invite_token_hash=None)
    if grant_id:
        release_grant(store, xero, grant_id)
        store.delete_grant_if_unused(grant_id)


@contextlib.contextmanager
def _held(store: Any, tenant_id: str | None, wait: float) -> Iterator[None]:
    """The locks a run takes, in a run's order: this machine's, then the organisation's.

    Both are taken together or not at all: waiting for the organisation while holding this
    machine's lock would stop every other run here for as long as the organisation's run lasts.
    """
    import time

    from pipelines.lock import run_lock
    from pipelines.runlocks import organisation_locks
    from store import LockBusy

    deadline = time.monotonic() + wait
    while True:
        with contextlib.ExitStack() as held:
            held.enter_context(run_lock(store.home, max(0.0, deadline - time.monotonic())))
            try:
                if tenant_id:
                    held.enter_context(store.exclusive(organisation_locks([tenant_id])))
            except LockBusy:
                if time.monotonic() >= deadline:
                    raise
            else:
                yield
                return
        time.sleep(0.5)


def _default_actor() -> str:
    import getpass

    with contextlib.suppress(Exception):
        return f"cli:{getpass.getuser()}"
    return "cli"


def purge(connection_id: str, *, destinations: list[str] | None = None,
          dataset: str | None = None, wait: float = DEFAULT_WAIT_SECONDS,
          actor: str | None = None) -> dict[str, dict[str, int]]:
    """Purge one connection's organisation; rows deleted per destination and table.

    Raises LockHeld/LockBusy when a run still holds the organisation after ``wait`` seconds
    (the connection stays ``purging``; running the purge again finishes it)."""
    from auth_server.invites import get_connection
    from connector.settings import load_settings as load_xero_settings
    from pipelines.destinations import resolve_target
    from store import ConnectionStatus, lifecycle, open_store, utcnow

    store = open_store()
    conn = get_connection(store, connection_id)
    if conn.status == ConnectionStatus.PURGED:
        return {}
    actor = actor or _default_actor()
    targets = [resolve_target(name, dataset) for name in destinations or [None]]
    if conn.status != ConnectionStatus.PURGING:
        # First, so no run selects the organisation from now on, and one under way drops it.
        conn = lifecycle.apply(store, conn.connection_id, lifecycle.Event.PURGE_REQUESTED,
                               status_reason=f"purge requested by {actor}", sync_state=None)
    report: dict[str, dict[str, int]] = {}
    with _held(store, conn.tenant_id, wait):
        if conn.tenant_id:
            for target in targets:
                report[target.name] = purge_destination(store, target, conn.tenant_id)
            forget_in_pipelines(store.home / "pipelines", conn.tenant_id)
        # What is ours alone goes before Xero is asked anything: an unreachable Xero then
        # holds back only the tokens (and the final status), never our own copies.
        forget_in_files(store.home, conn)
        store.forget_organisation(conn.connection_id, conn.tenant_id)
        purge_tokens(store, load_xero_settings(), conn)
        lifecycle.apply(
            store, conn.connection_id, lifecycle.Event.PURGED,
            status_reason="purged on request", purged_at=utcnow(), purged_by=actor,
            tenant_id=None, organisation_name=None, company="", email="", sync_state=None,
            last_sync_outcome=None)
        store.reclaim_space()
    log.info("purged %s: %s", conn.connection_id,
             {name: sum(tables.values()) for name, tables in report.items()})
    return report


def _confirmed(conn: Any) -> bool:
    if not sys.stdin.isatty():
        print("xero-elt: purge asks before acting; pass --yes to run it from a script",
              file=sys.stderr)
        return False
    what = conn.organisation_name or conn.company
    answer = input(f"Remove every row, the dlt state and the tokens of {what} "
                   f"({conn.tenant_id or 'never connected'})? This cannot be undone. "
                   f"Type the connection id ({conn.connection_id}) to go on: ")
    return answer.strip() == conn.connection_id


def _stopped(connection_id: str, cause: str) -> int:
    print(f"xero-elt: purge of {connection_id} stopped: {cause}; it stays `purging` (no run "
          "loads it); running the purge again finishes it", file=sys.stderr)
    return exitcodes.FAILURE


def purge_from_cli(args: argparse.Namespace) -> int:
    """`xero-elt purge`: confirm (unless --yes), purge, print what was removed."""
    from auth_server.errors import AuthServerError, InvalidInput, NotFound
    from auth_server.invites import get_connection
    from connector.errors import ConfigurationError
    from pipelines.destinations import DestinationError
    from pipelines.lock import LockHeld
    from store import LockBusy, StoreError, open_store

    try:
        conn = get_connection(open_store(), args.connection)
        if conn.status == "purged":
            print(f"{conn.connection_id} is already purged")
            return exitcodes.OK
        if not args.yes and not _confirmed(conn):
            return exitcodes.USAGE
        report = purge(conn.connection_id, destinations=args.destinations, dataset=args.dataset,
                       wait=args.wait, actor=args.by)
    except (InvalidInput, NotFound, ConfigurationError, DestinationError) as exc:
        print(f"xero-elt: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except (LockHeld, LockBusy) as exc:
        print(f"xero-elt: purge of {args.connection} waited {args.wait:.0f} s for a run that "
              f"still holds it ({exc}); it stays `purging` (no run loads it) — run the purge "
              "again once that run ends", file=sys.stderr)
        return exitcodes.LOCKED
    except (AuthServerError, StoreError) as exc:
        return _stopped(args.connection, str(exc))
    except Exception as exc:  # a destination down, a full disk: dlt's errors are many
        from pipelines.run import _one_line

        return _stopped(args.connection, _one_line(exc))
    for destination, tables in report.items():
        total = sum(tables.values())
        print(f"{destination}: {total} rows removed from {len(tables)} tables")
    print(f"purged {conn.connection_id}")
    return exitcodes.OK
