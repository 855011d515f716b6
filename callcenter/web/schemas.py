"""Request bodies, one schema per endpoint: each field's rule is written once, here.

Stdlib dataclasses with a rule in each field's metadata, read by one ``parse`` that reports
EVERY problem by field (the API promises a 422 naming the missing fields, plural), refuses
unknown fields, and returns the typed body. Chosen over msgspec, which stops at the first
error and would add a C dependency for a dozen small bodies, and over pydantic, heavier
still; the hot path (call events) keeps its own tuned table in ``domain/events.py``.
Rules between fields (a refusal needs a reason) and business invariants (an extension
needs a reason) stay in the domain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from callcenter.domain.calls import REFUSAL_REASONS, SERVICE_CATEGORIES, Outcome
from callcenter.domain.errors import ValidationError


@dataclass(frozen=True)
class Text:
    """A string field: at most ``max_length`` characters, optionally one of ``choices``;
    ``required`` means present and not blank."""

    max_length: int
    required: bool = False
    choices: tuple[str, ...] | None = None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be text"
        if self.required and not value.strip():
            return "is required"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if len(value) > self.max_length:
            return f"must be text of at most {self.max_length} characters"
        return None


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    required: bool = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be an integer"
        if not self.low <= value <= self.high:
            return f"must be from {self.low} to {self.high}"
        return None


def rule(r: Text | Integer, default: Any = None) -> Any:
    return dataclasses.field(default=default, metadata={"rule": r})


S = TypeVar("S")


def parse(schema: type[S], body: Any) -> S:
    """``body`` as ``schema``, or one ValidationError (422) naming every bad field."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", code="invalid_request")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    problems: dict[str, str] = {
        name: "is not accepted here" for name in sorted(set(body) - set(fields))
    }
    values: dict[str, Any] = {}
    for name, f in fields.items():
        r = f.metadata["rule"]
        value = body.get(name)
        if value is None:
            if getattr(r, "required", False):
                problems[name] = "is required"
            continue
        bad = r.problem(value)
        if bad:
            problems[name] = bad
        else:
            values[name] = value
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_request",
            fields=problems,
        )
    return schema(**values)


def present(body: Any, *names: str) -> dict[str, Any]:
    """The fields of ``body`` that were given (not None), for use cases taking keywords."""
    return {n: getattr(body, n) for n in names if getattr(body, n) is not None}


# --- the bodies ------------------------------------------------------------------------------

_NAME = Text(300)
_DESCRIPTION = Text(10_000)
_CATEGORY = Text(20, choices=SERVICE_CATEGORIES)
IDENTITY = ("caller_name", "organisation", "description", "category", "subject", "identity_check")


@dataclass(frozen=True)
class CallIdentity:
    """PATCH /api/v1/calls/{id} and POST .../escalate: who is calling and what about."""

    caller_name: str | None = rule(_NAME)
    organisation: str | None = rule(_NAME)
    description: str | None = rule(_DESCRIPTION)
    category: str | None = rule(_CATEGORY)
    #: the product or component the request is about (R-3)
    subject: str | None = rule(Text(300))
    #: the agent's mark on the caller's identity (R-10); null clears it (on PATCH)
    identity_check: str | None = rule(Text(16, choices=("checked", "mismatch")))


@dataclass(frozen=True)
class WindowExtension:
    """POST /api/v1/calls/{id}/extend (the reason's presence is the domain's rule)."""

    reason: str | None = rule(Text(1000))
    seconds: int | None = rule(Integer(1, 3600))


@dataclass(frozen=True)
class CallOutcome(CallIdentity):
    """POST /api/v1/calls/{id}/outcome: the outcome, and the caller's identity as on PATCH."""

    outcome: str | None = rule(Text(16, required=True, choices=tuple(o.value for o in Outcome)))
    reason: str | None = rule(Text(32, choices=REFUSAL_REASONS))
    note: str | None = rule(Text(10_000))


@dataclass(frozen=True)
class Complaint:
    """POST /api/v1/complaints."""

    note: str | None = rule(Text(10_000, required=True))
    call_id: str | None = rule(Text(64))


@dataclass(frozen=True)
class PortalTicket:
    """POST /api/v1/tickets: a written request from the portal (clause 3.1/4.1)."""

    full_name: str | None = rule(Text(300, required=True))
    certificate: str | None = rule(Text(32, required=True))
    description: str | None = rule(Text(10_000, required=True))
    organisation: str | None = rule(_NAME)
    category: str | None = rule(_CATEGORY)


@dataclass(frozen=True)
class TicketAnswer:
    """POST /api/v1/tickets/{id}/answer."""

    answer: str | None = rule(Text(20_000, required=True))


@dataclass(frozen=True)
class HelpdeskAnswer:
    """POST /api/v1/helpdesk/answers: the webhook's helpdesk tells a ticket's answer."""

    ticket_id: int | None = rule(Integer(1, 10**18 - 1, required=True))
    answered_at: str | None = rule(Text(64, required=True))
    answer: str | None = rule(Text(20_000, required=True))
    #: where the helpdesk keeps it (optional): its own id and a link to it
    id: str | None = rule(Text(64))
    url: str | None = rule(Text(500))


@dataclass(frozen=True)
class IvrVoicemail:
    """POST /api/v1/ivr/voicemail: a message left on the closed line (base64 WAV)."""

    call_id: str | None = rule(Text(64, required=True))
    number: str | None = rule(Text(64, required=True))
    caller: str | None = rule(Text(40))
    recording: str | None = rule(Text(1_000_000, required=True))
    #: when the message was left (a driver that kept it while the service was away sends it
    #: later): its ticket's 12 working hours start then; absent: now
    at: str | None = rule(Text(64))


@dataclass(frozen=True)
class IvrCheck:
    """POST /api/v1/ivr/check."""

    call_id: str | None = rule(Text(64, required=True))
    number: str | None = rule(Text(64, required=True))
    caller: str | None = rule(Text(40))
