"""Error pages carry a support reference that is also in the log; the success page's "Next"."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from auth_server.invites import create_invite
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth
from tests.sandbox_handle import SandboxHandle

REF = re.compile(r"XE-[0-9A-F]{6} · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC(?: · [^<]+)?")


def test_an_error_page_s_reference_names_the_organisation_and_is_logged(
        auth: RunningAuth, caplog: pytest.LogCaptureFixture) -> None:
    conn, fresh = create_invite(auth.store, auth.settings, "Gamma Ltd", "g@gamma.test")
    auth.store.update_connection(conn.connection_id, status="disconnected")
    with caplog.at_level(logging.WARNING, logger="auth_server.support"), auth.http() as http:
        page = http.get(fresh)  # a withdrawn invite: the page knows whose it was
    assert page.status_code == 410
    shown = REF.search(page.text)
    assert shown
    assert shown.group(0).endswith("· Gamma Ltd")
    assert any(shown.group(0) in r.getMessage() for r in caplog.records)
    token = fresh.rsplit("/", 1)[1]
    assert token not in caplog.text


def test_an_error_page_without_an_organisation_still_has_a_reference(
        auth: RunningAuth, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="auth_server.support"), auth.http() as http:
        page = http.get("/connect/confirm")
    assert page.status_code == 400
    code = re.search(r"XE-[0-9A-F]{6}", page.text)
    assert code
    assert code.group(0) in caplog.text
    assert "Support reference" in page.text
    with auth.http() as http:
        assert "Support reference" not in http.get("/").text  # not an error


@pytest.mark.parametrize("next_url", [None, "https://platform.test/onboarding/next"])
def test_the_success_page_has_next_or_says_close_this_window(
        sandbox: SandboxHandle, tmp_home: Path, org: dict[str, Any], next_url: str | None
) -> None:
    auth = start_auth(sandbox, tmp_home, success_next_url=next_url)
    try:
        _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
        page = auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    finally:
        stop_auth(auth)
    assert "Connection Successful" in page.text
    if next_url:
        assert f'<a href="{next_url}" class="button primary">Next</a>' in page.text
        assert "close this window" not in page.text
    else:
        assert ">Next<" not in page.text
        assert "You can close this window now" in page.text
