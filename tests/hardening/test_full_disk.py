"""A full disk: under XERO_ELT_HOME (credential store, dlt state, lock) and under the DuckDB file.

Each disk is a small tmpfs mounted for the test (a loop-mounted ext4 file where tmpfs cannot be
mounted; skipped, with the reason, when neither can be, e.g. without root). The run must end with
a clear error and a failure exit code, never a traceback; the previous credentials stay intact and
still refresh; once space is freed, the next run completes the work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.errors import XeroError
from sandbox.handle import SandboxHandle
from store import Store, StoreError, open_store
from store.token_provider import access_token_for
from tests.auth_server.conftest import xero_settings_for
from tests.hardening.conftest import CliHome, counts_by_tenant, expected_counts

pytestmark = pytest.mark.hardening


def _mount(target: Path, size_mb: int, scratch: Path) -> str:
    """Mount a small filesystem at `target`; returns how, or raises OSError."""
    target.mkdir(parents=True)
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs",
                            str(target)], capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return "tmpfs"
    image = scratch / f"{target.name}.img"
    steps = [["truncate", "-s", f"{size_mb}M", str(image)],
             ["mkfs.ext4", "-q", "-F", str(image)],
             ["mount", "-o", "loop", str(image), str(target)]]
    for step in steps:
        if shutil.which(step[0]) is None:
            raise OSError(f"tmpfs: {tmpfs.stderr.strip()}; no {step[0]} for a loop file")
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"tmpfs: {tmpfs.stderr.strip()}; {step[0]}: {done.stderr.strip()}")
    return "loop"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """`small_disk(name, megabytes)`: a directory on a filesystem of its own, that small."""
    mounted: list[Path] = []

    def make(name: str, size_mb: int) -> Path:
        target = tmp_path / name
        try:
            _mount(target, size_mb, tmp_path)
        except OSError as exc:
            pytest.skip(f"cannot mount a small filesystem (root needed): {exc}")
        mounted.append(target)
        return target

    yield make
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem holding `directory` to the last byte; returns the filler file."""
    filler = directory / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(chunk[:size])
    assert shutil.disk_usage(directory).free < 4096
    return filler


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-4000:]


def grant_snapshot(store: Store) -> list[tuple[str, str, str]]:
    return [(g.grant_id, g.access_token, g.refresh_token) for g in store.list_grants()]


def _home_on_a_full_disk(
    sandbox: SandboxHandle, app: dict[str, Any], make_home: Callable[..., CliHome],
    small_disk: Callable[[str, int], Path],
) -> tuple[CliHome, str, list[tuple[str, str, str]], Path]:
    """A home whose first run loaded, whose token must be refreshed next, on a disk now full."""
    home = make_home(sandbox, app)
    home.home = small_disk("home-disk", 24)
    grant_id = home.connect()
    assert home.run().code == 0  # state, packages and the store all on the small disk
    store = home.store
    grant = store.get_grant(grant_id)
    # The access token looks expired, so the next run must refresh and save rotated tokens.
    store.save_rotated_tokens(grant_id, {"access_token": grant.access_token,
                                         "refresh_token": grant.refresh_token, "expires_in": 0})
    return home, grant_id, grant_snapshot(store), fill(home.home)


def test_full_disk_under_the_store_fails_the_run_and_keeps_the_credentials(
    sandbox: SandboxHandle, xero_app: dict[str, Any], make_home: Callable[..., CliHome],
    small_disk: Callable[[str, int], Path],
) -> None:
    home, _, before, filler = _home_on_a_full_disk(sandbox, xero_app, make_home, small_disk)

    result = home.run()

    assert result.code == 1, result
    assert "database or disk is full" in result.stderr, result.stderr[-3000:]
    assert grant_snapshot(open_store(home.home)) == before  # the previous credentials, intact

    filler.unlink()
    again = home.run()
    assert again.code == 0, again  # the previous refresh token still works (grace window)
    assert counts_by_tenant(home.db) == expected_counts(sandbox)


def test_full_disk_under_the_store_is_reported_without_a_traceback(
    sandbox: SandboxHandle, xero_app: dict[str, Any], make_home: Callable[..., CliHome],
    small_disk: Callable[[str, int], Path],
) -> None:
    home, _, _, _ = _home_on_a_full_disk(sandbox, xero_app, make_home, small_disk)
    result = home.run()
    no_traceback(result.stderr)
    assert result.summary.get("outcome") == "failed", result


