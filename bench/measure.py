"""Run one measured process: wall time from spawn to exit, CPU, peak RSS (from `wait4`), and the
CPU the sandbox spent meanwhile.

Each load runs in a child of its own so that its peak RSS is its own: `os.wait4` returns the
resource usage of exactly that child (Linux reports `ru_maxrss` in KiB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A measured process failed; the message names its log."""


@dataclass
class Measured:
    """What one child process did and cost."""

    exit_code: int
    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_mb: float
    sandbox_cpu_s: float | None
    result: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds of the child."""
        return self.cpu_user_s + self.cpu_system_s


def process_cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds a live process has used so far (None if unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" of the command name: field 14 (utime) and 15 (stime) are indexes 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child: ours, the repository importable, dlt quiet, plus `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.update(extra)
    return env


def run_child(
    argv: list[str],
    *,
    workdir: Path,
    name: str,
    env: dict[str, str],
    spec: dict[str, Any],
    sandbox_pid: int | None = None,
    wrap: list[str] | None = None,
    check: bool = True,
) -> Measured:
    """Run `python ARGV SPEC RESULT` in `workdir`; measure it; read its JSON result.

    Args:
        argv: what follows `python` (e.g. ``["-m", "bench.loader"]``).
        workdir: the child's working directory; its spec, result and log are kept there.
        name: a file-name-safe label for those files.
        env: extra environment variables (on top of ``child_env``).
        spec: the JSON the child reads.
        sandbox_pid: whose CPU to sample before and after.
        wrap: a command to run the child under (a profiler), or None.
        check: raise BenchError if the child exits non-zero.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{name}.spec.json"
    result_path = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.log"
    spec_path.write_text(json.dumps(spec, indent=1))
    result_path.unlink(missing_ok=True)
    command = [*(wrap or []), sys.executable, *argv, str(spec_path), str(result_path)]
    sandbox_before = process_cpu_seconds(sandbox_pid)
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=workdir, env=child_env(env),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sandbox_after = process_cpu_seconds(sandbox_pid)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    measured = Measured(
        exit_code=process.returncode,
        wall_s=wall,
        cpu_user_s=usage.ru_utime,
        cpu_system_s=usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        sandbox_cpu_s=(sandbox_after - sandbox_before)
        if sandbox_before is not None and sandbox_after is not None else None,
        result=result,
        log=log_path,
    )
    if check and measured.exit_code != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{name} exited {measured.exit_code} (log {log_path}):\n{tail}")
    return measured
