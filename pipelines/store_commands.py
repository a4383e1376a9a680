"""`xero-elt store copy --to URL`: the configured store copied into another (store/copy.py).

For the move from cron (SQLite on one machine) to a shared PostgreSQL store, or back, without
inviting anyone again. The target's key comes from ``XERO_ELT_TARGET_SECRET_KEY`` (never argv);
the source's is found as usual. Prints a line per table, `copied N, already there M`, and a
total; exit 0, or 2 (configuration: a key, the URL, the target being the source) or 1 (a
conflict, a database error), with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines import exitcodes


def add_parser(sub: Any) -> None:
    """Add `store copy` to the command tree."""
    store = sub.add_parser("store", help="the credential and connection store: copy it")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    copy = store_sub.add_parser(
        "copy", help="copy every grant, connection, key and record into another store "
                     "(target key in XERO_ELT_TARGET_SECRET_KEY); twice changes nothing",
        description="Copy the configured store into another (SQLite <-> PostgreSQL): grants "
                    "(tokens re-encrypted with XERO_ELT_TARGET_SECRET_KEY), connections, API "
                    "keys, the webhook outbox, Xero's events, jobs and call counts. Rows "
                    "already there are left; a different row under the same key stops the "
                    "copy before anything is written. Stop `xero-elt serve` and cron first.")
    copy.add_argument("--to", required=True, metavar="URL",
                      help="postgresql://user:password@host:port/db, sqlite:///PATH or a "
                           "SQLite file's path")


def store_from_cli(args: argparse.Namespace) -> int:
    """`xero-elt store copy --to URL`."""
    from store import StoreConfigError, StoreError, open_store, redact
    from store.copy import (
        TARGET_KEY_ENV,
        CopyRefused,
        copy_store,
        open_target,
        summary,
        target_key,
        target_url,
    )

    source = target = None
    try:
        key = target_key()
        target_url(args.to)  # a bad --to is refused before the source is opened
        source = open_store()
        target = open_target(args.to, key=key, home=source.home)
        counts = copy_store(source, target)
    except CopyRefused as exc:
        return _refused(str(exc), exc.exit_code)
    except StoreConfigError as exc:
        return _refused(str(exc), exitcodes.USAGE)
    except StoreError as exc:
        return _refused(f"{exc}; nothing was copied", exitcodes.FAILURE)
    finally:
        for opened in (source, target):
            if opened is not None:
                opened.close()
    width = max(len(c.table) for c in counts)
    for c in counts:
        print(f"{c.table + ':':<{width + 1}} copied {c.copied}, already there {c.already_there}")
    copied, there = summary(counts)
    print(f"copied {copied}, already there {there} (from {redact(source.where)} "
          f"to {redact(target.where)})")
    print(f"xero-elt: the target's tokens are encrypted with {TARGET_KEY_ENV}: give it as "
          "XERO_ELT_SECRET_KEY wherever the target store is used", file=sys.stderr)
    return exitcodes.OK


def _refused(message: str, code: int) -> int:
    print(f"xero-elt store copy: {message}", file=sys.stderr)
    return code
