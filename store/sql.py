"""The two shapes every store query deals in: a row read, and a write transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = Mapping[str, Any]


class Transaction(Protocol):
    """What a write transaction offers the shared queries."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one query inside the transaction (it sees the transaction's own writes)."""
        ...


__all__ = ["Row", "Transaction"]
