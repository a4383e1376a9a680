"""The app's records: grants, connections, API keys, the webhook outbox, Xero's events, jobs,
locks, call counts, the app's one budget of Xero calls (``app_budget``), migrations; shared by
the auth server and the pipelines.

It holds:

- grants: one per Xero consent, i.e. one refresh-token chain, tokens Fernet-encrypted at rest;
- connections: one record per invite; once a company is confirmed it carries the organisation;
- flows: short-lived, encrypted state of OAuth flows in progress, browser visits and admin
  sessions, so any auth server replica can carry on a flow another one started.

One interface (``Store``, in ``base``), two backends chosen by the store URL (``config``):
SQLite, embedded, the default (``sqlite``), and PostgreSQL for several machines (``postgres``).
``open_store()`` opens the configured one; both apply the schema steps of ``migrations``.
``copy`` moves one store's records into another (``xero-elt store copy --to URL``).
"""

from store import schedules
from store.base import Store
from store.config import open_store, redact
from store.keys import KEY_ENV, KEY_FILE
from store.records import (
    DEFAULT_HOME,
    HOME_ENV,
    Connection,
    ConnectionStatus,
    Grant,
    GrantStatus,
    LockBusy,
    StoreConfigError,
    StoreError,
    default_home,
    utcnow,
)
from store.sqlite import DB_NAME

__all__ = [
    "DB_NAME",
    "DEFAULT_HOME",
    "HOME_ENV",
    "KEY_ENV",
    "KEY_FILE",
    "Connection",
    "ConnectionStatus",
    "Grant",
    "GrantStatus",
    "LockBusy",
    "Store",
    "StoreConfigError",
    "StoreError",
    "default_home",
    "open_store",
    "redact",
    "schedules",
    "utcnow",
]
