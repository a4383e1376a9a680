"""The auth server's settings: ``[auth_server]``, declared once below and read through dlt's
config providers the way every setting is (``connector.config.read_settings``).

Keys live under ``auth_server`` in ``.dlt/config.toml`` (secrets in ``.dlt/secrets.toml``) or in
environment variables such as ``AUTH_SERVER__PUBLIC_URL`` and ``AUTH_SERVER__ADMIN_TOKEN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auth_server.errors import ConfigError
from connector.config import read_settings, secret

SECTION = "auth_server"
HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[^@\s<>\"']{1,255}")
LOGO_SUFFIXES = frozenset({".png", ".svg", ".jpg", ".jpeg", ".webp", ".gif"})
MAX_LOGO_BYTES = 512 * 1024
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# A guessable admin token opens every connection; 32 token_urlsafe characters are 192 bits.
MIN_ADMIN_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class AuthServerSettings:
    """Everything the auth server needs besides the Xero app (``connector.settings``)."""

    public_url: str | None = None
    """Base URL people reach this server at (``https://…`` behind a proxy); default: the bind
    address."""
    product_name: str = "xero-elt"
    """The platform's name, as its customers know it: every customer page's header, its
    sentences ("… would like to read …"), and the invite email's sender and subject."""
    logo_url: str | None = None
    """The platform's logo in every customer page's header and the invite email: an
    ``https://`` URL, or the path of a PNG, SVG, JPEG, WebP or GIF file (at most 512 KiB) that
    this server then serves at ``/brand/logo.<ext>``. Without it: the name's initial."""
    brand_colour: str | None = None
    """The platform's primary colour (``#RRGGBB`` or ``#RGB``) for buttons, links and the
    progress strip. Button text is white or near-black, whichever contrasts more with it; links
    are darkened until they read on white (WCAG 4.5:1). Without it: a neutral blue."""
    support_email: str | None = None
    """Where the platform's customers ask for help: named on error pages (with the support
    reference) and in the invite email. Without it (and ``support_url``), pages say to contact
    whoever sent the invitation."""
    support_url: str | None = None
    """The platform's help page (``https://…``), named beside or instead of ``support_email``."""
    invite_ttl_days: int = 7
    """How long an invite link works."""
    max_connections: int = 25
    """Organisations the Xero app may have connected (Xero's cap for its tier: 25 uncertified,
    Starter 5, Core 50, Plus 1,000, Advanced 10,000). The admin page and ``xero-elt connections``
    warn from 80 % of it; a Cancel at Xero while at it is reported as the cap."""
    admin_token: str | None = secret()
    """Secret for ``/admin``; without it the admin page is closed."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    flow_ttl_minutes: int = 30
    """Time allowed at Xero and on the confirm page before a flow counts as abandoned."""
    smtp_host: str | None = None
    """Send invites through this SMTP server; without it they are written to the outbox."""
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = secret()
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    mail_from: str | None = None
    """Sender address; default ``<product name> <no-reply@HOST of the public URL>``."""
    max_body_bytes: int = 16 * 1024
    """Largest request body accepted (forms are tiny)."""
    trust_forwarded_for: bool = False
    """The proxy in front sets ``X-Forwarded-For``: count sign-in failures per the address it
    appends (the last one) rather than per socket peer. Leave off when clients reach us directly,
    or anyone could pose as any address."""
    request_read_seconds: int = 20
    """Whole-request read deadline: request line, headers and body must arrive within this (a
    slow client cannot hold a thread by trickling bytes); also the keep-alive idle limit."""
    max_open_connections: int = 100
    """Client connections served at once; beyond it a request gets a short 503 (try again)."""
    max_connections_per_client: int = 16
    """Connections one client (an IPv4 address, an IPv6 /64; the ``X-Forwarded-For`` client's
    requests in flight with ``trust_forwarded_for``) may hold of ``max_open_connections``;
    beyond it a short 429 (try again), so one machine cannot take the server. The last quarter
    of ``max_open_connections`` is kept for clients holding fewer than four."""
    max_background_jobs: int = 4
    """Background jobs (a sync or a purge through the API, each a process of ~50 MB or more)
    running at once across the servers of one store; beyond it the API answers 429 with
    Retry-After. A customer's first sync is never refused (it only waits its turn)."""
    webhook_url: str | None = None
    """Where webhooks out are posted (``connection.connected``, ``sync.failed``, …); without it
    events are kept in the outbox and not sent."""
    webhook_secret: str | None = secret()
    """The key of each webhook's ``X-Xero-Elt-Signature`` (HMAC-SHA256); needed with
    ``webhook_url``."""
    webhook_retry_scale: float = 1.0
    """Multiplies the webhook retry delays (30 s doubling to 4 h, for over 24 h); tests shrink
    it. 1 in production."""
    webhook_poll_seconds: float = 2.0
    """How often the delivery worker looks for due webhook events."""
    xero_webhook_key: str | None = secret()
    """The webhook key Xero shows for this app's webhook (``x-xero-signature`` is an HMAC of the
    body with it); without it ``/webhooks/xero`` answers 401 to everything."""
    xero_webhook_max_body_bytes: int = 1024 * 1024
    """Largest webhook payload accepted from Xero (a batch of events; forms keep
    ``max_body_bytes``)."""
    xero_webhook_coalesce_seconds: float = 2.0
    """How long events are gathered after one arrives before the targeted supplier read starts
    (one read for a burst of events)."""
    xero_webhook_poll_seconds: float = 10.0
    """How often the auth server looks for pending Xero events it was not woken for (stored by
    another replica, or left while a scheduled run held the organisation)."""
    success_next_url: str | None = None
    """Where the success page's "Next" button leads (the platform's page); without it the page
    says the window can be closed."""

    def __post_init__(self) -> None:
        if not 1 <= self.invite_ttl_days <= 365:
            raise ConfigError(
                f"auth_server.invite_ttl_days must be 1..365, not {self.invite_ttl_days}"
            )
        if not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError(
                f"auth_server.max_connections must be 1..1000000, not {self.max_connections}"
            )
        if not 1 <= self.flow_ttl_minutes <= 24 * 60:
            raise ConfigError(
                f"auth_server.flow_ttl_minutes must be 1..1440, not {self.flow_ttl_minutes}"
            )
        if self.admin_token and len(self.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"auth_server.admin_token is {len(self.admin_token)} characters; it must be at "
                f"least {MIN_ADMIN_TOKEN_LENGTH} (generate one with: python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\")"
            )
        if not 1 <= self.request_read_seconds <= 600:
            raise ConfigError(
                f"auth_server.request_read_seconds must be 1..600, not {self.request_read_seconds}"
            )
        if self.max_open_connections < 1:
            raise ConfigError(
                f"auth_server.max_open_connections must be at least 1, not "
                f"{self.max_open_connections}"
            )
        if self.max_background_jobs < 1:
            raise ConfigError(
                f"auth_server.max_background_jobs must be at least 1, not "
                f"{self.max_background_jobs}"
            )
        if self.max_connections_per_client < 1:
            raise ConfigError(
                f"auth_server.max_connections_per_client must be at least 1, not "
                f"{self.max_connections_per_client}"
            )
        self._check_brand()
        for name in ("webhook_url", "success_next_url", "support_url"):
            value = getattr(self, name)
            if value is not None and urlsplit(value).scheme not in ("http", "https"):
                raise ConfigError(f"auth_server.{name} must be an http(s) URL")
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            if "@" in parts.netloc:
                # urllib sends no credentials from the URL, and the URL would reach the logs.
                raise ConfigError("auth_server.webhook_url must not carry user:password@; "
                                  "webhooks are signed with webhook_secret (a token in the path "
                                  "works too)")
            try:
                parts.port  # noqa: B018 - raises on a malformed port
            except ValueError:
                raise ConfigError("auth_server.webhook_url has a malformed port") from None
        if self.webhook_url and len(self.webhook_secret or "") < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(
                f"auth_server.webhook_secret must be set, at least {MIN_ADMIN_TOKEN_LENGTH} "
                "characters, when auth_server.webhook_url is"
            )
        if not 0 < self.webhook_retry_scale <= 1 or not 0 < self.webhook_poll_seconds <= 3600:
            raise ConfigError("auth_server.webhook_retry_scale must be in (0, 1] and "
                              "webhook_poll_seconds in (0, 3600]")
        if not 1024 <= self.xero_webhook_max_body_bytes <= 64 * 1024 * 1024:
            raise ConfigError("auth_server.xero_webhook_max_body_bytes must be 1 KiB..64 MiB")
        if not 0 <= self.xero_webhook_coalesce_seconds <= 60 \
                or not 0 < self.xero_webhook_poll_seconds <= 3600:
            raise ConfigError("auth_server.xero_webhook_coalesce_seconds must be in [0, 60] and "
                              "xero_webhook_poll_seconds in (0, 3600]")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"auth_server.port must be 0..65535, not {self.port}")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"auth_server.public_url must be an http(s) URL, not {self.public_url!r}"
                )
            if parts.query or parts.fragment:
                raise ConfigError("auth_server.public_url must not carry a query or fragment")
        for name in ("product_name", "mail_from", "support_email"):
            value = getattr(self, name)
            if value is not None and any(ch in value for ch in "\r\n"):
                raise ConfigError(f"auth_server.{name} must be one line")

    def _check_brand(self) -> None:
        """The brand settings, each with a message that says what is accepted."""
        if self.brand_colour is not None and not HEX_COLOUR.fullmatch(self.brand_colour.strip()):
            raise ConfigError(f"auth_server.brand_colour must be a hex colour such as "
                              f"\"#0a7c6f\", not {self.brand_colour!r}")
        if self.support_email is not None and not EMAIL.fullmatch(self.support_email):
            raise ConfigError(f"auth_server.support_email must be one email address, not "
                              f"{self.support_email!r}")
        logo = self.logo_url
        if logo and not logo.startswith(("https://", "http://")):
            path = Path(logo.removeprefix("file://")).expanduser()
            if path.suffix.lower() not in LOGO_SUFFIXES:
                raise ConfigError("auth_server.logo_url must be an http(s) URL or a .png, .svg, "
                                  f".jpg, .webp or .gif file, not {logo!r}")
            if not path.is_file():
                raise ConfigError(f"auth_server.logo_url: there is no file {path}")
            if path.stat().st_size > MAX_LOGO_BYTES:
                raise ConfigError(f"auth_server.logo_url: {path} is over 512 KiB; a header "
                                  "logo needs far less")
        elif logo and (not urlsplit(logo).netloc or any(ch in logo for ch in "\"'<> ")):
            raise ConfigError(f"auth_server.logo_url is not a usable URL: {logo!r}")

    @property
    def base_url(self) -> str:
        """The public URL without a trailing slash (the bind address when none is set)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        """The OAuth callback registered with the Xero app."""
        return self.base_url + "/callback"

    @property
    def is_https(self) -> bool:
        """True behind a TLS-terminating proxy: cookies become ``Secure``."""
        return self.base_url.startswith("https://")

    @property
    def sender(self) -> str:
        """The From header of invite emails."""
        if self.mail_from:
            return self.mail_from
        domain = urlsplit(self.base_url).hostname or "localhost"
        if domain.replace(".", "").isdigit() or ":" in domain:
            domain = "localhost"
        return f"{self.product_name} <no-reply@{domain}>"


def load_settings(**overrides: Any) -> AuthServerSettings:
    """Settings from ``[auth_server]`` (env, ``.dlt/config.toml``, ``.dlt/secrets.toml``).

    Keyword overrides win (the CLI's ``--host``/``--port``, tests). ``None`` overrides are ignored.
    """
    return read_settings(AuthServerSettings, (SECTION,), overrides, ConfigError)
