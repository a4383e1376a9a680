"""Log and terminal output that text from Xero cannot forge.

Organisation names and Xero's error texts reach our logs and tables; a name holding a line break
or a terminal escape would otherwise fake a log line or drive the operator's terminal. Everything
printed goes through ``printable``; every log line through ``OneLineFormatter``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators and bidi controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """``value`` as one printable line: control characters become visible escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


class OneLineFormatter(logging.Formatter):
    """A formatter whose message part is always one printable line (tracebacks stay as they are:
    they come from our code, not from Xero)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (tests and wrappers swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(
    names: Iterable[str] = ("xero_elt", "connector", "auth_server"),
    fmt: str = "%(asctime)s %(levelname)s %(message)s",
) -> None:
    """Log our packages' INFO and above to stderr, one printable line each (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if any(isinstance(h, _StderrHandler) for h in logger.handlers):
            continue
        handler = _StderrHandler()
        handler.setFormatter(OneLineFormatter(fmt, "%Y-%m-%dT%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
