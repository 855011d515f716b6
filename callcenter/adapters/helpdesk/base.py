"""What every helpdesk adapter offers, and what it answers with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class DeliveryError(RuntimeError):
    """A delivery failed; the outbox tries again later."""


class HelpdeskConfigError(RuntimeError):
    """The helpdesk does not have what the configuration names; ``problems`` says each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Delivery:
    """Where the helpdesk keeps a delivered ticket (both may be unknown for a webhook)."""

    ref: str | None
    url: str | None


@dataclass(frozen=True)
class IssueChange:
    """An issue of ours that changed in the helpdesk since the last poll."""

    ticket_id: int
    ref: str
    updated_at: datetime


@dataclass(frozen=True)
class Answer:
    """The written answer as the helpdesk recorded it: its time, not when we noticed."""

    ticket_id: int
    at: datetime
    text: str
    ref: str
    url: str | None


class Helpdesk(Protocol):
    kind: str
    #: True when answers are read back by polling (``changed_since``/``answer_of``)
    polls: bool

    async def deliver(self, topic: str, key: str, payload: dict[str, Any]) -> Delivery | None:
        """Send one outbox message; idempotent on ``key``. Raises on failure."""

    async def check(self) -> tuple[list[str], list[str]]:
        """(what is fine, what is missing or wrong), each as lines for people."""

    async def close(self) -> None: ...


class PollingHelpdesk(Helpdesk, Protocol):
    async def changed_since(self, since: datetime | None) -> list[IssueChange]: ...

    async def answer_of(self, change: IssueChange) -> Answer | None: ...


def ticket_id_of(key: str) -> int | None:
    """Our ticket id from its idempotency key (``ticket-42``), or None."""
    head, _, tail = key.partition("-")
    return int(tail) if head == "ticket" and tail.isascii() and tail.isdigit() else None
