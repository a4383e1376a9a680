"""The support reference every error page (and the API's Xero failures) shows, and the log line
that carries the same one.

A person stuck on an error sends the platform's support a screenshot; the reference on it (the
time, a short code, the organisation where known) is also in the auth server's log, so support
finds the request (``grep XE-7F3K2A``). It never carries a token, a link or an email address.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from store import utcnow

log = logging.getLogger("auth_server.support")
# As server.redact: an invite link's token is a secret, so it never reaches the log.
_INVITE_TOKEN = re.compile(r"/invite/[^/?]*")


@dataclass(frozen=True)
class SupportReference:
    """One error page's reference."""

    code: str
    at: datetime
    organisation: str | None

    def text(self) -> str:
        """``XE-7F3K2A · 2026-12-01 10:20:31 UTC · Acme Ltd``."""
        parts = [self.code, f"{self.at:%Y-%m-%d %H:%M:%S} UTC"]
        if self.organisation:
            parts.append(self.organisation)
        return " · ".join(parts)


def new_reference(organisation: str | None) -> SupportReference:
    """A fresh reference (24 random bits: unique enough to find one line in a day's log)."""
    return SupportReference("XE-" + secrets.token_hex(3).upper(), utcnow(), organisation)


def log_reference(ref: SupportReference, *, status: int, heading: str, path: str,
                  detail: str | None = None) -> None:
    """The error's log line, with the reference a person will quote and the ``detail`` (such
    as Xero's answer) that the page or API answer leaves out."""
    log.warning("error page %d %r at %s; support reference %s%s", status, heading,
                _INVITE_TOKEN.sub("/invite/…", path.split("?", 1)[0]), ref.text(),
                f"; detail: {detail}" if detail else "")
