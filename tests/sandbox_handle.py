"""Moved to ``sandbox.handle`` (the sandbox's client side, which the benchmarks and dev tools
use too); kept so tests written against the old path still import."""

from sandbox.handle import (  # noqa: F401
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    REPO_ROOT,
    ConsentOutcome,
    SandboxError,
    SandboxHandle,
    SandboxProcess,
    XeroGrant,
    consent_via_forms,
    make_grant,
    start_sandbox_process,
    xero_env,
)
