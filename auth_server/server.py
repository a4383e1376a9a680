"""The auth server: ``ThreadingHTTPServer``, a routing table, and the safety every response gets.

Every response carries the security headers (CSP without scripts, ``frame-ancestors 'none'``,
``Referrer-Policy: no-referrer``, ``nosniff``; ``no-store`` on pages); request bodies and URLs
are size-limited; the access log never shows an invite token or the callback's code and state.
Behind a TLS proxy (an ``https://`` public URL) cookies are ``Secure`` and ``X-Forwarded-Proto``
is honoured.

Slow or numerous clients are bounded: each request must arrive whole within
``request_read_seconds``; at most ``max_open_connections`` are served at once (the rest get a
short 503), of which one client holds at most ``max_connections_per_client`` (the rest get a
short 429; see ``capacity``); the listen backlog absorbs a burst of new customers instead of
resetting them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from auth_server import admin, admin_webhooks, api, flow, views, xero_webhooks
from auth_server.background import Jobs
from auth_server.brand import LOGO_TYPES, logo_origin
from auth_server.capacity import Admission, ClientSlots, client_key, forwarded_client
from auth_server.first_sync import FirstSync, OnConnected
from auth_server.render import escape, static_file
from auth_server.security import content_security_policy, origin_of, security_headers
from auth_server.settings import AuthServerSettings
from auth_server.targeted_sync import RunTargeted, TargetedSync
from auth_server.web import App, Handler, Request, Response, csrf_signer, message
from auth_server.webhook_delivery import WebhookWorker
from connector.logs import setup_logging
from connector.settings import XeroSettings
from store import Store, open_store

log = logging.getLogger("auth_server")

MAX_URL_LENGTH = 4096
MAX_QUERY_FIELDS = 10
SWEEP_SECONDS = 60.0
SOCKET_TIMEOUT = 30.0
# The stdlib's default of 5 drops SYNs in a burst (clients retry after 1 s, 3 s, or give up).
# The kernel caps it at net.core.somaxconn (4096 on current Linux).
REQUEST_QUEUE_SIZE = 1024
BUSY_READ_SECONDS = 2.0  # how long a refused client may take to send its request head
REFUSAL_LOG_SECONDS = 60.0  # one line per this long about clients over their share, not a flood
MAX_HEAD_BYTES = 65536

ID = r"(?P<connection_id>con_[0-9a-f]{4,32})"
# (method, path pattern, handler). Patterns match the whole path.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/", views.home),
    ("GET", r"/healthz", lambda r: Response(body=b"ok\n", content_type="text/plain")),
    ("GET", r"/static/style\.css", lambda r: Response(
        body=static_file("style.css"), content_type="text/css; charset=utf-8", no_store=False,
        headers=[("Cache-Control", "public, max-age=3600")])),
    ("GET", r"/static/brand\.css", lambda r: Response(
        body=r.app.brand.css().encode(), content_type="text/css; charset=utf-8",
        no_store=False, headers=[("Cache-Control", "public, max-age=300")])),
    ("GET", r"/brand/logo\.(?P<ext>[a-z]{3,4})", lambda r: brand_logo(r)),
    # Browsers ask for it on every first visit; there is none, and that is not an error.
    ("GET", r"/favicon\.ico", lambda r: Response(
        status=204, no_store=False, headers=[("Cache-Control", "public, max-age=86400")])),
    ("GET", r"/invite/(?P<token>[^/]{1,200})", views.open_invite),
    ("POST", r"/invite/(?P<token>[^/]{1,200})", views.switch_invite),
    ("GET", r"/connect", views.choose_software),
    ("POST", r"/connect/software", views.choose_software_submit),
    ("GET", r"/connect/review", views.review),
    ("POST", r"/connect/authorize", views.authorize),
    ("GET", r"/callback", views.callback),
    ("GET", r"/connect/confirm", views.confirm_page),
    ("POST", r"/connect/confirm", views.confirm_submit),
    ("GET", r"/connect/done", views.done),
    ("GET", r"/connect/progress", views.progress),
    ("GET", r"/admin", admin.connections_page),
    ("GET", r"/admin/api/connections", admin.connections_json),
    ("GET", r"/admin/login", admin.login_page),
    ("POST", r"/admin/login", admin.login_submit),
    ("POST", r"/admin/logout", admin.logout),
    ("POST", r"/admin/invites", admin.create_invite),
    ("POST", rf"/admin/connections/{ID}/resend", admin.resend),
    ("GET", rf"/admin/connections/{ID}/disconnect", admin.disconnect_page),
    ("POST", rf"/admin/connections/{ID}/disconnect", admin.disconnect),
    ("GET", r"/admin/webhooks", admin_webhooks.webhooks_page),
    ("POST", r"/admin/webhooks/(?P<event_id>[^/]{1,80})/replay", admin_webhooks.replay),
    ("POST", xero_webhooks.PATH, xero_webhooks.receive),
    *api.ROUTES,
]
_COMPILED = [(m, re.compile(p), h) for m, p, h in ROUTES]


def brand_logo(request: Request) -> Response:
    """``/brand/logo.<ext>``: the logo file ``[auth_server] logo_url`` names (read each time,
    so replacing the file needs no restart)."""
    brand = request.app.brand
    path = brand.logo_file
    if path is None or request.params["ext"] != path.suffix.lower().lstrip("."):
        return Response(status=404, body=b"no logo\n", content_type="text/plain")
    try:
        body = path.read_bytes()
    except OSError as exc:
        log.warning("logo %s could not be read: %s", path, exc.strerror)
        return Response(status=404, body=b"no logo\n", content_type="text/plain")
    # Email clients load it from other origins: it is public, unlike everything else here.
    return Response(body=body, content_type=LOGO_TYPES[path.suffix.lower()], no_store=False,
                    headers=[("Cache-Control", "public, max-age=300"),
                             ("Cross-Origin-Resource-Policy", "cross-origin")])


def route(method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
    """The handler for a request, its path parameters, and the methods the path allows."""
    allowed = []
    for route_method, pattern, handler in _COMPILED:
        match = pattern.fullmatch(path)
        if match:
            if route_method == method:
                return handler, match.groupdict(), []
            allowed.append(route_method)
    return None, {}, allowed


_SECRET_PATHS = re.compile(r"/invite/[^/?\s'\"]*")
_QUERY = re.compile(r"\?[^\s'\"]*")


def redact(path: str) -> str:
    """A request target fit for logs: no invite token, no query string (code, state)."""
    path = path.split("?", 1)[0]
    return _SECRET_PATHS.sub("/invite/…", path)


class AuthServer(ThreadingHTTPServer):
    """The HTTP server, holding the ``App`` its handlers use."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = REQUEST_QUEUE_SIZE

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._stop = threading.Event()
        total = app.settings.max_open_connections
        per_client = app.settings.max_connections_per_client
        if app.settings.trust_forwarded_for:
            # Every connection comes from the proxy: clients are told apart per request, once
            # their X-Forwarded-For has been read (the proxy absorbs half-sent requests).
            self.slots = ClientSlots(total, total, reserve=False)
            self.request_slots: ClientSlots | None = ClientSlots(total, per_client)
        else:
            self.slots = ClientSlots(total, per_client)
            self.request_slots = None
        self._refusal_logged = -REFUSAL_LOG_SECONDS
        self.webhooks = WebhookWorker(app.store, app.settings)
        super().__init__(address, RequestHandler)

    @property
    def open_connections(self) -> int:
        """Client connections being served now."""
        return self.slots.open

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve a connection in a thread of its own, or refuse it in one (429 when its client
        holds its share, 503 when every slot is taken); past the refusals allowed, close it here,
        costing no thread."""
        client = "" if self.request_slots is not None else client_key(str(client_address[0]))
        admission = self.slots.take(client)
        if admission is Admission.CLIENT_FULL:
            self.log_refusal(client)
        if admission is Admission.SERVE:
            target = self._serve
        elif self.slots.start_refusal(client):
            target = self._refuse
        else:
            self.shutdown_request(request)
            return
        thread = threading.Thread(target=target, daemon=True,
                                  args=(request, client_address, client, admission))
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the slot must not leak
            (self.slots.give_back if target == self._serve else self.slots.end_refusal)(client)
            self.shutdown_request(request)

    def log_refusal(self, client: str) -> None:
        """Say that a client was refused for holding its share, at most once a minute (an
        operator behind a proxy without ``trust_forwarded_for`` sees it here)."""
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_SECONDS:
            self._refusal_logged = now
            log.warning("a client (%s) holds its share of connections "
                        "(max_connections_per_client %d): more are refused with 429",
                        client or "-", self.app.settings.max_connections_per_client)

    def _serve(self, request: Any, client_address: Any, client: str, _: Admission) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.slots.give_back(client)

    def _refuse(self, request: Any, client_address: Any, client: str,
                admission: Admission) -> None:
        try:
            refuse(request, admission)
            self.shutdown_request(request)
        finally:
            self.slots.end_refusal(client)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line, never a traceback (it would bypass the one-line log sanitiser); a
        client that went away is normal and not logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        log.error("error serving a connection: %s", type(exc).__name__)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` this server listens on."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host}:{port}"

    def start_sweeper(self, interval: float = SWEEP_SECONDS) -> threading.Thread:
        """Close abandoned flows and expire invites every ``interval`` seconds."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    flow.sweep(self.app.store, self.app.settings, self.app.xero)
                except Exception as exc:
                    log.warning("sweep failed: %s", type(exc).__name__)

        thread = threading.Thread(target=loop, name="auth-sweeper", daemon=True)
        thread.start()
        return thread

    def start_webhook_worker(self) -> WebhookWorker:
        """Deliver the outbox's webhooks in the background (when ``webhook_url`` is set)."""
        self.webhooks.settings = self.app.settings
        self.webhooks.start()
        return self.webhooks

    def start_targeted_sync(self) -> TargetedSync:
        """Turn Xero's webhook events into targeted supplier reads in the background."""
        dispatcher = self.app.targeted_sync
        assert dispatcher is not None
        dispatcher.settings = self.app.settings
        dispatcher.start()
        return dispatcher

    def server_close(self) -> None:
        """Stop the sweeper, the webhook worker and the dispatcher, and close the socket."""
        self._stop.set()
        self.webhooks.stop()
        if self.app.targeted_sync is not None:
            self.app.targeted_sync.stop()
        super().server_close()


