"""The pages a customer's Xero admin sees, from the invite link to "Connection Successful".

Handlers translate between HTTP and ``flow``; each problem the flow reports becomes a page that
says plainly what happened and what to do next. Pages with forms bind their CSRF token to the
browser-id cookie *and* to the invite the page shows (the token carries that invite's id), so a
page left open while another invite was opened in this browser is refused, never applied to the
other invite. Opening an invite link always issues a fresh browser id, and replacing a visit
still in progress needs the person's say-so.
"""

from __future__ import annotations

import logging

from auth_server import flow
from auth_server.errors import InvalidInput
from auth_server.flow import FlowProblem
from auth_server.invites import LinkProblem, lookup_invite
from auth_server.render import Markup, escape, tag
from auth_server.security import CONNECTION_ID_RE, same, token_hash
from auth_server.web import (
    Request,
    Response,
    csrf_field,
    csrf_ok,
    message,
    page,
    redirect,
    render_page,
    steps,
    support_contact,
)
from store import Connection, StoreError, lifecycle

log = logging.getLogger(__name__)

CONNECT_PURPOSE = "connect"
SWITCH_PURPOSE = "switch-invite"


def _start_again(request: Request) -> Markup:
    return tag("p", tag("a", request._("Start again"), href="/connect", class_="button primary"),
               class_="actions")


def link_problem(request: Request, problem: LinkProblem) -> Response:
    """The page for a link that cannot be used (any step may find this out)."""
    conn = problem.connection
    request.about(conn)
    _ = request._
    if problem.kind == "expired":
        days = request.app.settings.invite_ttl_days
        return message(request, _("This invitation has expired"), [
            _("Invitation links work for %(days)s days, and this one has run out.", days=days),
            _("Ask the person who invited you to send a new invitation; it takes them a moment."),
        ], status=410, tone="warning")
    if problem.kind == "connected" and conn is not None:
        # Whoever holds an old link learns only that it was used, not which organisation.
        return message(request, _("Already connected"), [
            _("This invitation has already been used to connect an organisation. There is "
              "nothing more to do."),
            _("To connect a different organisation, ask the person who invited you for a new "
              "invitation."),
        ])
    if problem.kind == "withdrawn":
        return message(request, _("This invitation was withdrawn"), [
            _("The invitation behind this link has been cancelled or disconnected."),
            _("If you still want to connect, ask the person who invited you for a new "
              "invitation."),
        ], status=410, tone="warning")
    return message(request, _("This link is no longer valid"), [
        _("It may have been replaced by a newer invitation (only the latest link works), or it "
          "was not copied completely."),
        _("Use the most recent invitation email, or ask the person who invited you to send a "
          "new one."),
    ], status=404, tone="warning")


def flow_problem(request: Request, problem: FlowProblem) -> Response:
    """The page for a request that does not fit the flow (nothing was changed)."""
    _ = request._
    if problem.kind == "no_visit":
        return message(request, _("Open the link from your invitation email"), [
            _("This page only works after opening the link in your invitation email, in this "
              "browser. If you opened it a while ago, open it again to continue."),
        ], status=400, tone="warning")
    if problem.kind == "other_browser":
        return message(request, _("Please finish in the same browser"), [
            _("You returned from Xero in a different browser (or with cookies cleared) from the "
              "one that started connecting. For your security we cannot continue here."),
            _("Open the link from your invitation email again, in this browser, to start over."),
        ], status=400, tone="error")
    if problem.kind == "unknown_state":
        return message(request, _("This sign-in has expired or was already used"), [
            _("The response from Xero does not match a connection in progress: it may have been "
              "used already, or taken too long."),
            _("Open the link from your invitation email again to start over."),
        ], status=400, tone="error")
    if problem.kind == "nothing_to_confirm":
        return message(request, _("Nothing to confirm"), [
            _("There is no organisation waiting for confirmation in this browser. Open the link "
              "from your invitation email to connect again."),
        ], status=400, tone="warning")
    if problem.kind == "other_invite":
        return message(request, _("This page is for another invitation"), [
            _("Since this page was shown, a different invitation link was opened in this "
              "browser, so nothing was changed."),
            _("Open the link from the invitation email you want to continue with, in this "
              "browser, and start from there."),
        ], status=409, tone="error")
    if problem.kind == "confirm_raced":
        return message(request, _("This was already answered"), [
            _("The company was confirmed (or declined) from another window a moment ago, so "
              "this request changed nothing."),
            _("Open the link from your invitation email to see where things stand."),
        ], status=409, tone="warning")
    if problem.kind == "already_connected":
        return message(request, _("That organisation is already connected"), [
            _("It was connected through another invitation, so nothing was changed."),
        ], status=409, tone="warning")
    return message(request, _("Something is wrong with this request"), [
        _("The request was incomplete or malformed, so nothing was changed. Open the link from "
          "your invitation email to start over."),
    ], status=400, tone="error")


