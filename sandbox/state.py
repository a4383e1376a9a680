"""One sandbox's state: its world (the seeded data), identity (apps, grants), limits, faults,
scheduled mutations, settings, clock, request log and webhook, and how it is started (config)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sandbox.clock import Clock
from sandbox.faults import FaultBook
from sandbox.grants import GrantStore, JwtSigner
from sandbox.limits import LimitConfig, RateLimiter
from sandbox.requestlog import RequestLog
from sandbox.schedule import MutationSchedule
from sandbox.settings import SandboxSettings
from sandbox.webhooks import Webhooks


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox was started (also what `/_sandbox/reset` reseeds with)."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    tenants: int = 2
    suppliers: int = 250
    rate_limits: bool = True
    latency_ms: int = 0


class Sandbox:
    """All of one sandbox's state: world (data), identity, limits, faults, clock and log."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.started_at = self.clock.now()
        self.limits = RateLimiter(self.clock, LimitConfig(enforced=config.rate_limits))
        self.faults = FaultBook()
        self.schedule = MutationSchedule()
        self.settings = SandboxSettings()
        self.log = RequestLog()
        self.webhooks = Webhooks(self.clock, lambda: self.settings, lambda: self.url)
        self.signer = JwtSigner()
        self.grants = GrantStore(self.signer, issuer="")
        self.world: Any = None
        self._users: dict[str, Any] = {}
        self.url = ""
        self._seed()

    def _seed(self) -> None:
        # Imported here, not at the top, so `--help` and the HTTP plumbing load without the
        # reference data.
        from sandbox.seeding import seed_world

        world = seed_world(
            seed=self.config.seed,
            tenants=self.config.tenants,
            suppliers=self.config.suppliers,
            start=self.started_at,
        )
        self.world = world
        self._users = {u.email.lower(): u for u in world.users}

    def set_url(self, url: str) -> None:
        """The origin clients reach us at (also the token issuer)."""
        self.url = url
        self.grants.issuer = url

    def reset(self) -> None:
        """Back to the seeded state: data, apps, grants, faults, scheduled mutations, settings,
        limits, log, clock and the webhook."""
        self.clock.reset()
        self.webhooks.reset()
        self.faults.clear()
        self.schedule.clear()
        self.settings = SandboxSettings()
        self.limits.reset()
        self.grants.reset()
        self._seed()
        self.log.clear()

    def apply_mutation(self, org: Any, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a mutation now (sandbox.mutations) and queue the webhook event it causes."""
        from sandbox import mutations

        result = mutations.apply_mutation(org, body, self.clock.now())
        self.webhooks.mutation_applied(org.tenant_id, body, result)
        return result

    def user(self, email: str) -> Any | None:
        """A seeded (or added) user by email, case-insensitively."""
        return self._users.get(email.strip().lower())

    def add_user(self, user: Any) -> None:
        """Add a user to the world (control plane)."""
        self.world.users.append(user)
        self._users[user.email.lower()] = user

    def organisation(self, tenant_id: str | None) -> Any | None:
        """An organisation by tenant id (case-insensitive), or None."""
        if not tenant_id:
            return None
        orgs = self.world.organisations
        return orgs.get(tenant_id) or orgs.get(tenant_id.strip().lower())

    def latency(self) -> None:
        """The `--latency-ms` delay of accounting and connections responses."""
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000)
