"""docs/tables.md against a fresh demo-like load: no drift, no undocumented column, and a check
command that fails (saying how to regenerate) when the document is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SandboxFactory
from tools.dictionary import (
    DOCUMENT,
    REGENERATE,
    documented_columns,
    drift,
    main,
    render,
    undocumented,
)
from tools.reference_load import ReferenceLoad

# Full loads into a warehouse: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_the_document_matches_a_fresh_load(reference: ReferenceLoad) -> None:
    problems = drift(DOCUMENT.read_text(encoding="utf-8"), render(reference.schema))
    assert not problems, (
        "docs/tables.md drifted from the loaded schema:\n  " + "\n  ".join(problems)
        + f"\nRegenerate it with `{REGENERATE}`."
    )


def test_every_loaded_table_and_column_is_described(reference: ReferenceLoad) -> None:
    assert undocumented(reference.schema) == [], "describe them in tools/dictionary.py"


def test_the_document_covers_the_bookkeeping_tables_and_the_views(
    reference: ReferenceLoad,
) -> None:
    listed = documented_columns(render(reference.schema))
    assert {"sync_runs", "connections", "active_suppliers", "chart_of_accounts",
            "tracking_options_current", "tax_rates_current", "organisations",
            "sync_freshness"} <= set(listed)
    assert "updated_date_utc" in listed["suppliers"]
    assert listed["suppliers"][0] == "tenant_id"


def test_drift_names_the_columns_that_came_and_went(reference: ReferenceLoad) -> None:
    fresh = render(reference.schema)
    lines = fresh.splitlines()
    start = lines.index("### `accounts`")
    code = next(i for i in range(start, len(lines)) if lines[i].startswith("| `code` |"))
    stale = lines[:code] + lines[code + 1:]
    stale.insert(code, "| `legacy_code` | text |  | gone from Xero |")
    problems = drift("\n".join(stale) + "\n", fresh)
    assert "`accounts`: new columns code" in problems
    assert "`accounts`: columns gone legacy_code" in problems
    assert drift(fresh, fresh) == []
    assert drift(fresh.replace("The account's name.", "Its name."), fresh) == [
        "descriptions or types changed"]


def test_check_fails_on_a_stale_document_and_says_how_to_regenerate(
    sandbox_factory: SandboxFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "tables.md"
    stale.write_text("# Tables and views\n\n### `accounts`\n\n| `account_id` | text |\n",
                     encoding="utf-8")
    url = sandbox_factory().url
    assert main(["--check", "--sandbox", url, "--output", str(stale)]) == 1
    err = capsys.readouterr().err
    assert "out of date" in err
    assert "`accounts`: new columns tenant_id" in err
    assert REGENERATE in err
