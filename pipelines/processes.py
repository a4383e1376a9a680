"""Start our own servers (the sandbox, the auth server) as child processes, for the demo and the
reference load: read the URL from the first stdout line, stop the process afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    """The child process did not print the banner it promises."""


@contextmanager
def served(module_args: list[str], banner: str, *, env: dict[str, str] | None = None,
           log: Path | None = None) -> Iterator[str]:
    """`python -m MODULE ARGS…` until the block ends; yields the URL its first line announces.

    Args:
        module_args: the module and its arguments, e.g. ``["sandbox", "--port", "0"]``.
        banner: what the first stdout line starts with, e.g. ``"sandbox listening on"``.
        env: the child's environment (default: ours); this checkout is put on PYTHONPATH.
        log: a file for the child's stderr (default: discarded).
    """
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), child_env.get("PYTHONPATH")]))
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    errors = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen([sys.executable, "-m", *module_args], env=child_env,
                                stdout=subprocess.PIPE, stderr=errors, text=True)
    finally:
        if log is not None:
            errors.close()  # type: ignore[union-attr]
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith(banner):
            where = f" (see {log})" if log is not None else ""
            raise ServerStartError(f"`{' '.join(module_args[:1])}` did not start{where}: "
                                   f"{line!r}")
        yield line.rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
