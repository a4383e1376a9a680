"""A demo-like load against a sandbox: the reference `docs/tables.md` is generated from.

Same world as the demo (seed 42, two organisations, 250 suppliers each), both organisations
connected, a first run, a few changes at "Xero" (emails changed, a supplier archived, a new one,
a customer turned supplier, an account and a tracking option deleted, a tax rate deleted by
status), then an incremental run with reconciliation — into a DuckDB file in a directory of its
own, with history off and the schema contract `evolve` whatever the local config says.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipelines.demo import SEED, SUPPLIERS, TENANTS
from pipelines.processes import ServerStartError, served
from sandbox.handle import SandboxHandle, xero_env
from tools.sandbox_setup import connect_organisations

DATASET = "xero"
DUCKDB_FILE = "xero_elt.duckdb"


class ReferenceLoadError(RuntimeError):
    """The sandbox or a run did not do what the reference load needs."""


@dataclass
class ReferenceLoad:
    """What a reference load left: its pipeline (with the dlt schema) and its DuckDB file."""

    pipeline: Any
    duckdb_path: Path

    @property
    def schema(self) -> Any:
        """The loaded dlt schema."""
        return self.pipeline.default_schema


@contextmanager
def sandbox_process() -> Iterator[str]:
    """A `python -m sandbox` with the demo's world on a free port; yields its URL."""
    args = ["sandbox", "--port", "0", "--seed", str(SEED), "--tenants", str(TENANTS),
            "--suppliers", str(SUPPLIERS), "--no-rate-limits"]
    try:
        with served(args, "sandbox listening on ") as url:
            yield url
    except ServerStartError as exc:
        raise ReferenceLoadError(str(exc)) from None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the runs, and put the old values back after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _control(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = http.request(method, f"/_sandbox{path}", json=body)
    if response.status_code >= 400:
        raise ReferenceLoadError(f"{method} /_sandbox{path}: {response.status_code} "
                                 f"{response.text[:200]}")
    return response.json()


def _change_xero(http: httpx.Client, pipeline: Any) -> None:
    """The demo's kind of changes, in the first organisation, chosen from what was loaded."""
    with pipeline.sql_client() as client:
        tenant, = client.execute_sql(
            "SELECT min(tenant_id) FROM xero.accounts")[0]
        suppliers = [r[0] for r in client.execute_sql(
            "SELECT contact_id FROM xero.suppliers WHERE tenant_id = %s AND contact_status = "
            "'ACTIVE' ORDER BY contact_id LIMIT 4", tenant)]
        account, = client.execute_sql(
            "SELECT min(account_id) FROM xero.accounts WHERE tenant_id = %s AND type = 'EXPENSE' "
            "AND system_account IS NULL", tenant)[0]
        option, = client.execute_sql(
            "SELECT min(tracking_option_id) FROM xero.tracking_options WHERE tenant_id = %s",
            tenant)[0]

    def mutate(**body: Any) -> Any:
        return _control(http, "POST", "/mutations", {"tenant_id": tenant, **body})

    for contact in suppliers[:3]:
        mutate(entity="contacts", op="update", id=contact,
               fields={"EmailAddress": "ap@changed.example"})
    mutate(entity="contacts", op="archive", id=suppliers[3])
    mutate(entity="contacts", op="create", fields={"Name": "Harbour Freight Co",
                                                   "IsSupplier": True})
    customer = mutate(entity="contacts", op="create", fields={"Name": "Tui Cafe"})["id"]
    mutate(entity="contacts", op="make_supplier", id=customer)
    mutate(entity="accounts", op="delete", id=account)
    mutate(entity="tracking_options", op="delete", id=option)
    mutate(entity="tax_rates", op="delete", id="TAX002")


def reference_load(sandbox_url: str, directory: Path) -> ReferenceLoad:
    """Reset the sandbox and load it as the demo would, into `directory`; what it left.

    Raises:
        ReferenceLoadError: the sandbox refused a call or a run did not succeed.
    """
    import dlt

    from pipelines.destinations import resolve_target
    from pipelines.run import RunOptions, execute
    from store import open_store

    directory.mkdir(parents=True, exist_ok=True)
    home = directory / "home"
    home.mkdir(exist_ok=True)
    duckdb_path = directory / DUCKDB_FILE
    with httpx.Client(base_url=sandbox_url.rstrip("/"), timeout=60) as http:
        _control(http, "POST", "/reset")
        store = open_store(home)
        handle = SandboxHandle(sandbox_url.rstrip("/"))
        try:
            app = handle.create_app(["http://127.0.0.1:8765/callback"],
                                    name="xero-elt reference load")
            connect_organisations(store, handle, app)
        except Exception as exc:
            raise ReferenceLoadError(f"cannot connect the sandbox's organisations: {exc}") \
                from None
        finally:
            handle.close()
        env = {
            **xero_env(sandbox_url, app),
            # The reference is the default configuration, whatever the local one says.
            "SOURCES__XERO__HISTORY": "",
            "SOURCES__XERO__SCHEMA_CONTRACT": "evolve",
            "DESTINATION__DUCKDB__CREDENTIALS": str(duckdb_path),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
        with _environment(env):
            for options in (RunOptions(destination="duckdb", dataset=DATASET),
                            RunOptions(destination="duckdb", dataset=DATASET, reconcile=True)):
                report = execute(options, store)
                if report.exit_code != 0:
                    raise ReferenceLoadError(f"a reference run failed: {report.summary}")
                target = resolve_target("duckdb", DATASET)
                pipeline = dlt.pipeline(
                    pipeline_name=target.pipeline_name, destination=target.destination,
                    dataset_name=target.dataset, pipelines_dir=str(home / "pipelines"))
                if not options.reconcile:
                    _change_xero(http, pipeline)
    return ReferenceLoad(pipeline, duckdb_path)
