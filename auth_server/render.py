"""A very small HTML renderer: ``string.Template`` files that escape every value by default.

A value is inserted raw only when it is a :class:`Markup` (HTML this code built itself from
escaped parts), so a company or organisation called ``<script>`` shows up as text.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from importlib import resources
from string import Template


class Markup(str):
    """A string that is already safe HTML."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """HTML-escape anything (``None`` becomes the empty string); Markup passes through."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object]) -> Markup:
    """Concatenate, escaping whatever is not Markup yet."""
    return Markup("".join(escape(p) for p in parts))


def tag(name: str, content: object = "", **attrs: object) -> Markup:
    """``<name attr="…">content</name>`` with escaped attributes and content.

    Attribute names ending in ``_`` drop it (``class_`` → ``class``); ``True`` is a bare attribute;
    ``None``/``False`` leave the attribute out.
    """
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        rendered.append(f" {attr}" if value is True else f' {attr}="{escape(value)}"')
    return Markup(f"<{name}{''.join(rendered)}>{escape(content)}</{name}>")


@functools.cache
def _template(name: str) -> Template:
    text = resources.files("auth_server").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def render(name: str, **values: object) -> Markup:
    """Fill ``templates/<name>``; every placeholder must be given (a typo fails loudly)."""
    return Markup(_template(name).substitute({k: escape(v) for k, v in values.items()}))


def static_file(name: str) -> bytes:
    """The bytes of a static file beside the templates (the stylesheet)."""
    return resources.files("auth_server").joinpath("templates", name).read_bytes()


def render_text(name: str, **values: object) -> str:
    """Fill a plain-text template (no escaping: the result is never parsed as HTML)."""
    return _template(name).substitute({k: "" if v is None else str(v) for k, v in values.items()})
