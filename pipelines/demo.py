"""`xero-elt demo`: the whole story on a fresh machine, offline, against the sandbox.

Starts the sandbox and the auth server on free loopback ports, invites a customer, walks the
connection flow as their Xero admin would (over HTTP), confirms the company, lets the auth
server's background first sync load DuckDB, changes a few records at "Xero", runs an incremental
sync, and prints what was loaded and where.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from connector.suppliers import is_supplier
from pipelines import exitcodes
from pipelines.formwalk import Browser, PageError
from pipelines.processes import ServerStartError, served
from sandbox.handle import xero_env

SEED = 42
TENANTS = 2
SUPPLIERS = 250
# Not xero.duckdb: DuckDB names the catalog after the file, and a catalog called like the
# dataset (`xero`) makes every `xero.<table>` reference ambiguous.
DUCKDB_FILE = "xero_elt.duckdb"


class DemoError(RuntimeError):
    """A step of the demo did not go as the story says."""


def _say(text: str) -> None:
    print(text, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(directory: Path, sandbox_url: str | None = None,
                 app: dict[str, Any] | None = None, auth_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "XERO_ELT_HOME": str(directory / "home"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(directory / DUCKDB_FILE),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": str(directory / "home" / "dlt"),
        "PYTHONUNBUFFERED": "1",
    })
    # The demo keeps the chart of accounts' history, so the README's history query has its
    # columns to read (a configured value wins).
    env.setdefault("SOURCES__XERO__HISTORY", "accounts")
    if sandbox_url and app:
        env.update({**xero_env(sandbox_url, app), "SOURCES__XERO__RECONCILE_INTERVAL_HOURS": "24"})
    if auth_url:
        env["AUTH_SERVER__PUBLIC_URL"] = auth_url
        env["AUTH_SERVER__PRODUCT_NAME"] = "Acme Finance"
    return env


def _walk_connection_flow(link: str, user: dict[str, Any]) -> str:
    """Click through invite → Xero → Next → sign in → Allow access → Confirm; the last page."""
    browser = Browser()
    try:
        browser.open(link)
        _expect(browser, "Share your financial information")
        try:
            browser.click("Xero")
        except PageError:
            browser.click_link("Xero")
        _expect(browser, "Review access request")
        browser.click("Next")
        browser.click("Log in", by_type={"email": user["email"], "password": user["password"]})
        browser.click("Allow access")
        _expect(browser, "Confirm")
        browser.click("Confirm")
        _expect(browser, "Connection Successful")
        _expect(browser, "Accounting – 1 connected")
        return browser.text
    finally:
        browser.close()


def _expect(browser: Browser, text: str) -> None:
    if text not in browser.text:
        url = browser.page.url if browser.page is not None else "?"
        raise DemoError(f"expected {text!r} on {url} (status "
                        f"{browser.page.status_code if browser.page else '?'})")


def _wait_for_first_sync(store: Any, connection_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = store.get_connection(connection_id)
        if conn.sync_state in ("synced", "failed") and conn.last_sync_outcome:
            return conn
        time.sleep(0.5)
    raise DemoError(f"the first sync did not finish within {timeout:.0f} s")


def _read_xero(store: Any, grant_id: str, tenant_id: str, resource: str) -> list[dict[str, Any]]:
    """Read a collection through Xero's own API, as any client would."""
    from connector.settings import load_settings
    from store.token_provider import access_token_for

    settings = load_settings()
    token = access_token_for(store, settings, grant_id)
    response = httpx.get(
        f"{settings.api_url}/{resource}",
        params={"page": "1", "pageSize": "1000", "includeArchived": "true"},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant_id,
                 "Accept": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()[resource]
    return items


def _change_xero(sandbox: httpx.Client, store: Any, conn: Any) -> list[str]:
    """A few changes at "Xero" for the incremental sync to find."""
    tenant_id = conn.tenant_id
    contacts = _read_xero(store, conn.grant_id, tenant_id, "Contacts")
    suppliers = [c for c in contacts
                 if is_supplier(c, unknown=False) and c.get("ContactStatus") == "ACTIVE"]
    customers = [c for c in contacts if not is_supplier(c, unknown=False)]
    accounts = _read_xero(store, conn.grant_id, tenant_id, "Accounts")
    done = []
    for contact in suppliers[:3]:
        sandbox.post("/_sandbox/mutations", json={
            "tenant_id": tenant_id, "entity": "contacts", "op": "update",
            "id": contact["ContactID"], "fields": {"EmailAddress": "ap@changed.example"},
        }).raise_for_status()
    done.append("3 suppliers changed their email address")
    sandbox.post("/_sandbox/mutations", json={
        "tenant_id": tenant_id, "entity": "contacts", "op": "archive",
        "id": suppliers[3]["ContactID"]}).raise_for_status()
    done.append("1 supplier archived")
    created = sandbox.post("/_sandbox/mutations", json={
        "tenant_id": tenant_id, "entity": "contacts", "op": "create",
        "fields": {"Name": "Harbour Freight Co", "IsSupplier": True}}).json()
    done.append(f"1 new supplier (Harbour Freight Co, {created.get('id')})")
    if customers:
        sandbox.post("/_sandbox/mutations", json={
            "tenant_id": tenant_id, "entity": "contacts", "op": "make_supplier",
            "id": customers[0]["ContactID"]}).raise_for_status()
        done.append("1 customer became a supplier (Xero does not move UpdatedDateUTC)")
    deletable = [a for a in accounts if not a.get("SystemAccount") and a.get("Type") == "EXPENSE"]
    if deletable:
        sandbox.post("/_sandbox/mutations", json={
            "tenant_id": tenant_id, "entity": "accounts", "op": "delete",
            "id": deletable[-1]["AccountID"]}).raise_for_status()
        done.append(f"account {deletable[-1].get('Code')} deleted")
    return done


def run_demo(directory: Path) -> int:
    """Run the whole demo; keeps everything it makes in `directory`."""
    from store import open_store

    directory = directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "home").mkdir(parents=True)
    logs = directory / "logs"
    logs.mkdir()
    started = time.monotonic()
    _say(f"xero-elt demo — everything goes into {directory}\n")

    env = _environment(directory)
    with served(["sandbox", "--port", "0", "--seed", str(SEED), "--tenants", str(TENANTS),
                 "--suppliers", str(SUPPLIERS)], "sandbox listening on", env=env,
                log=logs / "sandbox.log") as sandbox_url:
        _say(f"1. Local Xero (sandbox) at {sandbox_url}: {TENANTS} organisations, "
             f"{SUPPLIERS} suppliers each")
        sandbox = httpx.Client(base_url=sandbox_url, timeout=30)
        auth_port = _free_port()
        auth_url = f"http://127.0.0.1:{auth_port}"
        app = sandbox.post("/_sandbox/apps", json={
            "name": "Acme Finance", "redirect_uris": [f"{auth_url}/callback"]}).json()
        tenants = sandbox.get("/_sandbox/tenants").json()
        users = sandbox.get("/_sandbox/users").json()
        org = tenants[0]
        admin = next(u for u in users
                     if u["role"] == "admin" and org["tenantId"] in u["tenant_ids"])
        env = _environment(directory, sandbox_url, app, auth_url)
        os.environ.update(env)

        with served(["pipelines", "serve", "--port", str(auth_port)], "auth server listening on",
                    env=env, log=logs / "auth-server.log") as auth_served:
            _say(f"2. Auth server at {auth_served}")
            from pipelines.commands import create_invite_link

            connection_id, link = create_invite_link(org["name"], admin["email"])
            _say(f"3. Invite {connection_id} for {org['name']} <{admin['email']}>; the email is in "
                 f"{directory / 'home' / 'outbox'}")
            _walk_connection_flow(link, admin)
            _say(f"4. {admin['email']} chose Xero, reviewed the access request, signed in at "
                 "Xero, allowed access and confirmed the company:\n"
                 "   Connection Successful — Accounting – 1 connected")
            store = open_store()
            conn = _wait_for_first_sync(store, connection_id)
            _say(f"5. First sync in the background: {conn.last_sync_outcome}, "
                 f"{conn.last_sync_rows} rows")
            if conn.last_sync_outcome != "ok":
                raise DemoError(f"the first sync did not succeed (see {logs})")

            changes = _change_xero(sandbox, store, conn)
            _say("6. Changes at Xero: " + "; ".join(changes))
            from pipelines.run import RunOptions, execute

            for step, label, options in (
                # Seconds after the first sync nothing is due yet: the demo reads everything.
                (7, "Incremental sync", RunOptions(wait=120, schedule=False)),
                # Incremental runs read the accounts that changed; a deleted one shows only in
                # the whole chart, read once a day (accounts_snapshot_hours) or on --reconcile.
                (8, "Reconciliation pass (finds the customer that became a supplier, and the "
                    "deleted account in the whole chart of accounts)",
                 RunOptions(wait=120, reconcile=True, entities=["suppliers", "accounts"])),
            ):
                sandbox.delete("/_sandbox/requests")
                report = execute(options, store)
                calls = sandbox.get("/_sandbox/requests").json()
                api_calls = [c for c in calls if c["path"].startswith("/api.xro/")]
                rows = sum(o["rows_loaded"] for o in report.summary["organisations"])
                _say(f"{step}. {label}: {report.summary['outcome']}, {rows} rows written, "
                     f"{len(api_calls)} API calls (+{len(calls) - len(api_calls)} "
                     "token/connections)")
                if report.exit_code != exitcodes.OK:
                    raise DemoError(f"{label} ended with exit code {report.exit_code}")
    _print_summary(directory / DUCKDB_FILE)
    _say(f"\nDone in {time.monotonic() - started:.0f} s. The DuckDB file: "
         f"{directory / DUCKDB_FILE}")
    return exitcodes.OK


