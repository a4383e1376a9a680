"""Running a ``xero-elt`` command in the background, as a subprocess of this Python.

The auth server must not import ``pipelines`` (imports flow ``pipelines -> auth_server``); work
that needs it (a purge's destinations and dlt state) runs as ``python -m pipelines …``, with
its output in ``XERO_ELT_HOME/logs/<name>.log``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

from connector.store import Store

log = logging.getLogger(__name__)


def run_cli_in_background(store: Store, args: list[str], *, name: str) -> threading.Thread:
    """Start ``python -m pipelines ARGS`` in a thread; returns the thread (tests join it)."""

    def run() -> None:
        logs = Path(store.home) / "logs"
        try:
            logs.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(logs / f"{name}.log", "ab") as out:
                code = subprocess.call([sys.executable, "-m", "pipelines", *args], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("could not start %s: %s", name, type(exc).__name__)
            return
        log.info("%s exited with %s", name, code)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
