"""The platform's brand on the customer pages and the invite email: colours that stay readable
whatever ``brand_colour`` is set, the logo (a URL, or a file this server serves), and the
support contact.

Contrast follows WCAG 2.x: button text is white or near-black, whichever contrasts more with the
brand colour (one of them always reaches 4.5:1); links and headings in the brand colour on white
are darkened step by step until they reach 4.5:1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auth_server.settings import AuthServerSettings

DEFAULT_COLOUR = "#2f5bea"
DARK_TEXT = "#111827"
WHITE = "#ffffff"
MIN_CONTRAST = 4.5
LOGO_PATH = "/brand/logo"
LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
              ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}


def normalise_hex(colour: str) -> str:
    """``#abc`` → ``#aabbcc``, lower case."""
    value = colour.strip().lower()
    if len(value) == 4:
        value = "#" + "".join(ch * 2 for ch in value[1:])
    return value


def _rgb(colour: str) -> tuple[int, int, int]:
    value = normalise_hex(colour)
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def luminance(colour: str) -> float:
    """WCAG relative luminance (0 black … 1 white)."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 … 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(colour: str) -> str:
    """White or near-black, whichever reads better on ``colour``; black where near-black falls
    short of 4.5:1 (mid greys: one of white and black always reaches it)."""
    best = WHITE if contrast(colour, WHITE) >= contrast(colour, DARK_TEXT) else DARK_TEXT
    if contrast(colour, best) < MIN_CONTRAST:
        return WHITE if contrast(colour, WHITE) >= contrast(colour, "#000000") else "#000000"
    return best


def darken(colour: str, amount: float) -> str:
    """``colour`` mixed with black (``amount`` 0 … 1)."""
    return _hex(tuple(c * (1 - amount) for c in _rgb(colour)))  # type: ignore[arg-type]


def readable_on_white(colour: str) -> str:
    """``colour``, darkened just enough for text on white to reach 4.5:1."""
    value = normalise_hex(colour)
    step = 0
    while contrast(value, WHITE) < MIN_CONTRAST and step < 20:
        step += 1
        value = darken(normalise_hex(colour), step * 0.05)
    return value


@dataclass(frozen=True)
class Brand:
    """What the pages and the email need of ``[auth_server]``'s brand settings."""

    product: str
    colour: str
    on_colour: str
    ink: str
    hover: str
    logo_src: str | None
    logo_file: Path | None
    support_email: str | None
    support_url: str | None
    base_url: str

    @property
    def logo_absolute(self) -> str | None:
        """The logo's URL as an email client must load it (from the public URL)."""
        if self.logo_src and self.logo_src.startswith("/"):
            return self.base_url + self.logo_src
        return self.logo_src

    @property
    def has_support(self) -> bool:
        """The platform named a support contact."""
        return bool(self.support_email or self.support_url)

    def css(self) -> str:
        """``/static/brand.css``: the brand colour and its readable companions."""
        return (":root {\n"
                f"  --primary: {self.colour};\n"
                f"  --primary-dark: {self.hover};\n"
                f"  --on-primary: {self.on_colour};\n"
                f"  --primary-ink: {self.ink};\n"
                "}\n")


def brand(settings: AuthServerSettings) -> Brand:
    """The brand from the settings (neutral defaults when nothing is set)."""
    colour = normalise_hex(settings.brand_colour or DEFAULT_COLOUR)
    logo = settings.logo_url
    logo_file = None
    if logo and not logo.startswith(("http://", "https://")):
        logo_file = Path(logo.removeprefix("file://")).expanduser()
        logo = LOGO_PATH + logo_file.suffix.lower()
    return Brand(
        product=settings.product_name, colour=colour, on_colour=text_on(colour),
        ink=readable_on_white(colour),
        hover=darken(colour, 0.15) if luminance(colour) > 0.05 else _hex(
            tuple(c + (255 - c) * 0.2 for c in _rgb(colour))),  # type: ignore[arg-type]
        logo_src=logo, logo_file=logo_file,
        support_email=settings.support_email, support_url=settings.support_url,
        base_url=settings.base_url,
    )


def logo_origin(settings: AuthServerSettings) -> str | None:
    """The origin an external logo is loaded from (for the CSP's ``img-src``)."""
    url = settings.logo_url
    if url and url.startswith(("http://", "https://")):
        from auth_server.security import origin_of

        return origin_of(url)
    return None
