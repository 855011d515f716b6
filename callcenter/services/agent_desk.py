"""The agent's desk (issue 10): who an agent is to Asterisk, which calls are theirs, their
current call as a screen-pop, their pause state, and their own lists.

A call **belongs** to the user owning the interface its ``agent_connected`` named; a call
whose interface nobody owns stays the whole team's. An agent may not read or act on another
user's call (:meth:`AgentDesk.guard`); supervisors and admins see every call.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.calls import Ticket
from callcenter.domain.certificates import Certificate
from callcenter.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyAttempts,
    ValidationError,
)
from callcenter.domain.instants import MOSCOW
from callcenter.services.read_models import CallDetail

log = logging.getLogger(__name__)

#: ``PJSIP/101``, ``Local/agent1@agents``, ``SIP/alice``: a technology, a slash, a resource
INTERFACE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,19}/[!-~]{1,180}$")
#: a call connected longer ago than this is no longer anyone's current call (a lost hangup)
CURRENT_CALL_HORIZON = timedelta(hours=12)
OWNER_CACHE_SECONDS = 30.0
#: the owners kept are pruned of expired ones when they reach this many
OWNERS_PRUNE_AT = 2_000
IDENTITY_CHECKS = ("checked", "mismatch")
STATES = ("available", "paused", "in_call", "wrap_up")
#: what the desk says when pausing cannot reach Asterisk (the page shows its catalog's text)
NO_AMI = "AMI is not enabled: pause in Asterisk (or ask an administrator to enable [ami])"

#: sends ``QueuePause`` for one interface; raises :class:`Unavailable` when AMI is down
Pauser = Callable[[str, bool, str | None], Awaitable[None]]


def check_interfaces(raw: Sequence[Any]) -> list[str]:
    """The interfaces given, each checked, duplicates dropped, in the order given."""
    if not isinstance(raw, list | tuple):
        raise ValidationError(
            "interfaces must be a list", code="invalid_interface", fields={"interfaces": "list"}
        )
    out: list[str] = []
    for x in raw:
        if not isinstance(x, str) or not INTERFACE.match(x):
            raise ValidationError(
                f"{x!r} is not a queue member interface like PJSIP/101 or Local/agent1@agents",
                code="invalid_interface",
                fields={"interfaces": f"{x!r} is not an interface like PJSIP/101"},
            )
        if x not in out:
            out.append(x)
    if len(out) > 20:
        raise ValidationError(
            "at most 20 interfaces a user",
            code="invalid_interface",
            fields={"interfaces": "at most 20"},
        )
    return out


@dataclass(frozen=True)
class AgentState:
    state: str  # one of STATES
    reason: str | None
    since: datetime | None


@dataclass(frozen=True)
class Pop:
    """The screen-pop: the call as it stands, its certificate (None if unknown), this
    certificate's other calls and unsettled tickets, and the ticket's due time in words."""

    detail: CallDetail
    certificate: Certificate | None
    last_calls: list[dict]
    open_tickets: list[Ticket]
    due_words: tuple[str, str] | None = None


@dataclass(frozen=True)
class Desk:
    now: datetime
    login: str
    display_name: str
    interfaces: list[str]
    state: AgentState
    pause_available: bool
    pause_why: str | None
    call: Pop | None = None


@dataclass
class _Memo:
    """Pops built for pushed notes, shared by every socket that gets the same note."""

    tasks: dict[int, asyncio.Task] = field(default_factory=dict)


class AgentDesk:
    def __init__(
        self,
        uow_factory: Callable,
        queries,
        registry,
        notifier,
        read_uow: Callable | None = None,
        reader=None,
    ) -> None:
        self._uow = uow_factory
        #: for the pushes' reads (pops, owners): they need not queue behind event ingest
        self._read = read_uow or uow_factory
        self.queries = queries
        #: the pop's rows read on the driver (``CertificateReader.pop_parts``); None: a unit
        #: of work reads them
        self.reader = reader
        self.registry = registry
        self.notifier = notifier
        #: set when AMI is enabled (the composition root wires the client's QueuePause)
        self.pauser: Pauser | None = None
        #: who owns a connected call: its interface is fixed once connected, so it is kept
        self._owners: dict[str, tuple[str | None, float]] = {}
        self._flights: dict[str, asyncio.Future] = {}
        #: interface -> login, and when to read it again
        self._directory: tuple[dict[str, str], float] | None = None
        self._memo = _Memo()
        #: how many pops were built (the ingest path builds none: sockets build them lazily)
        self.pops_built = 0
        watch = getattr(notifier, "watch", None)
        if watch is not None:  # a mapping changed here or on another instance
            watch("interfaces_changed", lambda _note: self.forget_owners())

    @property
    def owners_kept(self) -> int:
        """How many call owners this process keeps in memory (bounded by the call rate)."""
        return len(self._owners)

    def forget_owners(self) -> None:
        """Drop the cached owners and directory: the next question reads them again."""
        self._owners.clear()
        self._directory = None

    # --- who an agent is to Asterisk ---------------------------------------------------------

    async def _user(self, uow, login: str):
        user = await uow.agents.user(login)
        if user is None:
            raise NotFound(f"no user {login!r}", code="no_such_user")
        return user

    async def interfaces(self, login: str) -> list[str]:
        async with self._uow() as uow:
            await self._user(uow, login)
            return await uow.agents.interfaces_of(login)

    async def all_interfaces(self) -> dict[str, list[str]]:
        async with self._uow() as uow:
            return await uow.agents.all_interfaces()

    async def check_free(self, interfaces: Sequence[str], login: str) -> list[str]:
        """The interfaces checked, refused if one of them belongs to another user."""
        wanted = check_interfaces(list(interfaces))
        async with self._uow() as uow:
            _refuse_taken(await uow.agents.owners(wanted), login)
        return wanted

    async def set_interfaces(
        self, login: str, interfaces: Sequence[Any], now: datetime
    ) -> list[str]:
        """Replace the user's interfaces; one that belongs to another user is refused."""
        wanted = check_interfaces(interfaces)
        async with self._uow() as uow:
            user = await self._user(uow, login)
            _refuse_taken(await uow.agents.owners(wanted), login)
            await uow.agents.replace_interfaces(user.id, wanted, now)
            await uow.commit()
        self.forget_owners()
        # the other instances forget theirs too (relayed on PostgreSQL)
        self.notifier.publish({"type": "interfaces_changed", "login": login})
        return wanted

    # --- ownership ---------------------------------------------------------------------------

    async def owner(self, call_id: str) -> str | None:
        """The login owning the call (None: nobody's, or no such call)."""
        hit = self._owners.get(call_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        flight = self._flights.get(call_id)
        if flight is None:  # every socket asking at once shares one read
            flight = asyncio.ensure_future(self._read_owner(call_id))
            self._flights[call_id] = flight
            flight.add_done_callback(lambda _f: self._flights.pop(call_id, None))
        return await asyncio.shield(flight)

    async def _read_owner(self, call_id: str) -> str | None:
        async with self._read() as uow:
            exists, owner = await uow.agents.owner_of_call(call_id)
            connected = exists and (await uow.calls.get(call_id) or {}).get("agent") is not None
        if connected:
            self._remember(call_id, owner)
        return owner

    def _remember(self, call_id: str, owner: str | None) -> None:
        now = time.monotonic()
        if len(self._owners) >= OWNERS_PRUNE_AT:
            # entries live OWNER_CACHE_SECONDS: what is kept follows the call rate, not the
            # number of calls served (the load test's memory must not grow with them)
            self._owners = {k: v for k, v in self._owners.items() if v[1] > now}
            if len(self._owners) >= OWNERS_PRUNE_AT // 2:  # a storm: start afresh
                self._owners.clear()
        # a mapping changed by another process (the CLI) is seen within OWNER_CACHE_SECONDS
        self._owners[call_id] = (owner, now + OWNER_CACHE_SECONDS)

    async def _directory_owner(self, interface: str) -> str | None:
        """The login owning an interface, from a directory read once every few seconds."""
        if self._directory is None or self._directory[1] <= time.monotonic():
            async with self._read() as uow:
                mapping = await uow.agents.all_interfaces()
            inverted = {i: login for login, ifaces in mapping.items() for i in ifaces}
            self._directory = (inverted, time.monotonic() + OWNER_CACHE_SECONDS)
        return self._directory[0].get(interface)

    async def guard(self, login: str, role: str, call_id: str) -> None:
        """403 ``not_your_call`` for an agent and a call that belongs to another user."""
        if role != "agent":
            return
        owner = await self.owner(call_id)
        if owner is not None and owner != login:
            raise Forbidden("this call belongs to another agent", code="not_your_call")

    async def owner_of_note(self, note: dict[str, Any]) -> str | None:
        """The login owning the call a pushed note is about (None: nobody's), for the
        notifier's routing: an agent gets their own calls and calls that belong to nobody."""
        call_id = note["call_id"]
        hit = self._owners.get(call_id)
        if (hit is None or hit[1] <= time.monotonic()) and note.get("agent"):
            # the note names the interface (window_opened, window_warning): no call read
            self._remember(call_id, await self._directory_owner(note["agent"]))
        return await self.owner(call_id)

    # --- the desk and the pop ----------------------------------------------------------------

    async def desk(self, login: str, now: datetime) -> Desk:
        async with self._uow() as uow:
            user = await uow.agents.user(login)
            interfaces = await uow.agents.interfaces_of(login) if user else []
            row = await uow.agents.current_call(login, now - CURRENT_CALL_HORIZON)
            paused = await uow.agents.state(user.id) if user else None
        state = _state(row, paused)
        pop = await self.pop(row["call_id"], now) if row else None
        return Desk(
            now=now,
            login=login,
            display_name=user.display_name if user else "",
            interfaces=interfaces,
            state=state,
            pause_available=self.pauser is not None,
            pause_why=None if self.pauser is not None else NO_AMI,
            call=pop,
        )

    async def pop(self, call_id: str, now: datetime) -> Pop:
        self.pops_built += 1
        if self.reader is not None:  # the driver's own read, as the lookups (no unit of work)
            parts = await self.reader.pop_parts(call_id)
            if parts is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            detail = CallDetail(parts.call, parts.window, parts.ticket, [])
            number, last, tickets = (
                detail.call.get("certificate_number"),
                parts.last_calls,
                parts.open_tickets,
            )
        else:
            detail, last, tickets = await self._pop_parts(call_id)
            number = detail.call.get("certificate_number")
        cert = None
        if number:
            try:
                cert = await self.registry.get(number)
            except NotFound:
                cert = None
        words = None
        if detail.ticket is not None:
            from callcenter.domain.wording import due_words_en, due_words_ru

            words = (due_words_ru(detail.ticket.due_at), due_words_en(detail.ticket.due_at))
        return Pop(detail, cert, last, tickets, words)

    async def _pop_parts(self, call_id: str) -> tuple[CallDetail, list[dict], list[Ticket]]:
        last: list[dict] = []
        tickets: list[Ticket] = []
        async with self._read() as uow:  # one short read: the call's events are not needed
            row = await uow.calls.get(call_id)
            if row is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            detail = CallDetail(
                row, await uow.windows.get(call_id), await uow.tickets.for_call(call_id), []
            )
            number = row.get("certificate_number")
            if number:
                last = await uow.agents.last_calls(number, call_id)
                tickets = await uow.agents.open_tickets(number)
        return detail, last, tickets

    async def pop_for_note(self, note: dict[str, Any], now: datetime) -> Pop | None:
        """The pop a pushed note about a call stands for, built once however many sockets
        get the note (lazily: only when a socket that may see it asks), None if it is gone."""
        key = note.get("_seq")
        task = self._memo.tasks.get(key) if key is not None else None
        if task is None:
            task = asyncio.ensure_future(self.pop(note["call_id"], now))
            if key is not None:
                self._memo.tasks[key] = task
                task.add_done_callback(lambda _t, k=key: self._forget(k))
        try:
            return await asyncio.shield(task)
        except NotFound:
            return None
        except Exception as exc:  # a socket must outlive one pop it could not build
            if getattr(exc, "code", None) is None:
                log.warning("call %s: pop not built: %s", note.get("call_id"), exc)
            return None

    async def early_pop(self, note: dict[str, Any], now: datetime) -> Pop | None:
        """The pop of an ``agent_connected`` not stored yet (``CallLog._early_pop``): the
        stored call as the agent answers it (their interface, the instant they answered), no
        window yet. None when there is nothing to pop early: no such call, or the call is
        already connected or over in the database (the event was stored first, or repeated:
        its ``window_opened`` pops it, or popped it)."""
        pop = await self.pop_for_note(note, now)
        if pop is None:
            return None
        call = pop.detail.call
        # either sign will do: the unit of work's fallback reads in more than one snapshot
        stored = pop.detail.window is not None or call.get("connected_at") is not None
        if stored or call.get("ended_at") is not None:
            return None
        at = note["connected_at"]
        if isinstance(at, str):  # relayed from another instance (pg_notify: ISO text)
            at = datetime.fromisoformat(at)
        answered = {**call, "agent": note["agent"], "connected_at": at}
        return replace(pop, detail=replace(pop.detail, call=answered))

    def _forget(self, key: int) -> None:
        # kept a little while for sockets still behind; dropped once many are newer
        if len(self._memo.tasks) > 256:
            for k in sorted(self._memo.tasks)[:128]:
                self._memo.tasks.pop(k, None)

    def touched(self, call_id: str, kind: str = "call_updated") -> None:
        """Tell the sockets that may see the call that it changed (they fetch the pop)."""
        self.notifier.publish({"type": kind, "call_id": call_id})

    # --- state -------------------------------------------------------------------------------

    async def state(self, login: str, now: datetime) -> AgentState:
        async with self._uow() as uow:
            user = await self._user(uow, login)
            row = await uow.agents.current_call(login, now - CURRENT_CALL_HORIZON)
            return _state(row, await uow.agents.state(user.id))

    async def set_pause(
        self, login: str, paused: bool, reason: str | None, now: datetime
    ) -> AgentState:
        """Pause or unpause in Asterisk (``QueuePause`` per interface), then record it."""
        if self.pauser is None:
            raise Conflict(NO_AMI, code="ami_unavailable")
        reason = (reason or "").strip() or None
        interfaces = await self.interfaces(login)
        if not interfaces:
            raise Conflict(
                "no queue member interface is set for this user: ask an administrator",
                code="no_interfaces",
            )
        for iface in interfaces:
            await self.pauser(iface, paused, reason if paused else None)
        return await self._record_pause(login, paused, reason, now, "page")

    async def _record_pause(
        self, login: str, paused: bool, reason: str | None, now: datetime, source: str
    ) -> AgentState:
        reason = reason if paused else None
        async with self._uow() as uow:
            user = await self._user(uow, login)
            current = await uow.agents.state(user.id)
            if current is not None and (bool(current.paused), current.reason) == (paused, reason):
                # told twice (the page's QueuePause and its QueueMemberPause echo): once
                return _state(
                    await uow.agents.current_call(login, now - CURRENT_CALL_HORIZON), current
                )
            await uow.agents.set_state(user.id, paused, reason, now, source)
            await uow.commit()
        state = await self.state(login, now)
        self.notifier.publish({"type": "agent_state", "login": login, "state": state})
        return state

    async def on_member_pause(
        self, interface: str, paused: bool, reason: str | None, now: datetime
    ) -> bool:
        """An AMI ``QueueMemberPause``: the owner's state follows (False: nobody's interface,
        or nothing changed)."""
        async with self._uow() as uow:
            login = await uow.agents.owner_of_interface(interface)
            if login is None:
                return False
            user = await uow.agents.user(login)
            current = await uow.agents.state(user.id)
        reason = (reason or "").strip() or None
        if current is not None and bool(current.paused) == paused and current.reason == reason:
            return False  # the echo of our own QueuePause, or a repeat
        await self._record_pause(login, paused, reason, now, "ami")
        return True

    # --- wrap-up and the agent's own lists ---------------------------------------------------

    async def wrapup_done(self, login: str, now: datetime) -> str | None:
        """End wrap-up of the agent's ended current call; the call's id (None: nothing to end)."""
        async with self._uow() as uow:
            row = await uow.agents.current_call(login, now - CURRENT_CALL_HORIZON)
            if row is None:
                return None
            if row["ended_at"] is None:
                raise Conflict("the call has not ended yet", code="call_in_progress")
            await uow.calls.update_fields(row["call_id"], now, wrapup_done_at=now)
            await uow.commit()
        self.touched(row["call_id"])
        self.notifier.publish(
            {"type": "agent_state", "login": login, "state": await self.state(login, now)}
        )
        return row["call_id"]

    async def calls_of(self, login: str, day, now: datetime) -> list[dict]:
        start = datetime.combine(day, datetime.min.time(), MOSCOW)
        async with self._uow() as uow:
            return await uow.agents.calls_of(login, start, start + timedelta(days=1))

    async def tickets_of(self, login: str) -> list[Ticket]:
        async with self._uow() as uow:
            return await uow.agents.tickets_of(login)

    # --- the number the caller dictates ------------------------------------------------------

    async def check_certificate(self, call_id: str, number: str, ivr, calls, now: datetime) -> Pop:
        """The agent types the number the caller dictates: the IVR's lookup with its lockout
        (counted against the caller's number), recorded as ``certificate_checked`` from the
        agent, answered with the new pop. 404 for a number the registry does not know, 429
        while locked out."""
        self.registry.number_format.validate(number)
        detail = await self.queries.get(call_id)
        row = detail.call
        result = await ivr.check(call_id, row.get("caller_number"), number, now)
        status = result["status"]
        await calls.record(
            {
                "event": "certificate_checked",
                "call_id": call_id,
                "at": now.isoformat(),
                "source": "agent",
                "certificate": number,
                "status": status,
                "attempt": min(100, (row.get("attempts") or 0) + 1),
            },
            now,
        )
        self.touched(call_id)
        if status == "LOCKED":
            raise TooManyAttempts(
                "too many unknown numbers from this caller or for this number: locked out",
                retry_after=ivr.rule.window_seconds,
                code="locked",
            )
        if status == "UNKNOWN":
            raise NotFound(f"no certificate {number}", code="certificate_unknown")
        return await self.pop(call_id, now)


def _refuse_taken(owners: dict[str, str], login: str) -> None:
    taken = {i: o for i, o in owners.items() if o != login}
    if taken:
        iface, other = sorted(taken.items())[0]
        raise Conflict(
            f"interface {iface} already belongs to user {other}",
            code="interface_taken",
            interface=iface,
        )


def agent_state(current: dict | None, paused) -> AgentState:
    """An agent's state from their current call's row and their pause row: the desk's rule,
    which the supervisor's board applies to every agent at once."""
    return _state(current, paused)


def _state(row: dict | None, paused) -> AgentState:
    if row is not None and row["ended_at"] is None:
        return AgentState("in_call", None, row["connected_at"])
    if paused is not None and paused.paused:
        return AgentState("paused", paused.reason, paused.since)
    if row is not None:
        return AgentState("wrap_up", None, row["ended_at"])
    return AgentState("available", None, paused.since if paused is not None else None)
