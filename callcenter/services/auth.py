"""API tokens, UI users and their sessions.

Tokens and session cookies are 256 random bits stored as SHA-256 (a fast hash is enough for
values nobody chose); passwords are stored with scrypt, which is slow on purpose (~40 ms and
16 MiB a hash), so it runs in a small thread pool of its own: on the event loop it would hold
FastAGI dialogues and timers behind every login. hashlib.scrypt releases the GIL, so the loop
keeps running while a hash is computed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time as _time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from callcenter.domain.errors import (
    Conflict,
    NotFound,
    TooManyAttempts,
    Unauthorized,
    ValidationError,
)
from callcenter.domain.throttle import BackoffRule, Throttle

log = logging.getLogger(__name__)

TOKEN_ROLES = ("pbx", "supervisor", "portal")
USER_ROLES = ("agent", "supervisor", "admin")
ROLES = tuple(dict.fromkeys(TOKEN_ROLES + USER_ROLES))
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB per hash: memory-hard, stdlib
#: a cookie longer than this was not made here; it is refused without a database read
_MAX_COOKIE = 100
#: after 5 wrong passwords for a login, each further try waits 2, 4, 8 ... up to 900 s
LOGIN_BACKOFF = BackoffRule(free=5, base_seconds=1.0, cap_seconds=900.0, forget_seconds=3600.0)
#: an address is allowed more (an office behind one NAT mistypes too), then the same delays
ADDRESS_BACKOFF = BackoffRule(free=20, base_seconds=1.0, cap_seconds=900.0, forget_seconds=3600.0)
#: logins from one address checked at once; the others wait their turn (a shift starting
#: behind one NAT), so the address's count holds at most this many unsettled attempts
ADDRESS_AT_ONCE = 4
#: logins from one address waiting for a turn before further ones are refused (429)
ADDRESS_QUEUE = 200


class _Turns:
    """At most ``at_once`` attempts per key in flight; up to ``queue`` more wait in order.

    The throttle counts an attempt as a failure until its check settles, so without turns a
    burst of parallel logins from one address (an office at shift start) would run into the
    address's allowance on its own good attempts; with them, guessing in parallel gains no
    more than ``at_once`` unsettled tries, and good logins simply queue.
    """

    def __init__(self, at_once: int, queue: int) -> None:
        self._at_once, self._limit = at_once, at_once + queue
        self._keys: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str):
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = (asyncio.Semaphore(self._at_once), [0])
        semaphore, holders = entry
        if holders[0] >= self._limit:
            raise TooManyAttempts(
                "too many logins at once from this address; try again in 1 s", retry_after=1
            )
        holders[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            holders[0] -= 1
            if holders[0] == 0:
                del self._keys[key]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's or a user's name, and its role (see ``web/access.py``)."""

    name: str
    role: str


@dataclass(frozen=True)
class NewSession:
    principal: Principal
    cookie: str  # given to the browser once; only its hash is stored
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class UserInfo:
    login: str
    display_name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a fast hash is enough to keep them unreadable at rest."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


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


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise ValidationError("password must be at least 8 characters", code="weak_password")


