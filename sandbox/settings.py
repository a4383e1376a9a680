"""Behaviours of Xero the sandbox can switch, set at `/_sandbox/settings` (reset restores them).

Each models something REFERENCE.md section 0 describes; where Xero's behaviour is uncertain the
setting chooses between the versions reported, so the product can be tested against each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

RECONSENT_MODES = ("keep", "new")


@dataclass(frozen=True)
class SandboxSettings:
    """The switchable behaviours, with Xero's (or the most reported) as defaults."""

    # Contacts per organisation above which a Contacts request filtered or ordered on an
    # unoptimised field gets 400 HighVolumeException (Xero: "about 100,000").
    high_volume_threshold: int = 100_000
    # Whether an If-Modified-Since header lets an unoptimised Contacts read through on a
    # high-volume organisation. UNCONFIRMED: the reported refusal sent none; default no.
    high_volume_exempts_modified_since: bool = False
    # A re-consented, already connected organisation keeps its authEventId ("keep", as reports
    # say) or gets the new consent's ("new").
    reconsent_auth_event: str = "keep"
    # Organisations one app may have connected (None: no cap); at the cap the consent page
    # greys the others out.
    max_connections: int | None = None
    # gzip a body when the request's Accept-Encoding allows it, as Xero's web servers do.
    compress: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> SandboxSettings:
        """A copy with `changes` applied; ValueError names a bad key or value."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
        for name, value in changes.items():
            _check(name, value)
        return replace(self, **changes)


def _check(name: str, value: Any) -> None:
    if name == "high_volume_threshold":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("'high_volume_threshold' must be a whole number >= 0")
    elif name == "reconsent_auth_event":
        if value not in RECONSENT_MODES:
            raise ValueError(f"'reconsent_auth_event' must be one of {list(RECONSENT_MODES)}")
    elif name == "max_connections":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0):
            raise ValueError("'max_connections' must be null or a whole number >= 0")
    elif name in ("compress", "high_volume_exempts_modified_since") \
            and not isinstance(value, bool):
        raise ValueError(f"{name!r} must be true or false")