def _guard(request: Request, action) -> Response:  # type: ignore[no-untyped-def]
    try:
        return action()
    except LinkProblem as exc:
        _note_organisation(request, exc.connection)
        return link_problem(request, exc)
    except FlowProblem as exc:
        visit = flow.unfinished_visit(request.app.store, request.browser_id())
        _note_organisation(request, visit.connection if visit else None)
        return flow_problem(request, exc)
    except lifecycle.TransitionRefused as exc:
        # Another window (or an admin) moved the connection on between our read and our write.
        _note_organisation(request, exc.connection)
        _ = request._
        return message(request, _("This changed in the meantime"), [
            _("Something else changed this connection a moment ago (another window, or your "
              "contact), so this request changed nothing."),
            _("Open the link from your invitation email to see where things stand."),
        ], status=409, tone="warning")


def _note_organisation(request: Request, conn: Connection | None) -> None:
    """Name the organisation in the error page's support reference, and speak the invite's
    language, when the connection is known."""
    request.about(conn)


def home(request: Request) -> Response:
    """``/``: what this is, for someone who lands here without a link."""
    _ = request._
    product = request.app.settings.product_name
    return message(request, _("Connect your accounting platform to %(product)s",
                              product=product), [
        _("To connect, open the link in the invitation email you received."),
        _("No invitation? Ask your contact at %(product)s to send one.", product=product),
    ])


def _flow_csrf(request: Request, visit: flow.Visit) -> str:
    """The CSRF token of a flow page: ``<invite id>.<HMAC of browser id and invite id>``."""
    invite_id = visit.connection.connection_id
    mac = csrf_field(request, request.browser_id() or "", f"{CONNECT_PURPOSE}:{invite_id}")
    return f"{invite_id}.{mac}"


def _switch_csrf(request: Request, token: str) -> str:
    return csrf_field(request, request.browser_id() or "",
                      f"{SWITCH_PURPOSE}:{token_hash(token)}")


def _open_fresh(request: Request, token: str) -> Response:
    """Open the invite under a fresh browser id; the previous id's visit is forgotten."""
    previous = request.browser_id()
    browser = request.new_browser_id()
    flow.open_link(request.app.store, token, browser, previous_browser_id=previous)
    # Off the address bar with the token: the next pages know the invite by the cookie.
    return redirect("/connect")


def _replace_visit_page(request: Request, current: flow.Visit, token: str) -> Response:
    """Ask before a new link replaces a visit in progress (a page may have opened it)."""
    wanted = lookup_invite(request.app.store, token)
    request.about(current.connection)
    _ = request._
    keep = _("Continue with %(company)s", company=current.connection.company)
    switch_to = _("Switch to %(company)s", company=wanted.company)
    switch = Markup(
        f'<form method="post" action="/invite/{escape(token)}" class="actions">'
        f'<input type="hidden" name="csrf_token" value="{escape(_switch_csrf(request, token))}">'
        f'<a class="button primary" href="/connect">{escape(keep)}</a>'
        f'<button type="submit" class="button secondary">{escape(switch_to)}</button></form>'
    )
    return message(request, _("You are already connecting a company"), [
        request._html("This browser is in the middle of connecting <strong>%(current)s</strong> "
                      "(invitation sent to %(email)s). The link just opened is an invitation "
                      "for <strong>%(wanted)s</strong>.", current=current.connection.company,
                      email=current.connection.email, wanted=wanted.company),
        _("If you did not open a new invitation yourself, continue with the first one."),
    ], tone="warning", action=switch)


def open_invite(request: Request) -> Response:
    """``GET /invite/<token>``: start (or restart) the flow in this browser."""
    token = request.params["token"]

    def act() -> Response:
        current = flow.unfinished_visit(request.app.store, request.browser_id())
        if current is not None and not same(current.connection.invite_token_hash,
                                            token_hash(token)):
            return _replace_visit_page(request, current, token)
        return _open_fresh(request, token)

    return _guard(request, act)


