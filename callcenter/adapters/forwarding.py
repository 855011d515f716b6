"""Sending outbox messages to an external helpdesk over HTTP, and the payload it gets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from callcenter.domain.calls import Ticket
from callcenter.domain.instants import format_instant as iso


def ticket_payload(tk: Ticket, now: datetime) -> dict[str, Any]:
    """The helpdesk's view of a ticket (the forwarding contract; the API's is in web/views)."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in tk.facts(now).items()}


class DeliveryError(RuntimeError):
    pass


class HttpForwarder:
    """POSTs JSON with an ``Idempotency-Key`` header; 2xx, or 409 (seen already), is done."""

    def __init__(self, url: str, token: str = "", timeout: float = 10.0) -> None:
        self.url, self.token = url, token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, topic: str, key: str, payload: dict) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Idempotency-Key": key, "X-Callcenter-Topic": topic}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self._session.post(self.url, json=payload, headers=headers) as resp:
            if resp.status == 409 or 200 <= resp.status < 300:
                return
            body = (await resp.text())[:200]
            raise DeliveryError(f"HTTP {resp.status}: {body}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
