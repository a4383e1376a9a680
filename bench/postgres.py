"""A throwaway PostgreSQL database for scenario 5 (127.0.0.1:5432, trust auth, user postgres).

Set `BENCH_POSTGRES_DSN` (a libpq URL to the server's `postgres` database) to use another
server; the benchmark creates its own database there and drops it afterwards.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_dsn() -> str:
    return os.environ.get("BENCH_POSTGRES_DSN", DEFAULT_ADMIN_DSN)


def dsn(database: str) -> str:
    """The URL of `database` on the benchmark's server, for dlt.

    dlt's PostgreSQL credentials insist on a password; with trust authentication the server
    ignores it, so a placeholder is added when the URL has none.
    """
    base, _, _ = _admin_dsn().rpartition("/")
    scheme, _, rest = base.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" not in userinfo:
        base = f"{scheme}://{userinfo}:trust-auth-ignores-this@{host}"
    return f"{base}/{database}"


def _connect(url: str | None = None) -> Any:
    import psycopg2

    con = psycopg2.connect(url or _admin_dsn(), connect_timeout=5)
    con.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    return con


def unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        _connect().close()
    except ImportError:
        return "psycopg2 is not installed"
    except Exception as exc:
        return f"no PostgreSQL at {_admin_dsn().split('@')[-1]}: {str(exc).strip()}"
    return None


def server_version() -> str:
    """The server's version string (e.g. `PostgreSQL 15.18`)."""
    con = _connect()
    try:
        with con.cursor() as cur:
            cur.execute("show server_version")
            return f"PostgreSQL {cur.fetchone()[0].split()[0]}"
    finally:
        con.close()


def create_database(name: str) -> None:
    """Create an empty database (the name is ours: letters, digits and underscores)."""
    con = _connect()
    try:
        with con.cursor() as cur:
            cur.execute(f'create database "{name}"')
    finally:
        con.close()


def drop_database(name: str) -> None:
    """Drop the database, closing any connection left to it."""
    con = _connect()
    try:
        with con.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        con.close()


def table_rows(env: dict[str, str], dataset: str = "xero") -> dict[str, int]:
    """Rows per table of the dataset in the database named by the run's environment."""
    con = _connect(env["DESTINATION__POSTGRES__CREDENTIALS"])
    try:
        with con.cursor() as cur:
            cur.execute(
                "select table_name from information_schema.tables where table_schema = %s "
                "and table_type = 'BASE TABLE' and table_name not like '\\_dlt%%' "
                "order by table_name", (dataset,))
            tables = [r[0] for r in cur.fetchall()]
            counts = {}
            for table in tables:
                # names come from information_schema, quoted
                cur.execute(f'select count(*) from "{dataset}"."{table}"')  # noqa: S608
                counts[table] = int(cur.fetchone()[0])
            return counts
    finally:
        con.close()
