"""The attacks of issue 11, each replayed against the real auth server over loopback HTTP.

Each test is the attack as it was reproduced, ending in what must hold now; each failed against
the server as it was before its fix. docs/reliability.md ("Security") lists them with the
attacks that held from the start.
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server.invites import create_invite
from auth_server.throttle import FREE_FAILURES
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import ADMIN_TOKEN, RunningAuth, csrf_of
from tests.hardening.conftest import ROOT, wait_until
from tests.sandbox_handle import SandboxHandle

pytestmark = pytest.mark.hardening

SWITCH_FORM_RE = re.compile(r'<form method="post" action="(/invite/[^"]+)"')


def raw_request(auth: RunningAuth, data: bytes, *, timeout: float = 30) -> bytes:
    """Send bytes as they are and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", auth.server.server_address[1]),
                                  timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def client_from(auth: RunningAuth, address: str, **kwargs: Any) -> httpx.Client:
    """A client whose connections come from another loopback address (another machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=auth.url, timeout=30, follow_redirects=False,
                        transport=transport, **kwargs)


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    page = client.get("/admin/login")
    return client.post("/admin/login", data={"token": token, "csrf_token": csrf_of(page)})


# -- 1. an invite swapped under a customer's feet ------------------------------------------------

def test_opening_another_invite_does_not_swap_the_one_under_review(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    victim, victim_link = create_invite(auth.store, auth.settings, "Victim Co", "v@victim.test")
    other, other_link = create_invite(auth.store, auth.settings, "Other Co", "o@other.test")
    customer = auth.customer()
    customer.open(victim_link)
    review = customer.choose_xero()
    # A page the customer visits opens the other customer's link in this browser.
    interloper = customer.http.get(other_link)
    assert interloper.status_code == 200, interloper.headers
    assert "Continue with Victim Co" in interloper.text
    assert "Switch to Other Co" in interloper.text
    # The customer carries on from the review page still open in their tab.
    customer.page = review
    outcome = customer.consent(customer.next(), org["admin"])
    assert customer.callback(outcome).headers["location"] == "/connect/confirm"
    confirm = customer.get("/connect/confirm")
    assert "Victim Co" in confirm.text
    assert "v@victim.test" in confirm.text
    assert customer.confirm().headers["location"] == "/connect/done"
    assert auth.connection(victim.connection_id).status == "connected"
    assert auth.connection(victim.connection_id).tenant_id == org["tenantId"]
    assert auth.connection(other.connection_id).status == "invited"


def test_a_page_left_open_for_another_invite_is_refused_with_a_clear_page(
    auth: RunningAuth,
) -> None:
    victim, victim_link = create_invite(auth.store, auth.settings, "Victim Co", "v@victim.test")
    other, other_link = create_invite(auth.store, auth.settings, "Other Co", "o@other.test")
    customer = auth.customer()
    customer.open(victim_link)
    stale_review = customer.choose_xero()
    # The person (in another tab) chooses to switch to the other invite.
    offer = customer.http.get(other_link)
    if offer.status_code == 200:
        action = SWITCH_FORM_RE.search(offer.text)
        assert action, offer.text
        switched = customer.http.post(action.group(1), data={"csrf_token": csrf_of(offer)})
        assert switched.headers["location"] == "/connect"
    # Next on the stale review page must not start a consent for the other invite.
    refused = customer.post("/connect/authorize", {}, csrf=csrf_of(stale_review))
    assert refused.status_code == 409, (refused.status_code, refused.headers)
    assert "This page is for another invitation" in refused.text
    assert auth.connection(other.connection_id).status_reason is None
    assert auth.connection(victim.connection_id).status_reason is None


def test_the_confirm_page_names_the_company_and_the_invited_email(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    _, link = create_invite(auth.store, auth.settings, "Victim Co", "v@victim.test")
    page = auth.customer().to_confirm(link, org["admin"])
    assert re.search(r"Invitation for <strong>Victim Co</strong>, sent to "
                     r"<strong>v@victim.test</strong>", page.text), page.text


# -- 2. session fixation -------------------------------------------------------------------------

def test_opening_an_invite_replaces_a_planted_browser_id(auth: RunningAuth) -> None:
    planted = "P" * 43  # the shape of our ids, set beforehand by an attacker
    _, link = create_invite(auth.store, auth.settings, "Victim Co", "v@victim.test")
    with auth.http() as http:
        opened = http.get(link, headers={"Cookie": f"xelt_b={planted}"})
        assert opened.status_code == 303
        issued = opened.headers.get("set-cookie", "").split(";")[0].removeprefix("xelt_b=")
        assert issued
        assert issued != planted
        assert http.get("/connect", headers={"Cookie": f"xelt_b={issued}"}).status_code == 200
        # No visit rides on the planted id: the attacker holding it sees nothing.
        assert http.get("/connect", headers={"Cookie": f"xelt_b={planted}"}).status_code == 400


def test_behind_https_cookies_use_the_host_prefix(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    running = start_auth(sandbox, tmp_path, public_url="https://connect.example.test")
    try:
        _, link = create_invite(running.store, running.settings, "Acme", "a@acme.test")
        with running.http() as browser:
            opened = browser.get(link.replace("https://connect.example.test", running.url))
            set_cookie = opened.headers["set-cookie"]
            assert set_cookie.startswith("__Host-xelt_b="), set_cookie
            assert "; Path=/;" in set_cookie
            assert "; Secure" in set_cookie
            assert "Domain" not in set_cookie
            browser_id = set_cookie.split(";")[0].split("=", 1)[1]
            # The unprefixed name (what a sibling subdomain could set) is not read at all.
            plain = browser.get("/connect", headers={"Cookie": f"xelt_b={browser_id}"})
            assert plain.status_code == 400
            prefixed = browser.get("/connect", headers={"Cookie": f"__Host-xelt_b={browser_id}"})
            assert prefixed.status_code == 200
            jar = {"Cookie": f"__Host-xelt_b={browser_id}"}
            page = browser.get("/admin/login", headers=jar)
            signed = browser.post("/admin/login", headers=jar,
                                  data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(page)})
            assert signed.status_code == 303, signed.text
            assert signed.headers["set-cookie"].startswith("__Host-xelt_admin=")
            assert "; Path=/;" in signed.headers["set-cookie"]
    finally:
        stop_auth(running)


# -- 3. anyone could lock the admin out ----------------------------------------------------------

def test_a_strangers_wrong_tokens_do_not_lock_the_admin_out(auth: RunningAuth) -> None:
    with client_from(auth, "127.0.0.2") as stranger:
        refused = [sign_in(stranger, "guess").status_code for _ in range(FREE_FAILURES + 6)]
    assert refused[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert set(refused[FREE_FAILURES:]) == {429}  # the stranger backs off …
    with client_from(auth, "127.0.0.1") as admin:
        assert sign_in(admin, ADMIN_TOKEN).status_code == 303  # … the admin does not
    with client_from(auth, "127.0.0.2") as stranger:
        assert sign_in(stranger, ADMIN_TOKEN).status_code == 303  # nor does the right token


def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    for trusted in (False, True):
        running = start_auth(sandbox, tmp_path / str(trusted), trust_forwarded_for=trusted)
        try:
            with running.http() as proxy:
                for n in range(FREE_FAILURES + 1):
                    # A different forged address each time; a trusted proxy sets the last one.
                    headers = {"X-Forwarded-For": f"10.0.0.{n}, 192.0.2.7"}
                    page = proxy.get("/admin/login")
                    last = proxy.post("/admin/login", headers=headers,
                                      data={"token": "guess", "csrf_token": csrf_of(page)})
                # Either way the one client is counted once per try, whatever it claims to be.
                assert last.status_code == 429
                page = proxy.get("/admin/login")
                other_client = proxy.post("/admin/login",
                                          headers={"X-Forwarded-For": "192.0.2.8"},
                                          data={"token": "guess", "csrf_token": csrf_of(page)})
                assert other_client.status_code == (401 if trusted else 429)
        finally:
            stop_auth(running)


# -- 4. bearer tokens: throttled, and never weak -------------------------------------------------

def test_wrong_bearer_tokens_back_off_and_the_right_one_gets_through(auth: RunningAuth) -> None:
    statuses = []
    with auth.http(headers={"Authorization": "Bearer " + "w" * 40}) as guesser:
        for _ in range(FREE_FAILURES + 5):
            response = guesser.get("/admin/api/connections")
            statuses.append(response.status_code)
            assert "con_" not in response.text
    assert statuses[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert set(statuses[FREE_FAILURES:]) == {429}
    assert int(response.headers["retry-after"]) >= 1
    with auth.admin() as admin:
        assert admin.get("/admin/api/connections").status_code == 200


def test_serve_refuses_a_short_admin_token(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "XERO_ELT_HOME": str(tmp_path),
        "RUNTIME__DLTHUB_TELEMETRY": "false", "AUTH_SERVER__ADMIN_TOKEN": "x",
        "AUTH_SERVER__PORT": "0",
    }
    result = subprocess.run([sys.executable, "-m", "pipelines", "serve"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result
    assert "admin_token is 1 characters; it must be at least 32" in result.stderr
    assert "listening" not in result.stdout


# -- 5. racing confirms --------------------------------------------------------------------------

def test_racing_confirms_connect_one_organisation_and_disconnect_nothing_wrongly(
    auth: RunningAuth, sandbox: SandboxHandle
) -> None:
    first, second = sandbox.tenant_ids()[:2]
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    page = customer.to_confirm(link, sandbox.admin([first, second]), tenant_ids=[first, second])
    form = {"action": "confirm", "csrf_token": csrf_of(page)}
    cookies = dict(customer.http.cookies)
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def submit(tenant_id: str) -> None:
        with auth.http(cookies=cookies) as tab:  # two tabs of the same browser
            start.wait(timeout=30)
            answers[tenant_id] = tab.post("/connect/confirm", data={**form, "tenant": tenant_id})

    tabs = [threading.Thread(target=submit, args=(t,)) for t in (first, second)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join(60)
    won = [t for t, r in answers.items() if r.status_code == 303]
    assert len(won) == 1, {t: r.status_code for t, r in answers.items()}
    lost = next(t for t in answers if t not in won)
    # "Already answered" (409), "Nothing to confirm" (400) or "Already connected" (200).
    assert answers[lost].status_code in (200, 400, 409)
    record = auth.connection(conn.connection_id)
    assert record.status == "connected"
    assert record.tenant_id == won[0]
    at_xero = {c["tenantId"] for c in sandbox.connections()
               if c["client_id"] == auth.app["client_id"]}
    assert at_xero == {won[0]}  # the confirmed one stays at Xero, the other one is let go


# -- 6. grants left behind by racing callbacks ---------------------------------------------------

def test_a_consent_replaced_before_confirming_leaves_no_live_grant_behind(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    customer.open(link)
    review = customer.choose_xero()
    first_url = customer.next()
    customer.page = review
    second_url = customer.next()  # Next pressed twice (or in two tabs): two consents at Xero
    auth.sandbox.settings(reconsent_auth_event="new")  # each consent finds its organisation
    for url in (first_url, second_url):
        outcome = customer.consent(url, org["admin"])
        assert customer.callback(outcome).headers["location"] == "/connect/confirm"
    grants = auth.store.list_grants()
    assert len(grants) == 2
    replaced, kept = grants
    assert auth.store.get_grant(replaced.grant_id).status != "active"
    customer.get("/connect/confirm")
    assert customer.confirm().headers["location"] == "/connect/done"
    assert auth.connection(conn.connection_id).grant_id == kept.grant_id
    # The consent that stayed still reaches the organisation at Xero.
    at_xero = {c["tenantId"] for c in sandbox_connections(auth)}
    assert org["tenantId"] in at_xero


def test_a_replaced_consent_of_another_xero_user_is_revoked_at_xero(
    auth: RunningAuth, sandbox: SandboxHandle, org: dict[str, Any]
) -> None:
    other_admin = sandbox.add_user("second-admin@acme.test", "pw-second-admin", "admin",
                                   [org["tenantId"]])
    other_admin["password"] = "pw-second-admin"
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    customer.open(link)
    review = customer.choose_xero()
    first_url = customer.next()
    customer.page = review
    second_url = customer.next()
    for url, user in ((first_url, org["admin"]), (second_url, other_admin)):
        customer.xero_browser = httpx.Client(timeout=30)  # each admin signs in at Xero
        outcome = customer.consent(url, user)
        assert customer.callback(outcome).headers["location"] == "/connect/confirm"
    replaced = auth.store.list_grants()[0]
    assert auth.store.get_grant(replaced.grant_id).status == "revoked"
    users_at_xero = {c["user"] for c in sandbox_connections(auth)}
    assert users_at_xero == {other_admin["email"]}  # the replaced consent is gone at Xero


def sandbox_connections(auth: RunningAuth) -> list[dict[str, Any]]:
    """This app's connections at Xero (the sandbox), every user's."""
    return [c for c in auth.sandbox.connections() if c["client_id"] == auth.app["client_id"]]


# -- 8. slow and numerous clients ---------------------------------------------------------------

def test_a_slow_client_is_cut_off_at_the_request_deadline(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    running = start_auth(sandbox, tmp_path, request_read_seconds=1)
    try:
        port = running.server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            give_up = time.monotonic() + 30  # far beyond the 1 s deadline, short of forever
            closed = False
            while not closed and time.monotonic() < give_up:
                try:
                    sock.sendall(b"X")  # one byte of a header every 0.3 s: slowloris
                except OSError:
                    closed = True
                    break
                readable, _, _ = select.select([sock], [], [], 0.3)
                if readable:
                    try:
                        closed = sock.recv(4096) == b""
                    except OSError:
                        closed = True
        assert closed, "the server kept a trickling client for 30 s"
    finally:
        stop_auth(running)


def test_connections_beyond_the_cap_get_a_clear_503(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    running = start_auth(sandbox, tmp_path, max_open_connections=3)
    idle = []
    try:
        port = running.server.server_address[1]
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]
        wait_until(lambda: running.server.open_connections == 3, timeout=60)
        with running.http() as late:
            busy = late.get("/healthz")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "5"
        assert "try again" in busy.text
        idle.pop().close()
        wait_until(lambda: running.server.open_connections == 2, timeout=60)
        with running.http() as later:
            assert later.get("/healthz").status_code == 200
    finally:
        for sock in idle:
            sock.close()
        stop_auth(running)


HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: "  # a head that never ends
WEBHOOK_KEY = "xero-webhook-key-for-tests-0123456789"


def half_requests(auth: RunningAuth, address: str, count: int) -> list[socket.socket]:
    """``count`` connections from ``address`` (another loopback address: another machine), each
    having sent the start of a request head and nothing more."""
    opened = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((address, 0))
        sock.settimeout(30)
        sock.connect(("127.0.0.1", auth.server.server_address[1]))
        sock.sendall(HALF_REQUEST)
        opened.append(sock)
    return opened


def answers_of(socks: list[socket.socket], timeout: float = 30) -> dict[int, bytes]:
    """What the server answered on each socket that it answered or closed within ``timeout``
    (its index: the first bytes, b"" for a close)."""
    answers: dict[int, bytes] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < len(socks) and time.monotonic() < deadline:
        waiting = [s for i, s in enumerate(socks) if i not in answers]
        readable, _, _ = select.select(waiting, [], [], 0.5)
        for sock in readable:
            try:
                answers[socks.index(sock)] = sock.recv(4096)
            except OSError:
                answers[socks.index(sock)] = b""
    return answers


def served_as_usual(auth: RunningAuth, link: str, api_key: str) -> list[tuple[str, int]]:
    """A customer opening their invite, the platform calling the API, Xero posting a signed
    webhook, each from a machine (loopback address) of its own: each request and its status."""
    from auth_server.xero_webhooks import PATH, signature

    handshake = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0}'
    with client_from(auth, "127.0.0.1") as customer, client_from(auth, "127.0.1.1") as platform, \
            client_from(auth, "127.0.2.1") as xero:
        opened = customer.get(link)
        page = customer.get(opened.headers.get("location", "/"))
        listed = platform.get("/api/v1/connections",
                              headers={"Authorization": f"Bearer {api_key}"})
        hook = xero.post(PATH, content=handshake,
                         headers={"x-xero-signature": signature(handshake, WEBHOOK_KEY)})
    assert "Share your financial information" in page.text
    return [("invite", opened.status_code), ("page", page.status_code),
            ("api", listed.status_code), ("webhook", hook.status_code)]


USUAL = [("invite", 303), ("page", 200), ("api", 200), ("webhook", 200)]


def test_one_client_holding_more_half_requests_than_the_server_has_slots_takes_only_its_share(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Before: 105 idle half-requests from one machine took all 100 slots, and customers, the
    # API and Xero's webhooks got 503 for as long as it kept them open.
    running = start_auth(sandbox, tmp_path, xero_webhook_key=WEBHOOK_KEY,
                         request_read_seconds=120)  # the attacker's slots stay taken throughout
    attacker: list[socket.socket] = []
    try:
        _, link = create_invite(running.store, running.settings, "Acme", "a@acme.test")
        _, api_key = running.store.create_api_key("platform")
        cap = running.settings.max_connections_per_client
        attacker = half_requests(running, "127.0.0.2", running.settings.max_open_connections + 5)
        wait_until(lambda: running.server.slots.held_by("127.0.0.2") == cap, timeout=60)
        assert served_as_usual(running, link.removeprefix(running.url), api_key) == USUAL
        # Every connection beyond its share was refused with a 429 (or, past as many refusals
        # as its share, closed); the attacker holds its share and no more.
        refused = answers_of(attacker[cap:])
        assert len(refused) == len(attacker) - cap
        assert {a[:13] for a in refused.values()} <= {b"HTTP/1.1 429 ", b""}
        assert any(a.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 5" in a
                   for a in refused.values())
        assert running.server.slots.held_by("127.0.0.2") == cap
    finally:
        for sock in attacker:
            sock.close()
        stop_auth(running)


def test_a_refused_client_trickling_its_head_is_still_answered_and_let_go(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # The refusal read its head with a timeout per recv: a byte a second held the thread on.
    running = start_auth(sandbox, tmp_path, max_connections_per_client=1,
                         request_read_seconds=120)
    held: list[socket.socket] = []
    try:
        held = half_requests(running, "127.0.0.2", 1)
        wait_until(lambda: running.server.slots.held_by("127.0.0.2") == 1, timeout=60)
        trickler = half_requests(running, "127.0.0.2", 1)[0]
        held.append(trickler)
        answer, give_up = b"", time.monotonic() + 30  # far beyond the refusal's 2 s
        while not answer and time.monotonic() < give_up:
            with contextlib.suppress(OSError):
                trickler.sendall(b"x")
            readable, _, _ = select.select([trickler], [], [], 0.5)
            if readable:
                try:
                    answer = trickler.recv(4096) or b"closed"
                except OSError:
                    answer = b"reset"
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:100]
    finally:
        for sock in held:
            sock.close()
        stop_auth(running)


def test_several_clients_each_at_their_share_leave_room_for_everyone_else(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Seven machines at 16 connections each would take 112 slots of 100; the last quarter is
    # kept for clients holding fewer than four.
    running = start_auth(sandbox, tmp_path, xero_webhook_key=WEBHOOK_KEY,
                         request_read_seconds=120)
    attackers: list[socket.socket] = []
    try:
        _, link = create_invite(running.store, running.settings, "Acme", "a@acme.test")
        _, api_key = running.store.create_api_key("platform")
        cap = running.settings.max_connections_per_client
        for n in range(2, 9):
            attackers += half_requests(running, f"127.0.0.{n}", cap)
        total = running.settings.max_open_connections
        wait_until(lambda: running.server.open_connections >= total * 3 // 4, timeout=60)
        assert served_as_usual(running, link.removeprefix(running.url), api_key) == USUAL
        assert running.server.open_connections < total
    finally:
        for sock in attackers:
            sock.close()
        stop_auth(running)


def test_behind_a_trusted_proxy_the_share_is_counted_per_forwarded_client(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Every connection comes from the proxy; its X-Forwarded-For tells the clients apart.
    running = start_auth(sandbox, tmp_path, trust_forwarded_for=True, request_read_seconds=120)
    port = running.server.server_address[1]
    cap = running.settings.max_connections_per_client
    pending: list[socket.socket] = []
    try:
        head = (b"POST /admin/login HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n"
                b"Content-Length: 10\r\n\r\n")  # a body that never comes
        slots = running.server.request_slots
        assert slots is not None
        for n in range(cap + 1):
            if n == cap:  # the client holds its share
                wait_until(lambda: slots.held_by("203.0.113.9") == cap, timeout=60)
            pending.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            pending[-1].sendall(head)
        assert pending[-1].recv(4096).startswith(b"HTTP/1.1 429 ")
        with running.http(headers={"X-Forwarded-For": "198.51.100.7"}) as other:
            assert other.get("/healthz").status_code == 200
    finally:
        for sock in pending:
            sock.close()
        stop_auth(running)


def test_the_listen_backlog_absorbs_a_burst(auth: RunningAuth) -> None:
    # The stdlib's 5 reset customers in a burst (bench/burst.py measures it; not timed here).
    assert auth.server.request_queue_size >= 512


# -- 9. request smuggling ------------------------------------------------------------------------

def test_a_duplicate_content_length_is_refused(auth: RunningAuth) -> None:
    answer = raw_request(auth, b"POST /admin/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Content-Length: 5\r\nContent-Length: 40\r\n"
                               b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                               b"token")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


# -- 10. a client going away mid-response --------------------------------------------------------

def test_a_client_going_away_logs_one_line_and_no_traceback(
    auth: RunningAuth, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="auth_server")
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    port = auth.server.server_address[1]
    attempts = 10
    threads_before = threading.active_count()
    for _ in range(attempts):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(f"GET {link.removeprefix(auth.url)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        # Close with a reset (linger 0) before reading: the server's write hits a dead socket.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # Every handler thread has finished (and logged) once the count is back where it was.
    wait_until(lambda: threading.active_count() <= threads_before, timeout=60)
    _, err = capfd.readouterr()
    assert "Traceback" not in err
    went_away = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(went_away) <= attempts
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in caplog.records)


# -- 11. an old link naming the organisation -----------------------------------------------------

def test_a_used_link_does_not_name_the_organisation(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    _, link = create_invite(auth.store, auth.settings, "Victim Co", "v@victim.test")
    auth.customer().connect(link, org["admin"])
    with auth.http() as stranger:
        page = stranger.get(link)
    assert "Already connected" in page.text
    assert org["name"] not in page.text
    assert "Victim Co" not in page.text
