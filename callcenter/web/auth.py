"""Who is calling: a bearer token (PBX, integrations) or the UI's session cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time

from aiohttp import web

from callcenter.domain.errors import Forbidden, Unauthorized
from callcenter.services.auth import Principal
from callcenter.web.keys import CONTAINER

log = logging.getLogger(__name__)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
COOKIE = "cc_session"


class SessionSigner:
    """Stateless signed sessions: ``base64(json).hmac``; the server keeps nothing."""

    def __init__(self, secret: str, hours: int) -> None:
        if not secret:
            log.warning("http.secret_key is empty: UI sessions end when this process stops")
            secret = secrets.token_urlsafe(32)
        self._key = hashlib.sha256(secret.encode()).digest()
        self.max_age = hours * 3600

    def sign(self, principal: Principal) -> str:
        body = json.dumps(
            {"n": principal.name, "r": principal.role, "e": int(time.time()) + self.max_age},
            ensure_ascii=False,
        )
        b = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        mac = hmac.new(self._key, b.encode(), hashlib.sha256).hexdigest()
        return f"{b}.{mac}"

    def verify(self, value: str) -> Principal | None:
        b, _, mac = value.rpartition(".")
        good = hmac.new(self._key, b.encode(), hashlib.sha256).hexdigest()
        if not b or not hmac.compare_digest(mac.encode("utf-8", "replace"), good.encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or data.get("e", 0) < time.time():
            return None
        return Principal(data["n"], data["r"])


SIGNER: web.AppKey[SessionSigner] = web.AppKey("session_signer", SessionSigner)


async def principal(request: web.Request) -> Principal:
    cached = request.get(PRINCIPAL)
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use 'Authorization: Bearer TOKEN'", code="missing_token")
        who = await request.app[CONTAINER].auth.authenticate_token(token.strip())
    elif (cookie := request.cookies.get(COOKIE)) and (
        found := request.app[SIGNER].verify(cookie)
    ) is not None:
        who = found
    else:
        raise Unauthorized(
            "log in, or send 'Authorization: Bearer TOKEN' (see `callcenter tokens create`)",
            code="missing_token",
        )
    request[PRINCIPAL] = who
    return who


async def require(request: web.Request, permission: str) -> Principal:
    who = await principal(request)
    if not who.can(permission):
        raise Forbidden(f"role {who.role!r} may not do this ({permission})", code="forbidden")
    return who
