"""The run's daily call counter writes in batches: counted at once, written on flush/close."""

from __future__ import annotations

from pathlib import Path

from freezegun import freeze_time

from connector.usage import DailyUsage


def test_a_batching_counter_counts_at_once_and_writes_on_flush(tmp_path: Path) -> None:
    with freeze_time("2026-03-01 12:00:00"):
        run = DailyUsage(tmp_path, flush_every=3600)
        for tenant in ("t-1", "t-1", "t-2"):
            run.record(tenant)
        assert run.used("t-1") == 2  # this run sees its own calls before they are written
        assert DailyUsage(tmp_path).used("t-1") == 0  # another process: not written yet
        run.flush()
        assert DailyUsage(tmp_path).used("t-1") == 2
        assert run.used("t-1") == 2  # not counted twice once written
        run.record("t-2", 4)
        run.close()  # close writes what is pending
        assert DailyUsage(tmp_path).used("t-2") == 5


def test_a_batching_counter_writes_once_its_interval_has_passed(tmp_path: Path) -> None:
    with freeze_time("2026-03-01 12:00:00") as clock:
        run = DailyUsage(tmp_path, flush_every=1.0)
        run.record("t-1")
        assert DailyUsage(tmp_path).used("t-1") == 0
        clock.tick(1.5)
        run.record("t-1")  # due: this call writes both
        assert DailyUsage(tmp_path).used("t-1") == 2
