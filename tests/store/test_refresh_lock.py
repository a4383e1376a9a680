"""The grant lock is held for one token call, never while backing off: a refresh that meets a
transient failure at Xero lets go of the lock before it waits, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import tokens
from store import Store, StoreError, open_store
from tests.connector.conftest import connect_tenants, sandbox_settings
from tests.sandbox_handle import SandboxHandle, XeroGrant

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_the_lock_is_free_while_a_failed_refresh_backs_off(
    store: Store, store_url: str, tmp_path: Path, sandbox: SandboxHandle,
    xero_grant: XeroGrant, monkeypatch: pytest.MonkeyPatch,
) -> None:
    grant_id = connect_tenants(store, xero_grant, sandbox)
    rejected = store.get_grant(grant_id).access_token
    other_machine = open_store(tmp_path / "other-home", url=store_url)
    during_backoff: list[str] = []

    def sleep(_seconds: float) -> None:
        try:
            with other_machine.grant_lock(grant_id, timeout=0.2):
                during_backoff.append("free")
        except StoreError:
            during_backoff.append("held")

    monkeypatch.setattr(tokens.time, "sleep", sleep)
    sandbox.fault(kind="status", status=503, path="/connect/token", count=2)
    sandbox.clear_requests()

    token = tokens.access_token_for(store, sandbox_settings(sandbox, xero_grant), grant_id,
                                    rejected=rejected)

    assert during_backoff == ["free", "free"]
    assert token == store.get_grant(grant_id).access_token != rejected
    statuses = [r["status"] for r in sandbox.requests(path="/connect/token")]
    assert statuses == [503, 503, 200]
