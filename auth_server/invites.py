"""Invites: one long random link per invite, stored only as a hash, with an expiry.

A connection record *is* the invite (its id is the invite id). Resending gives it a new token
hash, so the previous link stops working at once: there is a single active link per invite.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from auth_server import mail
from auth_server.errors import InvalidInput, InviteError, NotFound
from auth_server.i18n import clean_language
from auth_server.security import (
    clean_company,
    clean_connection_id,
    clean_email,
    looks_like_token,
    new_token,
    same,
    token_hash,
)
from auth_server.settings import AuthServerSettings
from store import Connection, ConnectionStatus, Store, StoreError, lifecycle, utcnow

log = logging.getLogger(__name__)

# Statuses in which the invite link may (re)start the flow.
OPEN_STATUSES = frozenset({
    ConnectionStatus.INVITED, ConnectionStatus.LINK_OPENED, ConnectionStatus.INCOMPLETE,
    ConnectionStatus.NEEDS_RECONNECTION,
})
# Statuses that an elapsed expiry turns into ``expired`` (a reconnection keeps its own status).
EXPIRING_STATUSES = frozenset({
    ConnectionStatus.INVITED, ConnectionStatus.LINK_OPENED, ConnectionStatus.INCOMPLETE,
})


def invite_link(settings: AuthServerSettings, token: str) -> str:
    """``<public URL>/invite/<token>``."""
    return f"{settings.base_url}/invite/{token}"


def _send(store: Store, settings: AuthServerSettings, conn: Connection, link: str) -> str:
    assert conn.invite_expires_at is not None
    msg = mail.build_invite_email(
        settings, company=conn.company, email=conn.email, link=link,
        expires_at=conn.invite_expires_at, language=conn.language,
    )
    where = mail.deliver(settings, msg, home=store.home, name_hint=conn.connection_id)
    log.info("invite email for %s sent to %s", conn.connection_id, where)
    return where


def create_invite(
    store: Store,
    settings: AuthServerSettings,
    company: str,
    email: str,
    *,
    now: datetime | None = None,
    send_email: bool = True,
    language: str | None = None,
) -> tuple[Connection, str]:
    """Create an invite and send its email (unless ``send_email`` is False: the platform sends
    the link itself). ``language`` (``en``, ``ar``, …) is the one its pages and email speak;
    without it the pages follow the browser's ``Accept-Language`` and the email is in English.

    Returns:
        The new connection record (status ``invited``) and the invite link.

    Raises:
        InvalidInput: the company or email is not acceptable (nothing is created).
        MailError: the email could be neither sent nor written to the outbox.
    """
    company = clean_company(company)
    email = clean_email(email)
    try:
        language = clean_language(language)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="language") from None
    now = now or utcnow()
    token = new_token()
    conn = store.create_connection(
        company, email, invite_token_hash=token_hash(token),
        invite_expires_at=now + timedelta(days=settings.invite_ttl_days), now=now,
        language=language,
    )
    link = invite_link(settings, token)
    if send_email:
        _send(store, settings, conn, link)
    return conn, link


def get_connection(store: Store, connection_id: str) -> Connection:
    """The connection record, or ``NotFound`` with a sentence a person understands."""
    connection_id = clean_connection_id(connection_id)
    try:
        return store.get_connection(connection_id)
    except StoreError:
        raise NotFound(f"there is no connection {connection_id}") from None


def resend_invite(
    store: Store,
    settings: AuthServerSettings,
    connection_id: str,
    *,
    now: datetime | None = None,
    send_email: bool = True,
) -> tuple[Connection, str]:
    """Issue a new link for an invite and email it (unless ``send_email`` is False); the
    previous link stops working.

    An invite that has not connected yet keeps its id. One whose organisation was disconnected
    (e.g. the wrong organisation was chosen) gets a *new* record for the same company and email,
    so the old organisation's record stays ``disconnected`` and is never mixed up with the new one.

    Returns:
        The record the new link belongs to and the link.

    Raises:
        NotFound: no such connection.
        InviteError: the connection is connected (disconnect it first).
    """
    conn = get_connection(store, connection_id)
    now = now or utcnow()
    if conn.status == ConnectionStatus.CONNECTED:
        raise InviteError(
            f"{conn.connection_id} is connected to {conn.organisation_name or 'an organisation'};"
            " disconnect it first to connect a different one"
        )
    token = new_token()
    expires_at = now + timedelta(days=settings.invite_ttl_days)
    if conn.status == ConnectionStatus.DISCONNECTED and conn.tenant_id:
        target = store.create_connection(
            conn.company, conn.email, invite_token_hash=token_hash(token),
            invite_expires_at=expires_at, now=now, language=conn.language,
        )
    else:
        # A reconnection's link keeps ``needs_reconnection`` and its reason (the table says).
        reconnecting = conn.status == ConnectionStatus.NEEDS_RECONNECTION
        try:
            target = lifecycle.apply(
                store, conn.connection_id, lifecycle.Event.RESEND,
                invite_token_hash=token_hash(token), invite_expires_at=expires_at,
                status_reason=conn.status_reason if reconnecting else None,
                invited_at=now, link_opened_at=None, disconnected_at=None, updated_at=now,
            )
        except lifecycle.TransitionRefused as exc:  # purging or purged (or changed meanwhile)
            raise InviteError(str(exc)) from None
    link = invite_link(settings, token)
    if send_email:
        _send(store, settings, target, link)
    return target, link


class LinkProblem(Exception):
    """Why an invite link cannot be used: ``invalid`` (unknown, tampered or replaced),
    ``expired``, ``connected`` or ``withdrawn``."""

    def __init__(self, kind: str, connection: Connection | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.connection = connection


def lookup_invite(store: Store, token: str, *, now: datetime | None = None) -> Connection:
    """The invite a link's token belongs to, if the link may start the flow now.

    An expired invite is marked ``expired`` on the way.

    Raises:
        LinkProblem: the link cannot be used (see its ``kind``).
    """
    if not looks_like_token(token):
        raise LinkProblem("invalid")
    wanted = token_hash(token)
    conn = store.find_connection_by_invite_hash(wanted)
    # The lookup is by hash; compare again in constant time so equality is never short-cut.
    if conn is None or not same(conn.invite_token_hash, wanted):
        raise LinkProblem("invalid")
    return check_open(store, conn, now=now)


def check_open(store: Store, conn: Connection, *, now: datetime | None = None) -> Connection:
    """``conn`` if its invite may (still) be used now; otherwise ``LinkProblem``."""
    now = now or utcnow()
    if conn.status == ConnectionStatus.CONNECTED:
        raise LinkProblem("connected", conn)
    if conn.status == ConnectionStatus.DISCONNECTED:
        raise LinkProblem("withdrawn", conn)
    if conn.status == ConnectionStatus.EXPIRED:
        raise LinkProblem("expired", conn)
    if conn.invite_expires_at is None or conn.invite_expires_at <= now:
        if conn.status in EXPIRING_STATUSES:
            conn = lifecycle.apply(store, conn.connection_id, lifecycle.Event.EXPIRE,
                                   updated_at=now)
        raise LinkProblem("expired", conn)
    if conn.status not in OPEN_STATUSES:
        raise LinkProblem("invalid", conn)
    return conn


def expire_stale_invites(store: Store, *, now: datetime | None = None) -> list[Connection]:
    """Mark invites whose link has run out as ``expired``; returns the ones changed."""
    now = now or utcnow()
    changed = []
    for conn in store.list_connections(statuses=[s.value for s in EXPIRING_STATUSES]):
        if conn.invite_expires_at is not None and conn.invite_expires_at <= now:
            try:
                changed.append(lifecycle.apply(store, conn.connection_id, lifecycle.Event.EXPIRE,
                                               updated_at=now))
            except lifecycle.TransitionRefused:
                continue  # it moved on meanwhile (the customer opened or finished the flow)
    return changed
