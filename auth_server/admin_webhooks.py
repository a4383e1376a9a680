"""The admin page's view of webhooks: ``/admin/webhooks`` shows the health of Xero's webhooks
in (last handshake, last event, pending events and lag) and lists recent events out with their
delivery state, each of which can be replayed (the same event id and body, sent again now)."""

from __future__ import annotations

from auth_server.admin import ADMIN_PURPOSE, AdminAuth, _admin_form, _topbar, admin_only
from auth_server.render import Markup, escape, tag
from auth_server.web import Request, Response, message, page, redirect
from store import StoreError
from store.webhook_outbox import WebhookEvent
from store.xero_events import WebhookHealth

LIMIT = 100


def _row(request: Request, auth: AdminAuth, event: WebhookEvent) -> Markup:
    csrf = request.app.csrf.token(auth.session_id or "", ADMIN_PURPOSE)
    replay = Markup(
        f'<form method="post" action="/admin/webhooks/{escape(event.event_id)}/replay">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<button type="submit" class="button secondary small">Replay</button></form>')
    tone = {"delivered": "ok", "failed": "bad"}.get(event.status, "warn")
    last = event.last_error or (str(event.last_status) if event.last_status else "–")
    cells = [
        tag("td", Markup(tag("span", event.type) + tag("span", event.event_id, class_="sub"))),
        tag("td", event.connection_id),
        tag("td", tag("span", event.status, class_=f"badge {tone}")),
        tag("td", f"{event.attempts} · {last}"),
        tag("td", f"{event.created_at:%Y-%m-%d %H:%M} UTC"),
        tag("td", replay, class_="actions-cell"),
    ]
    return Markup("<tr>" + "".join(cells) + "</tr>")


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] + " UTC" if value else "never"


def xero_health_panel(health: WebhookHealth, key_set: bool) -> Markup:
    """Xero's webhooks in, as a small definition list."""
    data = health.summary()
    age = data["oldest_pending_age_s"]
    lag = data["last_lag_s"]
    items = [
        ("Webhook key", "set" if key_set else "not set: /webhooks/xero refuses every delivery"),
        ("Last intent-to-receive", _when(data["last_handshake_at"])),
        ("Last event received", _when(data["last_event_at"])),
        ("Pending events", f"{data['pending']}" + (f" (oldest {age:.0f} s)" if age else "")),
        ("Last event loaded", "–" if lag is None else f"{lag:.1f} s after it arrived"),
    ]
    rows = "".join(tag("dt", name) + tag("dd", value) for name, value in items)
    return Markup('<div class="panel"><h2>Xero webhooks in</h2><dl class="facts">' + rows
                  + "</dl></div>")


@admin_only
def webhooks_page(request: Request, auth: AdminAuth) -> Response:
    """``GET /admin/webhooks``: the outbox, newest first."""
    events = request.app.store.list_webhook_events(limit=LIMIT)
    target = request.app.settings.webhook_url
    where = f"Sent to {target.split('?', 1)[0]}" if target else \
        "No webhook_url is set: events are kept here and not sent."
    rows = Markup("\n".join(_row(request, auth, e) for e in events)) or Markup(
        '<tr><td colspan="6" class="empty">No events yet.</td></tr>')
    content = Markup(
        '<section class="wide"><div class="admin-head"><h1>Webhooks</h1>'
        + tag("p", Markup(escape(where) + " · " + tag("a", "Connections", href="/admin")),
              class_="muted")
        + "</div>"
        + xero_health_panel(request.app.store.xero_webhook_health(),
                            bool(request.app.settings.xero_webhook_key))
        + '<div class="panel"><h2>Webhooks out</h2>'
        '<table class="connections"><thead><tr><th>Event</th>'
        "<th>Connection</th><th>Delivery</th><th>Attempts · last answer</th><th>Created</th>"
        '<th><span class="visually-hidden">Actions</span></th></tr></thead><tbody>'
        + rows + "</tbody></table></div></section>")
    return page(request, "Webhooks", content, topbar_extra=_topbar(request, auth),
                body_class="admin")


@admin_only
def replay(request: Request, auth: AdminAuth) -> Response:
    """``POST /admin/webhooks/<event id>/replay``."""
    form = _admin_form(request, auth)
    if isinstance(form, Response):
        return form
    try:
        request.app.store.replay_webhook_event(request.params["event_id"])
    except StoreError:
        return message(request, "No such event", ["It may have been removed."], status=404,
                       tone="error")
    return redirect("/admin/webhooks")
