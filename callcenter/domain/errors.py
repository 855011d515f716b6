"""Domain errors carry a stable code; the web layer alone maps codes to HTTP statuses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure the caller can act on: ``code`` is stable, ``message`` is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ValidationError(DomainError):
    code = "validation_error"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class PolicyRefused(DomainError):
    code = "policy_notice_too_short"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class Unavailable(DomainError):
    """Something the service depends on (the switch's AMI) does not answer now: try again."""

    code = "unavailable"


class TooManyAttempts(DomainError):
    """Refused before any check was made: the caller must wait ``retry_after`` seconds."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.retry_after = retry_after
        #: set by the throttle on the first refusal of a key, so it is logged once, not per try
        self.first_refusal = False
        self.key = ""
