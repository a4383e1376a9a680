"""Where a run loads: the dlt destination, dataset and pipeline name, from flags or config.

No destination gets special code beyond two defaults: DuckDB's file is `xero_elt.duckdb` in the
working directory unless `destination.duckdb.credentials` says otherwise, and destinations that
can take parquet get it (DuckDB loads 10x faster; PostgreSQL goes through ADBC).

Why not `xero.duckdb` (what CONVENTIONS.md first said): DuckDB names a database's catalog after
its file, and a catalog named like the dataset (`xero`) makes every `xero.suppliers` ambiguous —
DuckDB refuses such queries ("Ambiguous reference to catalog or schema"), dlt's loads included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.reference import Destination

log = logging.getLogger("xero_elt.run")

DEFAULT_DESTINATION = "duckdb"
DEFAULT_DATASET = "xero"
DEFAULT_DUCKDB_FILE = "xero_elt.duckdb"
# DuckDB's buffer pool may otherwise take most of the machine's RAM, so a full load's merge grew
# with the organisation (637 MB at 100,000 suppliers, 846 MB at 200,000). Bounded, it spills to
# its temp directory instead (408 MB at 100,000; see docs/benchmarks.md). One thread and no
# insertion order keep the merge's working memory within that bound. A configured
# `destination.duckdb.credentials.global_config` replaces these.
DUCKDB_GLOBAL_CONFIG: dict[str, Any] = {
    "memory_limit": "100MB", "threads": 1, "preserve_insertion_order": False,
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


class DestinationError(ValueError):
    """The destination or dataset cannot be used as configured (exit code 2)."""


@dataclass(frozen=True)
class Target:
    """A resolved destination: what dlt.pipeline() needs, plus how to describe it."""

    name: str
    dataset: str
    destination: Any
    loader_file_format: str | None
    description: str
    duckdb_file: str | None = None  # a local DuckDB file, for `held_open`

    @property
    def pipeline_name(self) -> str:
        """Separate incremental state per destination and dataset."""
        return f"xero_{self.name}_{self.dataset}"


def target_key(destination: str | None = None, dataset: str | None = None) -> str:
    """The shared pipeline name of a destination and dataset (``Target.pipeline_name``) without
    resolving credentials or touching files: what schedules key their last reads by."""
    name = destination or _config("pipelines.destination") or DEFAULT_DESTINATION
    dataset = dataset or _config("pipelines.dataset_name") or DEFAULT_DATASET
    return f"xero_{name}_{dataset}"


def _config(key: str) -> Any:
    try:
        return dlt.config.get(key)
    except Exception:  # a malformed toml surfaces later with dlt's own message
        return None


def configured_duckdb_path() -> str:
    """The DuckDB file a run writes to (dlt's setting, else ./xero_elt.duckdb)."""
    value = os.environ.get("DESTINATION__DUCKDB__CREDENTIALS") or _secret(
        "destination.duckdb.credentials"
    )
    return str(value) if value else DEFAULT_DUCKDB_FILE


def _secret(key: str) -> Any:
    try:
        return dlt.secrets.get(key)
    except Exception:
        return None


def unknown_destination(name: str, exc: BaseException) -> str:
    """One readable line for a destination dlt could not load: a near name when it is a typo
    (``postgress`` → did you mean postgres?), else dlt's first line (a missing package)."""
    import difflib

    import dlt.destinations

    known = [d for d in dlt.destinations.__all__ if d != "destination"]
    if name not in known:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        return (f"unknown destination {name!r}: {hint}xero-elt loads into duckdb (the default) "
                "or postgres, or any dlt destination by its name "
                f"({', '.join(sorted(known))})")
    first = " ".join(str(exc).replace("\\n", "\n").replace("\\t", " ").split("\n")[0].split())
    return f"destination {name!r} could not be loaded: {first or type(exc).__name__}"


def resolve_target(destination: str | None = None, dataset: str | None = None) -> Target:
    """Resolve flags and config (`[pipelines] destination`, `dataset_name`) into a Target."""
    name = destination or _config("pipelines.destination") or DEFAULT_DESTINATION
    dataset = dataset or _config("pipelines.dataset_name") or DEFAULT_DATASET
    for what, value in (("destination", name), ("dataset", dataset)):
        if not _NAME.match(str(value)):
            raise DestinationError(
                f"bad {what} name {value!r}: use letters, digits and underscores"
            )
    if name == "duckdb":
        path = configured_duckdb_path()
        if not path.startswith("md:") and not path.startswith(":"):
            if Path(path).stem == dataset:
                raise DestinationError(
                    f"the DuckDB file {path} and the dataset are both named {dataset!r}: DuckDB "
                    "would not tell the catalog from the schema; rename one of them"
                )
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            _discard_empty_database(Path(path).expanduser())
            _make_private(Path(path).expanduser())
        dest: Any = dlt.destinations.duckdb(credentials=_duckdb_credentials(path))
        description = f"duckdb file {Path(path).resolve()}"
        local_file = None if path.startswith(("md:", ":")) else str(Path(path).expanduser())
    elif name == "postgres":
        local_file = None
        dest = dlt.destinations.postgres(credentials=_postgres_credentials())
        description = f"postgres (dataset {dataset})"
    else:
        local_file = None
        try:
            dest = Destination.from_reference(name, destination_name=name)
        except Exception as exc:
            raise DestinationError(unknown_destination(name, exc)) from None
        description = f"{name} (dataset {dataset})"
    return Target(
        name=name,
        dataset=str(dataset),
        destination=dest,
        loader_file_format=_preferred_format(dest),
        description=description,
        duckdb_file=local_file,
    )


@contextlib.contextmanager
def held_open(target: Target) -> Iterator[None]:
    """A local DuckDB file kept open for the whole of a load turn (other destinations: nothing).

    dlt opens the database for each load job and closes it after. The last close checkpoints
    the file and drops DuckDB's caches, so a load of many files paid that once per file (6.8%
    of a 100,000-supplier load's samples were dlt's ``_close_conn``). DuckDB shares one database
    among a process's connections to the same file, so one connection held here makes each
    job's close cheap and leaves a single checkpoint, at the end. dlt connects with an empty
    config and sets its own with SET GLOBAL, so this plain connect matches it. The same holds
    for a run's other touches in its turn (``pipelines.runlocks``): each of them opened and
    checkpointed the file, ~0.1 s apiece. A file that does not exist yet is left to dlt.
    """
    if target.duckdb_file is None or not _has_database(Path(target.duckdb_file)):
        yield  # dlt's first open creates the file (and reports a full disk as it does)
        return
    import duckdb

    try:
        connection = duckdb.connect(target.duckdb_file)
    except Exception:  # an I/O error, a file another process holds: dlt's own open says so
        connection = None
    try:
        yield
    finally:
        if connection is not None:
            connection.close()


def _has_database(path: Path) -> bool:
    """A DuckDB file that exists and is not empty."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _duckdb_credentials(path: str) -> Any:
    """The DuckDB file with xero-elt's memory bounds, unless the configuration sets its own."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    if os.environ.get("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG") or _secret(
            "destination.duckdb.credentials.global_config"):
        return path
    return DuckDbCredentials(path, global_config=dict(DUCKDB_GLOBAL_CONFIG))


