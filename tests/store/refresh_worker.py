"""Run in a child process by the cross-machine refresh tests: one "machine" using the store.

    python -m tests.store.refresh_worker refresh GRANT_ID GO_FILE
    python -m tests.store.refresh_worker hold GRANT_ID

``refresh``: open the store, print ``ready``, wait until GO_FILE exists (so every worker calls at
the same moment), get an access token for the grant (refreshing it if it looks expired), print
one JSON line ``{"token_sha", "seconds"}``, or ``{"error"}`` and exit 1.
``hold``: take the grant lock, print ``holding``, and sleep until killed.
Settings come from SOURCES__XERO__*, the store from XERO_ELT_STORE_URL, the key from
XERO_ELT_SECRET_KEY, local state from this worker's own XERO_ELT_HOME.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from connector.errors import XeroError
    from connector.settings import load_settings
    from store import StoreError, open_store
    from store.token_provider import access_token_for

    mode, grant_id = argv[0], argv[1]
    store = open_store()
    if mode == "hold":
        with store.grant_lock(grant_id):
            print("holding", flush=True)
            time.sleep(600)
        return 0
    if mode != "refresh":
        raise SystemExit(f"unknown mode {mode!r}")
    go = Path(argv[2])
    settings = load_settings(backoff_seconds=0.05)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    started = time.monotonic()
    try:
        token = access_token_for(store, settings, grant_id)
    except (XeroError, StoreError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"token_sha": hashlib.sha256(token.encode()).hexdigest(),
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
