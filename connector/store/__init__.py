"""The credential and connection store, shared by the auth server and the connector.

It holds:

- grants: one per Xero consent, i.e. one refresh-token chain, tokens Fernet-encrypted at rest;
- connections: one record per invite; once a company is confirmed it carries the organisation;
- flows: short-lived, encrypted state of OAuth flows in progress, browser visits and admin
  sessions, so any auth server replica can carry on a flow another one started.

One interface (``Store``, in ``base``), two backends chosen by the store URL (``config``):
SQLite, embedded, the default (``sqlite``), and PostgreSQL for several machines (``postgres``).
``open_store()`` opens the configured one; both apply the schema steps of ``migrations``.
"""

from connector.store.base import Store, register_factory
from connector.store.config import open_store, redact
from connector.store.keys import KEY_ENV, KEY_FILE
from connector.store.records import (
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
from connector.store.sqlite import DB_NAME

register_factory(open_store)

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
    "utcnow",
]
