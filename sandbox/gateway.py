"""Xero's gateway in front of the API paths: the bearer token, the tenant and the user's standing,
scope, rate limits, scheduled mutations and faults, then ``sandbox.accounting`` for the data.

Accounting calls are checked in Xero's order: Bearer token (401 AuthenticationUnsuccessful),
expiry (401 TokenExpired), tenant header and connection (403), the user's role (403 while still
connected), scope (401 AuthorizationUnsuccessful), rate limits (429), then scheduled mutations
due, then faults, then ``sandbox.accounting``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sandbox import faults as fault_kinds
from sandbox.faults import Fault
from sandbox.grants import Grant
from sandbox.state import Sandbox
from sandbox.web import Request, Response, problem


def bearer_grant(sb: Sandbox, req: Request, now: datetime) -> Grant | Response:
    """The grant behind the request's access token, or the 401 Xero answers."""
    check = sb.grants.check_bearer(req.headers.get("authorization"), now)
    if check.problem == "expired" and check.expired_at is not None:
        return problem(401, f"TokenExpired: token expired at {check.expired_at:%m/%d/%Y %H:%M:%S}")
    if check.grant is None:
        return problem(401, "AuthenticationUnsuccessful")
    return check.grant


def user_standing(sb: Sandbox, email: str) -> str | None:
    """May this user's grants read their organisations? "admin", "standard" (a Standard user
    allowed to connect apps: reads, with masking), or None (Xero's 403 on accounting calls)."""
    user = sb.user(email)
    if user is None:
        return None
    if user.role == "admin":
        return "admin"
    return "standard" if user.connect_apps else None


def apply_scheduled_mutations(sb: Sandbox, req: Request, org: Any) -> None:
    """Apply the armed mutations due before this request (see sandbox.schedule). A mutation that
    fails is recorded with its error; the request is answered either way."""
    due = sb.schedule.due(org.tenant_id, req.path)
    for item in due:
        now = sb.clock.now()
        request = {"method": req.method, "path": req.path, "query": req.query}
        try:
            result = sb.apply_mutation(org, item.body)
        except ValueError as exc:
            sb.schedule.applied(item, now, request, error=str(exc))
        else:
            sb.schedule.applied(item, now, request, result=result)


def apply_faults(
    sb: Sandbox, req: Request, tenant_id: str | None
) -> tuple[Response | None, Fault | None]:
    """Take the next matching fault. Returns a replacement response (status/rate_limit), or a
    fault to apply on the way out (drop/malformed/truncated/corrupt_gzip); `slow` just waits."""
    fault = sb.faults.take(req.method, req.path, tenant_id)
    if fault is None:
        return None, None
    req.fault = fault.kind
    if fault.kind == "slow":
        time.sleep(fault.seconds or 0)
        return None, None
    if fault.kind == "status":
        status, headers, body = fault_kinds.status_answer(fault)
        return Response(status, headers, body), None
    if fault.kind == "rate_limit":
        status, headers, body = fault_kinds.rate_limit_answer(fault, sb.clock.now())
        return Response(status, headers, body), None
    if fault.kind == "offline":
        return Response(*fault_kinds.offline_answer()), None
    return None, fault


def handle_accounting_call(sb: Sandbox, req: Request, params: dict[str, str]) -> Response:
    """`/api.xro/2.0/<Resource>[/<subpath>]`: Xero's checks in Xero's order, then the data."""
    from sandbox import accounting

    now = sb.clock.now()
    grant = bearer_grant(sb, req, now)
    if isinstance(grant, Response):
        return grant
    tenant_id = (req.headers.get("xero-tenant-id") or "").strip()
    org = sb.organisation(tenant_id)
    if org is None or not sb.grants.is_connected(grant.user_email, grant.client_id, org.tenant_id):
        return problem(403, "AuthenticationUnsuccessful", sb.limits.app_headers(grant.client_id))
    standing = user_standing(sb, grant.user_email)
    if standing is None:  # still connected, but the user lost the right (REFERENCE 0: 403)
        return problem(403, "AuthenticationUnsuccessful", sb.limits.app_headers(grant.client_id))
    resource = _canonical_resource(params["resource"], accounting.ACCOUNTING_RESOURCES)
    if resource is None:
        return Response(
            404,
            {"Content-Type": "text/plain; charset=utf-8", "Xero-Correlation-Id": str(uuid.uuid4())},
            b"The resource you're looking for cannot be found",
            tenant_id=org.tenant_id,
        )
    required = accounting.REQUIRED_SCOPE.get(resource)
    if required and required not in grant.scopes and f"{required}.read" not in grant.scopes:
        return problem(401, "AuthorizationUnsuccessful", sb.limits.app_headers(grant.client_id))

    admission = sb.limits.admit(grant.client_id, org.tenant_id)
    limit_headers = {**admission.headers, "Xero-Correlation-Id": str(uuid.uuid4())}
    if not admission.admitted:
        headers = {**limit_headers, "X-Rate-Limit-Problem": admission.problem or "minute"}
        if admission.retry_after is not None:
            headers["Retry-After"] = str(admission.retry_after)
        return Response(429, headers, b"", tenant_id=org.tenant_id)
    try:
        apply_scheduled_mutations(sb, req, org)
        sb.latency()
        replacement, late_fault = apply_faults(sb, req, org.tenant_id)
        if replacement is not None:
            replacement.headers = {**limit_headers, **replacement.headers}
            replacement.tenant_id = org.tenant_id
            replacement.on_sent.append(admission.release)
            return replacement
        app = sb.grants.apps.get(grant.client_id)
        status, headers, body = accounting.handle_accounting(
            org,
            resource,
            params.get("subpath") or None,
            req.query,
            req.headers,
            now,
            app.name if app else "",
            accounting.ReadPolicy(
                high_volume_threshold=sb.settings.high_volume_threshold,
                modified_since_exempt=sb.settings.high_volume_exempts_modified_since,
                standard_user=standing == "standard",
                accounts_not_modified=sb.settings.accounts_not_modified,
            ),
        )
    except BaseException:
        admission.release()
        raise
    response = Response(status, {**headers, **limit_headers}, body, late_fault, org.tenant_id)
    response.on_sent.append(admission.release)
    return response


def _canonical_resource(name: str, known: Iterable[str]) -> str | None:
    lowered = name.lower()
    for resource in known:
        if resource.lower() == lowered:
            return resource
    return None