REFUSALS = {
    Admission.SERVER_FULL: (b"503 Service Unavailable",
                            b"The server is busy. Please try again in a few seconds.\n"),
    Admission.CLIENT_FULL: (b"429 Too Many Requests",
                            b"Too many connections from your address. Please try again in a few "
                            b"seconds.\n"),
}
RETRY_AFTER_SECONDS = 5


# The same refusals as JSON, for clients of the API (its every answer is JSON).
REFUSALS_JSON = {
    Admission.SERVER_FULL: api.error(
        "unavailable", "The server is busy; try again in a few seconds.").body,
    Admission.CLIENT_FULL: api.error(
        "too_many_attempts", "Too many connections from your address; try again in a few "
        "seconds.").body,
}


def refuse(sock: socket.socket, admission: Admission) -> None:
    """Answer a refused connection: read its request head briefly, then a 503 or 429 (JSON for
    the API, as the rest of its answers)."""
    status, body = REFUSALS[admission]
    content_type = b"text/plain; charset=utf-8"
    # A deadline for the whole head, not a timeout per recv: a byte every second would
    # otherwise hold this thread for as long as the client liked.
    deadline = time.monotonic() + BUSY_READ_SECONDS
    try:
        head = b""
        # Reading the head first matters: closing with unread data makes the kernel send a
        # reset, and the client would lose the answer it was sent. A head that never ends
        # (a half-sent request) still gets the answer when the read gives up.
        with contextlib.suppress(TimeoutError):
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
        if _names_api(head):
            body, content_type = REFUSALS_JSON[admission], b"application/json"
        lines = [b"HTTP/1.1 " + status, b"Content-Type: " + content_type,
                 b"Content-Length: %d" % len(body), b"Retry-After: %d" % RETRY_AFTER_SECONDS,
                 b"Connection: close", b"Cache-Control: no-store"]
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    except OSError:
        pass


