"""The example pipeline run as a newcomer would: a fresh directory, a `.dlt/secrets.toml` with the
app's credentials and a refresh token, `python xero_pipeline.py` twice, nothing else of ours.

The second run happens after Xero's 30-minute grace for the rotated-away refresh token has
passed, so it works only if the first run kept the rotated token (the one in the secrets file
is dead by then).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from connector.token_file import FileTokenStore
from sandbox.handle import REPO_ROOT, SandboxHandle, make_grant

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "xero_pipeline.py"
TABLES = ("suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options")


def _newcomer_env(tmp_path: Path) -> dict[str, str]:
    """The environment of someone who has only installed the package: none of our variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "XERO_ELT_", "DESTINATION__", "AUTH_SERVER__"))}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt-home")
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.pop("PYTHONPATH", None)
    return env


def _run(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "xero_pipeline.py"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def _counts(project: Path) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(project / "xero.duckdb"), read_only=True) as db:
        return {
            (table, tenant): count
            for table in TABLES
            for tenant, count in db.execute(
                f"select tenant_id, count(*) from xero_data.{table} group by 1"  # noqa: S608
            ).fetchall()
        }


def _expected(sandbox: SandboxHandle) -> dict[tuple[str, str], int]:
    return {(table, t["tenantId"]): t["counts"][table]
            for t in sandbox.tenants() for table in TABLES}


def test_the_example_loads_every_organisation_twice_across_a_token_rotation(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="newcomer")
    grant = make_grant(sandbox, app)
    assert grant.refresh_token
    project = tmp_path / "my-xero-project"
    (project / ".dlt").mkdir(parents=True)
    shutil.copy(EXAMPLE, project / "xero_pipeline.py")
    (project / ".dlt" / "secrets.toml").write_text(
        "[sources.xero]\n"
        f'client_id = "{app["client_id"]}"\n'
        f'client_secret = "{app["client_secret"]}"\n'
        f'refresh_token = "{grant.refresh_token}"\n'
    )
    (project / ".dlt" / "config.toml").write_text(
        "[sources.xero]\n"
        f'authorize_url = "{sandbox.authorize_url}"\n'
        f'token_url = "{sandbox.token_url}"\n'
        f'revocation_url = "{sandbox.revocation_url}"\n'
        f'connections_url = "{sandbox.connections_url}"\n'
        f'api_url = "{sandbox.api_url}"\n'
    )
    env = _newcomer_env(tmp_path)

    first = _run(project, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _counts(project) == _expected(sandbox)

    tenant = grant.tenant_ids[0]
    with duckdb.connect(str(project / "xero.duckdb"), read_only=True) as db:
        contact_id = db.execute("select contact_id from xero_data.suppliers where tenant_id = ? "
                                "order by contact_id limit 1", [tenant]).fetchone()[0]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact_id,
                   fields={"Name": "Renamed Between Runs"}, touch_updated=True)
    # Past the access token's expiry and Xero's grace for the rotated-away refresh token.
    sandbox.advance(1801 + 1800)
    second = _run(project, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _counts(project) == _expected(sandbox)
    with duckdb.connect(str(project / "xero.duckdb"), read_only=True) as db:
        name = db.execute("select name from xero_data.suppliers where contact_id = ?",
                          [contact_id]).fetchone()[0]
    assert name == "Renamed Between Runs"

    token_calls = [r for r in sandbox.requests() if r["path"] == "/connect/token"]
    assert token_calls
    assert all(r["status"] == 200 for r in token_calls)
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert grant.refresh_token not in output
    # The secrets' token was adopted into the token file (owner-only, like the secrets file)
    # and rotated away there: the file holds only the live grant.
    token_file = project / ".xero-elt" / "tokens.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert grant.refresh_token not in token_file.read_text()
    # No token in dlt's state, schemas or load packages (the token file holds them).
    stored = FileTokenStore(project / ".xero-elt").list_grants()
    secrets = {grant.refresh_token} | {g.refresh_token for g in stored} \
        | {g.access_token for g in stored}
    state_files = list((tmp_path / "dlt-home").rglob("state.json"))
    assert state_files  # the pipeline's working folder is where we look
    for path in (tmp_path / "dlt-home").rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not [s for s in secrets if s and s in text], path


def test_the_secrets_refresh_token_is_dead_after_the_grace_period(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """The premise of the test above: a rotated-away refresh token stops working after 30
    minutes, so a second run that reused the secrets' token would fail."""
    import httpx

    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="premise")
    grant = make_grant(sandbox, app)
    auth = (app["client_id"], app["client_secret"])
    form = {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}
    assert httpx.post(sandbox.token_url, data=form, auth=auth).status_code == 200
    sandbox.advance(1801 + 1800)
    refused = httpx.post(sandbox.token_url, data=form, auth=auth)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("entities", [["accounts"], ["tracking_categories"]])
def test_entities_select_tables(entities: list[str]) -> None:
    from connector import xero_source
    from connector.settings import load_settings

    source = xero_source(entities=entities, settings=load_settings(client_id="x"))
    expected = {"accounts"} if entities == ["accounts"] else {"tracking_categories",
                                                              "tracking_options"}
    assert set(source.resources) == expected
