"""The command line of Xero's webhooks in: `xero-elt status` shows their health (last handshake,
last event, pending events and lag) and warns when events wait too long; `run --webhook-events`
reads suppliers only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from pipelines.cli import main
from store import open_store
from store.xero_events import parse_event


def test_status_shows_webhook_health_and_warns_on_a_stuck_event(
        tmp_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(tmp_home)
    assert main(["status", "--json"]) == 0
    quiet = json.loads(capsys.readouterr().out)["webhooks"]
    assert (quiet["last_handshake_at"], quiet["pending"]) == (None, 0)
    assert main(["status"]) == 0
    assert "Xero webhooks" not in capsys.readouterr().out  # nothing to say before any delivery

    now = datetime.now(UTC)
    store.receive_xero_events([], handshake=True, now=now)
    event = parse_event({"resourceId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()),
                         "eventType": "CREATE", "eventCategory": "CONTACT",
                         "eventDateUtc": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}, now)
    assert event is not None
    store.receive_xero_events([event], handshake=False, now=now)
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "Xero webhooks:" in text
    assert "1 pending" in text

    with freeze_time(now + timedelta(minutes=20)):
        assert main(["status", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["webhooks"]["oldest_pending_age_s"] >= 1200
    assert any("Xero webhooks: 1 event(s) pending" in w for w in doc["warnings"])


def test_webhook_events_runs_take_no_other_entities_or_modes(
        tmp_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--entities", "accounts"], ["--reconcile"], ["--full-refresh"]):
        assert main(["run", "--webhook-events", *extra]) == 2
        assert "--webhook-events reads suppliers only" in capsys.readouterr().err
