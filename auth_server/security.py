"""Safety helpers: random tokens and their hashes, constant-time checks, CSRF, headers, input.

Invite tokens, OAuth ``state`` values and session ids are 256-bit random values; only their
SHA-256 hashes are stored or used as keys, so a copy of the store does not open any link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from urllib.parse import parse_qs, urlsplit

from auth_server.errors import InvalidInput

TOKEN_BYTES = 32
# secrets.token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-].
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
CONNECTION_ID_RE = re.compile(r"con_[0-9a-f]{4,32}")
# Deliberately plain (openapi.json states the same pattern): up to 64 characters before the
# one @, in dot-separated runs without spaces or quotes (any script: addresses may be
# internationalised); then two or more hostname labels.
_ATOM = r"[^@\s\"<>(),;:\\\[\].]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
MAX_COMPANY_LEN = 200
MAX_EMAIL_LEN = 254
MAX_FORM_FIELDS = 20


def new_token() -> str:
    """A fresh 256-bit random value, URL-safe (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_token(value: str | None) -> bool:
    """True when ``value`` has the shape of one of our tokens (cheap pre-check before a lookup)."""
    return bool(value) and TOKEN_RE.fullmatch(value or "") is not None


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets (False when either is missing)."""
    if a is None or b is None:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


class CsrfSigner:
    """CSRF tokens: an HMAC of the browser's (or admin session's) id and the form's purpose.

    The id lives in an HttpOnly cookie, so a page on another site cannot read it or forge the
    token, and a token taken from one form cannot be replayed on a different form.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("CSRF key must be at least 32 bytes")
        self._key = key

    def token(self, binding: str, purpose: str) -> str:
        """The token to embed in a form bound to ``binding`` (a cookie value) and ``purpose``."""
        mac = hmac.new(self._key, f"{purpose}\x00{binding}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def check(self, token: str | None, binding: str | None, purpose: str) -> bool:
        """Whether ``token`` is the one issued for this binding and purpose (constant time)."""
        if not token or not binding:
            return False
        return same(token, self.token(binding, purpose))


def content_security_policy(form_targets: list[str],
                            images: list[str | None] | None = None) -> str:
    """The page CSP: our own stylesheet, no scripts at all; forms may post to us and redirect
    to Xero's authorize host (Chrome applies ``form-action`` to redirects after a POST);
    images from us and from ``images`` (the platform's logo host)."""
    origins = " ".join(sorted({"'self'", *form_targets}))
    image_origins = " ".join(["'self'", "data:", *sorted({o for o in images or [] if o})])
    return (
        f"default-src 'none'; style-src 'self'; img-src {image_origins}; "
        f"form-action {origins}; frame-ancestors 'none'; base-uri 'none'"
    )


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (for CSP source lists)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(*, csp: str, secure: bool, no_store: bool) -> list[tuple[str, str]]:
    """Headers every response carries."""
    headers = [
        ("Content-Security-Policy", csp),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ]
    if no_store:
        headers += [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
    if secure:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    return headers


def cookie_name(base: str, *, https: bool) -> str:
    """The cookie's name: ``__Host-`` prefixed behind https, so a sibling subdomain or a plain
    http response cannot plant or overwrite it (browsers enforce Secure, Path=/, no Domain)."""
    return f"__Host-{base}" if https else base


def cookie(
    name: str,
    value: str,
    *,
    secure: bool,
    path: str = "/",
    max_age: int | None = None,
    same_site: str = "Lax",
) -> str:
    """A ``Set-Cookie`` value: always HttpOnly; ``Secure`` when served over https."""
    if name.startswith("__Host-"):
        path, secure = "/", True  # what the prefix requires
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def parse_form(body: bytes, allowed: set[str]) -> dict[str, str]:
    """Decode an urlencoded form: UTF-8, known fields only, each at most once.

    Raises:
        InvalidInput: for anything else, so nothing downstream sees surprising input.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The form was not valid UTF-8.") from None
    try:
        fields = parse_qs(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise InvalidInput("The form has too many fields.") from None
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput("The form has fields this page does not accept.")
    form: dict[str, str] = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise InvalidInput(f"The field {name!r} was sent more than once.", field=name)
        form[name] = values[0]
    return form


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def clean_company(value: str | None) -> str:
    """A company name: trimmed, 1–200 characters, no control characters."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("Enter the company's name.", field="company")
    if len(text) > MAX_COMPANY_LEN:
        raise InvalidInput(
            f"The company name is longer than {MAX_COMPANY_LEN} characters.", field="company"
        )
    if _has_control_chars(text):
        raise InvalidInput("The company name contains control characters.", field="company")
    return text


def clean_email(value: str | None) -> str:
    """An email address: one line, one @, a plausible domain (no header injection)."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("Enter an email address.", field="email")
    if (
        len(text) > MAX_EMAIL_LEN
        or _has_control_chars(text)
        or not EMAIL_RE.fullmatch(text)
    ):
        raise InvalidInput("That does not look like an email address.", field="email")
    return text


def clean_connection_id(value: str | None) -> str:
    """A connection id as ``xero-elt connections`` shows it (``con_…``)."""
    text = (value or "").strip()
    if not CONNECTION_ID_RE.fullmatch(text):
        raise InvalidInput(f"{text[:40]!r} is not a connection id (they look like con_3f9a…).")
    return text
