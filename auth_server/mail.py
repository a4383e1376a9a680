"""The invite email: built once (plain text + HTML), then sent by SMTP or written to the outbox.

Without an SMTP server configured, each email is written as a real ``.eml`` file to
``XERO_ELT_HOME/outbox/`` (0600: it holds a live invite link), atomically, so a mail client or a
person can open it. If SMTP is configured but fails, the email goes to the outbox instead and a
warning says so: the invite link is never lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from auth_server import i18n
from auth_server.brand import Brand
from auth_server.brand import brand as make_brand
from auth_server.errors import MailError
from auth_server.settings import AuthServerSettings

log = logging.getLogger(__name__)

SUBJECT = i18n.N_("[ACTION REQUIRED] Connect your accounting platform to %(product)s")


def invite_subject(product_name: str, language: str | None = None) -> str:
    """The invite email's subject line, in the invite's language."""
    return i18n.language(language).gettext(SUBJECT, product=product_name)


def _support_line(lang: i18n.Language, brand: Brand) -> str:
    contacts = [c for c in (brand.support_email, brand.support_url) if c]
    if not contacts:
        return ""
    return lang.gettext("Questions? Contact %(product)s's support: %(contact)s.",
                        product=brand.product, contact=lang.gettext(" or ").join(contacts))


def build_invite_email(
    settings: AuthServerSettings, *, company: str, email: str, link: str, expires_at: datetime,
    language: str | None = None,
) -> EmailMessage:
    """The invite email with one clear link, as text and HTML alternatives, in the invite's
    language (English when it has none) and the platform's brand."""
    lang = i18n.language(language)
    brand = make_brand(settings)
    values = {
        "brand": brand,
        "company": company,
        "link": link,
        "expires": lang.date(expires_at),
        "days": lang.number(settings.invite_ttl_days),
        "support": _support_line(lang, brand),
        "subject": invite_subject(settings.product_name, lang.code),
    }
    msg = EmailMessage()
    msg["Subject"] = values["subject"]
    msg["From"] = settings.sender
    msg["To"] = email
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain="xero-elt.invalid")
    # Plain text keeps the link on a line of its own; the HTML part is rendered with escaping.
    # The transfer encoding is left to the email package (7bit when everything is ASCII).
    msg.set_content(i18n.render("email.txt", lang, values))
    msg.add_alternative(i18n.render("email.html", lang, values), subtype="html")
    msg["Content-Language"] = lang.code  # after set_content, which drops Content-* headers
    return msg


def write_to_outbox(msg: EmailMessage, outbox: Path, *, name_hint: str) -> Path:
    """Write ``msg`` as ``outbox/<time>-<hint>-<rand>.eml`` (0600, atomic rename)."""
    try:
        outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        final = outbox / f"{stamp}-{name_hint}-{secrets.token_hex(3)}.eml"
        tmp = final.with_suffix(".eml.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msg.as_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        with contextlib.suppress(Exception):
            tmp.unlink(missing_ok=True)  # type: ignore[possibly-undefined]
        raise MailError(f"could not write the email to {outbox}: {exc.strerror}") from None
    return final


def send_by_smtp(settings: AuthServerSettings, msg: EmailMessage) -> None:
    """Send through the configured SMTP server (TLS unless told otherwise)."""
    assert settings.smtp_host
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=20,
                                context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(msg)


def deliver(settings: AuthServerSettings, msg: EmailMessage, *, home: Path, name_hint: str) -> str:
    """Send by SMTP when configured, else (or when SMTP fails) write to the outbox.

    Returns:
        Where it went: ``smtp://host:port`` or the path of the ``.eml`` file.
    """
    if settings.smtp_host:
        try:
            send_by_smtp(settings, msg)
        except (OSError, smtplib.SMTPException) as exc:
            path = write_to_outbox(msg, home / "outbox", name_hint=name_hint)
            log.warning("SMTP %s:%s failed (%s); the invite email was written to %s instead",
                        settings.smtp_host, settings.smtp_port, type(exc).__name__, path)
            return str(path)
        return f"smtp://{settings.smtp_host}:{settings.smtp_port}"
    return str(write_to_outbox(msg, home / "outbox", name_hint=name_hint))
