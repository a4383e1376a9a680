"""Bad input to the auth server, generated with hypothesis and aimed at every route and field.

Three promises are checked after every generated request:

- nothing crashes it: no 500 (an unhandled error caught by the server), and it keeps answering;
- nothing is reflected unescaped: injected markup never comes back as markup;
- nothing changes state it should not: the store's connections, grants and flows are the same
  before and after (requests that legitimately change state are tested on their own below).

The server runs in-process on a free port against the sandbox, with a connected organisation, an
invite and an admin session in the store, so that the fuzzed requests meet real records.
"""

from __future__ import annotations

import re
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_server.invites import create_invite, resend_invite
from auth_server.server import ROUTES
from sandbox.handle import SandboxHandle, consent_via_forms
from store import Store, utcnow
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import ADMIN_TOKEN, RunningAuth, csrf_of

pytestmark = pytest.mark.hardening

# Markup that must never come back as markup (each has a distinctive part to search for).
INJECTIONS = (
    '<script>alert("xss")</script>',
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe srcdoc='<b>'>",
    '<b data-fuzz="1">',
)
NASTY = (
    *INJECTIONS,
    "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
    "\x00", "\r\nSet-Cookie: evil=1", "\u202e\u0000\ufeff", "é" * 50, "😀" * 20, "A" * 3000,
    "", " ", "{{7*7}}", "${7*7}", "%s%s%n", "' OR '1'='1", "%ff%fe", "%", "+", "&", "=", ";",
    "con_000000000000", "con_" + "f" * 40, "xero", "confirm", "cancel",
)
FIELDS = ("software", "action", "tenant", "csrf_fuzz", "company", "email", "token",
          "csrf_token", "state", "code", "error", "error_description", "x")
CONFIRM_SETTINGS = settings(
    max_examples=120, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=60),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=15), st.sampled_from(INJECTIONS),
              st.text(max_size=15)),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


def path_for(pattern: str, token: str) -> str:
    """A concrete path for a route pattern, its parameters filled with `token`."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)", quote(token, safe="") or "x", pattern)
    return path.replace("\\", "")


@dataclass
class Scene:
    """A running server with records the fuzzer meets: a connected organisation (its grant), an
    open invite, a browser mid-flow, and a signed-in admin session."""

    auth: RunningAuth
    invite_link: str
    connected_id: str
    browser_cookie: str
    admin_cookie: str

    @property
    def store(self) -> Store:
        return self.auth.store


def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything the server may change: connections, grants, and which flows exist."""
    with sqlite3.connect(store.path) as db:
        flows = sorted(r[0] for r in db.execute("SELECT flow_id FROM flows"))
    return tuple(store.list_connections()), tuple(
        (g.grant_id, g.access_token, g.refresh_token, g.status) for g in store.list_grants()
    ), tuple(flows)


@pytest.fixture
def scene(sandbox: SandboxHandle, tmp_home: Any) -> Iterator[Scene]:
    auth = start_auth(sandbox, tmp_home)
    try:
        tenant_id = sandbox.tenant_ids()[0]
        # A hostile organisation name, as Xero's /connections would return it.
        sandbox.http.post(f"/_sandbox/tenants/{tenant_id}",
                          json={"name": INJECTIONS[0] + " Ltd"}).raise_for_status()
        admin = sandbox.admin([tenant_id])
        conn, link = create_invite(auth.store, auth.settings, INJECTIONS[1], "a@example.test")
        customer = auth.customer()
        page = customer.connect(link, admin, tenant_ids=[tenant_id])
        assert page.status_code == 200
        assert INJECTIONS[0] not in page.text
        _, open_link = create_invite(auth.store, auth.settings, INJECTIONS[2], "b@example.test")
        walker = auth.customer()
        walker.open(open_link)
        browser_cookie = walker.http.cookies.get("xelt_b") or ""
        with auth.http() as browser:
            login = browser.get("/admin/login")
            signed = browser.post("/admin/login", data={"token": ADMIN_TOKEN,
                                                        "csrf_token": csrf_of(login)})
            assert signed.status_code == 303
            admin_cookie = browser.cookies.get("xelt_admin") or ""
        yield Scene(auth, open_link, conn.connection_id, browser_cookie, admin_cookie)
    finally:
        stop_auth(auth)


