"""Run in a child process by the store concurrency test: a sync that keeps refreshing grants.

    python -m tests.hardening.store_worker refresh SECONDS GRANT_ID [GRANT_ID ...]

For SECONDS, it forces a refresh of each grant in turn (as a run does when Xero rejects the access
token) and marks its connections `syncing`/`synced`, the writes a cron run makes. Prints one JSON
line: refreshes done and errors met. Settings come from SOURCES__XERO__*, the store from
XERO_ELT_HOME.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> None:
    from connector.errors import XeroError
    from connector.settings import load_settings
    from store import StoreError, open_store
    from store.token_provider import access_token_for

    if argv[0] != "refresh":
        raise SystemExit(f"unknown mode {argv[0]!r}")
    seconds, grant_ids = float(argv[1]), argv[2:]
    store = open_store()
    settings = load_settings(backoff_seconds=0.05)
    done, errors = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for grant_id in grant_ids:
            try:
                grant = store.get_grant(grant_id)
                access_token_for(store, settings, grant_id, rejected=grant.access_token)
                done += 1
                for conn in store.list_connections(["connected"]):
                    if conn.grant_id == grant_id:
                        store.update_connection(conn.connection_id, sync_state="syncing")
                        store.update_connection(conn.connection_id, sync_state="synced")
            except (XeroError, StoreError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"refreshes": done, "errors": errors[:5]}))


if __name__ == "__main__":
    main(sys.argv[1:])