def test_the_run_lock_holds_on_a_full_disk(small_disk: Callable[[str, int], Path]) -> None:
    """Regression: writing the holder's pid raised ENOSPC out of run_lock (a traceback)."""
    from pipelines.lock import LockHeld, run_lock

    home = small_disk("lock-disk", 1)
    (home / "run.lock").touch()
    filler = fill(home)
    with run_lock(home):
        with pytest.raises(LockHeld):
            with run_lock(home):
                pass
    filler.unlink()
    with run_lock(home):
        assert (home / "run.lock").read_text().split()[0] == str(os.getpid())


def test_full_disk_while_saving_rotated_tokens_keeps_the_previous_ones(
    sandbox: SandboxHandle, xero_app: dict[str, Any], make_home: Callable[..., CliHome],
    small_disk: Callable[[str, int], Path],
) -> None:
    home = make_home(sandbox, xero_app)
    home.home = small_disk("store-disk", 4)
    grant_id = home.connect()
    store = home.store
    before = grant_snapshot(store)
    settings = xero_settings_for(sandbox, xero_app)
    filler = fill(home.home)

    with pytest.raises((StoreError, XeroError)) as caught:
        access_token_for(store, settings, grant_id, rejected=before[0][1])
    assert "full" in str(caught.value) or "space" in str(caught.value), caught.value
    assert before[0][2] not in str(caught.value)  # no token in the message

    assert grant_snapshot(open_store(home.home)) == before
    filler.unlink()
    # Xero rotated, we could not save: the stored (previous) refresh token is still accepted.
    token = access_token_for(store, settings, grant_id, rejected=before[0][1])
    assert token != before[0][1]
    assert grant_snapshot(store) != before


def test_full_disk_under_the_duckdb_file_fails_the_run_clearly_then_completes(
    cli_home: CliHome, small_disk: Callable[[str, int], Path],
) -> None:
    disk = small_disk("warehouse", 12)
    cli_home.db = disk / "warehouse.duckdb"
    filler = fill(disk)
    store_before = grant_snapshot(cli_home.store)

    result = cli_home.run()

    assert result.code == 1, result
    no_traceback(result.stderr)
    assert "IO Error: Could not write file" in result.stderr, result.stderr[-3000:]
    assert result.summary["outcome"] == "failed"
    # Found before any call to Xero (the destination is checked first): nothing was read only to
    # be lost, and the organisations stay as they were.
    assert not cli_home.sandbox.requests(path="/api.xro/2.0")
    assert {c.status for c in cli_home.store.list_connections()} == {"connected"}
    store_after = grant_snapshot(cli_home.store)
    assert [g[0] for g in store_after] == [g[0] for g in store_before]

    filler.unlink()
    again = cli_home.run()
    assert again.code == 0, again  # the empty file the full disk left was cleared away
    assert counts_by_tenant(cli_home.db) == expected_counts(cli_home.sandbox)
    assert os.path.getsize(cli_home.db) > 0


def test_an_empty_duckdb_file_left_by_a_full_disk_is_cleared_but_real_files_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: a first open on a full disk leaves a 0-byte file that DuckDB then refuses
    forever ("not a valid DuckDB database file"), so runs kept failing after space was freed."""
    from pipelines.destinations import resolve_target

    empty = tmp_path / "empty.duckdb"
    empty.touch()
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(empty))
    resolve_target("duckdb", "xero")
    assert not empty.exists()

    real = tmp_path / "real.duckdb"
    import duckdb

    duckdb.connect(str(real)).close()
    size = real.stat().st_size
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(real))
    resolve_target("duckdb", "xero")
    assert real.stat().st_size == size

    with_wal = tmp_path / "wal.duckdb"
    with_wal.touch()
    (tmp_path / "wal.duckdb.wal").write_bytes(b"x")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(with_wal))
    resolve_target("duckdb", "xero")
    assert with_wal.exists()  # not ours to judge: a person looks at it


def test_the_root_cause_of_a_destination_failure_reaches_the_operator(
    cli_home: CliHome, small_disk: Callable[[str, int], Path],
) -> None:
    disk = small_disk("warehouse-disk", 12)
    deep = disk / "a-folder-with-a-rather-long-name" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    cli_home.db = deep / "the-warehouse-of-this-installation.duckdb"
    fill(disk)
    result = cli_home.run()
    assert result.code == 1
    assert "No space left on device" in result.stderr, result.stderr[-2000:]
