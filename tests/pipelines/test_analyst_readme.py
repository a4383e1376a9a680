"""The README's analyst queries run as written against a demo-like DuckDB file (the history
query against one with history on), and answer what they say they answer."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse, needs_history, readme_queries
from tools.reference_load import ReferenceLoad

# Full loads into a warehouse: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _may_be_empty(sql: str) -> bool:
    """The 'anything failing?' query has nothing to say after healthy runs."""
    return "<> 'ok'" in sql


def _run_all(path: str, queries: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(path, read_only=True) as db:
        return {sql: db.execute(sql).fetchall() for sql in queries}


def test_the_readme_has_the_promised_queries() -> None:
    queries = readme_queries()
    text = "\n".join(queries)
    assert len(queries) >= 5
    for needle in ("xero.active_suppliers", "code = '400'", "xero.sync_runs",
                   "_dlt_valid_to"):
        assert needle in text, needle


def test_readme_queries_run_against_a_demo_like_load(reference: ReferenceLoad) -> None:
    plain = [q for q in readme_queries() if not needs_history(q)]
    for sql, rows in _run_all(str(reference.duckdb_path), plain).items():
        assert rows or _may_be_empty(sql), f"no rows from:\n{sql}"
    per_org = _run_all(str(reference.duckdb_path), [plain[0]])[plain[0]]
    assert len(per_org) == 2
    assert all(count > 100 for _, count in per_org)


def test_readme_history_query_answers_with_last_quarters_name(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, xero_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__XERO__HISTORY", "accounts")
    w = duckdb_warehouse
    w.run_ok()
    # Pretend that first load happened four months ago: every version it wrote is older
    # than the start of this quarter.
    w.query("UPDATE {ds}.accounts SET _dlt_valid_from = _dlt_valid_from - INTERVAL '120 days'")
    renamed = {}
    for tenant, account in w.query(
        "SELECT tenant_id, account_id FROM {ds}.accounts WHERE code = '400'"
    ):
        renamed[tenant] = f"Marketing {len(renamed) + 1}"
        sandbox.mutate(tenant_id=tenant, entity="accounts", op="update", id=account,
                       fields={"Name": renamed[tenant]})
    assert len(renamed) == 2
    w.run_ok()

    queries = readme_queries()
    results = _run_all(xero_env["DESTINATION__DUCKDB__CREDENTIALS"], queries)
    history = next(q for q in queries if needs_history(q))
    assert [name for _, _, name in results[history]] == ["Advertising", "Advertising"]
    current = next(q for q in queries if "code = '400'" in q and not needs_history(q))
    assert sorted(row[2] for row in results[current]) == sorted(renamed.values())
    for sql, rows in results.items():  # every query also works with history on
        assert rows or _may_be_empty(sql), f"no rows from:\n{sql}"
