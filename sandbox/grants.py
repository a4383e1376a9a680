"""Identity state: apps, sign-in sessions, authorization codes, grants, tokens and connections.

Xero's rules this module holds (REFERENCE 1.4-1.7, 2):

* Codes live 5 minutes, are single use and case-sensitive; they remember the redirect URI and
  the PKCE S256 challenge they were issued for.
* A grant is one chain of refresh tokens. Every refresh rotates the refresh token; the previous
  one is still accepted for 30 minutes after it was superseded (answering with a fresh token
  set), `invalid_grant` after that; a refresh token unused for 60 days is dead.
* Access tokens are JWT-shaped (RS256, signed with a key made when the sandbox starts and
  published at the JWKS endpoint), 30 minutes long, and carry `authentication_event_id`. They are
  validated by lookup, so a revoked grant's token dies at once. Strict choice (the one REFERENCE
  advises designing for): after a refresh the *old* access token stops working.
* Connections are per user + app + organisation; a re-consent to a connected organisation
  reuses its connection instead of adding one. Whether that connection takes the new
  `authEventId` is UNCONFIRMED (REFERENCE 0): in "keep" mode (the reported behaviour) it keeps
  its `authEventId` *and* its `updatedDateUtc`, so a client can find the organisation by neither;
  in "new" mode it takes both from the new consent. The token's `authentication_event_id` is the
  new consent's either way.
* An app may have at most `max_connections` connections (each user's connection to an
  organisation counts, REFERENCE 0); re-consenting a connection the user already has adds none.
* Revoking a grant removes all of that user's connections for the app.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CODE_TTL = timedelta(minutes=5)
ACCESS_TTL = timedelta(minutes=30)
ID_TOKEN_TTL = timedelta(minutes=5)
REFRESH_GRACE = timedelta(minutes=30)
REFRESH_IDLE = timedelta(days=60)
PENDING_TTL = timedelta(hours=1)


class UserLike(Protocol):
    """What the identity code needs of a seeded user (sandbox.world.User)."""

    email: str
    role: str
    tenant_ids: list[str]
    first_name: str
    last_name: str
    xero_userid: str


class ConnectionLimitReached(Exception):
    """A consent would give an app more connections than `max_connections` allows."""

    def __init__(self, client_id: str, limit: int) -> None:
        super().__init__(f"app {client_id} has reached its limit of {limit} connections")
        self.client_id = client_id
        self.limit = limit


class OAuthError(Exception):
    """A token-endpoint error: 400 with `{"error": code}` (REFERENCE 1.10)."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWTs and PKCE use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def xero_connection_time(moment: datetime) -> str:
    """`2019-12-07T18:46:19.5165400`: UTC, no zone, 7 fractional digits (REFERENCE 2)."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0"


# --- RS256 signing ---------------------------------------------------------------------------


class JwtSigner:
    """RS256 JWTs with a 2048-bit RSA key generated (lazily) per sandbox process, signed with
    ``cryptography`` (PKCS #1 v1.5, SHA-256: what RS256 means).

    A throwaway key is made at start rather than kept in the source, so no private key is ever
    committed; tokens verify against the published JWKS for the life of the process.
    """

    E = 65537

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._header: dict[str, str] = {}
        self._jwk: dict[str, str] = {}

    def warm_up(self) -> None:
        """Generate the key now (the server does this in a background thread at start)."""
        self._material()

    def _material(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                key = rsa.generate_private_key(public_exponent=self.E, key_size=2048)
                n_bytes = key.public_key().public_numbers().n.to_bytes(256, "big")
                kid = hashlib.sha1(n_bytes).hexdigest().upper()  # noqa: S324 - a key id
                # No certificate exists; x5t is the thumbprint of the modulus instead.
                x5t = b64url(hashlib.sha1(n_bytes).digest())  # noqa: S324 - a thumbprint
                self._header = {"alg": "RS256", "kid": kid, "typ": "JWT", "x5t": x5t}
                self._jwk = {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": kid,
                    "x5t": x5t,
                    "e": b64url(self.E.to_bytes(3, "big")),
                    "n": b64url(n_bytes),
                }
                self._key = key
            return self._key

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK set."""
        self._material()
        return {"keys": [dict(self._jwk)]}

    def sign(self, claims: dict[str, Any]) -> str:
        """Encode and sign `claims` as a compact JWT."""
        key = self._material()
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode())
            for part in (self._header, claims)
        )
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT; ValueError if it is not one."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise ValueError("not a JWT") from exc


