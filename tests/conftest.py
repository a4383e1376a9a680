"""Root fixtures: sandboxes (separate processes, one per settings per test session), an app and a
grant in the default sandbox, and a temporary XERO_ELT_HOME.

    def test_something(sandbox, xero_grant):
        sandbox.fault(kind="status", status=503, path="/api.xro/2.0/Contacts")
        ...

`sandbox` is reset before every test (data, apps, grants, faults, limits, log, clock); other
sandboxes come from `sandbox_factory(tenants=…, suppliers=…, rate_limits=…, seed=…,
latency_ms=…)`, are shared by every test asking for the same settings, and are NOT reset for you.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.handle import (
    DEFAULT_REDIRECT_URI,
    SandboxHandle,
    SandboxProcess,
    XeroGrant,
    make_grant,
    start_sandbox_process,
)

DEFAULT_SANDBOX = {"tenants": 2, "suppliers": 250, "rate_limits": True, "seed": 42, "latency_ms": 0}

SandboxFactory = Callable[..., SandboxHandle]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), the slow tests go first: started last, a two-minute test
    keeps one worker busy after the other has finished everything else."""
    if hasattr(config, "workerinput"):  # an xdist worker; every worker sorts the same way
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start (once per distinct settings) a `python -m sandbox` process and hand out its handle."""
    running: dict[tuple[tuple[str, object], ...], tuple[SandboxProcess, SandboxHandle]] = {}

    def factory(**settings: object) -> SandboxHandle:
        unknown = set(settings) - set(DEFAULT_SANDBOX)
        if unknown:
            raise TypeError(f"unknown sandbox settings {sorted(unknown)}")
        merged = {**DEFAULT_SANDBOX, **settings}
        key = tuple(sorted(merged.items()))
        if key in running and running[key][0].process.poll() is not None:
            del running[key]  # it died (a test killed it?): start a fresh one
        if key not in running:
            process = start_sandbox_process(**merged)
            running[key] = (process, SandboxHandle(process.url, process))
        return running[key][1]

    yield factory
    for process, handle in running.values():
        handle.close()
        process.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxHandle:
    """The default sandbox (2 organisations, 250 suppliers each, limits on), freshly reset."""
    handle = sandbox_factory()
    handle.reset()
    return handle


@pytest.fixture
def xero_app(sandbox: SandboxHandle) -> dict[str, object]:
    """An app registered in the default sandbox, redirect URI http://127.0.0.1:8765/callback."""
    return sandbox.create_app([DEFAULT_REDIRECT_URI], name="xero-elt tests")


@pytest.fixture
def xero_grant(sandbox: SandboxHandle, xero_app: dict[str, object]) -> XeroGrant:
    """A grant of `xero_app` for the first admin who can reach both organisations, connected to
    both (default scopes: openid profile email offline_access accounting.contacts.read
    accounting.settings.read)."""
    return make_grant(sandbox, xero_app)


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XERO_ELT_HOME (and dlt data dir, telemetry off) for one test."""
    home = tmp_path / "xero-elt-home"
    home.mkdir(mode=0o700)  # as xero-elt makes it: an open one gets a warning
    monkeypatch.setenv("XERO_ELT_HOME", str(home))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt-data"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Most tests are about what a run reads, and run twice within seconds: schedules (what is
    # due) are off unless a test turns them on (tests/pipelines/test_schedule.py).
    monkeypatch.setenv("PIPELINES__SCHEDULE__ENABLED", "false")
    return home
