"""The sandbox's client side: start sandbox processes, drive the control plane, and point
xero-elt at a sandbox (``xero_env``). Used by the tests, the benchmarks, the dev tools and the
demo; like the rest of ``sandbox`` it imports nothing of ours.

The sandbox always runs as a separate process (`python -m sandbox --port 0 ...`), so freezegun
in a test never moves the sandbox's time; move that with `SandboxHandle.advance()`.

    proc = start_sandbox_process(tenants=2, suppliers=250)
    sb = SandboxHandle(proc.url)
    app = sb.create_app(["http://127.0.0.1:8765/callback"])
    tokens = sb.grant(app["client_id"], sb.admin()["email"])
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.contacts.read accounting.settings.read"
)
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"


def xero_urls(sandbox_url: str) -> dict[str, str]:
    """The ``[sources.xero]`` URL settings for a sandbox at ``sandbox_url``."""
    base = sandbox_url.rstrip("/")
    return {
        "authorize_url": f"{base}/identity/connect/authorize",
        "token_url": f"{base}/connect/token",
        "revocation_url": f"{base}/connect/revocation",
        "connections_url": f"{base}/connections",
        "api_url": f"{base}/api.xro/2.0",
    }


def xero_env(sandbox_url: str, app: dict[str, Any]) -> dict[str, str]:
    """`SOURCES__XERO__*` environment variables: the app's credentials and the sandbox's URLs."""
    values = {"client_id": app["client_id"], "client_secret": app.get("client_secret") or "",
              **xero_urls(sandbox_url)}
    return {f"SOURCES__XERO__{name.upper()}": value for name, value in values.items()}


class SandboxError(RuntimeError):
    """A control-plane call failed (status and the sandbox's message included)."""


@dataclass
class SandboxProcess:
    """A running `python -m sandbox` child process."""

    url: str
    process: subprocess.Popen[bytes]
    args: list[str]
    stderr_path: Path
    startup_seconds: float

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def stderr(self) -> str:
        """What the sandbox wrote to stderr so far."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def sandbox_args(
    *,
    tenants: int = 2,
    suppliers: int = 250,
    rate_limits: bool = True,
    seed: int = 42,
    latency_ms: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> list[str]:
    """The command-line arguments of `python -m sandbox` for these settings."""
    args = [
        "--host", host, "--port", str(port), "--seed", str(seed),
        "--tenants", str(tenants), "--suppliers", str(suppliers),
    ]  # fmt: skip
    if not rate_limits:
        args.append("--no-rate-limits")
    if latency_ms:
        args += ["--latency-ms", str(latency_ms)]
    return args


def start_sandbox_process(startup_timeout: float = 120, **settings: Any) -> SandboxProcess:
    """Start `python -m sandbox` and wait for its `sandbox listening on <url>` line."""
    args = sandbox_args(**settings)
    stderr_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
        prefix="sandbox-", suffix=".stderr", delete=False
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
    )
    stderr_file.close()
    stderr_path = Path(stderr_file.name)
    assert process.stdout is not None
    line = b""
    deadline = started + startup_timeout
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            break
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    text = line.decode(errors="replace").strip()
    prefix = "sandbox listening on "
    if not text.startswith(prefix):
        process.kill()
        process.wait()
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"sandbox did not start ({args}); first line {text!r}; stderr:\n{tail}")
    return SandboxProcess(
        text[len(prefix) :], process, args, stderr_path, time.monotonic() - started
    )


@dataclass
class XeroGrant:
    """An app and a token set for a user over some organisations (the `xero_grant` fixture)."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    user: str
    tenant_ids: list[str]
    access_token: str
    refresh_token: str | None
    id_token: str | None
    scope: str
    token_response: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:  # tokens stay out of test output
        return (
            f"XeroGrant(client_id={self.client_id!r}, user={self.user!r}, "
            f"tenant_ids={self.tenant_ids})"
        )

    def headers(self, tenant_id: str | None = None, *, json: bool = True) -> dict[str, str]:
        """Authorization (+ tenant, + Accept JSON) headers for an API call."""
        headers = {"Authorization": f"Bearer {self.access_token}"}
        if tenant_id is not None:
            headers["xero-tenant-id"] = tenant_id
        if json:
            headers["Accept"] = "application/json"
        return headers


class SandboxHandle:
    """A client for one sandbox's control plane, with its Xero URLs."""

    def __init__(self, url: str, process: SandboxProcess | None = None) -> None:
        self.url = url.rstrip("/")
        self.process = process
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def __repr__(self) -> str:
        return f"SandboxHandle({self.url!r})"

    # Xero's URLs on this sandbox

    @property
    def authorize_url(self) -> str:
        return xero_urls(self.url)["authorize_url"]

    @property
    def token_url(self) -> str:
        return xero_urls(self.url)["token_url"]

    @property
    def revocation_url(self) -> str:
        return xero_urls(self.url)["revocation_url"]

    @property
    def connections_url(self) -> str:
        return xero_urls(self.url)["connections_url"]

    @property
    def api_url(self) -> str:
        return xero_urls(self.url)["api_url"]

    def dlt_env(self, app: dict[str, Any]) -> dict[str, str]:
        """`SOURCES__XERO__*` environment variables pointing dlt config at this sandbox."""
        return xero_env(self.url, app)

    # control plane

    def _call(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        response = self.http.request(method, f"/_sandbox{path}", json=body, params=params)
        if response.status_code >= 400:
            raise SandboxError(f"{method} /_sandbox{path}: {response.status_code} {response.text}")
        return response.json()

    def info(self) -> dict[str, Any]:
        """How the sandbox was started, and its time."""
        return self._call("GET", "")

    def reset(self) -> None:
        """Back to the seeded state (data, apps, grants, faults, limits, log, clock)."""
        self._call("POST", "/reset")

    def create_app(
        self,
        redirect_uris: list[str] | str = DEFAULT_REDIRECT_URI,
        name: str = "xero-elt tests",
        **extra: Any,
    ) -> dict[str, Any]:
        """Register an app -> {"client_id", "client_secret", "name", "redirect_uris"}."""
        uris = [redirect_uris] if isinstance(redirect_uris, str) else list(redirect_uris)
        return self._call("POST", "/apps", {"name": name, "redirect_uris": uris, **extra})

    def tenants(self) -> list[dict[str, Any]]:
        """[{"tenantId", "name", "country_code", "base_currency", "counts"}]."""
        return self._call("GET", "/tenants")

    def tenant_ids(self) -> list[str]:
        """Every organisation's tenant id, in seed order."""
        return [t["tenantId"] for t in self.tenants()]

    def users(self) -> list[dict[str, Any]]:
        """[{"email", "password", "role", "tenant_ids", ...}]."""
        return self._call("GET", "/users")

    def admin(self, tenant_ids: list[str] | None = None) -> dict[str, Any]:
        """The first admin user who can reach all of `tenant_ids` (default: every tenant)."""
        wanted = set(tenant_ids if tenant_ids is not None else self.tenant_ids())
        for user in self.users():
            if user["role"] == "admin" and wanted <= set(user["tenant_ids"]):
                return user
        raise SandboxError(f"no admin user covers tenants {sorted(wanted)}")

    def standard_user(self) -> dict[str, Any]:
        """The first standard (non-admin) user."""
        return next(u for u in self.users() if u["role"] == "standard")

    def add_user(
        self, email: str, password: str, role: str, tenant_ids: list[str]
    ) -> dict[str, Any]:
        """Add a user who can sign in."""
        body = {"email": email, "password": password, "role": role, "tenant_ids": tenant_ids}
        return self._call("POST", "/users", body)

    def grant(
        self,
        client_id: str,
        user: str,
        tenant_ids: list[str] | None = None,
        scopes: str | list[str] = DEFAULT_SCOPES,
    ) -> dict[str, Any]:
        """Consent without a browser -> Xero's token response (connections created)."""
        body: dict[str, Any] = {"client_id": client_id, "user": user, "scopes": scopes}
        if tenant_ids is not None:
            body["tenant_ids"] = tenant_ids
        return self._call("POST", "/grants", body)

    def grants(self) -> list[dict[str, Any]]:
        """Every grant (no token values)."""
        return self._call("GET", "/grants")

    def revoke(self, **body: Any) -> dict[str, Any]:
        """Revoke grants: refresh_token=… or client_id=…, user=…."""
        return self._call("POST", "/grants/revoke", body)

    def connections(self) -> list[dict[str, Any]]:
        """Every connection of every user and app (with "client_id" and "user")."""
        return self._call("GET", "/connections")

    def disconnect(self, tenant_id: str, client_id: str | None = None) -> dict[str, Any]:
        """The organisation removes the app in Xero (every user's connection to it)."""
        body: dict[str, Any] = {"tenant_id": tenant_id}
        if client_id is not None:
            body["client_id"] = client_id
        return self._call("POST", "/disconnect", body)

    def requests(
        self, path: str | None = None, tenant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The request log (optionally under a path prefix / for one tenant)."""
        params = {k: v for k, v in {"path": path, "tenant_id": tenant_id}.items() if v}
        return self._call("GET", "/requests", params=params or None)

    def clear_requests(self) -> None:
        """Empty the request log and the stats counters."""
        self._call("DELETE", "/requests")

    def stats(self) -> dict[str, Any]:
        """Counters per status, path and tenant since the last clear."""
        return self._call("GET", "/stats")

    def mutate(self, **body: Any) -> dict[str, Any]:
        """Change data: tenant_id=…, entity=…, op=…, … (see docs/sandbox.md)."""
        return self._call("POST", "/mutations", body)

    def schedule_mutation(self, after_requests: int, **body: Any) -> dict[str, Any]:
        """Arm a mutation for mid-read: applied just before the (after_requests+1)th matching
        accounting request of its tenant (`path=` prefix, default /api.xro/2.0/Contacts)."""
        return self._call("POST", "/mutations", {**body, "after_requests": after_requests})

    def scheduled_mutations(self) -> dict[str, list[dict[str, Any]]]:
        """{"armed": [...], "applied": [...]}."""
        return self._call("GET", "/mutations/scheduled")

    def set_role(self, email: str, role: str, **extra: Any) -> dict[str, Any]:
        """Change a user's role in all their organisations (extra: connect_apps=True)."""
        return self._call("POST", f"/users/{email}", {"role": role, **extra})

    def fault(self, **body: Any) -> dict[str, Any]:
        """Arm a fault: kind=…, path=…, tenant_id=…, count=…, (status|seconds|problem)=…."""
        return self._call("POST", "/faults", body)

    def faults(self) -> list[dict[str, Any]]:
        """Faults still armed."""
        return self._call("GET", "/faults")

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._call("DELETE", "/faults")

    def limits(self, **changes: Any) -> dict[str, Any]:
        """Read the limits and counts, or change limits (e.g. day=1000)."""
        if changes:
            return self._call("POST", "/limits", changes)
        return self._call("GET", "/limits")

    def settings(self, **changes: Any) -> dict[str, Any]:
        """The switchable behaviours; with keyword arguments, change them first."""
        if changes:
            return self._call("POST", "/settings", changes)
        return self._call("GET", "/settings")

    def now(self) -> datetime:
        """The sandbox's time."""
        return datetime.fromisoformat(self._call("GET", "/clock")["now"])

    def advance(self, seconds: float) -> datetime:
        """Move the sandbox's clock forward; returns the new time."""
        return datetime.fromisoformat(
            self._call("POST", "/clock", {"advance_seconds": seconds})["now"]
        )

    def set_time(self, when: datetime | str) -> datetime:
        """Jump the sandbox's clock to `when`."""
        value = when if isinstance(when, str) else when.isoformat()
        return datetime.fromisoformat(self._call("POST", "/clock", {"set": value})["now"])

    def close(self) -> None:
        """Close the HTTP client (the process is the factory's to stop)."""
        self.http.close()


def make_grant(
    sb: SandboxHandle,
    app: dict[str, Any],
    user: str | None = None,
    tenant_ids: list[str] | None = None,
    scopes: str = DEFAULT_SCOPES,
) -> XeroGrant:
    """A grant over `tenant_ids` (default: all) for `user` (default: an admin of them all)."""
    tenant_ids = tenant_ids if tenant_ids is not None else sb.tenant_ids()
    email = user or sb.admin(tenant_ids)["email"]
    tokens = sb.grant(app["client_id"], email, tenant_ids, scopes)
    return XeroGrant(
        client_id=app["client_id"],
        client_secret=app.get("client_secret"),
        redirect_uri=app["redirect_uris"][0],
        user=email,
        tenant_ids=list(tenant_ids),
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        id_token=tokens.get("id_token"),
        scope=tokens["scope"],
        token_response=tokens,
    )


# --- the browser leg, driven with plain form posts -------------------------------------------

_RID = re.compile(r'name="rid" value="([^"]+)"')


@dataclass
class ConsentOutcome:
    """Where the sandbox's consent flow sent the browser in the end."""

    location: str
    pages: list[httpx.Response]

    @property
    def params(self) -> dict[str, str]:
        """The query parameters of the final redirect (code, state, error, ...)."""
        return dict(parse_qsl(urlsplit(self.location).query, keep_blank_values=True))


def consent_via_forms(
    sb: SandboxHandle,
    browser: httpx.Client,
    authorize_params: dict[str, str],
    email: str,
    password: str,
    *,
    action: str = "allow",
    tenant_ids: list[str] | None = None,
) -> ConsentOutcome:
    """Walk authorize -> sign-in -> consent the way a person would, with form posts.

    `browser` keeps the session cookie between calls (use one per simulated person). The last
    redirect (to the app's redirect URI) is returned, not followed. `tenant_ids` default to the
    organisation the consent page selects first.
    """
    pages: list[httpx.Response] = []
    page = browser.get(sb.authorize_url, params=authorize_params, follow_redirects=False)
    pages.append(page)
    if page.status_code == 200 and 'type="password"' in page.text:
        rid = _RID.search(page.text)
        if rid is None:
            raise SandboxError(f"no sign-in form in the authorize page: {page.text[:300]}")
        page = browser.post(
            f"{sb.url}/identity/login",
            data={"rid": rid.group(1), "email": email, "password": password},
            follow_redirects=False,
        )
        pages.append(page)
    if page.status_code != 302:
        raise SandboxError(f"expected a redirect to the consent page, got {page.status_code}")
    page = browser.get(sb.url + page.headers["location"], follow_redirects=False)
    pages.append(page)
    if "You don't have permission" in page.text:
        back = re.search(r'href="(/identity/consent/back\?[^"]+)"', page.text)
        if back is None:
            raise SandboxError("no way back on the permission page")
        page = browser.get(sb.url + back.group(1).replace("&amp;", "&"), follow_redirects=False)
        pages.append(page)
        return ConsentOutcome(page.headers["location"], pages)
    rid = _RID.search(page.text)
    if rid is None:
        raise SandboxError(f"no consent form: {page.status_code} {page.text[:300]}")
    if tenant_ids is None:
        first = re.search(r'name="tenant_id" value="([^"]+)" checked', page.text)
        tenant_ids = [first.group(1)] if first else []
    form = {"rid": rid.group(1), "action": action, "tenant_id": tenant_ids}
    page = browser.post(f"{sb.url}/identity/consent", data=form, follow_redirects=False)
    pages.append(page)
    if page.status_code != 302:
        raise SandboxError(f"consent did not redirect: {page.status_code} {page.text[:300]}")
    return ConsentOutcome(page.headers["location"], pages)
