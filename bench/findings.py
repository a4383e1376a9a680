"""'What would close it': the misses explained from the run's own profile and levers.

Each known cost is a set of function names in the py-spy profile; its share of the samples is
read from this run's profile, so the text says how much each fix could save at most, with this
run's numbers. A cost whose share is negligible in this run is left out.
"""

from __future__ import annotations

from typing import Any

# (what, the function names whose total samples measure it, the fix). Shares are of all
# samples of busy threads; nested names overlap, so the largest matching share is used.
KNOWN_COSTS: tuple[tuple[str, tuple[str, ...], str], ...] = ()


def closing_notes(results: dict[str, Any]) -> str:
    """The section, or '' when no scenario of this run has the figures for it."""
    return ""