# --- state ----------------------------------------------------------------------------------


@dataclass
class App:
    """A registered Xero app (a PKCE app has no client secret)."""

    client_id: str
    client_secret: str | None
    name: str
    redirect_uris: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Control-plane shape."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
        }


@dataclass
class PendingAuthorization:
    """An authorize request waiting for sign-in and consent."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str | None
    nonce: str | None
    created: datetime
    user_email: str | None = None


@dataclass
class AuthCode:
    """An issued authorization code."""

    client_id: str
    redirect_uri: str
    user_email: str
    scopes: list[str]
    auth_event_id: str
    auth_time: datetime
    session_id: str
    code_challenge: str | None
    nonce: str | None
    issued_at: datetime
    used: bool = False


@dataclass
class Grant:
    """One chain of refresh tokens for a user and an app."""

    id: str
    client_id: str
    user_email: str
    scopes: list[str]
    auth_event_id: str
    auth_time: datetime
    session_id: str
    created: datetime
    nonce: str | None = None
    revoked: bool = False
    refresh_tokens: list[str] = field(default_factory=list)  # oldest first; last is current
    access_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Control-plane shape (no token values)."""
        return {
            "id": self.id,
            "client_id": self.client_id,
            "user": self.user_email,
            "scopes": list(self.scopes),
            "auth_event_id": self.auth_event_id,
            "created": self.created.isoformat(),
            "revoked": self.revoked,
        }


@dataclass
class RefreshRecord:
    grant_id: str
    issued_at: datetime
    superseded_at: datetime | None = None


@dataclass
class AccessRecord:
    grant_id: str
    expires_at: datetime


@dataclass
class Connection:
    """A user's connection of an app to an organisation."""

    id: str
    client_id: str
    user_email: str
    tenant_id: str
    tenant_name: str
    auth_event_id: str
    created: datetime
    updated: datetime

    def as_xero(self, tenant_name: str | None = None) -> dict[str, Any]:
        """The shape of `GET /connections` (REFERENCE 2)."""
        return {
            "id": self.id,
            "authEventId": self.auth_event_id,
            "tenantId": self.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": tenant_name or self.tenant_name,
            "createdDateUtc": xero_connection_time(self.created),
            "updatedDateUtc": xero_connection_time(self.updated),
        }


@dataclass
class BearerCheck:
    """Outcome of validating an access token: a grant, or why not."""

    grant: Grant | None
    problem: str | None = None  # "invalid" | "expired"
    expired_at: datetime | None = None


