"""Versioned schema migrations of the store, for both backends.

Each step has a version, a name and its statements per backend; ``store_migrations`` records the
steps applied. A backend applies the missing steps in order, in one transaction that also holds
the store's migration lock, so two processes opening a new store at once migrate it once. Step 1
is the schema the store had before migrations existed (``CREATE … IF NOT EXISTS``), so a store
file of that release simply gains the table and the later steps.

Add a step at the end; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.records import StoreError

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS store_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Step:
    """One schema change, as SQL for each backend."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, backend: str) -> tuple[str, ...]:
        """This step's statements for ``backend`` (``sqlite`` or ``postgres``)."""
        return self.sqlite if backend == "sqlite" else self.postgres


def _initial(blob: str) -> tuple[str, ...]:
    """The first schema; ``blob`` is the backend's binary type (BLOB or BYTEA)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS grants (
            grant_id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            xero_user_id TEXT,
            auth_event_id TEXT,
            scopes TEXT NOT NULL,
            access_token_enc {blob} NOT NULL,
            access_expires_at TEXT NOT NULL,
            refresh_token_enc {blob} NOT NULL,
            refreshed_at TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS connections (
            connection_id TEXT PRIMARY KEY,
            company TEXT NOT NULL,
            email TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT,
            invite_token_hash TEXT UNIQUE,
            invite_expires_at TEXT,
            invited_at TEXT NOT NULL,
            link_opened_at TEXT,
            tenant_id TEXT,
            organisation_name TEXT,
            xero_connection_id TEXT,
            grant_id TEXT REFERENCES grants(grant_id),
            connected_at TEXT,
            disconnected_at TEXT,
            last_synced_at TEXT,
            last_sync_rows INTEGER,
            last_sync_outcome TEXT,
            sync_state TEXT,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS connections_tenant ON connections(tenant_id)",
        f"""CREATE TABLE IF NOT EXISTS flows (
            flow_id TEXT PRIMARY KEY,
            data_enc {blob} NOT NULL,
            expires_at TEXT NOT NULL
        )""",
    )


# Every write to flows first deletes the expired ones; the index keeps that cheap.
_FLOWS_EXPIRY_INDEX = ("CREATE INDEX IF NOT EXISTS flows_expires ON flows(expires_at)",)

# Calls to Xero per organisation per UTC day: the daily budget must hold across every machine's
# runs, so a shared store counts them (connector/usage.py).
_API_USAGE = ("""CREATE TABLE IF NOT EXISTS api_usage (
    tenant_id TEXT NOT NULL,
    day TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
)""",)

# API keys of the auth server's JSON API: only a SHA-256 of each key is kept (keys are 256-bit
# random strings, so a fast hash is enough; nothing here lets anyone rebuild a key).
_API_KEYS = ("""CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
)""",)

# Webhooks out: each event is written in the same transaction as the connection change it
# reports (store/webhook_outbox.py), then delivered by the auth server's worker.
_WEBHOOK_OUTBOX = (
    """CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TEXT,
    claimed_until TEXT
)""",
    "CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events(status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhook_events_created ON webhook_events(created_at)",
)

# Xero's webhooks in (store/xero_events.py): one row per event, keyed so that a
# delivery Xero retries adds nothing; the health marks (last handshake, last event) beside it.
_XERO_EVENTS = (
    """CREATE TABLE IF NOT EXISTS xero_events (
    tenant_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    event_date TEXT NOT NULL,
    event_type TEXT NOT NULL,
    category TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL,
    processed_at TEXT,
    PRIMARY KEY (tenant_id, resource_id, event_date, event_type)
)""",
    "CREATE INDEX IF NOT EXISTS xero_events_pending ON xero_events(status, tenant_id, received_at)",
    """CREATE TABLE IF NOT EXISTS xero_webhook_health (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
)

