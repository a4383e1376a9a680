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
from typing import TYPE_CHECKING

from auth_server.render import Markup, tag
from connector.store import utcnow

if TYPE_CHECKING:
    from auth_server.web import Request

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


def reference_markup(request: Request, ref: SupportReference) -> Markup:
    """The reference block of an error page, naming the platform's support when it is set."""
    from auth_server.web import brand_of, support_links

    brand = brand_of(request)
    code = tag("code", ref.text(), class_="support-code", dir="ltr")
    links = support_links(request)
    if links:
        ask = request._html("If you need help, send it (or a screenshot of this page) to "
                            "%(product)s's support: %(contact)s.", product=brand.product,
                            contact=links)
    else:
        ask = request._html("If you need help, send it (or a screenshot of this page) to the "
                            "person who sent your invitation.")
    shown = request._html("Support reference: %(code)s.", code=code)
    return tag("p", Markup(f"{shown} {ask}"), class_="support-ref muted")
