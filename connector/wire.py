"""Xero's wire format, in one place: the quirks every other module is spared.

- Dates are .NET JSON dates, ``/Date(1439434356790+0000)/`` (on the wire the slashes are escaped
  as ``\\/``, which JSON decoding removes). The number is UTC epoch milliseconds; the offset that
  may follow is decorative and ignored. Negative numbers (before 1970) occur.
- ``/connections`` dates are ISO 8601 without a zone and with 7 fractional digits, meaning UTC.
- Money and rates are fixed-scale decimals (``15.0000``): JSON is parsed with ``Decimal`` floats
  so no binary rounding ever touches them.
- Collections come in an envelope (``Id``, ``Status``, ``DateTimeUTC``, ``<Collection>``, and a
  lower-case ``pagination`` on paged Contacts).
- 401/403 bodies are RFC 7807-like with the reason in ``Detail``; token-endpoint errors are
  ``{"error": "..."}``.
- ``If-Modified-Since`` is sent as ISO 8601 UTC to the second.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.errors import MalformedResponse

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")


def is_net_date(value: Any) -> bool:
    """True for a string in Xero's ``/Date(ms[+-hhmm])/`` form."""
    return isinstance(value, str) and value.startswith("/Date(") and bool(_NET_DATE.match(value))


def parse_net_date(value: str) -> datetime:
    """``/Date(1439434356790+0000)/`` → aware UTC datetime; the offset is ignored on purpose.

    Xero's number is already UTC epoch milliseconds; the ``±hhmm`` suffix describes the
    organisation's zone and must not be applied again.

    Raises:
        ValueError: ``value`` is not a .NET JSON date.
    """
    match = _NET_DATE.match(value)
    if not match:
        raise ValueError(f"not a Xero /Date(...)/ value: {value[:40]!r}")
    try:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    except OverflowError:
        raise ValueError(f"date out of range: {value[:40]!r}") from None


def format_net_date(moment: datetime, offset: str = "+0000") -> str:
    """The inverse of ``parse_net_date`` (used by tests and fixtures)."""
    millis = (to_utc(moment) - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}{offset})/"


def parse_iso_utc(value: str) -> datetime:
    """ISO 8601 as ``/connections`` gives it (no zone means UTC; 7 fractional digits are fine)."""
    return to_utc(datetime.fromisoformat(value.strip()))


def to_utc(moment: datetime) -> datetime:
    """Naive → assumed UTC; aware → converted to UTC.

    Raises:
        ValueError: the moment falls outside the calendar once in UTC (e.g. 9999-12-31T23:00-05:00).
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date out of range in UTC: {moment.isoformat()}") from None


def format_if_modified_since(moment: datetime) -> str:
    """``If-Modified-Since`` value: ISO 8601 UTC, to the second (Xero is accurate to the second)."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%S")


def decode_dates(value: Any) -> Any:
    """Every ``/Date()/`` string inside ``value`` (dicts, lists) → UTC datetime; in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if is_net_date(item):
                    value[key] = parse_net_date(item)
            elif isinstance(item, dict | list):
                decode_dates(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                if is_net_date(item):
                    value[index] = parse_net_date(item)
            elif isinstance(item, dict | list):
                decode_dates(item)
    return value


# dlt's default decimal column is DECIMAL(38, 9): at most 29 digits before the point.
_MAX_ADJUSTED_EXPONENT = 28


def to_decimal(value: Any) -> Decimal | None:
    """Money or a rate as ``Decimal`` (ints, Decimal and numeric strings); None stays None.

    Raises:
        ValueError: not a number, or one no decimal column can hold (NaN, infinities, 1E+999).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"not an amount: {str(value)[:40]!r}") from None
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    else:
        raise ValueError(f"not an amount: {type(value).__name__}")
    if not amount.is_finite() or amount.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise ValueError(f"an amount no decimal column can hold: {str(value)[:40]!r}")
    return amount


def loads(body: bytes | str, *, endpoint: str, **context: str | None) -> Any:
    """Parse a JSON body with decimal floats, or raise ``MalformedResponse`` naming the endpoint."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        size = len(body)
        raise MalformedResponse(
            "Xero sent a body that is not valid JSON",
            endpoint=endpoint,
            cause=f"{type(exc).__name__} after {size} bytes",
            **context,
        ) from None


def unwrap(payload: Any, collection: str, *, endpoint: str, **context: str | None) -> list[dict]:
    """The records of ``collection`` from Xero's envelope; a wrong shape is ``MalformedResponse``.

    A missing collection key is an error, never an empty page: Xero always sends the key (with
    ``[]`` when nothing matched).
    """
    if not isinstance(payload, dict):
        raise MalformedResponse(
            f"expected a JSON object with {collection!r}", endpoint=endpoint,
            cause=f"got {type(payload).__name__}", **context,
        )
    records = payload.get(collection)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise MalformedResponse(
            f"the response has no {collection!r} list", endpoint=endpoint,
            cause=f"keys: {', '.join(sorted(payload)[:8])}", **context,
        )
    return records


def problem_detail(body: bytes) -> str:
    """Xero's reason from a 401/403 body (``Detail``), or a short safe excerpt of the body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:120].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("Detail", "detail", "Message", "error_description", "error", "Title"):
            if data.get(key):
                return str(data[key])[:200]
    return ""


def _text_field(body: bytes, key: str) -> str | None:
    """A top-level text field of a JSON error body, if the body is JSON and has it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def error_type(body: bytes) -> str | None:
    """The ``Type`` of an Accounting API error body (``HighVolumeException``, ...), if any."""
    return _text_field(body, "Type")


def oauth_error_code(body: bytes) -> str | None:
    """The ``error`` of a token-endpoint error body (``invalid_grant``, ...), if any."""
    return _text_field(body, "error")
