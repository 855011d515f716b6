"""Helpdesks that written tickets are delivered to: Redmine (REST API) and a signed webhook.

``build(settings)`` gives the configured one, or None for ``kind = "none"``.
"""

from __future__ import annotations

from callcenter.adapters.helpdesk.base import (
    Answer,
    Delivery,
    DeliveryError,
    Helpdesk,
    HelpdeskConfigError,
    IssueChange,
)

__all__ = [
    "Answer",
    "Delivery",
    "DeliveryError",
    "Helpdesk",
    "HelpdeskConfigError",
    "IssueChange",
    "build",
]


def build(settings) -> Helpdesk | None:
    """The helpdesk of ``[helpdesk]`` (or the deprecated ``[forwarding] url``), or None."""
    h, fwd = settings.helpdesk, settings.forwarding
    if h.kind == "redmine":
        from callcenter.adapters.helpdesk.redmine import RedmineHelpdesk

        return RedmineHelpdesk(
            h.url,
            h.api_key,
            project=h.project,
            tracker=h.tracker,
            answered_status=h.answered_status,
            ticket_field=h.ticket_field,
            ticket_prefix=h.ticket_prefix,
            timeout=h.timeout_seconds,
        )
    if h.kind == "webhook":
        from callcenter.adapters.helpdesk.webhook import WebhookHelpdesk

        return WebhookHelpdesk(h.url, secret=h.secret, timeout=h.timeout_seconds)
    if fwd.url:  # deprecated [forwarding]: a webhook, signed when [helpdesk] secret is set
        from callcenter.adapters.helpdesk.webhook import WebhookHelpdesk

        return WebhookHelpdesk(
            fwd.url, secret=h.secret, token=fwd.token, timeout=fwd.timeout_seconds
        )
    return None
