"""The generic webhook: one signed JSON POST per outbox message (the README's "Webhook",
``docs/helpdesk-webhook.schema.json``).

Headers: ``Idempotency-Key`` (the receiver keeps one ticket per key), ``X-Callcenter-Topic``
(``ticket.created`` | ``ticket.withdrawn``), ``X-Callcenter-Signature`` (HMAC-SHA256, see
``domain/signing``) when a secret is set, ``Authorization: Bearer`` for the deprecated
``[forwarding] token``. A 2xx, or 409 (that key is stored already), is done; the receiver may
answer ``{"id": ..., "url": ...}`` to say where the ticket now lives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from callcenter.adapters.helpdesk.base import Delivery, DeliveryError
from callcenter.domain import signing


class WebhookHelpdesk:
    kind = "webhook"
    polls = False

    def __init__(
        self,
        url: str,
        *,
        secret: str = "",
        token: str = "",
        timeout: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.url, self.secret, self.token = url, secret, token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    def headers(self, topic: str, key: str, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": key,
            "X-Callcenter-Topic": topic,
        }
        if self.secret:
            headers[signing.HEADER] = signing.sign(self.secret, body, int(self.wall_clock()))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def deliver(self, topic: str, key: str, payload: dict[str, Any]) -> Delivery | None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = self.headers(topic, key, body)
        async with self._http().post(self.url, data=body, headers=headers) as resp:
            if resp.status == 409 or 200 <= resp.status < 300:
                return _where(await resp.read())
            text = (await resp.text(errors="replace"))[:200]
            raise DeliveryError(f"HTTP {resp.status}: {text}")

    async def check(self) -> tuple[list[str], list[str]]:
        ok, missing = [], []
        if self.secret:
            ok.append("secret: set (X-Callcenter-Signature on every POST)")
        else:
            missing.append("secret: not set, the receiver cannot verify what it gets")
        try:
            async with self._http().head(self.url, allow_redirects=False) as resp:
                ok.append(f"url: {self.url} answers (HTTP {resp.status} to HEAD)")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            missing.append(f"url: {self.url} cannot be reached ({type(exc).__name__}: {exc})")
        return ok, missing

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _where(raw: bytes) -> Delivery | None:
    """The receiver's optional ``{"id", "url"}``; anything else is just "received"."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    ref, url = data.get("id"), data.get("url")
    ref = str(ref)[:64] if isinstance(ref, str | int) and not isinstance(ref, bool) else None
    url = url[:500] if isinstance(url, str) and url.startswith(("http://", "https://")) else None
    return Delivery(ref, url) if ref or url else None