def check_answer(scene: Scene, response: httpx.Response, sent: list[str]) -> None:
    """The three promises for one response."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    body = response.text
    for value in sent:
        for marker in INJECTIONS:
            if marker in value:
                assert marker not in body, (marker, body[:2000])
    for name, value in response.headers.items():
        assert "evil" not in value or name.lower() != "set-cookie", (name, value)
    assert "root:x:0:0" not in body


def alive(scene: Scene) -> None:
    with scene.auth.http() as client:
        assert client.get("/healthz").status_code == 200


@given(
    route=st.sampled_from(ROUTES),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"]),
    param=values,
    query=st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=5),
    form=st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=6),
    cookies=st.sampled_from(["none", "browser", "admin", "garbage"]),
    content_type=st.sampled_from([
        "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data; boundary=x", "application/json", "text/plain", None]),
)
@CONFIRM_SETTINGS
def test_any_request_to_any_route_is_answered_safely_and_changes_nothing(
    scene: Scene, route: tuple[str, str, Any], method: str, param: str,
    query: list[tuple[str, str]], form: list[tuple[str, str]], cookies: str,
    content_type: str | None,
) -> None:
    _, pattern, _ = route
    path = path_for(pattern, param)
    jar = {
        "none": {},
        "browser": {"xelt_b": scene.browser_cookie},
        "admin": {"xelt_admin": scene.admin_cookie},
        "garbage": {"xelt_b": "A" * 43, "xelt_admin": "B" * 43},
    }[cookies]
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
    if content_type:
        headers["Content-Type"] = content_type
    body = urlencode(form).encode() if method in ("POST", "PUT") else b""
    target = path + ("?" + urlencode(query) if query else "")
    before = snapshot(scene.store)
    with scene.auth.http() as client:
        response = client.request(method, target, content=body, headers=headers)
    check_answer(scene, response, [param, *(v for _, v in query), *(v for _, v in form)])
    # No fuzzed request carries a valid invite token or CSRF token: none may change anything.
    assert snapshot(scene.store) == before, (method, target, form)
    alive(scene)


ADMIN_ROUTES = [(m, p) for m, p, _ in ROUTES if p.startswith("/admin") and
                p not in ("/admin/login",)]


@given(
    route=st.sampled_from(ADMIN_ROUTES),
    credential=st.one_of(
        st.none(),
        st.sampled_from(["Bearer", "Bearer wrong", f"Bearer {ADMIN_TOKEN[:-1]}",
                         f"Bearer {ADMIN_TOKEN}x", f"bearer  {ADMIN_TOKEN[:10]}", "Basic YWRtaW4=",
                         f"Token {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN.upper()}"]),
        values.map(lambda v: ("Bearer " + "".join(c for c in v if 32 <= ord(c) < 127)).strip()),
    ),
    session=st.sampled_from([None, "A" * 43, "not-a-token", "x" * 200]),
)
@CONFIRM_SETTINGS
def test_admin_pages_without_or_with_a_wrong_secret_say_401_and_list_nothing(
    scene: Scene, route: tuple[str, str], credential: str | None, session: str | None,
) -> None:
    method, pattern = route
    path = path_for(pattern, scene.connected_id)
    headers = {}
    if credential is not None:
        headers["Authorization"] = credential
    if session is not None:
        headers["Cookie"] = f"xelt_admin={session}"
    scene.auth.server.app.admin_failures.clear()  # each example meets the token check itself
    before = snapshot(scene.store)
    with scene.auth.http() as client:
        response = client.request(method, path, headers=headers,
                                  data={"company": "Evil", "email": "e@evil.test"}
                                  if method == "POST" else None)
    if response.status_code in (303, 401):
        assert response.status_code == 401 or response.headers["location"] == "/admin/login"
    else:
        pytest.fail(f"{method} {path} with {credential!r}: {response.status_code}")
    assert "con_" not in response.text  # nothing is listed
    assert "a@example.test" not in response.text
    assert snapshot(scene.store) == before


# -- invite tokens -------------------------------------------------------------------------------

def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


@given(data=st.data())
@CONFIRM_SETTINGS
def test_tampered_and_truncated_invite_tokens_open_nothing(scene: Scene, data: Any) -> None:
    token = _token(scene.invite_link)
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "case", "replace"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(token) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        char = data.draw(st.sampled_from([c for c in alphabet if c != token[i]]))
        bad = token[:i] + char + token[i + 1:]
    elif kind == "truncate":
        bad = token[:data.draw(st.integers(0, len(token) - 1))]
    elif kind == "extend":
        bad = token + data.draw(st.text(min_size=1, max_size=20))
    elif kind == "case":
        bad = token.swapcase()
    else:
        bad = data.draw(values)
    if bad == token:
        return
    before = snapshot(scene.store)
    with scene.auth.http() as client:
        response = client.get("/invite/" + quote(bad, safe=""))
    assert response.status_code in (400, 404), response.status_code
    assert "set-cookie" not in response.headers or "xelt_b" in response.headers["set-cookie"]
    assert snapshot(scene.store) == before


def test_a_resent_invites_old_link_and_an_expired_link_open_nothing(scene: Scene) -> None:
    store, settings_ = scene.store, scene.auth.settings
    conn = next(c for c in store.list_connections() if c.status == "link_opened")
    new_conn, new_link = resend_invite(store, settings_, conn.connection_id)
    with scene.auth.http() as client:
        before = snapshot(store)
        assert client.get(scene.invite_link).status_code == 404  # replaced
        assert snapshot(store) == before
        assert client.get(new_link).status_code == 303
        assert client.get(new_link).status_code == 303  # reusable while valid: restarts
        expired, expired_link = create_invite(store, settings_, "Late Ltd", "l@example.test",
                                              now=utcnow() - timedelta(days=8))
        page = client.get(expired_link)
        assert page.status_code == 410
        assert "expired" in page.text
        assert store.get_connection(expired.connection_id).status == "expired"
        before = snapshot(store)
        assert client.get(expired_link).status_code == 410  # and stays so, changing nothing
        assert snapshot(store) == before
    assert new_conn.connection_id == conn.connection_id


# -- the OAuth state and code ----------------------------------------------------------------------

def _authorize(scene: Scene) -> tuple[Any, dict[str, str]]:
    """A browser that pressed Next: its client, and the authorize URL's parameters."""
    store, settings_ = scene.store, scene.auth.settings
    _, link = create_invite(store, settings_, "Flow Ltd", "f@example.test")
    customer = scene.auth.customer()
    customer.open(link)
    customer.choose_xero()
    url = customer.next()
    return customer, dict(parse_qsl(urlsplit(url).query))


