"""Failpoints: stop a real `xero-elt run` process at an exact place, so a test can SIGKILL it there.

The kill tests start the run as

    python -c "<install failpoints>; runpy.run_module('pipelines', run_name='__main__')" run ...

which is `python -m pipelines run ...` with one function wrapped beforehand. The environment says
which function, before or after which call of it, and where to write a marker file:

    XERO_ELT_TEST_FAILPOINT="dlt.load.load:Load.complete_package:before:1"
    XERO_ELT_TEST_FAILPOINT_MARKER=/tmp/…/reached

With XERO_ELT_TEST_FAILPOINT_MATCH set, only calls on a load job whose file path contains that
text count. When the point is reached the calling thread writes the marker and sleeps; the test
sees the marker and kills the process with SIGKILL. Nothing here runs unless the variable is set,
and only tests set it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

FAILPOINT_ENV = "XERO_ELT_TEST_FAILPOINT"
MARKER_ENV = "XERO_ELT_TEST_FAILPOINT_MARKER"
# Optional: only calls whose receiver's `_file_path` contains this text count (load jobs).
MATCH_ENV = "XERO_ELT_TEST_FAILPOINT_MATCH"

# What the kill tests' subprocesses run (the rest of argv follows `-c`).
BOOTSTRAP = (
    "import runpy, sys; sys.path.insert(0, {root!r}); "
    "from tests.hardening import failpoints; failpoints.install(); "
    "runpy.run_module('pipelines', run_name='__main__', alter_sys=True)"
)


def command(root: Path, *args: str) -> list[str]:
    """argv for `python -m pipelines ARGS` with failpoints installed first."""
    return [sys.executable, "-c", BOOTSTRAP.format(root=str(root)), *args]


def _reached(marker: str, where: str) -> None:
    Path(marker).write_text(f"{os.getpid()} {where}\n")
    while True:  # wait for the SIGKILL
        time.sleep(60)


def install() -> None:
    """Wrap the function the environment names (no-op when none is named)."""
    spec = os.environ.get(FAILPOINT_ENV)
    if not spec:
        return
    marker = os.environ[MARKER_ENV]
    module_name, attr_path, when, nth_text = spec.split(":")
    if when not in ("before", "after"):
        raise ValueError(f"failpoint {spec!r}: say before or after")
    nth = int(nth_text)
    owner: Any = importlib.import_module(module_name)
    *parents, name = attr_path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    raw = inspect.getattr_static(owner, name)
    if isinstance(raw, staticmethod | classmethod):
        raise ValueError(f"failpoint {spec!r}: static and class methods are not supported")
    original = getattr(owner, name)
    match = os.environ.get(MATCH_ENV)
    lock = threading.Lock()
    calls = [0]

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if match and not any(match in str(getattr(a, "_file_path", "")) for a in args):
            return original(*args, **kwargs)
        with lock:
            calls[0] += 1
            count = calls[0]
        if when == "before" and count == nth:
            _reached(marker, spec)
        result = original(*args, **kwargs)
        if when == "after" and count == nth:
            _reached(marker, spec)
        return result

    setattr(owner, name, wrapper)