def _lower_priority(nice: int) -> None:
    """Runs in each hashing thread: on Linux a thread has its own nice value, so a burst of
    logins takes only the CPU that FastAGI, the timers and the API leave idle."""
    if nice and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class AuthService:
    """Tokens, users and sessions.

    Verified tokens are cached for ``cache_seconds`` and sessions for
    ``session_cache_seconds``. Revoking a token, logging out, disabling a user or changing a
    password drops the affected entries from this process's caches at once; another instance
    (or a ``callcenter`` command run beside the service) changes only the database, so a
    running service notices within those seconds.
    """

    def __init__(
        self,
        uow_factory: Callable,
        cache_seconds: float = 30.0,
        *,
        session_hours: float = 12,
        session_cache_seconds: float = 2.0,
        hash_workers: int = 2,
        hash_nice: int = 10,
        login_backoff: BackoffRule = LOGIN_BACKOFF,
        address_backoff: BackoffRule = ADDRESS_BACKOFF,
    ) -> None:
        self._uow = uow_factory
        # in this process only: N instances behind a balancer give an attacker N times the rate
        self._by_login = Throttle(login_backoff)
        self._by_address = Throttle(address_backoff)
        self._address_turns = _Turns(ADDRESS_AT_ONCE, ADDRESS_QUEUE)
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_seconds = cache_seconds
        # by the service's clock, so tests move it like the sessions' own expiry
        self._sessions: dict[str, tuple[datetime, datetime, Principal]] = {}
        self._session_cache_for = timedelta(seconds=session_cache_seconds)
        self.session_lifetime = timedelta(hours=session_hours)
        # bounded: a burst of logins queues here instead of taking every core and 16 MiB each
        self._hasher = ThreadPoolExecutor(
            hash_workers,
            thread_name_prefix="password-hash",
            initializer=_lower_priority,
            initargs=(hash_nice,),
        )
        self._decoy: str | None = None

    async def _in_pool(self, fn: Callable, *args):
        """Runs a password hash off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._hasher, fn, *args)

    def close(self) -> None:
        self._hasher.shutdown(wait=False)

    # --- tokens ---------------------------------------------------------------------------

    async def create_token(self, name: str, role: str, now: datetime) -> str:
        if role not in TOKEN_ROLES:
            raise ValidationError(f"role must be one of {', '.join(TOKEN_ROLES)}", code="bad_role")
        name = name.strip()
        if not name or len(name) > 100:
            raise ValidationError("token name must be 1-100 characters", code="bad_name")
        token = "cc_" + secrets.token_urlsafe(32)
        async with self._uow() as uow:
            if await uow.auth.live_token_named(name):
                raise Conflict(
                    f"a token named {name!r} exists; revoke it first or choose another name",
                    code="token_exists",
                )
            await uow.auth.add_token(name, role, hash_token(token), now)
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

    async def tokens(self) -> list[TokenInfo]:
        async with self._uow() as uow:
            rows = await uow.auth.tokens()
        return [TokenInfo(r.name, r.role, r.created_at, r.revoked_at) for r in rows]

    async def revoke_token(self, name: str, now: datetime) -> int:
        """Revokes every live token of that name; returns how many."""
        async with self._uow() as uow:
            hashes = await uow.auth.revoke_tokens(name, now)
            if not hashes:
                raise NotFound(f"no live token named {name!r}", code="no_such_token")
            await uow.commit()
        for key in hashes:
            self._cache.pop(key, None)
        return len(hashes)

    # --- users ----------------------------------------------------------------------------

    async def add_user(
        self, login: str, role: str, password: str, now: datetime, display_name: str = ""
    ) -> None:
        if role not in USER_ROLES:
            raise ValidationError(f"role must be one of {', '.join(USER_ROLES)}", code="bad_role")
        login = login.strip()
        if not login or len(login) > 100:
            raise ValidationError("login must be 1-100 characters", code="bad_login")
        _check_password(password)
        async with self._uow() as uow:
            exists = await uow.auth.user_exists(login)
        if exists:
            raise Conflict(f"user {login!r} already exists", code="user_exists")
        password_hash = await self._in_pool(hash_password, password)
        async with self._uow() as uow:
            if await uow.auth.user_exists(login):
                raise Conflict(f"user {login!r} already exists", code="user_exists")
            await uow.auth.add_user(login, role, password_hash, display_name, now)
            await uow.commit()

    async def users(self) -> list[UserInfo]:
        async with self._uow() as uow:
            rows = await uow.auth.users()
        return [
            UserInfo(r.login, r.display_name, r.role, r.created_at, r.disabled_at) for r in rows
        ]

    async def disable_user(self, login: str, now: datetime) -> bool:
        """Disables the user and ends its sessions; False if it was disabled already."""
        async with self._uow() as uow:
            changed = await uow.auth.set_disabled(login, now)
            if changed is None:
                raise NotFound(f"no user {login!r}", code="no_such_user")
            await uow.auth.delete_sessions_of(login)
            await uow.commit()
        self._forget_sessions_of(login)
        return changed

    async def enable_user(self, login: str) -> bool:
        """False if the user was enabled already."""
        async with self._uow() as uow:
            changed = await uow.auth.set_disabled(login, None)
            if changed is None:
                raise NotFound(f"no user {login!r}", code="no_such_user")
            await uow.commit()
        return changed

    async def set_password(self, login: str, password: str) -> None:
        """A new password ends the user's sessions: whoever knew the old one is logged out."""
        _check_password(password)
        password_hash = await self._in_pool(hash_password, password)
        async with self._uow() as uow:
            if not await uow.auth.set_password(login, password_hash):
                raise NotFound(f"no user {login!r}", code="no_such_user")
            await uow.auth.delete_sessions_of(login)
            await uow.commit()
        self._forget_sessions_of(login)

    async def _verified_user(self, login: str, password: str):
        """The enabled user's row if the password is right. An unknown login costs the same
        scrypt as a known one, so timing does not tell which logins exist."""
        async with self._uow() as uow:
            row = await uow.auth.user(login)
        if self._decoy is None:
            self._decoy = await self._in_pool(hash_password, secrets.token_urlsafe(16))
        stored = row.password_hash if row is not None else self._decoy
        if not await self._in_pool(verify_password, password, stored) or row is None:
            raise Unauthorized("wrong login or password", code="bad_credentials")
        return row

    async def login(
        self, login: str, password: str, now: datetime | None = None, address: str | None = None
    ) -> Principal:
        """Checks a login and password without opening a session, throttled like a login
        (``now`` defaults to the wall clock for callers that hold no clock)."""
        now = now or datetime.now(UTC)
        row = await self._throttled_verify(login, password, now, address)
        return Principal(row.login, row.role)

    async def _throttled_verify(self, login: str, password: str, now: datetime, address):
        """:meth:`_verified_user` behind the login throttle: a login or an address that failed
        too often is refused with ``retry_after`` before its password is even hashed, so
        guessing costs the guesser time, not the server CPU. A success clears the login's
        count; the address keeps its other failures (one good account must not launder a
        guesser's address). Logins from one address take turns (:class:`_Turns`)."""
        login_key = "login:" + login.strip().casefold()[:200]
        address_key = "address:" + (address or "unknown")[:100]
        async with self._address_turns.turn(address_key):
            return await self._verify_in_turn(login, password, now, login_key, address_key)

    async def _verify_in_turn(self, login, password, now, login_key, address_key):
        for throttle, key in ((self._by_login, login_key), (self._by_address, address_key)):
            try:
                throttle.admit((key,), now, "login")
            except TooManyAttempts as exc:
                if key == address_key:
                    self._by_login.forgive(login_key)  # not tried: no failure to count
                if exc.first_refusal:
                    log.warning(
                        "login throttled for %s: %d failures, next try in %s s",
                        key,
                        throttle.failures(key, now),
                        exc.retry_after,
                    )
                raise
        try:
            row = await self._verified_user(login, password)
        except Unauthorized:
            raise  # a wrong password: the failure stays counted
        except Exception:
            self._by_login.forgive(login_key)  # the check did not run: not a wrong password
            self._by_address.forgive(address_key)
            raise
        self._by_login.reset(login_key)
        self._by_address.forgive(address_key)
        return row

    # --- sessions -------------------------------------------------------------------------

    async def open_session(
        self, login: str, password: str, now: datetime, address: str | None = None
    ) -> NewSession:
        row = await self._throttled_verify(login, password, now, address)
        cookie = secrets.token_urlsafe(32)
        expires_at = now + self.session_lifetime
        async with self._uow() as uow:
            await uow.auth.delete_expired_sessions(now)
            await uow.auth.add_session(hash_token(cookie), row.id, now, expires_at)
            await uow.commit()
        return NewSession(Principal(row.login, row.role), cookie, expires_at)

    async def authenticate_session(self, cookie: str, now: datetime) -> Principal:
        """The user behind a session cookie: live, unexpired, and the user enabled."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            raise Unauthorized("the session has ended; log in again", code="bad_session")
        key = hash_token(cookie)
        hit = self._sessions.get(key)
        if hit and hit[0] > now and hit[1] > now:
            return hit[2]
        async with self._uow() as uow:
            row = await uow.auth.session_user(key, now)
        if row is None:
            self._sessions.pop(key, None)
            raise Unauthorized("the session has ended; log in again", code="bad_session")
        principal = Principal(row.login, row.role)
        sessions = self._sessions
        # kept in the order put (a session put again goes to the end), which is the order
        # their cache time ends: the ended leave from the front, so what is kept follows the
        # sessions used within the last few seconds, not every session since the start
        while sessions:
            oldest = next(iter(sessions))
            if sessions[oldest][0] > now:
                break
            del sessions[oldest]
        if len(sessions) > 10_000:  # a burst
            sessions.clear()
        sessions.pop(key, None)
        sessions[key] = (now + self._session_cache_for, row.expires_at, principal)
        return principal

    async def sessions_standing(self, cookies: Collection[str], now: datetime) -> set[str]:
        """Which of these session cookies still stand (live, unexpired, the user enabled),
        asked afresh for all of them in one read: the push sockets' periodic re-check."""
        keys = {hash_token(c): c for c in cookies if c and len(c) <= _MAX_COOKIE}
        hashes = list(keys)
        live: set[str] = set()
        async with self._uow() as uow:
            for i in range(0, len(hashes), 500):
                live |= await uow.auth.live_sessions(hashes[i : i + 500], now)
        for key in keys.keys() - live:
            self._sessions.pop(key, None)
        return {keys[k] for k in live}

    async def end_session(self, cookie: str) -> None:
        if not cookie or len(cookie) > _MAX_COOKIE:
            return
        key = hash_token(cookie)
        self._sessions.pop(key, None)
        async with self._uow() as uow:
            await uow.auth.delete_session(key)
            await uow.commit()

    def _forget_sessions_of(self, login: str) -> None:
        for key in [k for k, v in self._sessions.items() if v[2].name == login]:
            del self._sessions[key]