def test_state_tampered_replayed_or_from_another_browser_is_refused(scene: Scene) -> None:
    sb = scene.auth.sandbox
    customer, params = _authorize(scene)
    admin = sb.admin([sb.tenant_ids()[1]])
    outcome = consent_via_forms(sb, customer.xero_browser, params, admin["email"],
                                admin["password"], tenant_ids=[sb.tenant_ids()[1]])
    code, state = outcome.params["code"], outcome.params["state"]
    before = snapshot(scene.store)
    tampered = [state[:-1] + ("A" if state[-1] != "A" else "B"), state[:20], state + "x", "",
                state.swapcase()]
    for bad in tampered:
        page = customer.http.get("/callback", params={"code": code, "state": bad})
        assert page.status_code == 400, bad
    other = scene.auth.customer()  # the right state, but in another browser
    page = other.http.get("/callback", params={"code": code, "state": state})
    assert page.status_code == 400
    assert "same browser" in page.text
    for query in ([("code", code), ("state", state), ("state", state)],
                  [("code", code)], [("state", state)],
                  [("code", code), ("code", code), ("state", state)]):
        page = customer.http.get("/callback?" + urlencode(query))
        assert page.status_code == 400, query
    assert snapshot(scene.store) == before
    first = customer.http.get("/callback", params={"code": code, "state": state})
    assert first.status_code == 303  # the genuine one still works
    replay = customer.http.get("/callback", params={"code": code, "state": state})
    assert replay.status_code == 400
    assert "already used" in replay.text


