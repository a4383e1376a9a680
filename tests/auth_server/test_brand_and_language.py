"""The platform's brand and the customer's language on the customer pages and the invite email
(issue 26, points 1 and 2), read as the customer would read them."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server import i18n
from auth_server.brand import contrast, readable_on_white, text_on
from auth_server.errors import ConfigError
from auth_server.invites import create_invite
from auth_server.settings import AuthServerSettings
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth, read_eml
from tests.sandbox_handle import SandboxHandle

# A one-pixel PNG: enough to check the logo is served and shown.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf0000000301010018dd8db00000000049454e44ae426082"
)
HTML_TAG = re.compile(r'<html lang="([a-z]+)" dir="(ltr|rtl)">')


def _text(page: httpx.Response) -> str:
    """The page's words, as a person reads them (tags dropped, spaces collapsed)."""
    inline = re.sub(r"</?(?:strong|em|a|span|code|b|i)\b[^>]*>", "", page.text)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline))).strip()


@pytest.fixture
def branded(sandbox: SandboxHandle, tmp_home: Path, tmp_path: Path) -> Any:
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    auth = start_auth(sandbox, tmp_home, product_name="Gulf Ledger", logo_url=str(logo),
                      brand_colour="#FFD400", support_email="help@gulfledger.test",
                      support_url="https://gulfledger.test/help")
    yield auth
    stop_auth(auth)


# -- 1. the brand --------------------------------------------------------------------------------

@pytest.mark.parametrize("colour", ["#ffd400", "#ffffff", "#000000", "#777777", "#2f5bea",
                                    "#0a7c6f", "#e11d48", "#808080", "#7f7f7f", "#00ff00"])
def test_button_text_and_links_stay_readable_whatever_the_colour(colour: str) -> None:
    assert contrast(colour, text_on(colour)) >= 4.5
    assert contrast(readable_on_white(colour), "#ffffff") >= 4.5


@pytest.mark.parametrize(("name", "value"), [
    ("brand_colour", "yellow"), ("brand_colour", "#12345"), ("support_email", "help"),
    ("support_url", "javascript:alert(1)"), ("logo_url", "/no/such/logo.png"),
    ("logo_url", "/etc/passwd"),
])
def test_a_wrong_brand_setting_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"auth_server.{name}"):
        AuthServerSettings(**{name: value})


def test_every_customer_page_carries_the_brand(
        branded: RunningAuth, org: dict[str, Any]) -> None:
    _, link = create_invite(branded.store, branded.settings, "Acme", "a@acme.test")
    customer = branded.customer()
    first = customer.open(link)
    assert "Gulf Ledger would like to read a few things from Acme’s accounting platform" \
        in _text(first)
    assert '<img class="brand-logo" src="/brand/logo.png" alt="Gulf Ledger">' in first.text
    assert "xero-elt" not in _text(first)
    assert "help@gulfledger.test" in first.text  # "Using different accounting software?"
    with branded.http() as http:
        css = http.get("/static/brand.css").text
        logo = http.get("/brand/logo.png")
        assert http.get("/brand/logo.svg").status_code == 404
    assert "--primary: #ffd400;" in css
    assert "--on-primary: #111827;" in css  # dark text on yellow, not white
    assert logo.status_code == 200
    assert logo.headers["content-type"] == "image/png"
    assert logo.content == PNG
    assert logo.headers["cross-origin-resource-policy"] == "cross-origin"  # for mail clients
    done = customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in done.text
    assert "is now connected to Gulf Ledger" in _text(done)
    assert "/static/brand.css" in done.text


def test_an_error_page_names_the_platform_s_support(branded: RunningAuth) -> None:
    with branded.http() as http:
        page = http.get("/connect/confirm")
    assert page.status_code == 400
    words = _text(page)
    assert "send it (or a screenshot of this page) to Gulf Ledger's support: " \
           "help@gulfledger.test or Gulf Ledger's help page." in words
    assert 'href="mailto:help@gulfledger.test"' in page.text
    assert 'href="https://gulfledger.test/help"' in page.text


def test_without_a_support_contact_the_page_says_who_to_ask(auth: RunningAuth) -> None:
    with auth.http() as http:
        page = http.get("/connect/confirm")
    assert "to the person who sent your invitation" in _text(page)
    assert "xero-elt's support" not in page.text


def test_an_external_logo_is_allowed_by_the_csp(sandbox: SandboxHandle, tmp_home: Path) -> None:
    auth = start_auth(sandbox, tmp_home, logo_url="https://cdn.gulfledger.test/logo.svg")
    try:
        with auth.http() as http:
            page = http.get("/")
    finally:
        stop_auth(auth)
    assert '<img class="brand-logo" src="https://cdn.gulfledger.test/logo.svg"' in page.text
    assert "img-src 'self' data: https://cdn.gulfledger.test;" in \
        page.headers["content-security-policy"]


def test_the_invite_email_is_branded(branded: RunningAuth) -> None:
    create_invite(branded.store, branded.settings, "Acme", "a@acme.test")
    msg = read_eml(branded.outbox()[-1])
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert msg["Subject"] == "[ACTION REQUIRED] Connect your accounting platform to Gulf Ledger"
    assert f"{branded.url}/brand/logo.png" in html
    assert "background:#ffd400;color:#111827" in html
    assert "Questions? Contact Gulf Ledger's support: help@gulfledger.test or " \
           "https://gulfledger.test/help." in text


