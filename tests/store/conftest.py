"""Fixtures for the store tests: the store on each backend, and throwaway PostgreSQL databases.

    def test_something(store):         # runs on SQLite and on PostgreSQL
    def test_other(postgres_url):      # a fresh database of its own, dropped after

PostgreSQL tests skip, with the reason, when 127.0.0.1:5432 does not answer, and fail instead
under ``CI=true`` (the rule of ``tests/pipelines/conftest.py``, reused).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from store import Store, open_store
from tests.pipelines.conftest import POSTGRES_SERVER, _postgres_unavailable

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg2

    try:
        admin = psycopg2.connect(POSTGRES_SERVER, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        _postgres_unavailable(" ".join(str(exc).split()))
    admin.autocommit = True
    return admin


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The DSN of a new database ``xero_elt_store_<random>``, dropped after the test."""
    admin = _admin_connection()
    name = f"xero_elt_store_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``XERO_ELT_SECRET_KEY`` (a shared store needs one)."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", key)
    return key


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on this backend (PostgreSQL: a database of its own)."""
    if backend == "postgres":
        request.getfixturevalue("secret_key")
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'home' / 'store.sqlite3'}"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """An empty store on each backend."""
    opened = open_store(tmp_path / "home", url=store_url)
    yield opened
    opened.close()
