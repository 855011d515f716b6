"""The helpdesk's view of a ticket (the webhook contract, ``docs/helpdesk-webhook.schema.json``)
and, kept for older imports, the webhook sender under its old name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from callcenter.adapters.helpdesk.base import DeliveryError
from callcenter.adapters.helpdesk.webhook import WebhookHelpdesk
from callcenter.domain.calls import Ticket
from callcenter.domain.instants import format_instant as iso

__all__ = ["DeliveryError", "HttpForwarder", "ticket_context", "ticket_payload"]


def _render(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v) for v in value]
    return value


def ticket_payload(tk: Ticket, now: datetime, context: dict | None = None) -> dict[str, Any]:
    """The ticket's public facts, plus (when known) ``coverage`` (the certificate: holder,
    product, version and build, validity, services) and ``call`` (the call's timeline)."""
    payload = dict(tk.facts(now))
    payload.update(context or {})
    return _render(payload)


async def ticket_context(uow, tk: Ticket) -> dict[str, Any]:
    """What a helpdesk needs beside the ticket's own fields, read in the ticket's unit of work."""
    out: dict[str, Any] = {"coverage": None, "call": None}
    if tk.certificate_number:
        cert = await uow.certificates.get(tk.certificate_number)
        if cert is not None:
            pv = cert.product_version
            out["coverage"] = {
                "holder_type": cert.holder_type.value,
                "holder_name": cert.holder_name,
                "organisation": cert.organisation,
                "product": cert.product,
                "version": pv.version if pv else None,
                "build": pv.build if pv else None,
                "valid_from": cert.valid_from.isoformat(),
                "valid_to": cert.valid_to.isoformat(),
                "services": [s.value for s in cert.services],
            }
    if tk.call_id:
        call = await uow.calls.get(tk.call_id) or {}
        win = await uow.windows.get(tk.call_id)
        out["call"] = {
            "caller_number": call.get("caller_number"),
            "agent": call.get("agent"),
            "agent_name": call.get("agent_name"),
            "started_at": call.get("started_at"),
            "queued_at": call.get("queued_at"),
            "connected_at": call.get("connected_at"),
            "ended_at": call.get("ended_at"),
            "oral_deadline_at": win.deadline_at if win else None,
            "window_status": win.status.value if win else None,
            "extensions": [
                {"at": e.at, "seconds": e.seconds, "reason": e.reason, "by": e.by}
                for e in (win.extensions if win else [])
            ],
        }
    return out


class HttpForwarder(WebhookHelpdesk):
    """The old name of the webhook sender (``[forwarding] url``)."""

    def __init__(self, url: str, token: str = "", timeout: float = 10.0) -> None:
        super().__init__(url, token=token, timeout=timeout)