def switch_invite(request: Request) -> Response:
    """``POST /invite/<token>``: the person chose to switch to this invite."""
    token = request.params["token"]
    try:
        form = request.form()
    except InvalidInput as exc:
        return message(request, request._("That form could not be read"), [str(exc)],
                       status=400, tone="error")
    if not csrf_ok(request, form, request.browser_id(),
                   f"{SWITCH_PURPOSE}:{token_hash(token)}"):
        return _expired_form(request)
    return _guard(request, lambda: _open_fresh(request, token))


def choose_software(request: Request) -> Response:
    """``GET /connect``: "Share your financial information"."""

    def act() -> Response:
        visit = flow.current_visit(request.app.store, request.browser_id())
        request.about(visit.connection)
        content = render_page(
            request, "choose_software.html", steps=steps(request, 1),
            company=visit.connection.company, csrf=_flow_csrf(request, visit),
            contact=support_contact(request),
        )
        return page(request, request._("Share your financial information"), content)

    return _guard(request, act)


def _expired_form(request: Request) -> Response:
    return message(request, request._("This form has expired"), [
        request._("For your security, the form could not be accepted. Open the link from your "
                  "invitation email again and continue from there."),
    ], status=403, tone="error")


def _checked_form(request: Request, *fields: str) -> dict[str, str] | Response:
    """The form, its CSRF token checked; ``form["invite"]`` is the invite its page was for."""
    try:
        form = request.form(*fields)
    except InvalidInput as exc:
        return message(request, request._("That form could not be read"), [str(exc)],
                       status=400, tone="error")
    invite_id, _, mac = (form.get("csrf_token") or "").partition(".")
    current = flow.unfinished_visit(request.app.store, request.browser_id())
    if (current is not None and mac and CONNECTION_ID_RE.fullmatch(invite_id)
            and invite_id != current.connection.connection_id):
        return flow_problem(request, FlowProblem("other_invite"))
    if not csrf_ok(request, {"csrf_token": mac}, request.browser_id(),
                   f"{CONNECT_PURPOSE}:{invite_id}"):
        return _expired_form(request)
    form["invite"] = invite_id
    return form


def choose_software_submit(request: Request) -> Response:
    """``POST /connect/software``: only Xero is offered."""
    form = _checked_form(request, "software")
    if isinstance(form, Response):
        return form
    if form.get("software") != "xero":
        return message(request, request._("Choose your accounting software"), [
            request._("Only Xero can be connected at the moment."),
        ], status=400, tone="warning", action=_start_again(request))

    def act() -> Response:
        flow.current_visit(request.app.store, request.browser_id(), invite_id=form["invite"])
        return redirect("/connect/review")

    return _guard(request, act)


def review(request: Request) -> Response:
    """``GET /connect/review``: "Review access request"."""

    def act() -> Response:
        visit = flow.current_visit(request.app.store, request.browser_id())
        request.about(visit.connection)
        content = render_page(
            request, "review.html", steps=steps(request, 2),
            company=visit.connection.company, csrf=_flow_csrf(request, visit),
        )
        return page(request, request._("Review access request"), content)

    return _guard(request, act)


def authorize(request: Request) -> Response:
    """``POST /connect/authorize``: "Next" → Xero's authorize page."""
    form = _checked_form(request)
    if isinstance(form, Response):
        return form
    app = request.app

    def act() -> Response:
        url = flow.start_authorization(app.store, app.settings, app.xero, request.browser_id(),
                                       invite_id=form["invite"])
        return redirect(url)

    return _guard(request, act)


def callback(request: Request) -> Response:
    """``GET /callback``: back from Xero with a code or an error."""
    app = request.app
    try:
        params = {name: value for name in ("state", "code", "error", "error_description")
                  if (value := request.query_one(name)) is not None}
    except InvalidInput:
        return flow_problem(request, FlowProblem("bad_callback"))

    def act() -> Response:
        result = flow.handle_callback(app.store, app.settings, app.xero, request.browser_id(),
                                      params)
        request.about(result.connection)
        if result.outcome == "confirm":
            # Off the address bar with the code and state.
            return redirect("/connect/confirm")
        return incomplete_page(request, result.outcome, result.connection.status_reason)

    return _guard(request, act)


