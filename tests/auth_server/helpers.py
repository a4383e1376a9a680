"""A customer walking the connection flow over real HTTP, and a running auth server for tests."""

from __future__ import annotations

import email
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from auth_server.server import AuthServer
from sandbox.handle import ConsentOutcome, SandboxHandle, consent_via_forms
from store import Connection, Store

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"


def csrf_of(page: httpx.Response, index: int = 0) -> str:
    """The n-th CSRF token on a page."""
    tokens = CSRF_RE.findall(page.text)
    assert tokens, f"no CSRF token on {page.url} ({page.status_code})"
    return tokens[index]


@dataclass
class RunningAuth:
    """An in-process auth server bound to a free port, with its store and a sandbox app."""

    server: AuthServer
    thread: threading.Thread
    store: Store
    sandbox: SandboxHandle
    app: dict[str, Any]
    synced: list[Connection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def settings(self) -> Any:
        return self.server.app.settings

    @property
    def xero(self) -> Any:
        return self.server.app.xero

    def http(self, **kwargs: Any) -> httpx.Client:
        """A plain client for this server (no redirects followed)."""
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, **kwargs)

    def customer(self) -> Customer:
        """A new browser (its own cookies) for a person following an invite."""
        return Customer(self)

    def admin(self) -> httpx.Client:
        """A client sending the admin token as a bearer token."""
        return self.http(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def connection(self, connection_id: str) -> Connection:
        return self.store.get_connection(connection_id)

    def outbox(self) -> list[Path]:
        return sorted((self.store.home / "outbox").glob("*.eml"))


def read_eml(path: Path) -> EmailMessage:
    """Parse an outbox file."""
    with open(path, "rb") as fh:
        msg = email.message_from_binary_file(fh, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


class Customer:
    """One person's browser: cookies kept, redirects inspected step by step."""

    def __init__(self, auth: RunningAuth) -> None:
        self.auth = auth
        self.http = auth.http()
        self.xero_browser = httpx.Client(timeout=30)  # the sandbox's own cookies
        self.page: httpx.Response | None = None

    def close(self) -> None:
        self.http.close()
        self.xero_browser.close()

    def get(self, path_or_url: str) -> httpx.Response:
        self.page = self.http.get(path_or_url)
        return self.page

    def open(self, link: str) -> httpx.Response:
        """Open the invite link; follows our own redirect to the first step."""
        first = self.http.get(link)
        if first.status_code == 303:
            assert first.headers["location"] == "/connect"
            return self.get("/connect")
        self.page = first
        return first

    def post(self, path: str, data: dict[str, str], csrf: str | None = None) -> httpx.Response:
        """Submit a form; the CSRF token comes from the current page unless given."""
        form = dict(data)
        if "csrf_token" not in form:
            form["csrf_token"] = csrf or csrf_of(self.page)  # type: ignore[arg-type]
        self.page = self.http.post(path, data=form)
        return self.page

    def choose_xero(self) -> httpx.Response:
        page = self.post("/connect/software", {"software": "xero"})
        assert page.status_code == 303, page.text
        return self.get("/connect/review")

    def next(self) -> str:
        """Press Next on the review page; returns Xero's authorize URL (not followed)."""
        page = self.post("/connect/authorize", {})
        assert page.status_code == 303, page.text
        return page.headers["location"]

    def consent(self, authorize_url: str, user: dict[str, Any], *, action: str = "allow",
                tenant_ids: list[str] | None = None) -> ConsentOutcome:
        """Sign in and allow (or cancel) at the sandbox; returns the redirect to our callback."""
        params = dict(parse_qsl(urlsplit(authorize_url).query))
        return consent_via_forms(self.auth.sandbox, self.xero_browser, params, user["email"],
                                 user["password"], action=action, tenant_ids=tenant_ids)

    def callback(self, outcome: ConsentOutcome | str) -> httpx.Response:
        location = outcome if isinstance(outcome, str) else outcome.location
        assert location.startswith(self.auth.url + "/callback"), location
        self.page = self.http.get(location)
        return self.page

    def to_confirm(self, link: str, user: dict[str, Any], *,
                   tenant_ids: list[str] | None = None) -> httpx.Response:
        """invite → Xero → Next → sign in → Allow access → the confirm page."""
        self.open(link)
        self.choose_xero()
        outcome = self.consent(self.next(), user, tenant_ids=tenant_ids)
        page = self.callback(outcome)
        assert page.status_code == 303, page.text
        assert page.headers["location"] == "/connect/confirm"
        return self.get("/connect/confirm")

    def confirm(self, tenant_id: str | None = None) -> httpx.Response:
        data = {"action": "confirm"}
        if tenant_id is not None:
            data["tenant"] = tenant_id
        else:
            found = re.search(r'name="tenant" value="([^"]+)"', self.page.text)  # type: ignore[union-attr]
            assert found, "no single organisation on the confirm page"
            data["tenant"] = found.group(1)
        return self.post("/connect/confirm", data)

    def connect(self, link: str, user: dict[str, Any], **kwargs: Any) -> httpx.Response:
        """The whole happy path; returns the success page."""
        self.to_confirm(link, user, **kwargs)
        page = self.confirm()
        assert page.status_code == 303, page.text
        assert page.headers["location"] == "/connect/done"
        return self.get("/connect/done")


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until ``condition()`` holds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
