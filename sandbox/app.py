"""The sandbox as a web application: its routing table (identity, connections, accounting,
control plane), how a request is answered (faults around the handlers of non-accounting Xero
paths), and starting it in a background thread (``start_sandbox``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sandbox import control, identity
from sandbox.gateway import apply_faults, handle_accounting_call
from sandbox.requestlog import log_entry
from sandbox.state import Sandbox, SandboxConfig
from sandbox.web import Request, Response, Route, SandboxHTTPServer


def not_found(_sb: Sandbox, _req: Request, _params: dict[str, str]) -> Response:
    """Unknown path."""
    return Response(404, {"Content-Type": "text/plain; charset=utf-8"}, b"Not Found")


def build_routes() -> list[Route]:
    """The routing table: identity, connections, accounting, control plane."""
    return [
        *identity.routes(),
        Route(
            "GET",
            r"/api\.xro/2\.0/(?P<resource>[^/]+)(?:/(?P<subpath>.+))?",
            handle_accounting_call,
            dispatch_faults=False,
        ),
        *control.routes(),
    ]


class SandboxApp:
    """A sandbox's state behind the HTTP layer (``sandbox.web.WebApp``)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.routes = build_routes()

    def now(self) -> datetime:
        return self.sandbox.clock.now()

    def compress(self) -> bool:
        return self.sandbox.settings.compress

    def record(self, started: datetime, req: Request, response: Response,
               bytes_sent: int) -> None:
        self.sandbox.log.append(log_entry(started, req, response), bytes_sent)

    def respond(self, route: Route | None, req: Request, params: dict[str, str]) -> Response:
        sb = self.sandbox
        if route is None:
            if "allow" in params:
                return Response(
                    405,
                    {"Allow": params["allow"], "Content-Type": "text/plain; charset=utf-8"},
                    b"Method Not Allowed",
                )
            return not_found(sb, req, params)
        if not route.dispatch_faults:
            return route.handler(sb, req, params)
        replacement, late_fault = apply_faults(sb, req, req.headers.get("xero-tenant-id"))
        if replacement is not None:
            return replacement
        response = route.handler(sb, req, params)
        if late_fault is not None:
            response.fault = late_fault
        return response


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread (see `start_sandbox`)."""

    url: str
    sandbox: Sandbox
    server: SandboxHTTPServer
    thread: threading.Thread

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 42,
    tenants: int = 2,
    suppliers: int = 250,
    rate_limits: bool = True,
    latency_ms: int = 0,
) -> RunningSandbox:
    """Seed and start a sandbox in this process; returns once it accepts connections."""
    config = SandboxConfig(host, port, seed, tenants, suppliers, rate_limits, latency_ms)
    sandbox = Sandbox(config)
    server = SandboxHTTPServer((host, port), SandboxApp(sandbox))
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}"
    sandbox.set_url(url)
    threading.Thread(target=sandbox.signer.warm_up, name="sandbox-jwt-key", daemon=True).start()
    thread = threading.Thread(target=server.serve_forever, name="sandbox-http", daemon=True)
    thread.start()
    return RunningSandbox(url, sandbox, server, thread)