def test_an_expired_state_is_refused_and_changes_nothing(scene: Scene) -> None:
    """Back from Xero after the flow's window (`flow_ttl_minutes`): the state has expired."""
    from auth_server.security import token_hash

    sb = scene.auth.sandbox
    customer, params = _authorize(scene)
    key = "state:" + token_hash(params["state"])
    data = scene.store.get_flow(key)
    assert data is not None
    scene.store.put_flow(key, data, expires_at=utcnow() - timedelta(seconds=1))
    tenant_id = sb.tenant_ids()[1]
    admin = sb.admin([tenant_id])
    outcome = consent_via_forms(sb, customer.xero_browser, params, admin["email"],
                                admin["password"], tenant_ids=[tenant_id])
    before = snapshot(scene.store)
    page = customer.http.get("/callback", params={"code": outcome.params["code"],
                                                  "state": params["state"]})
    assert page.status_code == 400
    assert "expired or was already used" in page.text
    assert snapshot(scene.store) == before  # no grant stored, no status changed


def test_a_code_issued_to_another_client_connects_nothing(scene: Scene) -> None:
    sb = scene.auth.sandbox
    customer, params = _authorize(scene)
    intruder = sb.create_app([scene.auth.settings.redirect_uri], name="intruder")
    foreign = {**params, "client_id": intruder["client_id"]}
    foreign.pop("code_challenge", None)
    foreign.pop("code_challenge_method", None)
    tenant_id = sb.tenant_ids()[1]
    admin = sb.admin([tenant_id])
    outcome = consent_via_forms(sb, customer.xero_browser, foreign, admin["email"],
                                admin["password"], tenant_ids=[tenant_id])
    grants_before = scene.store.list_grants()
    page = customer.http.get("/callback", params={"code": outcome.params["code"],
                                                  "state": params["state"]})
    assert page.status_code == 502
    assert "could not finish connecting" in page.text
    assert scene.store.list_grants() == grants_before  # nothing stored
    flow_conn = next(c for c in scene.store.list_connections() if c.company == "Flow Ltd")
    assert flow_conn.status == "incomplete"
    assert flow_conn.status_reason == "code_exchange_failed"
    assert flow_conn.tenant_id is None


# -- the wire: sizes, encodings, paths -------------------------------------------------------------