# -- 2. the language -----------------------------------------------------------------------------

def test_an_arabic_invite_speaks_arabic_right_to_left_all_the_way(
        auth: RunningAuth, org: dict[str, Any]) -> None:
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test", language="ar")
    assert auth.connection(conn.connection_id).language == "ar"
    customer = auth.customer()
    first = customer.open(link)
    assert HTML_TAG.search(first.text).groups() == ("ar", "rtl")  # type: ignore[union-attr]
    assert "شارك معلوماتك المالية" in first.text
    assert "Share your financial information" not in first.text
    review = customer.choose_xero()
    assert "مراجعة طلب الوصول" in review.text
    assert "<bdi>Allow access</bdi>" in review.text  # Xero's own button, as Xero shows it
    done = customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert HTML_TAG.search(done.text).groups() == ("ar", "rtl")  # type: ignore[union-attr]
    assert "تم الربط بنجاح" in done.text
    assert "المحاسبة – مؤسسة واحدة مرتبطة" in done.text
    msg = read_eml(auth.outbox()[-1])
    assert msg["Subject"] == "[إجراء مطلوب] اربط منصتك المحاسبية بـ Acme Finance"
    assert msg["Content-Language"] == "ar"
    assert 'dir="rtl"' in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_english_keeps_the_seed_s_labels(auth: RunningAuth, org: dict[str, Any]) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test", language="en")
    customer = auth.customer()
    customer.http.headers["Accept-Language"] = "ar"  # the invite's language wins
    first = customer.open(link)
    assert HTML_TAG.search(first.text).groups() == ("en", "ltr")  # type: ignore[union-attr]
    assert "Share your financial information" in first.text
    done = customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in done.text
    assert "Accounting – 1 connected" in done.text


def test_without_an_invite_language_the_browser_decides(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    customer.http.headers["Accept-Language"] = "fr-FR,ar;q=0.8,en;q=0.5"
    first = customer.open(link)
    assert HTML_TAG.search(first.text).groups() == ("ar", "rtl")  # type: ignore[union-attr]
    with auth.http(headers={"Accept-Language": "de"}) as http:
        assert HTML_TAG.search(http.get("/").text).groups() == ("en", "ltr")  # type: ignore[union-attr]
    with auth.http(headers={"Accept-Language": "ar-AE"}) as http:
        missing = http.get("/nowhere")
    assert missing.status_code == 404
    assert "الصفحة غير موجودة" in missing.text
    assert "الرقم المرجعي للدعم" in missing.text


def test_the_api_and_the_cli_take_the_language(
        auth: RunningAuth, tmp_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    _, key = auth.store.create_api_key("tests")
    with auth.http(headers={"Authorization": f"Bearer {key}"}) as http:
        made = http.post("/api/v1/invites", json={"company": "Acme", "email": "a@acme.test",
                                                  "language": "ar", "send_email": False})
        refused = http.post("/api/v1/invites", json={"company": "Acme", "email": "a@acme.test",
                                                     "language": "klingon"})
        listed = http.get(f"/api/v1/connections/{made.json()['connection_id']}").json()
    assert made.status_code == 201
    assert listed["connection"]["language"] == "ar"
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invalid_field",
        "message": "language 'klingon' is not available; choose one of en, ar"}
    monkeypatch.setenv("AUTH_SERVER__PUBLIC_URL", auth.url)
    assert main(["invite", "create", "--company", "Beta", "--email", "b@beta.test",
                 "--language", "ar"]) == 0
    invite_id = capsys.readouterr().out.split()[1]
    assert auth.connection(invite_id).language == "ar"
    assert main(["invite", "create", "--company", "Beta", "--email", "b@beta.test",
                 "--language", "xx"]) == 2
    assert "choose one of en, ar" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "expected"), [("ar", "ar"), ("AR", "ar"), ("ar-AE", "ar"),
                                                 ("en_GB", "en"), (None, None)])
def test_language_codes_are_read_leniently(value: str | None, expected: str | None) -> None:
    assert i18n.clean_language(value) == expected


@pytest.mark.parametrize("value", ["fr", "", " ar", "arabic", "a", 7])
def test_an_unknown_language_is_refused_naming_the_ones_we_have(value: object) -> None:
    with pytest.raises(ValueError, match="choose one of en, ar"):
        i18n.clean_language(value)


def test_every_catalogue_has_every_string() -> None:
    """Extract the messages from the code and templates as pybabel does; each shipped
    language's catalogue must translate every one, with the same placeholders (or fewer)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[2]
    with open(root / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "_html": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    wanted = {message for _, _, message, _, _ in extract_from_dir(
        root, method_map, options_map, keywords=keywords)}
    assert len(wanted) > 100
    placeholder = re.compile(r"%\(\w+\)s")
    for language in i18n.LANGUAGES:
        if language == i18n.DEFAULT:
            continue
        with open(root / "auth_server" / "locales" / language / "LC_MESSAGES" / "messages.po",
                  "rb") as fh:
            catalog = read_po(fh)
        problems = []
        for msgid in sorted(wanted):
            entry = catalog.get(msgid)
            if entry is None or not entry.string or entry.fuzzy:
                problems.append(f"missing: {msgid!r}")
            elif not set(placeholder.findall(entry.string)) <= set(placeholder.findall(msgid)):
                problems.append(f"placeholders differ: {msgid!r}")
        assert not problems, f"{language} catalogue:\n" + "\n".join(problems)
