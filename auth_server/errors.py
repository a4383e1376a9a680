"""The auth server's exceptions: each carries a message fit to show a person, never a secret."""

from __future__ import annotations


class AuthServerError(Exception):
    """Base of every auth server error."""


class ConfigError(AuthServerError):
    """A setting is missing or malformed."""


class InvalidInput(AuthServerError):
    """A field a person or a client sent is not acceptable; nothing was changed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnsupportedMediaType(InvalidInput):
    """The body is not in the media type this route reads."""


class NotFound(AuthServerError):
    """No such connection or invite."""


class InviteError(AuthServerError):
    """The invite cannot be used or resent in its current state."""


class MailError(AuthServerError):
    """The invite email could not be sent or written."""


class XeroCallFailed(AuthServerError):
    """A call to Xero failed; the local records were left as they were."""
