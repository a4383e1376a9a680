"""Walk HTML pages the way a person clicks through them, over plain HTTP (no browser).

The demo uses it to go through the invite, Xero's sign-in and consent, and the confirm page:
find the form holding a button by its label, fill some fields, submit it with the form's own
hidden fields (CSRF tokens included), follow redirects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


@dataclass
class Form:
    """One <form>: where it goes, its fields (first value wins) and its submit buttons."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # field name -> input type
    buttons: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    # (label, name, value) for each submit button


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self._button: tuple[str | None, str | None] | None = None
        self._button_text: list[str] = []
        self._link: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get")))
        elif tag == "a" and "href" in a:
            self._link, self._link_text = a["href"], []
        elif not self.forms:
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "submit":
                self.forms[-1].buttons.append((a.get("value", ""), a.get("name"), a.get("value")))
            elif kind in ("radio", "checkbox"):
                if "checked" in a:
                    self.forms[-1].fields.setdefault(a.get("name", ""), a.get("value", "on"))
            elif a.get("name"):
                self.forms[-1].fields.setdefault(a["name"], a.get("value", ""))
                self.forms[-1].types.setdefault(a["name"], kind)
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._button, self._button_text = (a.get("name"), a.get("value")), []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button_text.append(data)
        if self._link is not None:
            self._link_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self.forms:
            label = " ".join("".join(self._button_text).split())
            self.forms[-1].buttons.append((label, *self._button))
            self._button = None
        elif tag == "a" and self._link is not None:
            self.links.append((" ".join("".join(self._link_text).split()), self._link))
            self._link = None


class PageError(RuntimeError):
    """The page did not have what the walk expected."""


class Browser:
    """A cookie-keeping httpx client that clicks buttons and links by their label."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.client = httpx.Client(follow_redirects=True, timeout=timeout)
        self.page: httpx.Response | None = None

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def open(self, url: str) -> httpx.Response:
        """GET a page."""
        self.page = self.client.get(url)
        return self.page

    @property
    def text(self) -> str:
        """The current page's HTML."""
        return self.page.text if self.page is not None else ""

    def _parsed(self) -> _FormParser:
        parser = _FormParser()
        parser.feed(self.text)
        return parser

    def click_link(self, label: str) -> httpx.Response:
        """Follow the first link whose text contains `label`."""
        assert self.page is not None
        for text, href in self._parsed().links:
            if label in text:
                self.page = self.client.get(urljoin(str(self.page.url), href))
                return self.page
        raise PageError(f"no link {label!r} on {self.page.url}")

    def click(
        self, label: str, by_type: dict[str, str] | None = None, **fill: str
    ) -> httpx.Response:
        """Submit the form that has a button labelled `label`, after filling fields.

        `fill` sets fields by name; `by_type` by input type (e.g. ``{"email": …}``), for forms
        whose field names are not ours to know.
        """
        assert self.page is not None
        for form in self._parsed().forms:
            for text, name, value in form.buttons:
                if text == label:
                    typed = {n: (by_type or {})[t] for n, t in form.types.items()
                             if t in (by_type or {})}
                    data = {**form.fields, **typed, **fill}
                    if name:
                        data[name] = value or ""
                    url = urljoin(str(self.page.url), form.action or str(self.page.url))
                    if form.method.lower() == "post":
                        self.page = self.client.post(url, data=data)
                    else:
                        self.page = self.client.get(url, params=data)
                    return self.page
        raise PageError(f"no button {label!r} on {self.page.url}")
