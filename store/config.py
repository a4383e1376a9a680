"""Which store to open: the ``store_url`` setting and ``open_store``, the one factory.

``XERO_ELT_STORE_URL`` wins, then ``[xero_elt] store_url`` through dlt's config providers
(``.dlt/config.toml``, ``.dlt/secrets.toml``, ``XERO_ELT__STORE_URL``). Forms:

- ``sqlite:///PATH`` (relative, or ``sqlite:////absolute/path``); unset means
  ``XERO_ELT_HOME/store.sqlite3``;
- ``postgresql://user:password@host:port/db`` (tables in schema ``xero_elt``; the key must come
  from ``XERO_ELT_SECRET_KEY``).

The URL's password never reaches a message, a log line or a ``repr``: ``redact`` takes it out.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.configuration.specs import BaseConfiguration

from store.base import Store
from store.records import StoreConfigError, default_home

URL_ENV = "XERO_ELT_STORE_URL"
SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")


@configspec
class StoreSettings(BaseConfiguration):
    """``[xero_elt]``: where the credential and connection store lives."""

    store_url: str | None = None
    """``sqlite:///PATH`` or ``postgresql://user:password@host:port/db``; default the SQLite
    file ``XERO_ELT_HOME/store.sqlite3``. Also ``XERO_ELT_STORE_URL``."""


def configured_url() -> str | None:
    """The store URL from ``XERO_ELT_STORE_URL`` or ``[xero_elt] store_url``, if set."""
    from_env = os.environ.get(URL_ENV, "").strip()
    if from_env:
        return from_env
    try:
        settings = resolve_configuration(StoreSettings(), sections=("xero_elt",))
    except ConfigurationException:
        # Never dlt's text: it may quote the value, and the value may hold a password.
        raise StoreConfigError("cannot read [xero_elt] store_url") from None
    return (settings.store_url or "").strip() or None


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and reprs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_store(
    home: Path | str | None = None, *, secret_key: str | None = None, url: str | None = None
) -> Store:
    """Open the configured store (SQLite by default), migrated to the current schema.

    Args:
        home: the local state folder; default ``XERO_ELT_HOME`` or ``./.xero-elt``.
        secret_key: the Fernet key; default ``XERO_ELT_SECRET_KEY`` (else, for SQLite only, the
            0600 key file).
        url: the store URL; default the configured one.

    Raises:
        StoreConfigError: the URL is not one of the forms above, or PostgreSQL lacks the key.
        StoreError: the store cannot be opened or migrated.
    """
    home_path = Path(home) if home is not None else default_home()
    url = url if url is not None else configured_url()
    if not url:
        from store.sqlite import SqliteStore

        return SqliteStore(home_path, secret_key=secret_key)
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        from store.sqlite import SqliteStore

        return SqliteStore(home_path, path=url[len(SQLITE_PREFIX):], secret_key=secret_key)
    scheme = url.split(":", 1)[0].lower()
    if scheme in POSTGRES_SCHEMES:
        from store.postgres import PostgresStore

        return PostgresStore(url, home=home_path, where=redact(url), secret_key=secret_key)
    raise StoreConfigError(
        f"{URL_ENV} / [xero_elt] store_url must start with sqlite:/// or postgresql://, "
        f"not {scheme + ':' if ':' in url else 'that'}"
    )
