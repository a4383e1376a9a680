"""Xero's wire quirks: .NET `/Date(ms)/` dates, fixed-scale decimals, JSON and XML bodies.

Records inside the sandbox hold Python values: `MsDate` for dates, `decimal.Decimal` (already at
Xero's scale) for rates and money, plain str/bool/int/list/dict for the rest. This module turns
them into bytes the way Xero does:

* dates become `"\\/Date(1439434356790+0000)\\/"` (the slashes escaped, as .NET writes them; the
  decoded string is `/Date(1439434356790+0000)/`); only date strings carry escaped slashes,
* decimals keep their scale on the wire (`15.0000`, `760.00`), never a float repr,
* XML (`<Response><Id>…<Contacts><Contact>…`) when the client did not ask for JSON.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONEY = Decimal("0.01")
RATE = Decimal("0.0001")


class MsDate:
    """A Xero timestamp: UTC epoch milliseconds; `offset` adds `+0000` (entity dates do)."""

    __slots__ = ("ms", "offset")

    def __init__(self, ms: int, offset: bool = True) -> None:
        self.ms = int(ms)
        self.offset = offset

    @classmethod
    def from_datetime(cls, value: datetime, offset: bool = True) -> MsDate:
        """The timestamp of an aware (or naive = UTC) datetime, to the millisecond."""
        return cls(datetime_to_ms(value), offset)

    def to_datetime(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.ms)

    def wire(self) -> str:
        """The decoded JSON string value, e.g. `/Date(1439434356790+0000)/`."""
        return f"/Date({self.ms}{'+0000' if self.offset else ''})/"

    def iso(self) -> str:
        """XML form: ISO 8601 without zone, as Xero's XML shows dates."""
        return self.to_datetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MsDate) and other.ms == self.ms

    def __lt__(self, other: MsDate) -> bool:
        return self.ms < other.ms

    def __hash__(self) -> int:
        return hash(self.ms)

    def __repr__(self) -> str:
        return f"MsDate({self.ms})"


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def money(value: float | int | str | Decimal) -> Decimal:
    """A money amount at Xero's scale (2 dp)."""
    return Decimal(str(value)).quantize(MONEY)


def rate(value: float | int | str | Decimal) -> Decimal:
    """A tax rate at Xero's scale (4 dp)."""
    return Decimal(str(value)).quantize(RATE)


# --- JSON -------------------------------------------------------------------------------------
# json.dumps runs in C; values it cannot encode go through `_placeholder`, which returns a
# marker string that is swapped for the raw wire text afterwards (one regex pass per body).
_MARK = "\x00"
_MARK_RE = re.compile(r'"\\u0000([DN])([^"\\]*)\\u0000"')


def _placeholder(value: Any) -> str:
    if isinstance(value, MsDate):
        return f"{_MARK}D{value.ms}{'+0000' if value.offset else ''}{_MARK}"
    if isinstance(value, Decimal):
        return f"{_MARK}N{value}{_MARK}"
    raise TypeError(f"cannot encode {type(value).__name__} for Xero's wire")


def _unmark(match: re.Match[str]) -> str:
    kind, text = match.group(1), match.group(2)
    if kind == "D":
        return f'"\\/Date({text})\\/"'
    return text


def dumps(obj: Any) -> bytes:
    """JSON body bytes with Xero's date escaping and fixed decimal scale."""
    text = json.dumps(obj, default=_placeholder, ensure_ascii=False, separators=(",", ":"))
    return _MARK_RE.sub(_unmark, text).encode("utf-8")


def plain(value: Any) -> Any:
    """The value as json.loads of the wire would give it (dates as strings, decimals as floats)."""
    if isinstance(value, MsDate):
        return value.wire()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# --- XML --------------------------------------------------------------------------------------
_SINGULAR_EXCEPTIONS = {
    "Addresses": "Address",
    "TrackingCategories": "TrackingCategory",
    "SalesTrackingCategories": "SalesTrackingCategory",
    "PurchasesTrackingCategories": "PurchasesTrackingCategory",
    "Currencies": "Currency",
    "Options": "Option",
}


def singular(name: str) -> str:
    """Xero's XML names list items by the singular of the list element (Contacts → Contact)."""
    if name in _SINGULAR_EXCEPTIONS:
        return _SINGULAR_EXCEPTIONS[name]
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s"):
        return name[:-1]
    return name


def _xml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, MsDate):
        return value.iso()
    if value is None:
        return ""
    return xml_escape(str(value))


def _xml_into(parts: list[str], name: str, value: Any) -> None:
    if isinstance(value, dict):
        parts.append(f"<{name}>")
        for key, item in value.items():
            _xml_into(parts, key, item)
        parts.append(f"</{name}>")
    elif isinstance(value, list):
        if not value:
            parts.append(f"<{name} />")
            return
        parts.append(f"<{name}>")
        item_name = singular(name)
        for item in value:
            _xml_into(parts, item_name, item)
        parts.append(f"</{name}>")
    else:
        text = _xml_scalar(value)
        parts.append(f"<{name}>{text}</{name}>" if text != "" else f"<{name} />")


def to_xml(body: dict[str, Any], root: str = "Response") -> bytes:
    """An XML document in Xero's shape: `<Response><Id>…</Id><Contacts><Contact>…`."""
    parts = ['<Response xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
             if root == "Response" else f"<{root}>"]
    for key, value in body.items():
        _xml_into(parts, key, value)
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")


# --- If-Modified-Since ------------------------------------------------------------------------
_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_http_timestamp(value: str) -> datetime:
    """Parse an If-Modified-Since value: ISO 8601 (no zone = UTC) or an HTTP date.

    Returns an aware UTC datetime; raises ValueError for anything else.
    """
    text = value.strip()
    match = _ISO_RE.match(text)
    if match:
        year, month, day, hour, minute, second, frac, zone = match.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), micro)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            return (parsed - sign * offset).replace(tzinfo=UTC)
        return parsed.replace(tzinfo=UTC)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an ISO 8601 or HTTP date: {value!r}") from exc
    if parsed is None:
        raise ValueError(f"not an ISO 8601 or HTTP date: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
