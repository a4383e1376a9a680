"""gzip content coding of response bodies, as Xero's front end applies it (REFERENCE 0: egress is
billed per GB, so clients should ask for it), plus the damaged streams of the `corrupt_gzip` fault.

`accepts_gzip` reads Accept-Encoding as RFC 9110 section 12.5.3 says: a coding with `q=0` is
refused, `*` stands for every coding not named, and a missing header means no compression
(servers may send any coding then, but clients that send none usually cannot decode one).
"""

from __future__ import annotations

import gzip
import struct

# Level 3: a 1,000-contact page (1.55 MB) becomes 207 KB in ~8 ms, as fast as level 1 (234 KB)
# and half the time of level 6 (166 KB, 18 ms); the sandbox serves 100,000-contact reads, so
# time matters more than the last bytes (figures in docs/sandbox.md).
GZIP_LEVEL = 3
COMPRESSIBLE_TYPES = ("json", "xml")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does an Accept-Encoding header allow gzip (or x-gzip) with a non-zero quality?"""
    if not accept_encoding:
        return False
    named: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding:
            named[coding] = _quality(params)
    for coding in ("gzip", "x-gzip"):
        if coding in named:
            return named[coding] > 0
    return named.get("*", 0) > 0


def _quality(params: str) -> float:
    """The `q` of one Accept-Encoding item (1 when absent, 0 when unreadable)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def is_compressible(content_type: str | None) -> bool:
    """JSON and XML bodies are compressed; plain-text and HTML error pages are left alone."""
    lowered = (content_type or "").lower()
    return any(kind in lowered for kind in COMPRESSIBLE_TYPES)


def gzip_body(body: bytes) -> bytes:
    """`body` gzip-compressed (mtime 0, so equal bodies compress to equal bytes)."""
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def corrupt_gzip(body: bytes) -> bytes:
    """A gzip stream of `body` whose header and data are intact but whose CRC-32 is wrong.

    The whole body inflates, then the trailer check fails: a client that ignores decoding
    errors would take a complete-looking body, so this is the case that must be refused.
    """
    stream = gzip_body(body)
    (crc,) = struct.unpack("<I", stream[-8:-4])
    return stream[:-8] + struct.pack("<I", crc ^ 0xFFFFFFFF) + stream[-4:]
