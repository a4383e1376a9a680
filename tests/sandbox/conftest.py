"""Fixtures for the sandbox's own tests: plain HTTP clients against the default sandbox."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.handle import SandboxHandle


@pytest.fixture
def http(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A keep-alive client for Xero's paths on the default sandbox (no redirects followed)."""
    with httpx.Client(base_url=sandbox.url, timeout=30, follow_redirects=False) as client:
        yield client


@pytest.fixture
def browser(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A second client standing for a person's browser (its own cookie jar)."""
    with httpx.Client(base_url=sandbox.url, timeout=30, follow_redirects=False) as client:
        yield client


@pytest.fixture
def tenant_ids(sandbox: SandboxHandle) -> list[str]:
    """The default sandbox's two organisations, in seed order."""
    return sandbox.tenant_ids()


def basic(client_id: str, secret: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, unverified."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def refresh(http: httpx.Client, app: dict[str, Any], refresh_token: str) -> httpx.Response:
    """POST /connect/token with grant_type=refresh_token (Basic client auth)."""
    return http.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(app["client_id"], app["client_secret"]),
    )


def api_get(
    http: httpx.Client,
    access_token: str,
    tenant_id: str | None,
    path: str = "/Organisation",
    **kw: Any,
) -> httpx.Response:
    """GET an accounting endpoint as JSON."""
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if tenant_id is not None:
        headers["xero-tenant-id"] = tenant_id
    headers.update(kw.pop("headers", {}))
    return http.get(f"/api.xro/2.0{path}", headers=headers, **kw)
