"""The one way settings are read: a frozen dataclass declares them, dlt's providers fill them.

A settings class (``connector.settings.XeroSettings``, ``auth_server.settings.AuthServerSettings``)
is declared once: each field typed, with its default and a docstring. ``read_settings`` turns
those fields into a dlt ``configspec`` on the fly and resolves it under the class's section, so
environment variables (``SOURCES__XERO__API_URL``) win over ``.dlt/secrets.toml`` and
``.dlt/config.toml``, and those over the defaults. A field whose metadata says ``secret`` is read
as a dlt secret (never from ``config.toml``). Explicit overrides win over everything.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Optional, TypeVar

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import (
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

T = TypeVar("T")

_SCALARS = (str, int, float, bool)


def secret(default: Any = None) -> Any:
    """A dataclass field read as a dlt secret and hidden from ``repr``."""
    return dataclasses.field(default=default, repr=False, metadata={"secret": True})


@functools.cache
def _spec_for(cls: type) -> type[BaseConfiguration]:
    """A dlt configspec with one optional field per dataclass field (None: not configured)."""
    hints = typing.get_type_hints(cls)
    annotations: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        scalar = next((t for t in _SCALARS if kind in (t, Optional[t])), None)  # noqa: UP045
        if f.metadata.get("secret"):
            base: Any = TSecretStrValue
        else:
            base = scalar if scalar is not None else Any  # lists, tables: parsed by the class
        annotations[f.name] = Optional[base]  # noqa: UP045 (dlt reads typing.Optional)
    namespace: dict[str, Any] = {"__annotations__": annotations}
    namespace.update(dict.fromkeys(annotations))
    return configspec(type(f"{cls.__name__}Config", (BaseConfiguration,), namespace))


def read_settings(
    cls: type[T],
    sections: tuple[str, ...],
    overrides: dict[str, Any],
    error: type[Exception],
) -> T:
    """Resolve ``cls``'s fields under ``sections`` through dlt's providers; build ``cls``.

    Args:
        cls: a dataclass whose fields are the settings (types, defaults, docstrings).
        sections: where they live, e.g. ``("sources", "xero")``.
        overrides: values that win over every provider (``None`` values are ignored).
        error: the exception to raise for an unknown override or a value of the wrong type.

    Raises:
        error: naming the setting, never its value.
    """
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    where = ".".join(sections)
    unknown = set(overrides) - known
    if unknown:
        raise error(f"unknown {where} settings: {', '.join(sorted(unknown))}")
    try:
        config = resolve_configuration(_spec_for(cls)(), sections=sections)
    except ConfigValueCannotBeCoercedException as exc:
        raise error(f"{where}.{exc.field_name} cannot be read as "
                    f"{getattr(exc.hint, '__name__', exc.hint)}") from None
    except ConfigurationException as exc:
        raise error(f"cannot read [{where}]: {exc}") from None
    values = {name: getattr(config, name) for name in known if getattr(config, name) is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def describe(cls: type) -> dict[str, str]:
    """Each setting's one-line description (the docstring under its field), for docs and help."""
    import ast
    import inspect
    import itertools
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    found: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            found[node.target.id] = " ".join(following.value.value.split())
    return found


__all__ = ["describe", "read_settings", "secret"]