def _make_private(path: Path) -> None:
    """A DuckDB file made before xero-elt's umask 077 (0644) becomes the owner's alone."""
    for each in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(OSError):
            each.chmod(0o600)


def _postgres_credentials() -> Any:
    """dlt's PostgreSQL credentials, with a password even when the DSN has none.

    A DSN without a password is legitimate (trust or peer auth, ``PGPASSWORD``, ``~/.pgpass``),
    but dlt refuses it as incomplete. So the password becomes ``PGPASSWORD`` if set, else empty:
    libpq then reads the password file itself, and trust auth needs none. None when nothing is
    configured (dlt's own resolution then reports what is missing).
    """
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    value = os.environ.get("DESTINATION__POSTGRES__CREDENTIALS") or _secret(
        "destination.postgres.credentials")
    if not value:
        return None
    credentials = PostgresCredentials()
    if isinstance(value, str):
        try:
            credentials.parse_native_representation(value)
        except Exception:
            raise DestinationError(
                "destination.postgres.credentials is not a postgresql:// URL"
            ) from None
    else:
        try:
            for key, item in dict(value).items():
                setattr(credentials, key, item)
        except (TypeError, ValueError):
            raise DestinationError(
                "destination.postgres.credentials must be a postgresql:// URL or a table"
            ) from None
    if not credentials.password:
        credentials.password = os.environ.get("PGPASSWORD", "")
    return credentials


