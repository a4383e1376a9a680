"""Local files private by default: they hold bank account details, tax numbers and tokens.

``xero-elt`` sets its umask to 077 before anything is written, so every file it or dlt creates
(the DuckDB file, load packages, logs, ``runs.jsonl``, the store) is the user's alone (0600,
folders 0700), and it warns when an existing ``XERO_ELT_HOME`` lets other users in.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private() -> None:
    """Every file and folder created from now on: owner only."""
    os.umask(PRIVATE_UMASK)


def warn_if_home_is_open(home: Path) -> bool:
    """A line on stderr when ``home`` exists with group or other access; True if it did."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return False  # not there yet: it will be created 0700
    if not mode & 0o077:
        return False
    print(f"xero-elt: warning: {home} (XERO_ELT_HOME) is open to other users (mode "
          f"{mode:04o}) and holds credentials and financial data; run: chmod 700 {home}",
          file=sys.stderr)
    return True
