"""API tokens and UI users: tokens are stored as SHA-256, passwords with scrypt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from callcenter.domain.errors import Conflict, Unauthorized, ValidationError

TOKEN_ROLES = ("pbx", "supervisor", "portal")
USER_ROLES = ("agent", "supervisor", "admin")
_AGENT = {"certificates:read", "calls:read", "calls:act", "tickets:read", "tickets:answer"}
_SUPERVISOR = _AGENT | {"events:write", "ivr", "tickets:write", "reports:read"}
PERMISSIONS: dict[str, frozenset[str]] = {
    "pbx": frozenset({"certificates:read", "events:write", "ivr"}),
    "portal": frozenset({"certificates:read", "tickets:write", "tickets:read"}),
    "agent": frozenset(_AGENT),
    "supervisor": frozenset(_SUPERVISOR),
    "admin": frozenset(_SUPERVISOR | {"admin"}),
}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB per hash: memory-hard, stdlib


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, ())


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a fast hash is enough to keep them unreadable at rest."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = f"{_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except ValueError:
        return False


class AuthService:
    def __init__(self, uow_factory: Callable, cache_seconds: float = 30.0) -> None:
        self._uow = uow_factory
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_seconds = cache_seconds

    async def create_token(self, name: str, role: str, now: datetime) -> str:
        if role not in TOKEN_ROLES:
            raise ValidationError(f"role must be one of {', '.join(TOKEN_ROLES)}", code="bad_role")
        if not name.strip():
            raise ValidationError("token name must not be empty", code="bad_name")
        token = "cc_" + secrets.token_urlsafe(32)
        async with self._uow() as uow:
            await uow.auth.add_token(name.strip(), role, hash_token(token), now)
            await uow.commit()
        return token

    async def authenticate_token(self, token: str) -> Principal:
        """The principal behind a bearer token; verified tokens are cached for a short while."""
        key = hash_token(token)
        hit = self._cache.get(key)
        if hit and hit[0] > _time.monotonic():
            return hit[1]
        async with self._uow() as uow:
            found = await uow.auth.token_role(key)
        if found is None:
            raise Unauthorized("unknown or revoked API token", code="bad_token")
        principal = Principal(*found)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (_time.monotonic() + self._cache_seconds, principal)
        return principal

    async def add_user(
        self, login: str, role: str, password: str, now: datetime, display_name: str = ""
    ) -> None:
        if role not in USER_ROLES:
            raise ValidationError(f"role must be one of {', '.join(USER_ROLES)}", code="bad_role")
        login = login.strip()
        if not login or len(login) > 100:
            raise ValidationError("login must be 1-100 characters", code="bad_login")
        if len(password) < 8:
            raise ValidationError("password must be at least 8 characters", code="weak_password")
        async with self._uow() as uow:
            if await uow.auth.user_exists(login):
                raise Conflict(f"user {login!r} already exists", code="user_exists")
            await uow.auth.add_user(login, role, hash_password(password), display_name, now)
            await uow.commit()

    async def login(self, login: str, password: str) -> Principal:
        async with self._uow() as uow:
            row = await uow.auth.user(login)
        if row is None or not verify_password(password, row.password_hash):
            raise Unauthorized("wrong login or password", code="bad_credentials")
        return Principal(row.login, row.role)
