"""Views and the data dictionary for analysts (built out by issue 5's analyst work)."""

from __future__ import annotations

from typing import Any


def create_views(pipeline: Any) -> list[str]:
    """Create or replace the current-state views in the pipeline's dataset; their names."""
    return []
