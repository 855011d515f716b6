"""Read models as the API renders them, for tests that drive the use cases in process."""

from __future__ import annotations

from typing import Any

from callcenter.domain.calls import Ticket
from callcenter.services.read_models import CallDetail, Page
from callcenter.web import views


def wire(model: Any, container) -> Any:
    """The JSON the API would answer with for ``model``, at the container's clock."""
    now = container.clock.now()
    if isinstance(model, CallDetail):
        return views.call_json(model, now)
    if isinstance(model, Ticket):
        return views.ticket_json(model, now)
    if isinstance(model, Page):
        return views.page_json(model, lambda item: wire(item, container))
    if isinstance(model, dict):
        return views.call_summary(model)
    if isinstance(model, list):
        return [views.review_json(r) for r in model]
    raise TypeError(f"no wire form for {type(model).__name__}")
