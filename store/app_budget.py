"""The app's one budget of Xero calls, kept in the store: ``connector.budget``'s ledger.

Every process that calls Xero for the app (every worker, on every machine with PostgreSQL) takes
its calls from here in small leases before it calls (``connector.budget.AppBudget``):

- ``xero_app_budget``: a row per lease: the calls granted, when, and until when they count
  (a window after the last call the holder sent, once it settles the lease; a window after the
  lease's hold ran out until then, so the lease of a worker killed before settling counts no
  longer than that and nothing stays lost). Rows past their time are deleted by the next taker.
- ``xero_app_pause``: "no calls before T" for the whole app, written when Xero answered 429
  ``appminute`` with its ``Retry-After``; every taker honours it.

Takers take turns (SQLite: the write lock of ``BEGIN IMMEDIATE``; PostgreSQL: a transaction
advisory lock), so two workers never both see the last free calls. Times are seconds since the
epoch on the store's clock (PostgreSQL's, shared by every machine), so machines' clocks need
not agree; a holder reports when it used its calls as an offset from the grant.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from connector.budget import AppLease
from store.sql import Transaction

_APP = "app"


def _holder() -> str:
    """Who took a lease (for someone reading the table): host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class AppBudgetQueries:
    """The budget's queries, mixed into ``Store`` (which supplies ``_read``, ``_write`` and
    ``_budget_turn``); ``Store`` is thereby a ``connector.budget.AppCallLedger``."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def _budget_turn(self, tx: Transaction) -> float:
        """Wait for this taker's turn inside ``tx``; the store's clock (epoch seconds)."""
        del tx
        return time.time()  # SQLite: BEGIN IMMEDIATE already serialises writers

    def take_app_calls(self, want: int, *, limit: int, window: float, hold: float) -> AppLease:
        """Grant up to ``want`` calls while fewer than ``limit`` count and no pause is in force;
        they count until ``hold + window`` from now (until settled). Nothing granted: the
        lease says how long until room is likely."""
        with self._write() as tx:
            now = self._budget_turn(tx)
            tx.execute("DELETE FROM xero_app_budget WHERE counted_until <= ?", (now,))
            paused = tx.rows("SELECT not_before FROM xero_app_pause WHERE scope = ?", (_APP,))
            if paused and float(paused[0]["not_before"]) > now:
                return AppLease(None, 0, float(paused[0]["not_before"]) - now)
            counted = tx.rows("SELECT COALESCE(SUM(calls), 0) AS calls,"
                              " MIN(counted_until) AS first_free FROM xero_app_budget")[0]
            room = limit - int(counted["calls"])
            if room <= 0:
                return AppLease(None, 0, float(counted["first_free"]) - now)
            lease_id = secrets.token_hex(8)
            granted = max(1, min(want, room))
            tx.execute(
                "INSERT INTO xero_app_budget (lease_id, calls, granted_at, counted_until, holder)"
                " VALUES (?, ?, ?, ?, ?)",
                (lease_id, granted, now, now + hold + window, _holder()),
            )
        return AppLease(lease_id, granted)

    def settle_app_calls(self, lease_id: str, used: int, last_used_after: float, *,
                         window: float) -> None:
        """The holder used ``used`` calls, the last ``last_used_after`` seconds after the grant:
        they count until a window after that; the unused go back at once."""
        with self._write() as tx:
            if used <= 0:
                tx.execute("DELETE FROM xero_app_budget WHERE lease_id = ?", (lease_id,))
                return
            until = last_used_after + window
            tx.execute(
                "UPDATE xero_app_budget SET calls = ?, counted_until = CASE"
                " WHEN granted_at + ? < counted_until THEN granted_at + ? ELSE counted_until END"
                " WHERE lease_id = ? AND calls >= ?",
                (used, until, until, lease_id, used),
            )

    def pause_app_calls(self, seconds: float) -> None:
        """No calls for the whole app before ``seconds`` from now (a later pause wins)."""
        with self._write() as tx:
            now = self._budget_turn(tx)
            tx.execute(
                "INSERT INTO xero_app_pause (scope, not_before) VALUES (?, ?)"
                " ON CONFLICT (scope) DO UPDATE SET not_before = CASE"
                " WHEN excluded.not_before > xero_app_pause.not_before"
                " THEN excluded.not_before ELSE xero_app_pause.not_before END",
                (_APP, now + seconds),
            )

    def app_calls_counted(self) -> int:
        """Calls of the app counted in the window now (leases granted, not yet free)."""
        with self._write() as tx:
            now = self._budget_turn(tx)
            rows = tx.rows("SELECT COALESCE(SUM(calls), 0) AS calls FROM xero_app_budget"
                           " WHERE counted_until > ?", (now,))
        return int(rows[0]["calls"])


__all__ = ["AppBudgetQueries"]
