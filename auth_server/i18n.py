"""The customer's language: gettext catalogues (Babel), the language a page is shown in, and the
Jinja environment that renders the customer pages and the invite email in it.

Catalogues live in ``auth_server/locales/<lang>/LC_MESSAGES/messages.po`` (the template,
``messages.pot``, is extracted from the Python handlers and the templates by ``pybabel extract``;
see ``babel.cfg``). The ``.po`` files are compiled in memory when first used, so a fresh clone
or an installed wheel needs no build step and a compiled file can never be older than its
source. English is the source language: its "translation" is the message id itself.

A page's language is the invite's ``language`` when the connection is known (the platform chose
it), else the best match for the browser's ``Accept-Language``, else English.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
import markupsafe
from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

DEFAULT = "en"
LANGUAGES: tuple[str, ...] = ("en", "ar")
"""Languages shipped with a complete catalogue (a test checks each has every string)."""
RTL = frozenset({"ar", "fa", "he", "ur"})
# A language tag whose primary subtag we ship (ASCII only, as in openapi.json's pattern).
LANGUAGE_TAG = re.compile(
    "(?:" + "|".join("".join(f"[{c.upper()}{c}]" for c in code) for code in LANGUAGES) + ")"
    r"(?:[-_][A-Za-z0-9]{1,8})*")
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


def catalogue_path(language: str) -> Any:
    """The ``.po`` file of a language (a ``Traversable`` inside the package)."""
    return resources.files("auth_server").joinpath("locales", language, "LC_MESSAGES",
                                                   f"{DOMAIN}.po")


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language`` (English: none, the ids are the English text)."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    with catalogue_path(language).open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def clean_language(value: object) -> str | None:
    """A shipped language code from an invite's ``language`` (``"ar"``, ``"AR"``, ``"ar-AE"``,
    as openapi.json's pattern states); ``None`` when not given. Raises ``ValueError`` naming the
    languages we have."""
    if value is None:
        return None
    if isinstance(value, str) and LANGUAGE_TAG.fullmatch(value):
        return value[:2].lower()
    raise ValueError(f"language {value!r} is not available; choose one of "
                     f"{', '.join(LANGUAGES)}")


def negotiate(accept_language: str | None) -> str:
    """The shipped language a browser prefers most (``Accept-Language`` with q-values)."""
    wanted: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().split("-", 1)[0].lower()
        if primary and quality > 0:
            wanted.append((-quality, index, primary))
    for _, _, primary in sorted(wanted):
        if primary in LANGUAGES:
            return primary
    return DEFAULT


@dataclass(frozen=True)
class Language:
    """One language's tools: translate, format, and which way the text runs."""

    code: str

    @property
    def direction(self) -> str:
        """``rtl`` or ``ltr`` (the ``dir`` attribute of ``<html>``)."""
        return "rtl" if self.code in RTL else "ltr"

    @property
    def name(self) -> str:
        """The language's own name (``العربية``), for pickers and logs."""
        return Locale.parse(self.code).get_display_name(self.code) or self.code

    def gettext(self, message: str, **values: object) -> str:
        """``message`` translated, then filled with ``%(name)s`` values (plain text)."""
        text = translations(self.code).gettext(message)
        return text % values if values else text

    def markup(self, message: str, **values: object) -> markupsafe.Markup:
        """``message`` translated as trusted HTML (it may hold ``<strong>``), values escaped."""
        # The catalogue is ours (reviewed like code); the values are escaped by ``%``.
        text = markupsafe.Markup(translations(self.code).gettext(message))  # noqa: S704
        return text % values if values else text

    def date(self, value: datetime) -> str:
        """A date written out in this language (``Monday 7 December 2026``)."""
        return format_date(value, format="full", locale=self.code)

    def number(self, value: int) -> str:
        """A count with this language's grouping and digits."""
        return format_decimal(value, locale=self.code)


def language(code: str | None) -> Language:
    """The ``Language`` for a shipped code (English for anything else)."""
    return Language(code if code in LANGUAGES else DEFAULT)


@functools.cache
def environment(code: str) -> jinja2.Environment:
    """The Jinja environment of one language: templates from ``auth_server/templates``, HTML
    escaped by default, ``{% trans %}`` and ``_()`` going through this language's catalogue."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auth_server", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(translations(code), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(template: str, lang: Language, values: Mapping[str, object]) -> str:
    """Fill a translated template; our own ``render.Markup`` values are inserted as HTML."""
    from auth_server.render import Markup

    # Our Markup is HTML this code built from escaped parts; anything else is escaped by Jinja.
    context = {k: markupsafe.Markup(v) if isinstance(v, Markup) else v  # noqa: S704
               for k, v in values.items()}
    context.update(lang=lang.code, dir=lang.direction)
    return environment(lang.code).get_template(template).render(context)