def check_destination(pipeline: Any, target: Target) -> None:
    """Connect to the destination before any call to Xero, so a bad setting costs no quota.

    Raises:
        DestinationError: one line naming the setting (never its value).
        DestinationFailed: the destination is set up right but cannot be written (full disk).
    """
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    setting = f"destination.{target.name}.credentials"
    try:
        with pipeline.sql_client() as client:
            client.execute_sql("select 1")
    except ConfigFieldMissingException as exc:
        nested = re.findall(r"with missing field\(s\): ([^\n]+)", str(exc))
        missing = ", ".join(nested) if nested else ", ".join(f"`{f}`" for f in exc.fields)
        raise DestinationError(
            f"{setting} is incomplete (missing {missing}); set it in .dlt/secrets.toml or "
            f"DESTINATION__{target.name.upper()}__CREDENTIALS"
        ) from None
    except NotImplementedError:
        return  # not a SQL destination (files, buckets): dlt checks it when it loads
    except Exception as exc:
        if type(exc).__name__ == "SqlClientNotAvailable":
            return
        root = _root_cause(exc)
        if isinstance(root, OSError) or type(root).__name__ == "IOException":
            # A full or read-only disk is the machine failing, not a setting: exit 1, as a
            # load that meets it later would. (An empty file it leaves is cleared by the next
            # resolve_target.)
            raise DestinationFailed(f"{target.description} cannot be written: "
                                    f"{_first_line(root)}") from None
        raise DestinationError(f"{setting}: cannot reach {target.description}: "
                               f"{_first_line(root)}") from None


class DestinationFailed(RuntimeError):
    """The destination is configured but cannot be used now (full disk, I/O error)."""


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost of an exception's causes (dlt wraps what the database said)."""
    for _ in range(20):  # a cycle must not hang us
        inner = (exc.__cause__ or getattr(exc, "exception", None)
                 or getattr(exc, "inner_exc", None))
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    """An exception's first line, without a DSN (which may hold a password)."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = re.sub(r"\w+://\S+", "<url>", line)
    # Long paths push the reason ("No space left on device") to the end: keep both ends.
    return line if len(line) <= 400 else f"{line[:150]} … {line[-250:]}"



def _discard_empty_database(path: Path) -> None:
    """Remove a 0-byte DuckDB file: what a first open leaves when the disk is full.

    DuckDB refuses such a file forever after ("exists, but it is not a valid DuckDB database
    file"), so every later run would fail even once space is freed. An empty file holds nothing.
    """
    wal = path.with_name(path.name + ".wal")
    try:
        if path.is_file() and path.stat().st_size == 0 and not wal.exists():
            path.unlink()
            log.warning("removed the empty DuckDB file %s (left by a failed first write)", path)
    except OSError as exc:
        log.warning("could not remove the empty DuckDB file %s: %s", path, exc.strerror)


def _preferred_format(dest: Any) -> str | None:
    """Parquet where the destination takes it directly; otherwise dlt's own preference."""
    try:
        caps = dest.capabilities()
    except Exception:
        return None
    if caps.preferred_loader_file_format == "insert_values" and (
        "parquet" in (caps.supported_loader_file_formats or [])
    ):
        return "parquet"
    return None
