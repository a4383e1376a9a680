"""xero-elt's connector: the one way to Xero (OAuth, HTTP client, credential store) and the dlt
source that loads suppliers, accounts, tax rates and tracking categories.

``xero_source`` is imported lazily so that ``connector.store`` or ``connector.identity`` (used by
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
