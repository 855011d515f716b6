"""What the reading use cases return: plain data for the web layer to render (``web/views``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from callcenter.domain.calls import OralWindow, Ticket
from callcenter.domain.events import CallEvent

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: the items, how many match in all, and where the page is."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class CallDetail:
    """A call's stored row (the projection plus what the agent recorded), its window, its
    ticket and its events in the order they happened."""

    call: dict[str, Any]
    window: OralWindow | None
    ticket: Ticket | None
    events: list[CallEvent]
