"""Values Xero masks for a lower-privileged user must never overwrite the full values we hold.

For US organisations Xero shows a Standard-role user only the last four digits of a contact's
``TaxNumber`` (REFERENCE.md section 0, "Roles"). The exact mask is not documented, so any run of
mask characters (``*``, ``x``, ``X``, ``•``, ``#``) before four digits counts, with or without
separators. A masked value is replaced by the full one already loaded for that contact; when
there is none, it loads as it came and a warning says so. The full values are looked up in the
``suppliers`` table already loaded (``connector.memory.Memory.tax_numbers``), never kept in state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_MASKED = re.compile(r"^(?=(?:.*[*xX•#]){2})[*xX•#\s\-.]+\d{4}$")

# (contact ids) -> {contact id: the full value loaded before}
StoredValues = Callable[[list[str]], dict[str, str]]


def is_masked(value: object) -> bool:
    """True for a value like ``*****6789`` or ``XXX-XX-6789``: mask characters, four digits."""
    return isinstance(value, str) and bool(_MASKED.match(value.strip()))


def restore(rows: list[dict], stored: StoredValues, warn: Callable[[str], None]) -> None:
    """Put the full ``TaxNumber`` back where Xero sent a masked one (rows changed in place)."""
    masked = [row for row in rows if is_masked(row.get("TaxNumber"))]
    if not masked:
        return
    known = stored([row["ContactID"] for row in masked])
    unknown = 0
    for row in masked:
        full = known.get(row["ContactID"])
        if full and not is_masked(full):
            row["TaxNumber"] = full
        else:
            unknown += 1
    if unknown:
        warn(f"suppliers: {unknown} tax numbers came masked (the authorising user's role) and "
             "no full value was loaded before; they load masked until an admin reconnects")


def running_pipeline() -> Any:
    """The dlt pipeline running this extraction, or None (a source run on its own)."""
    try:
        import dlt

        return dlt.current.pipeline()
    except Exception:  # no active pipeline
        return None


__all__ = ["StoredValues", "is_masked", "restore", "running_pipeline"]
