"""Choosing the store: the URL setting, its forms, the key a shared store needs, and the
password of a PostgreSQL DSN kept out of every message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main as cli
from store import StoreConfigError, StoreError, open_store, redact
from tests.sandbox_handle import REPO_ROOT

PASSWORD = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def _no_configured_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XERO_ELT_STORE_URL", "XERO_ELT__STORE_URL", "XERO_ELT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_is_sqlite_in_the_home(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert (store.backend, store.path) == ("sqlite", tmp_path / "store.sqlite3")


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store(tmp_path / "h", url="sqlite:///rel/store.db").path == Path("rel/store.db")
    monkeypatch.setenv("XERO_ELT_STORE_URL", f"sqlite:///{tmp_path / 'abs.db'}")
    assert open_store(tmp_path / "h").path == tmp_path / "abs.db"


def test_the_url_comes_from_xero_elt_store_url_section_through_dlt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[xero_elt] store_url`` as dlt's providers read it (env form shown; TOML alike)."""
    monkeypatch.setenv("XERO_ELT__STORE_URL", f"sqlite:///{tmp_path / 'from-dlt.db'}")
    assert open_store(tmp_path / "h").path == tmp_path / "from-dlt.db"
    monkeypatch.setenv("XERO_ELT_STORE_URL", f"sqlite:///{tmp_path / 'wins.db'}")
    assert open_store(tmp_path / "h").path == tmp_path / "wins.db"


@pytest.mark.parametrize("toml", ["config.toml", "secrets.toml"])
def test_the_url_in_a_dlt_toml_file(toml: str, tmp_path: Path) -> None:
    """A fresh process in a project folder, as a cron run would start (dlt reads .dlt/ once)."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / toml).write_text(
        f'[xero_elt]\nstore_url = "sqlite:///{tmp_path / "from-toml.db"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("XERO_ELT")}
    env.update({"XERO_ELT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)})
    out = subprocess.run(
        [sys.executable, "-c", "from store import open_store; print(open_store().path)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert out.strip() == str(tmp_path / "from-toml.db")


def test_an_unknown_scheme_is_a_configuration_error_without_the_url(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="must start with sqlite:/// or postgresql://") as e:
        open_store(tmp_path, url=f"mysql://root:{PASSWORD}@db/x")
    assert PASSWORD not in str(e.value)


def test_redact_hides_only_the_password() -> None:
    assert redact(f"postgresql://app:{PASSWORD}@db.internal:5433/xero") == \
        "postgresql://app:***@db.internal:5433/xero"
    assert redact("postgresql://app@db/xero") == "postgresql://app@db/xero"
    assert redact("sqlite:////var/lib/store.db") == "sqlite:////var/lib/store.db"


def test_postgres_without_the_shared_key_is_a_clear_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="needs XERO_ELT_SECRET_KEY") as e:
        open_store(tmp_path, url=f"postgresql://app:{PASSWORD}@127.0.0.1:1/none")
    assert PASSWORD not in str(e.value)
    assert not (tmp_path / "secret.key").exists()  # no per-machine key made instead


@pytest.mark.parametrize("argv", [["connections"], ["run"], ["serve", "--port", "0"]])
def test_the_cli_exits_2_when_the_shared_store_has_no_key(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XERO_ELT_HOME", str(tmp_path))
    monkeypatch.setenv("XERO_ELT_STORE_URL", f"postgresql://app:{PASSWORD}@127.0.0.1:1/none")
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "XERO_ELT_SECRET_KEY" in err
    assert PASSWORD not in err


@pytest.mark.postgres
def test_an_unreachable_postgres_store_names_it_without_the_password(
    postgres_url: str, secret_key: str, tmp_path: Path,
) -> None:
    base = postgres_url.rsplit("/", 1)[0].replace("postgres:postgres@", f"postgres:{PASSWORD}@")
    missing = f"{base}/no_such_database_here"
    with pytest.raises(StoreError) as e:
        open_store(tmp_path, url=missing)
    text = str(e.value)
    assert "no_such_database_here" in text
    assert "postgres:***@" in text
    assert PASSWORD not in text
    store = open_store(tmp_path, url=postgres_url.replace("postgres:postgres@",
                                                          f"postgres:{PASSWORD}@"))
    assert PASSWORD not in repr(store)
    assert PASSWORD not in store.where


@pytest.mark.postgres
def test_a_malformed_postgres_url_is_reported_without_the_password(
    secret_key: str, tmp_path: Path,
) -> None:
    with pytest.raises(StoreError) as e:
        # libpq quotes the bad token, which here is the password itself
        open_store(tmp_path, url=f"postgresql://app:{PASSWORD}%zz@127.0.0.1:5432/db")
    assert "percent-encoded" in str(e.value)
    assert PASSWORD not in str(e.value)
    assert "app:***@" in str(e.value)