def _print_summary(path: Path) -> None:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as db:
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'xero' "
            "AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' "
            "ORDER BY table_name"
        ).fetchall()
        views = [name for (name,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'xero' "
            "AND table_type = 'VIEW' ORDER BY table_name").fetchall()]
        _say("\nTables in schema xero (rows):")
        for (name,) in tables:
            sql = f'SELECT count(*) FROM xero."{name}"'  # noqa: S608 - names from the catalog
            (count,) = db.execute(sql).fetchone()  # type: ignore[misc]
            _say(f"  {name:<40} {count:>7}")
        runs = db.execute(
            "SELECT entity, sum(rows_loaded), sum(api_calls), count(DISTINCT run_id) "
            "FROM xero.sync_runs GROUP BY entity ORDER BY entity"
        ).fetchall()
        _say("Views of the current state: " + ", ".join(views))
        _say("\nsync_runs (rows loaded / API calls over all runs):")
        for entity, rows, calls, n in runs:
            _say(f"  {entity:<22} {rows:>6} rows {calls:>4} calls  ({n} runs)")
    query = ("select organisation_name, name, email_address from xero.active_suppliers "
             "order by name limit 5")
    _say(f"\nTry: .venv/bin/python -c \"import duckdb; "
         f"print(duckdb.connect('{path}', read_only=True).sql('{query}'))\"")
    _say("More queries: README.md, 'For analysts'; every column: docs/tables.md")


def main(directory: Path = Path("demo-data")) -> int:
    """Run the demo, turning a failed step into a one-line message and exit code 1."""
    try:
        return run_demo(directory)
    except (DemoError, ServerStartError, httpx.HTTPError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
