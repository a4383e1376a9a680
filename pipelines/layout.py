"""Which dlt pipeline a run loads through: one for every organisation, or one per organisation.

- ``shared`` (the default, cron on one machine): one pipeline per destination and dataset,
  ``xero_<destination>_<dataset>``; every organisation's cursors live in its state.
- ``per_organisation`` (Dagster, several workers): ``xero_<destination>_<dataset>__<tenant>``,
  a pipeline per organisation; a run of several (a Dagster batch) is one run of each, side by
  side in threads (``pipelines.run._execute_each``). dlt keeps a pipeline's state as one
  document (locally and in the destination's ``_dlt_pipeline_state``): runs of different
  organisations through one pipeline, side by side or on different machines, would each write
  back their own copy and lose the other organisations' cursors. A pipeline per organisation
  gives each its own state document.

Both layouts load into the same dataset and staging dataset; loads into one dataset take turns
(see ``pipelines/runlocks.py`` and docs/deploy.md for why the staging dataset stays shared).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from pipelines.destinations import DestinationError, Target

Layout = Literal["shared", "per_organisation"]
LAYOUTS: tuple[str, ...] = ("shared", "per_organisation")


@configspec
class LayoutSettings(BaseConfiguration):
    """``[pipelines]``: how runs map onto dlt pipelines."""

    layout: str = "shared"
    """``shared`` (one pipeline for every organisation) or ``per_organisation`` (one pipeline
    per organisation: what Dagster runs). Also ``PIPELINES__LAYOUT``."""


def configured_layout(explicit: str | None = None) -> str:
    """The layout asked for (``RunOptions.layout``), else ``[pipelines] layout``."""
    value = explicit or resolve_configuration(LayoutSettings(), sections=("pipelines",)).layout
    if value not in LAYOUTS:
        raise DestinationError(f"[pipelines] layout must be one of {', '.join(LAYOUTS)}, "
                               f"not {value!r}")
    return str(value)


def pipeline_name(target: Target, layout: str, tenants: Sequence[str] | None) -> str:
    """The dlt pipeline of this run; a per-organisation run here names exactly one organisation
    (``execute`` splits a run of several into one run each)."""
    if layout == "shared":
        return target.pipeline_name
    if not tenants or len(set(tenants)) != 1:
        raise DestinationError(
            "layout per_organisation loads one organisation per run: pass exactly one --tenant "
            "(Dagster runs one per partition)"
        )
    return organisation_pipeline_name(target, tenants[0])


# dlt takes a pipeline's name as a schema name where no schema exists yet (the destination check
# before the first run), and schema names are identifiers of at most 64 characters.
_MAX_NAME = 64


def organisation_pipeline_name(target: Target, tenant_id: str) -> str:
    """``xero_<destination>_<dataset>__<tenant id, dashes as underscores>``; past 64 characters
    (a long dataset name) the tenant part becomes a 12-character digest of the tenant id."""
    name = f"{target.pipeline_name}__{tenant_id.replace('-', '_').lower()}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(tenant_id.lower().encode()).hexdigest()[:12]
    return f"{target.pipeline_name[:_MAX_NAME - 14]}__{digest}"
