"""Run in a child process by the concurrency tests: get a token or load once, print JSON.

    python -m tests.connector.proc_worker token GRANT_ID REJECTED_SHA
    python -m tests.connector.proc_worker load DUCKDB_PATH

Settings come from SOURCES__XERO__* and the store from XERO_ELT_HOME, as in a cron run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def main(argv: list[str]) -> None:
    from connector.settings import load_settings
    from store import open_store
    from store.token_provider import StoreTokens

    store = open_store()
    settings = load_settings(backoff_seconds=0.05)
    if argv[0] == "token":
        from store.token_provider import access_token_for

        grant_id, rejected_sha = argv[1], argv[2]
        grant = store.get_grant(grant_id)
        rejected = grant.access_token if _sha(grant.access_token) == rejected_sha else None
        token = access_token_for(store, settings, grant_id, rejected=rejected)
        print(json.dumps({"token_sha": _sha(token)}))
        return
    if argv[0] == "load":
        import dlt

        from connector.source import make_source

        pipeline = dlt.pipeline(pipeline_name=f"xero_proc_{int(time.time() * 1e6)}",
                                destination=dlt.destinations.duckdb(argv[1]),
                                dataset_name="xero")
        source = make_source(tokens=StoreTokens(store, settings), settings=settings)
        pipeline.run(source, loader_file_format="parquet")
        print(json.dumps({
            "outcomes": sorted({e.outcome for e in source.stats.entries()}),
            "suppliers": sum(e.rows for e in source.stats.entries() if e.entity == "suppliers"),
            "token_calls": source.stats.identity_calls["token"],
        }))
        return
    raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
