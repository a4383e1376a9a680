"""xero-elt's connector: the one way to Xero (OAuth, HTTP client, the token-provider
interface and a token file for plain dlt use) and the dlt source that loads suppliers,
accounts, tax rates and tracking categories. It imports nothing of the app around it.

``xero_source`` is imported lazily so that the app's ``store`` or ``connector.identity`` (used by
the auth server) do not pay for importing dlt's extract machinery.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_source", "schema_changes", "xero_source"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from connector import source

        return getattr(source, name)
    raise AttributeError(f"module 'connector' has no attribute {name!r}")
