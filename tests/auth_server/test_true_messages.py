"""Every message true and specific (issue 26, point 3), on the auth server's side: what the
customer reads, what the operator reads, and what the log does not cry wolf about."""

from __future__ import annotations

import html
import logging
import re
from dataclasses import replace
from typing import Any

import httpx
import pytest

from auth_server.invites import create_invite
from tests.auth_server.helpers import RunningAuth

CAUSE = ("Xero rejected the app's client credentials (invalid_client): check "
         "sources.xero.client_secret and sources.xero.client_id")


def _text(page: httpx.Response) -> str:
    inline = re.sub(r"</?(?:strong|em|a|span|code|b|i|bdi)\b[^>]*>", "", page.text)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline))).strip()


def test_a_wrong_client_secret_is_told_truly_to_the_customer_and_the_operator(
        auth: RunningAuth, org: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    auth.server.app.xero = replace(auth.server.app.xero, client_secret="not-the-secret")
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    with caplog.at_level(logging.WARNING):
        page = customer.callback(customer.consent(customer.next(), org["admin"],
                                                  tenant_ids=[org["tenantId"]]))
    words = _text(page)
    # The customer: what happened, that retrying will not help, and whom to tell.
    assert page.status_code == 502
    assert "Acme Finance's connection to Xero is not set up correctly" in words
    assert "Starting again will not help until Acme Finance fixes its settings." in words
    assert "Contact the person who sent your invitation." in words
    assert "usually works the second time" not in words
    assert "took too long" not in words
    # The operator: the cause in one line, on the record, in the log, the admin page and the CLI.
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", CAUSE)
    assert CAUSE in caplog.text
    with auth.admin() as admin:
        assert CAUSE in _text(admin.get("/admin"))


def test_a_favicon_request_is_not_an_error(
        auth: RunningAuth, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), auth.http() as http:
        answer = http.get("/favicon.ico")
    assert answer.status_code == 204
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "support reference" not in caplog.text


def test_an_unauthenticated_admin_page_is_a_sign_in_prompt_not_an_error(
        auth: RunningAuth, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), auth.http() as http:
        page = http.get("/admin")
    assert page.status_code == 401
    words = _text(page)
    assert "Sign in to see connections" in words
    assert "Support reference" not in words
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