def incomplete_page(request: Request, reason: str, detail: str | None = None) -> Response:
    """What to do after the flow stopped short, by reason (``detail``: the operator's cause,
    logged with the support reference)."""
    _ = request._
    product = request.app.settings.product_name
    if reason == flow.NO_PERMISSION:
        return message(request, _("You need to be a Xero admin to connect"), [
            _("Xero says your user does not have permission to connect apps to this "
              "organisation."),
            request._html("Please <strong>forward the invitation email to your Xero admin</strong>"
                          " and ask them to open the link. Nothing was connected."),
        ], tone="warning")
    if reason == flow.CANCELLED:
        return message(request, _("You cancelled at Xero"), [
            _("Nothing was connected, and %(product)s has no access to your Xero organisation.",
              product=product),
            _("Changed your mind? You can start again with the same link while it is valid."),
        ], tone="warning", action=_start_again(request))
    if reason == flow.CONNECTION_LIMIT:
        return message(request, _("Xero could not connect another organisation"), [
            _("%(product)s's Xero app is connected to as many organisations as its Xero plan "
              "allows, so Xero would not let you choose yours. Nothing was connected.",
              product=product),
            request._html("Please <strong>contact %(product)s</strong> and tell them: they need "
                          "to free a connection or move their Xero app to a higher plan. Then "
                          "start again with the same link while it is valid.", product=product),
            support_contact(request),
            _("If you cancelled at Xero for another reason, you can simply start again."),
        ], tone="warning", action=_start_again(request))
    if reason == flow.CLIENT_REJECTED:
        return message(request, _("%(product)s's connection to Xero is not set up correctly",
                                  product=product), [
            _("You signed in and allowed access correctly, but Xero did not accept "
              "%(product)s's app credentials, so nothing was connected. Starting again will "
              "not help until %(product)s fixes its settings.", product=product),
            support_contact(request),
        ], status=502, tone="error", detail=detail)
    if reason == flow.CODE_EXCHANGE_FAILED:
        return message(request, _("We could not finish connecting"), [
            _("Xero did not accept the one-time sign-in code it gave us: it lasts a few "
              "minutes and works once, so it may have run out or been used already. Nothing "
              "was connected."),
            _("Please start again with the same link. If it fails again, contact support with "
              "the reference below."),
        ], status=502, tone="error", action=_start_again(request), detail=detail)
    if reason == flow.NO_ORGANISATION:
        return message(request, _("No organisation was chosen"), [
            _("Xero did not give access to any organisation. Start again and choose your "
              "organisation on Xero's page before selecting Allow access."),
        ], tone="warning", action=_start_again(request))
    return message(request, _("Xero reported a problem"), [
        _("Xero could not complete the request, so nothing was connected. Please start again "
          "in a few minutes."),
    ], status=502, tone="error", action=_start_again(request), detail=detail)


def _organisation_choices(request: Request, confirmation: flow.Confirmation) -> Markup:
    parts = []
    if len(confirmation.choices) == 1:
        org = confirmation.choices[0]
        parts.append(Markup(
            f'<input type="hidden" name="tenant" value="{escape(org.tenant_id)}">'
            f'<div class="org-choice"><span class="software-logo small" aria-hidden="true">'
            f"</span>{escape(org.name)}</div>"
        ))
    else:
        for org in confirmation.choices:
            parts.append(Markup(
                f'<label class="org-choice"><input type="radio" name="tenant" required '
                f'value="{escape(org.tenant_id)}"> {escape(org.name)}</label>'
            ))
    for org, other in confirmation.unavailable:
        parts.append(tag("p", request._("%(organisation)s is already connected (invitation "
                                        "for %(company)s), so it is not offered here.",
                                        organisation=org.name, company=other.company),
                         class_="muted small"))
    return Markup("".join(parts))


def _confirm_page(request: Request, error: str = "") -> Response:
    confirmation = flow.confirmation(request.app.store, request.browser_id())
    request.about(confirmation.connection)
    _ = request._
    if not confirmation.choices:
        return message(request, _("That organisation is already connected"), [
            _("Every organisation you allowed at Xero is already connected through another "
              "invitation, so there is nothing to confirm here."),
        ], status=409, tone="warning")
    if confirmation.guessed and len(confirmation.choices) > 1:
        # A re-consent that Xero did not mark: we cannot tell which one was chosen just now.
        intro = _("Your Xero user has these organisations connected. Choose the one you chose "
                  "at Xero just now; the others will be disconnected.")
    elif len(confirmation.choices) == 1:
        intro = _("You allowed access to this organisation. Confirm it is the company you want "
                  "to connect.")
    else:
        intro = _("You allowed access to several organisations. Choose the one to connect; the "
                  "others will be disconnected.")
    content = render_page(
        request, "confirm.html", steps=steps(request, 4), intro=intro,
        error=tag("p", error, class_="form-error", role="alert") if error else "",
        csrf=_flow_csrf(request, flow.current_visit(request.app.store, request.browser_id())),
        company=confirmation.connection.company, email=confirmation.connection.email,
        choices=_organisation_choices(request, confirmation),
    )
    return page(request, _("Confirm your company"), content, status=400 if error else 200)


def confirm_page(request: Request) -> Response:
    """``GET /connect/confirm``: "Confirm your company"."""
    return _guard(request, lambda: _confirm_page(request))


def confirm_submit(request: Request) -> Response:
    """``POST /connect/confirm``: confirm one organisation, or decline."""
    form = _checked_form(request, "action", "tenant")
    if isinstance(form, Response):
        return form
    app = request.app

    def act() -> Response:
        if form.get("action") == "cancel":
            flow.decline(app.store, app.xero, request.browser_id(), invite_id=form["invite"])
            return message(request, request._("Nothing was connected"), [
                request._("The organisation you allowed at Xero has been disconnected again."),
                request._("To connect a different organisation, start again with the same link "
                          "and choose it on Xero's page."),
            ], tone="warning", action=_start_again(request))
        if form.get("action") != "confirm":
            return flow_problem(request, FlowProblem("bad_request"))
        try:
            conn = flow.confirm(app.store, app.xero, request.browser_id(), form.get("tenant"),
                                invite_id=form["invite"])
        except InvalidInput as exc:
            return _confirm_page(request, error=str(exc))
        try:
            app.first_sync.start(conn)
        except StoreError as exc:  # the connection stands; the next scheduled run syncs it
            log.error("could not start the first sync of %s: %s", conn.connection_id, exc)
        return redirect("/connect/done")

    return _guard(request, act)


def _sync_text(request: Request, sync_state: str | None, last_synced_at, rows) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    _ = request._
    if sync_state == "syncing":
        return "syncing", _("Your suppliers, chart of accounts, tax rates and tracking "
                            "categories are being copied now. This page updates by itself.")
    if sync_state == "failed":
        return "failed", _("The first sync did not finish. Nothing for you to do: it will be "
                           "retried automatically.")
    if last_synced_at is not None:
        if isinstance(rows, int):
            return "synced", _("Done: %(count)s records copied at %(time)s UTC.",
                               count=request.lang.number(rows),
                               time=f"{last_synced_at:%H:%M}")
        return "synced", _("Done: your data was copied at %(time)s UTC.",
                           time=f"{last_synced_at:%H:%M}")
    return "waiting", _("The first sync starts in a moment.")


def done(request: Request) -> Response:
    """``GET /connect/done``: "Connection Successful", with the first sync's progress."""

    def act() -> Response:
        conn = flow.finished_visit(request.app.store, request.browser_id())
        request.about(conn)
        sync_class, sync_text = _sync_text(request, conn.sync_state, conn.last_synced_at,
                                           conn.last_sync_rows)
        # No JavaScript at all: while the sync runs, the page refreshes itself every 5 s.
        head = Markup('<meta http-equiv="refresh" content="5">') \
            if sync_class in ("syncing", "waiting") else ""
        content = render_page(
            request, "success.html", organisation=conn.organisation_name or conn.company,
            sync_class=sync_class, sync_text=sync_text,
            closing=_closing(request, syncing=bool(head)), next=_next_button(request),
        )
        return page(request, request._("Connection Successful"), content, head=head)

    return _guard(request, act)


def _closing(request: Request, *, syncing: bool) -> str:
    """The success page's last line: "close this window" unless the platform's "Next" follows."""
    _ = request._
    if request.app.settings.success_next_url:
        return _("The first sync carries on in the background.") if syncing else ""
    if syncing:
        return _("You can close this window now – the first sync carries on in the "
                 "background.")
    return _("You can close this window now.")


def _next_button(request: Request) -> Markup | str:
    """"Next", to the page the platform set (``[auth_server] success_next_url``)."""
    url = request.app.settings.success_next_url
    if not url:
        return ""
    return tag("p", tag("a", request._("Next"), href=url, class_="button primary"),
               class_="actions")


def progress(request: Request) -> Response:
    """``GET /connect/progress``: the first sync's state as JSON (for scripts and tests)."""
    from auth_server.web import json_response

    def act() -> Response:
        conn = flow.finished_visit(request.app.store, request.browser_id())
        return json_response({
            "organisation_name": conn.organisation_name,
            "sync_state": conn.sync_state,
            "last_synced_at": conn.last_synced_at,
            "last_sync_rows": conn.last_sync_rows,
        })

    return _guard(request, act)