# Background work the auth server starts (a sync or a purge of one connection), so a repeated
# request finds the job already running and anyone can read its outcome; API keys gain a scope
# (what they had before is ``admin``); a purged connection keeps when and by whom.
_JOBS_SCOPES_PURGE = (
    """CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    heartbeat_at TEXT,
    outcome TEXT
)""",
    # At most one queued or running job of a kind per connection, even with servers racing.
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_open ON jobs(kind, connection_id)"
    " WHERE state IN ('queued', 'running')",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state)",
    "ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'",
    "ALTER TABLE connections ADD COLUMN purged_at TEXT",
    "ALTER TABLE connections ADD COLUMN purged_by TEXT",
)

# The language the invite's pages and email speak (``en``, ``ar``; none: the browser's choice).
_CONNECTION_LANGUAGE = ("ALTER TABLE connections ADD COLUMN language TEXT",)

# The app's one budget of Xero calls (store/app_budget.py): a row per lease of calls, counted
# until a window after their last use; and "no calls before" for the whole app after a 429.
_APP_BUDGET = (
    """CREATE TABLE IF NOT EXISTS xero_app_budget (
    lease_id TEXT PRIMARY KEY,
    calls INTEGER NOT NULL,
    granted_at DOUBLE PRECISION NOT NULL,
    counted_until DOUBLE PRECISION NOT NULL,
    holder TEXT
)""",
    "CREATE INDEX IF NOT EXISTS xero_app_budget_until ON xero_app_budget(counted_until)",
    """CREATE TABLE IF NOT EXISTS xero_app_pause (
    scope TEXT PRIMARY KEY,
    not_before DOUBLE PRECISION NOT NULL
)""",
)

# Bytes received from Xero per organisation per UTC day, beside its calls: Xero meters an app's
# monthly egress (`xero-elt status` and the admin page show it against an allowance).
_API_BYTES = ("ALTER TABLE api_usage ADD COLUMN bytes_received BIGINT NOT NULL DEFAULT 0",)

# Schedules (store/schedules.py): a connection's own intervals per entity (a premium plan), and
# when each organisation's entity was last read successfully, per destination and dataset.
_SCHEDULES = (
    """CREATE TABLE IF NOT EXISTS schedule_overrides (
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    every_minutes INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, entity)
)""",
    """CREATE TABLE IF NOT EXISTS entity_reads (
    target TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    read_at TEXT NOT NULL,
    PRIMARY KEY (target, tenant_id, entity)
)""",
)

STEPS: tuple[Step, ...] = (
    Step(1, "initial schema (grants, connections, flows)", _initial("BLOB"), _initial("BYTEA")),
    Step(2, "index flows by expiry", _FLOWS_EXPIRY_INDEX, _FLOWS_EXPIRY_INDEX),
    Step(3, "API calls per organisation per day", _API_USAGE, _API_USAGE),
    Step(4, "API keys (hashed)", _API_KEYS, _API_KEYS),
    Step(5, "webhook outbox", _WEBHOOK_OUTBOX, _WEBHOOK_OUTBOX),
    Step(6, "Xero's webhook events in", _XERO_EVENTS, _XERO_EVENTS),
    Step(7, "background jobs, API key scopes, purge audit", _JOBS_SCOPES_PURGE,
         _JOBS_SCOPES_PURGE),
    Step(8, "the invite's language", _CONNECTION_LANGUAGE, _CONNECTION_LANGUAGE),
    Step(9, "the app's budget of Xero calls", _APP_BUDGET, _APP_BUDGET),
    Step(10, "bytes received from Xero per organisation per day", _API_BYTES, _API_BYTES),
    Step(11, "schedules: overrides per connection, last reads per destination", _SCHEDULES,
         _SCHEDULES),
)
LATEST = STEPS[-1].version


def pending(applied: set[int], where: str) -> list[Step]:
    """The steps not yet applied, in order.

    Raises:
        StoreError: the store was migrated by a newer release than this one.
    """
    newer = {v for v in applied if v > LATEST}
    if newer:
        raise StoreError(
            f"the store {where} has schema version {max(newer)}, newer than this xero-elt "
            f"knows ({LATEST}); upgrade xero-elt"
        )
    return [step for step in STEPS if step.version not in applied]
