"""Which dlt pipeline a run loads through: one for every organisation, or one per organisation.

- ``shared`` (the default, cron on one machine): one pipeline per destination and dataset,
  ``xero_<destination>_<dataset>``.
- ``per_organisation`` (Dagster, several workers): a run of one organisation loads through
  ``xero_<destination>_<dataset>__<tenant>``; a run of several (a Dagster batch) through
  ``xero_<destination>_<dataset>__batch``, in a working folder private to the run
  (``pipelines.run._execute_each``): one load package and one load turn for the batch.
  Runs side by side, or on different machines, may share these names because dlt's state
  holds nothing per organisation: each organisation's cursors are memory rows beside its data
  (``connector.memory.CURSORS_KEY``), written in the package they describe, read under its
  lock. (Before, each organisation's cursors lived in its own pipeline's state; a batch's
  first run reads them from there, ``pipelines.state_rows.organisation_cursors``.)

Both layouts load into the same dataset and staging dataset; loads into one dataset take turns
(see ``pipelines/runlocks.py`` and docs/deploy.md for why the staging dataset stays shared).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from pipelines.destinations import DestinationError, Target

Layout = Literal["shared", "per_organisation"]
LAYOUTS: tuple[str, ...] = ("shared", "per_organisation")


@configspec
class LayoutSettings(BaseConfiguration):
    """``[pipelines]``: how runs map onto dlt pipelines and load packages."""

    layout: str = "shared"
    """``shared`` (one pipeline for every organisation) or ``per_organisation`` (one pipeline
    per organisation: what Dagster runs). Also ``PIPELINES__LAYOUT``."""
    first_loads_per_package: int = 25
    """Organisations never loaded before that one load package takes at most: a run of many
    first loads loads them in slices, so its memory is bounded by a slice (DuckDB merges a
    package in one go) rather than by the number of organisations. Organisations loaded
    before all go in one package (their runs are small). Also
    ``PIPELINES__FIRST_LOADS_PER_PACKAGE``."""


def first_loads_per_package() -> int:
    """``[pipelines] first_loads_per_package`` (at least 1)."""
    value = resolve_configuration(LayoutSettings(), sections=("pipelines",)).first_loads_per_package
    if value < 1:
        raise DestinationError("[pipelines] first_loads_per_package must be at least 1, "
                               f"not {value}")
    return int(value)


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


def batch_pipeline_name(target: Target) -> str:
    """``xero_<destination>_<dataset>__batch``: the pipeline of a per-organisation run of
    several organisations (its working folder is the run's own)."""
    return f"{target.pipeline_name[:_MAX_NAME - 7]}__batch"


def organisation_pipeline_name(target: Target, tenant_id: str) -> str:
    """``xero_<destination>_<dataset>__<tenant id, dashes as underscores>``; past 64 characters
    (a long dataset name) the tenant part becomes a 12-character digest of the tenant id."""
    name = f"{target.pipeline_name}__{tenant_id.replace('-', '_').lower()}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(tenant_id.lower().encode()).hexdigest()[:12]
    return f"{target.pipeline_name[:_MAX_NAME - 14]}__{digest}"


BATCHES = "batches"  # under dlt's pipelines folder: the batch runs' private working folders
_HELD = ".held"


@contextlib.contextmanager
def batch_folder(pipelines_dir: Path) -> Iterator[Path]:
    """A working folder private to one batch run, flocked while the run lives and removed when
    it ends. A killed run's folder (its flock died with it) is removed by the next batch or a
    purge (``remove_dead_batches``): its packages held only what the next run reads again, the
    cursors included (they travel in the same package)."""
    parent = pipelines_dir / BATCHES
    parent.mkdir(parents=True, exist_ok=True)
    remove_dead_batches(pipelines_dir)
    folder = Path(tempfile.mkdtemp(prefix="batch-", dir=parent))
    fd = os.open(folder / _HELD, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def remove_dead_batches(pipelines_dir: Path) -> int:
    """Remove the batch folders no living run holds; how many."""
    parent = pipelines_dir / BATCHES
    if not parent.is_dir():
        return 0
    removed = 0
    for folder in parent.iterdir():
        try:
            fd = os.open(folder / _HELD, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # made but never held (killed at once): dead
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a living run's
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed
