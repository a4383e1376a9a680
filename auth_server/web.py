"""Small request/response types and page helpers shared by the customer pages and the admin page.

Kept apart from ``server.py`` (sockets, routing) so handlers are plain functions of a
``Request`` that return a ``Response``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from typing import Any

import markupsafe

from auth_server import i18n
from auth_server.background import Jobs
from auth_server.brand import Brand
from auth_server.brand import brand as make_brand
from auth_server.errors import InvalidInput
from auth_server.first_sync import FirstSync
from auth_server.i18n import N_, Language
from auth_server.render import Markup, escape, tag
from auth_server.security import (
    CsrfSigner,
    cookie,
    cookie_name,
    looks_like_token,
    new_token,
    parse_form,
)
from auth_server.settings import AuthServerSettings
from auth_server.support_reference import SupportReference, log_reference, new_reference
from auth_server.targeted_sync import TargetedSync
from auth_server.throttle import FailureThrottle
from connector.settings import XeroSettings
from store import Store, utcnow

BROWSER_COOKIE = "xelt_b"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class App:
    """Everything a handler needs: the store, settings, the first-sync starter, the CSRF signer."""

    store: Store
    settings: AuthServerSettings
    xero: XeroSettings
    first_sync: FirstSync
    csrf: CsrfSigner
    jobs: Jobs
    admin_failures: FailureThrottle = field(default_factory=FailureThrottle)
    targeted_sync: TargetedSync | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    brand: Brand = field(init=False)

    def __post_init__(self) -> None:
        self.brand = make_brand(self.settings)


@dataclass
class Request:
    """One parsed HTTP request."""

    app: App
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    secure: bool
    params: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    new_cookies: list[str] = field(default_factory=list)
    client: str = ""
    """The client's address (the trusted proxy's ``X-Forwarded-For`` entry when configured)."""
    organisation: str | None = None
    """The organisation (or invited company) this request is about, when known: error pages
    name it in their support reference."""
    actor: str | None = None
    """Who is acting, for logs and audit records: ``api:<key id>`` for the API."""

    chosen_language: str | None = None
    """The invite's language, once the connection this request is about is known."""

    @property
    def lang(self) -> Language:
        """The language of this request's page: the invite's, else the browser's preference
        (the admin's pages, for the operator, are in English)."""
        if self.path.startswith("/admin"):
            return i18n.language(i18n.DEFAULT)
        return i18n.language(self.chosen_language
                             or i18n.negotiate(self.headers.get("Accept-Language")))

    def about(self, conn: Any) -> None:
        """This request concerns ``conn``: its pages speak the invite's language and error
        pages name its organisation."""
        if conn is None:
            return
        if self.organisation is None:
            self.organisation = conn.organisation_name or conn.company
        if getattr(conn, "language", None):
            self.chosen_language = conn.language

    def _(self, message: str, **values: object) -> str:
        """``message`` in this request's language, filled with ``%(name)s`` values."""
        return self.lang.gettext(message, **values)

    def _html(self, message: str, **values: object) -> Markup:
        """As ``_``, for a message holding HTML of our own (``<strong>``): values escaped."""
        safe = {k: markupsafe.Markup(escape(v)) for k, v in values.items()}  # noqa: S704 - escaped
        return Markup(self.lang.markup(message, **safe))

    @classmethod
    def parse_cookies(cls, header: str | None) -> dict[str, str]:
        """Cookie header → dict; a malformed header counts as no cookies."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header or "")
        except CookieError:
            return {}
        return {k: m.value for k, m in jar.items()}

    def query_one(self, name: str) -> str | None:
        """A query parameter sent at most once."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidInput(f"The parameter {name!r} was sent more than once.")
        return values[0]

    def form(self, *fields: str) -> dict[str, str]:
        """The urlencoded body, restricted to ``fields`` (plus the CSRF token)."""
        if not self.body:
            # A bare POST (a script's `curl -X POST` with the bearer token) is an empty form;
            # session callers still fail the CSRF check, which needs a field.
            return {}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            raise InvalidInput("Forms must be sent as application/x-www-form-urlencoded.")
        return parse_form(self.body, {"csrf_token", *fields})

    def cookie(self, base_name: str) -> str | None:
        """A cookie by its base name (``__Host-`` prefixed behind https)."""
        return self.cookies.get(cookie_name(base_name, https=self.app.settings.is_https))

    def browser_id(self, *, create: bool = False) -> str | None:
        """This browser's id (an HttpOnly cookie); with ``create``, set one when missing."""
        value = self.cookie(BROWSER_COOKIE)
        if looks_like_token(value):
            return value
        if not create:
            return None
        return self.new_browser_id()

    def new_browser_id(self) -> str:
        """Issue this browser a fresh id (whenever an invite is opened: a planted id is dropped)."""
        value = new_token()
        name = cookie_name(BROWSER_COOKIE, https=self.app.settings.is_https)
        self.cookies[name] = value
        self.new_cookies.append(cookie(name, value, secure=self.secure))
        return value


@dataclass
class Response:
    """What a handler returns; ``no_store`` pages are never cached (most carry a CSRF token)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    no_store: bool = True


Handler = Callable[[Request], Response]


def redirect(location: str, status: int = 303) -> Response:
    """A redirect (303 after a POST: the browser follows with a GET)."""
    return Response(status=status, headers=[("Location", location)])


def parse_json(body: bytes) -> Any:
    """A request body as JSON; ``InvalidInput`` when it is not JSON or nests too deep for the
    parser (100,000 ``[`` exhaust its recursion: that is bad input, not a server error)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("The body is not valid JSON.") from None


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON body."""
    return Response(status=status, body=json.dumps(data, default=str).encode(),
                    content_type="application/json")


STEPS = (N_("Choose software"), N_("Review access"), N_("Sign in to Xero"), N_("Confirm"))


def steps(request: Request, current: int) -> Markup:
    """The progress strip at the top of each step (``current`` counts from 1)."""
    items = []
    for number, label in enumerate(STEPS, start=1):
        state = "done" if number < current else ("current" if number == current else None)
        items.append(tag("li", f"{request.lang.number(number)}. {request._(label)}",
                         class_=state, aria_current="step" if number == current else None))
    return tag("ol", Markup("".join(items)), class_="steps",
               aria_label=request._("Progress"))


def brand_of(request: Request) -> Brand:
    """The platform's brand (built once per server from ``[auth_server]``)."""
    return request.app.brand


def render_page(request: Request, template: str, **values: object) -> Markup:
    """A customer template filled in this request's language, with the brand at hand."""
    return Markup(i18n.render(template, request.lang, {"brand": brand_of(request), **values}))


def page(
    request: Request,
    title: str,
    content: Markup,
    *,
    status: int = 200,
    head: Markup | str = "",
    topbar_extra: Markup | str = "",
    body_class: str = "",
) -> Response:
    """A full HTML page in the layout (``body_class="admin"`` for the admin's pages, which are
    for the operator and stay in English)."""
    if body_class == "admin":
        footer = "connections admin"
    else:
        footer = request._("read-only access to your accounting data")
    html = render_page(
        request, "layout.html", title=title, content=content, head=head,
        topbar_extra=topbar_extra, body_class=body_class, footer=footer,
    )
    return Response(status=status, body=html.encode(),
                    headers=[("Content-Language", request.lang.code)])


def message(
    request: Request,
    heading: str,
    paragraphs: list[str | Markup],
    *,
    status: int = 200,
    tone: str = "info",
    action: Markup | str = "",
    reference: bool | None = None,
    detail: str | None = None,
) -> Response:
    """A page that says one thing (errors, troubleshooting, notices). An error page (status
    400 or more, unless ``reference=False``: a sign-in prompt is not an error) carries a
    support reference, logged with it and with ``detail`` (the cause, for the operator)."""
    body = Markup("".join(tag("p", p) for p in paragraphs))
    if status >= 400 if reference is None else reference:
        ref = new_reference(request.organisation)
        log_reference(ref, status=status, heading=heading, path=request.path, detail=detail)
        body = Markup(body + reference_markup(request, ref))
    content = render_page(request, "message.html", heading=heading, body=body, action=action,
                          tone=tone)
    return page(request, heading, content, status=status)


def support_links(request: Request) -> Markup | None:
    """The platform's support contact as links (email, help page), or None when unset."""
    brand = brand_of(request)
    links = []
    if brand.support_email:
        links.append(tag("a", brand.support_email, href=f"mailto:{brand.support_email}",
                         dir="ltr"))
    if brand.support_url:
        links.append(tag("a", request._("%(product)s's help page", product=brand.product),
                         href=brand.support_url))
    if not links:
        return None
    return Markup(escape(request._(" or ")).join(links))


def support_contact(request: Request) -> Markup:
    """Who the customer asks for help: the platform's support when set, else whoever sent the
    invitation (one sentence)."""
    links = support_links(request)
    if links is None:
        return Markup(escape(request._("Contact the person who sent your invitation.")))
    return request._html("Contact %(product)s's support: %(contact)s.",
                         product=brand_of(request).product, contact=links)


def csrf_field(request: Request, binding: str, purpose: str) -> str:
    """The CSRF token for a form bound to ``binding`` (a cookie value) and ``purpose``."""
    return request.app.csrf.token(binding, purpose)


def csrf_ok(request: Request, form: dict[str, str], binding: str | None, purpose: str) -> bool:
    """Check a submitted form's CSRF token."""
    return request.app.csrf.check(form.get("csrf_token"), binding, purpose)


CSRF_KEY_FLOW = "server:csrf-key"


def csrf_signer(store: Store) -> CsrfSigner:
    """The CSRF signer, with a key kept (encrypted) in the store so restarts keep forms valid."""
    data = store.get_flow(CSRF_KEY_FLOW)
    key = data.get("key") if data else None
    if not isinstance(key, str) or len(key) < 64:
        # Servers starting together on a new shared store must all end up with one key.
        data = store.put_flow_once(CSRF_KEY_FLOW, {"key": new_token() + new_token()},
                                   expires_at=utcnow() + timedelta(days=365))
        key = str(data["key"])
    return CsrfSigner(key.encode())


def reference_markup(request: Request, ref: SupportReference) -> Markup:
    """The reference block of an error page, naming the platform's support when it is set."""
    brand = brand_of(request)
    code = tag("code", ref.text(), class_="support-code", dir="ltr")
    links = support_links(request)
    if links:
        ask = request._html("If you need help, send it (or a screenshot of this page) to "
                            "%(product)s's support: %(contact)s.", product=brand.product,
                            contact=links)
    else:
        ask = request._html("If you need help, send it (or a screenshot of this page) to the "
                            "person who sent your invitation.")
    shown = request._html("Support reference: %(code)s.", code=code)
    return tag("p", Markup(f"{shown} {ask}"), class_="support-ref muted")
