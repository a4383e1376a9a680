"""gzip on the wire: Accept-Encoding negotiation, the `compress` setting, `bytes_out` in the
stats, and the body faults (`truncated`, `malformed`, `corrupt_gzip`) on compressed answers."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from sandbox.compression import accepts_gzip
from sandbox.handle import SandboxHandle, XeroGrant

CONTACTS = "/api.xro/2.0/Contacts"


def raw_get(
    http: httpx.Client, grant: XeroGrant, accept_encoding: str | None, path: str = CONTACTS
) -> tuple[httpx.Response, bytes]:
    """GET page 1 and return the response with its body exactly as sent (not decoded)."""
    headers = grant.headers(grant.tenant_ids[0])
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    with http.stream("GET", path, params={"page": 1}, headers=headers) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, identity", False),
        ("*;q=0", False),
        ("br, *;q=0", False),
        ("gzip;q=0, *", False),  # gzip named and refused: `*` does not bring it back
        ("identity", False),
        ("deflate", False),
        ("", False),
        (None, False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_parsed_with_qualities(header: str | None, allowed: bool) -> None:
    assert accepts_gzip(header) is allowed


def test_accounting_answer_is_gzipped_when_accepted(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    response, raw = raw_get(http, xero_grant, "gzip")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(raw)
    page = json.loads(gzip.decompress(raw))
    assert len(page["Contacts"]) == 100
    assert len(raw) * 3 < len(gzip.decompress(raw))


@pytest.mark.parametrize("header", ["gzip;q=0", "identity", None])
def test_not_gzipped_unless_accepted(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client, header: str | None
) -> None:
    if header is None:  # httpx always offers gzip; an empty value is "no preference"
        header = ""
    response, raw = raw_get(http, xero_grant, header)
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert len(json.loads(raw)["Contacts"]) == 100


def test_compress_setting_off_sends_plain_bodies(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    assert sandbox.settings(compress=False)["compress"] is False
    response, raw = raw_get(http, xero_grant, "gzip")
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert len(json.loads(raw)["Contacts"]) == 100


def test_connections_and_xml_answers_are_gzipped_too(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    response, raw = raw_get(http, xero_grant, "gzip", path="/connections")
    assert response.headers["content-encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(raw))) == 2
    tenant = xero_grant.tenant_ids[0]
    headers = {**xero_grant.headers(tenant, json=False), "Accept-Encoding": "gzip"}
    with http.stream("GET", "/api.xro/2.0/Accounts", headers=headers) as xml:
        body = b"".join(xml.iter_raw())
    assert xml.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b"<")


def test_plain_text_errors_stay_uncompressed(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="status", status=503, path=CONTACTS)
    response, raw = raw_get(http, xero_grant, "gzip")
    assert response.status_code == 503
    assert "content-encoding" not in response.headers
    assert raw == b"The Xero API is currently offline for maintenance"


def test_stats_count_body_bytes_as_sent(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    sandbox.clear_requests()
    _, gzipped = raw_get(http, xero_grant, "gzip")
    _, plain = raw_get(http, xero_grant, "identity")
    other = http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(second))
    stats = sandbox.stats()
    other_bytes = int(other.headers["content-length"])
    assert stats["bytes_out"] == len(gzipped) + len(plain) + other_bytes
    assert stats["by_tenant"][first]["bytes_out"] == len(gzipped) + len(plain)
    assert stats["by_tenant"][second]["bytes_out"] == other_bytes
    assert stats["by_path"][CONTACTS]["bytes_out"] == len(gzipped) + len(plain)


def test_control_plane_and_dropped_answers(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    control = sandbox.http.get("/_sandbox/settings", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in control.headers  # only Xero's paths are compressed
    sandbox.clear_requests()
    sandbox.fault(kind="drop", path=CONTACTS)
    with pytest.raises(httpx.RemoteProtocolError):
        raw_get(http, xero_grant, "gzip")
    stats = sandbox.stats()
    assert stats["total"] == 1
    assert stats["bytes_out"] == 0


def test_truncated_cuts_the_gzip_stream(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="truncated", path=CONTACTS)
    headers = {**xero_grant.headers(xero_grant.tenant_ids[0]), "Accept-Encoding": "gzip"}
    with http.stream("GET", CONTACTS, params={"page": 1}, headers=headers) as response:
        assert response.headers["content-encoding"] == "gzip"
        promised = int(response.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert sandbox.stats()["bytes_out"] == promised // 2


def test_malformed_breaks_the_decoded_body(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="malformed", path=CONTACTS)
    response, raw = raw_get(http, xero_grant, "gzip")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    decoded = gzip.decompress(raw)  # the stream itself is fine ...
    with pytest.raises(json.JSONDecodeError):
        json.loads(decoded)  # ... what it carries is not JSON


def test_corrupt_gzip_has_a_good_header_and_a_bad_crc(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="corrupt_gzip", path=CONTACTS, count=2)
    response, raw = raw_get(http, xero_grant, "gzip")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:3] == b"\x1f\x8b\x08"
    with pytest.raises(gzip.BadGzipFile, match="CRC"):
        gzip.decompress(raw)
    headers = {**xero_grant.headers(xero_grant.tenant_ids[0]), "Accept-Encoding": "gzip"}
    with pytest.raises(httpx.DecodingError):
        http.get(CONTACTS, params={"page": 1}, headers=headers)
    assert contacts_ok(http, xero_grant)


def test_corrupt_gzip_without_gzip_is_a_malformed_body(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="corrupt_gzip", path=CONTACTS)
    response, raw = raw_get(http, xero_grant, "identity")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert raw.startswith(b'{"Id"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert sandbox.requests(path=CONTACTS)[-1]["fault"] == "corrupt_gzip"


def contacts_ok(http: httpx.Client, grant: XeroGrant) -> bool:
    """A normal call after the faults are used up decodes to a full page."""
    response = http.get(CONTACTS, params={"page": 1}, headers=grant.headers(grant.tenant_ids[0]))
    return response.status_code == 200 and len(response.json()["Contacts"]) == 100