def _names_api(head: bytes) -> bool:
    """Whether a request head (however malformed, even cut short) targets the API."""
    words = head.split(b"\r\n", 1)[0].split(maxsplit=2)
    return len(words) >= 2 and api.owns(urlsplit(words[1].decode("latin-1")).path)


class DeadlineReader(io.RawIOBase):
    """A socket's reading side that gives up once the handler's request deadline has passed.

    The socket timeout alone applies per ``recv``, so a client sending a byte every few seconds
    would never hit it; here every ``recv`` may wait only for what is left of the deadline.
    """

    def __init__(self, sock: socket.socket, handler: RequestHandler) -> None:
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(min(left, SOCKET_TIMEOUT))
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(SOCKET_TIMEOUT)  # writes keep the usual timeout


class RequestHandler(BaseHTTPRequestHandler):
    """Parses, limits, routes, and writes responses with the security headers."""

    server: AuthServer
    server_version = "xero-elt-auth"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT

    deadline = 0.0  # monotonic time by which the current request must have been read

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def app(self) -> App:
        return self.server.app

    def setup(self) -> None:
        """The stdlib's setup, reading through a ``DeadlineReader``."""
        super().setup()
        self.rfile.close()  # the stdlib's own reader: an open one would keep the socket alive
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        """One request, which must arrive whole within ``request_read_seconds`` (idle
        keep-alive time counts too)."""
        self.deadline = time.monotonic() + self.app.settings.request_read_seconds
        self.raw_requestline = b""  # send_error reads it: never the previous request's
        try:
            super().handle_one_request()
        except ConnectionError:
            # The client went away (mid-request or mid-response): one line, no traceback.
            log.info("%s went away during %s %s", self.client_address[0],
                     getattr(self, "command", None) or "-", redact(getattr(self, "path", "")))
            self.close_connection = True

    def client_ip(self) -> str:
        """The client's address: the last ``X-Forwarded-For`` entry (the one our proxy added)
        when ``trust_forwarded_for`` is set, else the socket's peer."""
        return forwarded_client(str(self.client_address[0]), self.headers,
                                self.app.settings.trust_forwarded_for)

    def log_message(self, format: str, *args: Any) -> None:
        """The stdlib's own messages (timeouts, …), with any request target redacted."""
        text = _QUERY.sub("?…", _SECRET_PATHS.sub("/invite/…", format % args))
        log.info("%s %s", self.address_string(), text)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request: method, redacted path, status."""
        method = getattr(self, "command", None) or "-"
        target = redact(getattr(self, "path", "") or "")
        code_value = code.value if isinstance(code, HTTPStatus) else code
        log.info("%s %s %s", method, target, code_value)

    def _secure(self) -> bool:
        if self.app.settings.is_https:
            return True
        forwarded = (self.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
        return forwarded == "https"

    def _csp(self) -> str:
        return content_security_policy([origin_of(self.app.xero.authorize_url)],
                                       images=[logo_origin(self.app.settings)])

    def _write(self, response: Response, *, head_only: bool = False) -> None:
        self.send_response(response.status)
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body)))]
        own = {name.lower() for name, _ in response.headers}
        headers += [(name, value) for name, value in security_headers(
            csp=self._csp(), secure=self._secure(), no_store=response.no_store)
            if name.lower() not in own]
        headers += response.headers
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(response.body)

    def send_error(self, code: int, message_text: str | None = None,
                   explain: str | None = None) -> None:
        """Errors raised by the stdlib parser (bad request line, huge headers) get our headers,
        and a JSON body when the request line names an API path."""
        try:
            short, _ = self.responses.get(code, ("Error", ""))
        except Exception:
            short = "Error"
        content_type = "text/html; charset=utf-8"
        if _names_api(self.raw_requestline):
            answer = api.error_for_status(code, message_text or short)
            body, content_type = answer.body, answer.content_type
        else:
            body = (f"<!doctype html><title>{code} {escape(short)}</title>"
                    f"<h1>{code} {escape(short)}</h1><p>{escape(message_text or short)}</p>"
                    ).encode()
        self.close_connection = True
        self.log_request(code)
        # The stdlib leaves request_version at HTTP/0.9 when the request line is malformed or
        # names an unsupported version, and would then answer with no status line at all.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.send_response_only(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in security_headers(csp="default-src 'none'; frame-ancestors 'none'",
                                            secure=False, no_store=True):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _reject(self, status: int, text: str) -> None:
        self.close_connection = True
        request = self._request(b"")
        if api.owns(request.path):
            response = api.error_for_status(status, text)
        else:
            response = message(request, HTTPStatus(status).phrase, [text], status=status,
                               tone="error")
        response.headers.append(("Connection", "close"))
        self._write(response)

    def _request(self, body: bytes) -> Request:
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, keep_blank_values=True,
                             max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            query = {}
        return Request(
            app=self.app, method=self.command, path=parts.path, query=query,
            headers=self.headers, body=body, secure=self._secure(),
            cookies=Request.parse_cookies(self.headers.get("Cookie")),
            client=self.client_ip(),
        )

    def _read_body(self) -> bytes | None:
        """The request body within limits, or None after answering with an error."""
        if self.headers.get("Transfer-Encoding"):
            self._reject(411, "Send the body with a Content-Length.")
            return None
        if len(self.headers.get_all("Content-Length") or []) > 1:
            # A proxy that takes the last one would frame this request differently (smuggling).
            self._reject(400, "Send Content-Length once.")
            return None
        length_text = self.headers.get("Content-Length")
        if self.command not in ("POST", "PUT"):  # PUT: the API's schedule
            if length_text not in (None, "0"):
                self._reject(400, "This request must not have a body.")
                return None
            return b""
        if length_text is None:
            return b""  # no Content-Length and no Transfer-Encoding: no body (RFC 9112, 6.3)
        if not length_text.isdigit():
            self._reject(400, "Content-Length must be a number.")
            return None
        length = int(length_text)
        # Xero batches events into one payload: its path has a limit of its own.
        limit = (self.app.settings.xero_webhook_max_body_bytes
                 if urlsplit(self.path).path == xero_webhooks.PATH
                 else self.app.settings.max_body_bytes)
        if length > limit:
            self._reject(413, "The request is too large.")
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    # -- dispatch ---------------------------------------------------------------------------------

    def _handle(self, *, head_only: bool = False) -> None:
        slots = self.server.request_slots
        if slots is None:  # clients are capped per connection (process_request)
            self._handle_admitted(head_only=head_only)
            return
        client = client_key(self.client_ip())
        admission = slots.take(client)
        if admission is not Admission.SERVE:
            if admission is Admission.CLIENT_FULL:
                self.server.log_refusal(client)
            self._refuse(admission)
            return
        try:
            self._handle_admitted(head_only=head_only)
        finally:
            slots.give_back(client)

    def _refuse(self, admission: Admission) -> None:
        """A request over its client's share (or the server's), behind a trusted proxy."""
        status, body = REFUSALS[admission]
        self.close_connection = True
        self._write(Response(status=int(status.split()[0]), body=body,
                             content_type="text/plain; charset=utf-8",
                             headers=[("Retry-After", str(RETRY_AFTER_SECONDS)),
                                      ("Connection", "close")]))

    def _handle_admitted(self, *, head_only: bool = False) -> None:
        if len(self.path) > MAX_URL_LENGTH:
            self._reject(414, "The address is too long.")
            return
        if not self.path.startswith("/"):
            self._reject(400, "Malformed request target.")
            return
        method = "GET" if self.command == "HEAD" else self.command
        path = urlsplit(self.path).path
        if api.owns(path) and route(method, path)[0] is None:
            # An API path's wrong method or unknown route is answered before any body is read
            # (405 with Allow, or 404); an unread body makes the connection unusable, so then
            # the answer says it closes (a client would otherwise send its next request into a
            # closing socket).
            response = self._unrouted(self._request(b""))
            if self.headers.get("Content-Length", "0").strip() not in ("", "0") or \
                    self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                response.headers.append(("Connection", "close"))
            self._write(response, head_only=head_only)
            return
        body = self._read_body()
        if body is None:
            return
        request = self._request(body)
        # Behind a TLS proxy, a request that reached us over plain http goes to the https URL.
        forwarded = (self.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
        if self.app.settings.is_https and forwarded == "http" and self.command == "GET":
            target = self.app.settings.base_url + request.path
            self._write(Response(status=308, headers=[("Location", target)]), head_only=head_only)
            return
        handler, params, _ = route(method, request.path)
        is_api = api.owns(request.path)
        if handler is None:
            response = self._unrouted(request)
        else:
            request.params = params
            try:
                response = handler(request)
            except Exception:
                log.exception("error handling %s %s", self.command, redact(self.path))
                if is_api:
                    response = api.internal_error(request)
                else:
                    response = message(request, request._("Something went wrong on our side"), [
                        request._("Nothing you did caused this. Please try again in a few "
                                  "minutes."),
                    ], status=500, tone="error")
        for value in request.new_cookies:
            response.headers.append(("Set-Cookie", value))
        self._write(response, head_only=head_only)

    def _unrouted(self, request: Request) -> Response:
        """The answer to a request no route takes: 405 with ``Allow`` when the path exists for
        other methods, else 404 (JSON under ``/api``, a page elsewhere)."""
        _, _, allowed = route("GET" if request.method == "HEAD" else request.method,
                              request.path)
        if api.owns(request.path):
            return (api.method_not_allowed(request, allowed) if allowed
                    else api.not_found(request))
        if allowed:
            response = message(request, request._("Method not allowed"), [
                request._("This address does not accept that kind of request."),
            ], status=405, tone="error")
            response.headers.append(("Allow", ", ".join(sorted(set(allowed)))))
            return response
        return message(request, request._("Page not found"), [
            request._("There is nothing at this address. If you followed a link from an email, "
                      "check that it was copied completely."),
        ], status=404, tone="warning")

    def do_GET(self) -> None:
        """Pages, the callback, the admin page, the stylesheet."""
        self._handle()

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._handle(head_only=True)

    def do_POST(self) -> None:
        """Form submissions."""
        self._handle()

    def _not_allowed(self) -> None:
        self._handle()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _not_allowed

    def __getattr__(self, name: str) -> Any:
        # The stdlib answers a method it has no do_<METHOD> for with a 501 page; every method
        # is routed instead, so one that no route takes is a 405 with Allow (JSON for the API).
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)


def make_server(
    host: str,
    port: int,
    *,
    store: Store,
    settings: AuthServerSettings,
    xero_settings: XeroSettings,
    on_connected: OnConnected | None = None,
    run_targeted: RunTargeted | None = None,
) -> AuthServer:
    """Bind the auth server (port 0 = a free one); call ``serve_forever()`` on the result.

    Without ``settings.public_url`` the public URL is the bound address (so the OAuth redirect
    URI is ``http://HOST:PORT/callback``).

    Args:
        on_connected: run in a background thread after a company is confirmed, instead of the
            default subprocess ``python -m pipelines run --tenant ID --wait 600``.
        run_targeted: runs the targeted supplier sync of one organisation (Xero's webhook
            events) and returns its exit code, instead of the default subprocess
            ``python -m pipelines run --tenant ID --webhook-events --wait 600``.
    """
    jobs = Jobs(store, settings.max_background_jobs)
    app = App(
        store=store, settings=settings, xero=xero_settings, jobs=jobs,
        first_sync=FirstSync(store, on_connected, jobs), csrf=csrf_signer(store),
        targeted_sync=TargetedSync(store, settings, run_targeted),
    )
    server = AuthServer((host, port), app)
    bound_host, bound_port = server.server_address[:2]
    app.settings = replace(settings, host=str(bound_host), port=int(bound_port))
    return server


def serve_forever(
    host: str | None = None,
    port: int | None = None,
    *,
    on_connected: OnConnected | None = None,
    ready: Callable[[AuthServer], None] | None = None,
) -> int:
    """Run the auth server from configuration until interrupted (``xero-elt serve``).

    The first line on stdout is ``auth server listening on http://HOST:PORT``; logs go to stderr.

    Returns:
        The process exit code (0 after a clean shutdown).
    """
    from auth_server.settings import load_settings
    from connector.settings import load_settings as load_xero_settings

    setup_logging(("auth_server", "connector"), "%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(host=host, port=port)
    xero = load_xero_settings()
    if not xero.client_id:
        log.warning("sources.xero.client_id is not set: invite links will fail at Xero")
    store = open_store()
    server = make_server(settings.host, settings.port, store=store, settings=settings,
                         xero_settings=xero, on_connected=on_connected)
    if settings.public_url is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s without auth_server.public_url: links use the bind address",
                    settings.host)
    if settings.is_https and not settings.trust_forwarded_for:
        log.warning("an https public URL (behind a proxy?) without auth_server."
                    "trust_forwarded_for: every connection through the proxy counts as one "
                    "client, which may hold %d at once", settings.max_connections_per_client)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"auth server listening on {server.url}", flush=True)
    log.info("public URL %s; OAuth redirect URI %s", server.app.settings.base_url,
             server.app.settings.redirect_uri)
    server.start_sweeper()
    server.start_webhook_worker()
    server.start_targeted_sync()
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0
