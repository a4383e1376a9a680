"""The Fernet key that encrypts tokens and flow state at rest.

``XERO_ELT_SECRET_KEY`` wins; otherwise a 0600 key file in ``XERO_ELT_HOME`` (generated on first
use). A shared PostgreSQL store must not fall back to the key file: every machine would make its
own key and could not read the others' tokens.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from cryptography.fernet import Fernet

from store.records import StoreConfigError, StoreError

KEY_ENV = "XERO_ELT_SECRET_KEY"
KEY_FILE = "secret.key"


def fernet(key: bytes) -> Fernet:
    """A Fernet for ``key``; a clear error when it is not a Fernet key."""
    try:
        return Fernet(key)
    except ValueError:
        raise StoreConfigError(
            f"the key ({KEY_ENV} or {KEY_FILE}) is not a Fernet key"
        ) from None


def key_from_env(secret_key: str | None) -> bytes | None:
    """The key given or in ``XERO_ELT_SECRET_KEY``, if any."""
    key = secret_key or os.environ.get(KEY_ENV)
    return key.encode() if key else None


def load_or_create_key_file(home: Path) -> bytes:
    """The key in ``home/secret.key``, generating it (mode 0600) when there is none."""
    path = home / KEY_FILE
    if not path.exists():
        new_key = Fernet.generate_key()
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(new_key)
                fh.flush()
                os.fsync(fh.fileno())
            return new_key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StoreError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    # A racing creator may not have written the key yet.
    for _ in range(50):
        data = path.read_bytes().strip()
        if data:
            return data
        time.sleep(0.01)
    raise StoreError(f"key file {path} is empty")