def pkce_s256(verifier: str) -> str:
    """BASE64URL(SHA-256(verifier)) without padding."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def subject_id(xero_userid: str) -> str:
    """The `sub` claim: 32 hex characters, stable per user."""
    return hashlib.md5(xero_userid.encode()).hexdigest()  # noqa: S324 - a stable opaque id, not security


class GrantStore:
    """All identity state behind one lock."""

    def __init__(self, signer: JwtSigner, issuer: str) -> None:
        self.signer = signer
        self.issuer = issuer
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every app, session, code, grant, token and connection."""
        with self.lock:
            self.apps: dict[str, App] = {}
            self.sessions: dict[str, str] = {}  # session cookie -> user email
            self.pending: dict[str, PendingAuthorization] = {}
            self.codes: dict[str, AuthCode] = {}
            self.grants: dict[str, Grant] = {}
            self.refresh: dict[str, RefreshRecord] = {}
            self.access: dict[str, AccessRecord] = {}
            self.connections: dict[str, Connection] = {}
            self.consented: dict[tuple[str, str], list[str]] = {}

    # apps and client authentication

    def create_app(
        self,
        name: str,
        redirect_uris: list[str],
        *,
        pkce: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> App:
        """Register an app; ids are Xero-like (32 upper-case hex) unless given."""
        app = App(
            client_id=client_id or secrets.token_hex(16).upper(),
            client_secret=None if pkce else (client_secret or secrets.token_urlsafe(36)),
            name=name,
            redirect_uris=list(redirect_uris),
        )
        with self.lock:
            if app.client_id in self.apps:
                raise ValueError(f"an app with client_id {app.client_id} already exists")
            self.apps[app.client_id] = app
        return app

    def authenticate_client(self, authorization: str | None, form: dict[str, str]) -> App:
        """The app calling the token/revocation endpoint (Basic header or form body)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                basic_id, _, basic_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client") from exc
            if client_id is not None and client_id != unquote(basic_id):
                raise OAuthError("invalid_client")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        if not client_id:
            raise OAuthError("invalid_client")
        app = self.apps.get(client_id)
        if app is None:
            raise OAuthError("invalid_client")
        if app.client_secret is None:
            # A PKCE app has no secret: it identifies itself by client_id and proves itself with
            # the code_verifier (checked at the exchange).
            if secret:
                raise OAuthError("invalid_client")
            return app
        if not secret or not secrets.compare_digest(secret, app.client_secret):
            raise OAuthError("invalid_client")
        return app

    # browser leg

    def start_authorization(self, pending: PendingAuthorization) -> str:
        """Remember an authorize request; returns its id (carried through sign-in and consent)."""
        rid = secrets.token_urlsafe(18)
        with self.lock:
            cutoff = pending.created - PENDING_TTL
            for key in [k for k, p in self.pending.items() if p.created < cutoff]:
                del self.pending[key]
            self.pending[rid] = pending
        return rid

    def pending_request(self, rid: str, now: datetime) -> PendingAuthorization | None:
        """A live authorize request by id (None when unknown or older than an hour)."""
        with self.lock:
            pending = self.pending.get(rid)
            if pending is not None and now - pending.created > PENDING_TTL:
                del self.pending[rid]
                return None
            return pending

    def sign_in(self, email: str) -> str:
        """Start a sign-in session; returns the cookie value."""
        session = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[session] = email
        return session

    def connect(
        self,
        user_email: str,
        client_id: str,
        tenants: list[tuple[str, str]],
        now: datetime,
        *,
        keep_auth_event: bool = True,
        max_connections: int | None = None,
    ) -> str:
        """Connect (or re-connect) organisations in one consent event; returns its authEventId.

        Args:
            keep_auth_event: a connection this user already has keeps its `authEventId` and
                `updatedDateUtc` (settings `reconsent_auth_event` "keep"); else it takes the new
                event's and `now` ("new").
            max_connections: the app's cap (None: none); ConnectionLimitReached if the new
                connections would pass it, and then nothing is connected.
        """
        auth_event_id = str(uuid.uuid4())
        with self.lock:
            existing = {
                c.tenant_id: c
                for c in self.connections.values()
                if c.user_email == user_email and c.client_id == client_id
            }
            added = len({t for t, _ in tenants if t not in existing})
            if (
                max_connections is not None
                and added
                and (self.app_connection_count(client_id) + added > max_connections)
            ):
                raise ConnectionLimitReached(client_id, max_connections)
            for tenant_id, tenant_name in tenants:
                conn = existing.get(tenant_id)
                if conn is None:
                    conn = Connection(
                        id=str(uuid.uuid4()),
                        client_id=client_id,
                        user_email=user_email,
                        tenant_id=tenant_id,
                        tenant_name=tenant_name,
                        auth_event_id=auth_event_id,
                        created=now,
                        updated=now,
                    )
                    self.connections[conn.id] = conn
                    existing[tenant_id] = conn
                elif not keep_auth_event:
                    conn.auth_event_id, conn.updated = auth_event_id, now
                conn.tenant_name = tenant_name
        return auth_event_id

    def app_connection_count(self, client_id: str) -> int:
        """How many connections an app has, across users (what Xero's cap counts)."""
        with self.lock:
            return sum(1 for c in self.connections.values() if c.client_id == client_id)

    def consent_scopes(self, user_email: str, client_id: str, scopes: list[str]) -> list[str]:
        """Record a browser consent; scopes add up across consents by the same user (Xero)."""
        with self.lock:
            known = self.consented.get((user_email, client_id), [])
            merged = known + [s for s in scopes if s not in known]
            self.consented[(user_email, client_id)] = merged
            return merged

    def issue_code(self, code: AuthCode) -> str:
        """Store an authorization code; returns its (case-sensitive) value."""
        value = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[value] = code
        return value

    def redeem_code(
        self,
        app: App,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        now: datetime,
    ) -> AuthCode:
        """Use a code once; every way it can be wrong is `invalid_grant` (REFERENCE 1.10)."""
        with self.lock:
            issued = self.codes.get(code)
            if issued is None or issued.used:
                raise OAuthError("invalid_grant")
            issued.used = True  # a failed attempt burns the code too, as IdentityServer does
            if now - issued.issued_at > CODE_TTL:
                raise OAuthError("invalid_grant")
            if issued.client_id != app.client_id or issued.redirect_uri != redirect_uri:
                raise OAuthError("invalid_grant")
            if issued.code_challenge is not None:
                if not code_verifier or not secrets.compare_digest(
                    pkce_s256(code_verifier), issued.code_challenge
                ):
                    raise OAuthError("invalid_grant")
            elif app.client_secret is None:
                raise OAuthError("invalid_grant")  # a PKCE app's code must carry a challenge
            return issued

    # grants and tokens

    def create_grant(
        self,
        client_id: str,
        user_email: str,
        scopes: list[str],
        auth_event_id: str,
        now: datetime,
        *,
        auth_time: datetime | None = None,
        session_id: str | None = None,
        nonce: str | None = None,
    ) -> Grant:
        """A new grant (not yet holding tokens; see `token_set`)."""
        grant = Grant(
            id=str(uuid.uuid4()),
            client_id=client_id,
            user_email=user_email,
            scopes=list(scopes),
            auth_event_id=auth_event_id,
            auth_time=auth_time or now,
            session_id=session_id or secrets.token_hex(16),
            created=now,
            nonce=nonce,
        )
        with self.lock:
            self.grants[grant.id] = grant
        return grant

    def token_set(self, grant: Grant, user: UserLike, now: datetime) -> dict[str, Any]:
        """Issue a fresh token response for `grant`, superseding its previous tokens."""
        access_token = self.signer.sign(self._access_claims(grant, user, now))
        body: dict[str, Any] = {}
        if "openid" in grant.scopes:
            body["id_token"] = self.signer.sign(self._id_claims(grant, user, now, access_token))
        body.update(
            {
                "access_token": access_token,
                "expires_in": int(ACCESS_TTL.total_seconds()),
                "token_type": "Bearer",
            }
        )
        with self.lock:
            if grant.access_token is not None:
                self.access.pop(grant.access_token, None)
            grant.access_token = access_token
            self.access[access_token] = AccessRecord(grant.id, now + ACCESS_TTL)
            if "offline_access" in grant.scopes:
                self._rotate_refresh(grant, now, body)
        body["scope"] = " ".join(grant.scopes)
        return body

    def _rotate_refresh(self, grant: Grant, now: datetime, body: dict[str, Any]) -> None:
        if grant.refresh_tokens:
            current = self.refresh[grant.refresh_tokens[-1]]
            current.superseded_at = current.superseded_at or now
        # Tokens past their grace can only ever say invalid_grant, which an unknown token says too.
        keep = []
        for token in grant.refresh_tokens:
            rec = self.refresh[token]
            if rec.superseded_at is not None and now - rec.superseded_at > REFRESH_GRACE:
                del self.refresh[token]
            else:
                keep.append(token)
        refresh_token = secrets.token_hex(32)
        self.refresh[refresh_token] = RefreshRecord(grant.id, now)
        grant.refresh_tokens = [*keep, refresh_token]
        body["refresh_token"] = refresh_token

    def grant_for_refresh(self, app: App, refresh_token: str, now: datetime) -> Grant:
        """The grant a refresh token may rotate, or `invalid_grant`."""
        with self.lock:
            rec = self.refresh.get(refresh_token)
            if rec is None:
                raise OAuthError("invalid_grant")
            grant = self.grants[rec.grant_id]
            if grant.revoked or grant.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if rec.superseded_at is not None and now - rec.superseded_at > REFRESH_GRACE:
                raise OAuthError("invalid_grant")
            if now - rec.issued_at > REFRESH_IDLE:
                raise OAuthError("invalid_grant")
            return grant

    def revoke_token(self, app: App, token: str) -> bool:
        """RFC 7009 revocation. A refresh token kills its grant and removes all of that user's
        connections for the app; an access token dies alone. Unknown tokens are not an error."""
        with self.lock:
            rec = self.refresh.get(token)
            if rec is not None:
                grant = self.grants[rec.grant_id]
                if grant.client_id != app.client_id:
                    return False
                self.revoke_grant(grant)
                self.remove_connections(user_email=grant.user_email, client_id=grant.client_id)
                return True
            access = self.access.get(token)
            if access is not None and self.grants[access.grant_id].client_id == app.client_id:
                del self.access[token]
                return True
            return False

    def revoke_grant(self, grant: Grant) -> None:
        """Kill a grant and every token it holds."""
        with self.lock:
            grant.revoked = True
            for token in grant.refresh_tokens:
                self.refresh.pop(token, None)
            if grant.access_token is not None:
                self.access.pop(grant.access_token, None)
            grant.refresh_tokens, grant.access_token = [], None

    def check_bearer(self, authorization: str | None, now: datetime) -> BearerCheck:
        """Validate `Authorization: Bearer <access token>` by lookup."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return BearerCheck(None, "invalid")
        token = authorization[7:].strip()
        rec = self.access.get(token)
        if rec is None:
            return BearerCheck(None, "invalid")
        grant = self.grants.get(rec.grant_id)
        if grant is None or grant.revoked:
            return BearerCheck(None, "invalid")
        if now >= rec.expires_at:
            return BearerCheck(grant, "expired", rec.expires_at)
        return BearerCheck(grant)

    # connections

    def connections_of(self, user_email: str, client_id: str) -> list[Connection]:
        """A user's connections for an app, oldest first."""
        with self.lock:
            return [
                c
                for c in self.connections.values()
                if c.user_email == user_email and c.client_id == client_id
            ]

    def is_connected(self, user_email: str, client_id: str, tenant_id: str) -> bool:
        """May this user's tokens for this app reach this organisation?"""
        for c in list(self.connections.values()):
            if c.tenant_id == tenant_id and c.user_email == user_email and c.client_id == client_id:
                return True
        return False

    def delete_connection(self, connection_id: str, user_email: str, client_id: str) -> bool:
        """`DELETE /connections/{id}`: only the owning user+app can; False means 404."""
        with self.lock:
            conn = self.connections.get(connection_id)
            if conn is None or conn.user_email != user_email or conn.client_id != client_id:
                return False
            del self.connections[connection_id]
            return True

    def remove_connections(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        user_email: str | None = None,
    ) -> list[Connection]:
        """Remove the connections matching every given filter; returns them."""
        with self.lock:
            gone = [
                c
                for c in self.connections.values()
                if (tenant_id is None or c.tenant_id == tenant_id)
                and (client_id is None or c.client_id == client_id)
                and (user_email is None or c.user_email == user_email)
            ]
            for c in gone:
                del self.connections[c.id]
            return gone

    # claims

    def _access_claims(self, grant: Grant, user: UserLike, now: datetime) -> dict[str, Any]:
        nbf = int(now.timestamp())
        return {
            "nbf": nbf,
            "exp": nbf + int(ACCESS_TTL.total_seconds()),
            "iss": self.issuer,
            "aud": f"{self.issuer}/resources",
            "client_id": grant.client_id,
            "sub": subject_id(user.xero_userid),
            "auth_time": int(grant.auth_time.timestamp()),
            "idp": "xero",
            "xero_userid": user.xero_userid,
            "global_session_id": grant.session_id,
            "sid": grant.session_id,
            "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id,
            "scope": list(grant.scopes),
            "amr": ["pwd"],
        }

    def _id_claims(
        self, grant: Grant, user: UserLike, now: datetime, access_token: str
    ) -> dict[str, Any]:
        nbf = int(now.timestamp())
        claims: dict[str, Any] = {
            "nbf": nbf,
            "exp": nbf + int(ID_TOKEN_TTL.total_seconds()),
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": nbf,
            "at_hash": b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
            "sid": grant.session_id,
            "sub": subject_id(user.xero_userid),
            "auth_time": int(grant.auth_time.timestamp()),
            "idp": "xero",
            "xero_userid": user.xero_userid,
            "global_session_id": grant.session_id,
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        claims.update(user_claims(user, grant.scopes))
        claims["amr"] = ["pwd"]
        return claims


def user_claims(user: UserLike, scopes: list[str]) -> dict[str, Any]:
    """Profile/email claims the granted scopes allow (id_token and userinfo)."""
    claims: dict[str, Any] = {}
    if "profile" in scopes or "email" in scopes:
        claims["preferred_username"] = user.email
    if "email" in scopes:
        claims["email"] = user.email
    if "profile" in scopes:
        claims["given_name"] = user.first_name
        claims["family_name"] = user.last_name
        claims["name"] = f"{user.first_name} {user.last_name}"
    return claims