def raw(scene: Scene, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status code (0 if the server closed without one) and the body."""
    host, port = urlsplit(scene.auth.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)  # no more bytes are coming
        except OSError:
            pass  # the server may answer and close before reading everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(match.group(1)) if match else 0), data.partition(b"\r\n\r\n")[2]


TRAVERSALS = [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd", "/static/style.css/../../../etc/passwd",
    "//etc/passwd", "/invite/..%2F..%2F..%2Fetc%2Fpasswd", "/static/....//....//etc/passwd",
    "/static/%252e%252e/etc/passwd", "/admin/../admin", "/static/style.css%00.txt",
    "/invite/%00", "/\\..\\..\\etc\\passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_serves_nothing_from_disk(scene: Scene, path: str) -> None:
    status, body = raw(scene, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       .encode())
    assert status in (400, 401, 404), (status, body[:300])
    assert b"root:x:0:0" not in body


@pytest.mark.parametrize(("name", "request_bytes", "statuses"), [
    ("huge body", b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
     b"x-www-form-urlencoded\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n" +
     b"a" * 100, (413,)),
    ("chunked body", b"POST /admin/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (411,)),
    ("body on a GET", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close"
     b"\r\n\r\nhello", (400,)),
    ("huge header", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 +
     b"\r\nConnection: close\r\n\r\n", (0, 400, 431)),  # 0: answered, then reset (unread bytes)
    ("many headers", b"GET / HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"Connection: close\r\n\r\n", (431,)),
    ("huge URL", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     (0, 400, 414)),
    ("long URL", b"GET /invite/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close"
     b"\r\n\r\n", (414,)),
    ("bad request line", b"GARBAGE\r\n\r\n", (400,)),
    ("control characters in the target", b"GET /\x01\x7f HTTP/1.1\r\nHost: x\r\n"
     b"Connection: close\r\n\r\n", (404,)),
    ("absolute target", b"GET http://evil.test/admin HTTP/1.1\r\nHost: x\r\nConnection: "
     b"close\r\n\r\n", (400,)),
    ("HTTP/0.9", b"GET /\r\n\r\n", (0, 400)),
    ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", (505, 400)),
    ("non-UTF-8 form", b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
     b"x-www-form-urlencoded\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoken=\xff\xfe",
     (400, 403)),
    ("percent-encoded invalid UTF-8", b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type:"
     b" application/x-www-form-urlencoded\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
     b"token=%ff%fe", (400, 401, 403)),
    ("odd query encoding", b"GET /callback?state=%ff%fe%00&code=%c0%af HTTP/1.1\r\nHost: x\r\n"
     b"Connection: close\r\n\r\n", (400,)),
    ("too many query fields", b"GET /callback?" + b"&".join(b"a%d=1" % i for i in range(50)) +
     b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400,)),
    ("bad cookie header", b"GET /connect HTTP/1.1\r\nHost: x\r\nCookie: \"\xff;;==;xelt_b\r\n"
     b"Connection: close\r\n\r\n", (400,)),
    ("short body", b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
     b"x-www-form-urlencoded\r\nContent-Length: 500\r\nConnection: close\r\n\r\ntoken=", (0,)),
])
def test_malformed_wire_requests_get_a_clear_status_and_the_server_keeps_answering(
    scene: Scene, name: str, request_bytes: bytes, statuses: tuple[int, ...],
) -> None:
    before = snapshot(scene.store)
    status, body = raw(scene, request_bytes)
    assert status in statuses, (name, status, body[:300])
    assert b"Traceback" not in body
    assert snapshot(scene.store) == before
    alive(scene)


def test_html_in_every_form_field_and_in_xero_names_is_escaped_everywhere(scene: Scene) -> None:
    """The admin creates invites with markup in every field; the admin page, the emails and the
    customer's pages show it as text (the organisation's hostile name from Xero too)."""
    with scene.auth.admin() as admin:
        for marker in INJECTIONS:
            admin.post("/admin/invites", data={"company": marker, "email": "x@example.test"})
            admin.post("/admin/invites", data={"company": "Ok", "email": marker})
        page = admin.get("/admin")
        listing = admin.get("/admin/api/connections")
    assert page.status_code == 200
    for marker in INJECTIONS:
        assert marker not in page.text
    # The JSON API gives the data as data (not rendered: application/json and nosniff).
    assert listing.headers["content-type"].startswith("application/json")
    assert listing.headers["x-content-type-options"] == "nosniff"
    names = {row["organisation_name"] for row in listing.json()}
    assert INJECTIONS[0] + " Ltd" in names
    for eml in scene.auth.outbox():
        text = eml.read_bytes().decode("utf-8", "replace")
        html_part = text[text.find("<html"):] if "<html" in text else ""
        for marker in INJECTIONS:
            assert marker not in html_part, eml.name
