"""The call log, agent actions, tickets, reviews and the push channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime

from aiohttp import WSMsgType, web

from callcenter.domain.errors import Unauthorized, ValidationError
from callcenter.domain.instants import InstantError, parse_instant
from callcenter.services.auth import Principal
from callcenter.web import schemas, views
from callcenter.web.agent_api import routes as agent_routes
from callcenter.web.auth import COOKIE, require
from callcenter.web.errors import json_response, read_json
from callcenter.web.keys import CONTAINER
from callcenter.web.schemas import IDENTITY, parse, present

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
__all__ = ["agent_routes", "routes"]


def _when(raw: str | None, name: str, end: bool = False) -> datetime | None:
    """A date filter: an instant (Moscow time if no offset), or a date (Moscow midnight;
    for ``to``, the day after, an exclusive end)."""
    if not raw:
        return None
    try:
        return parse_instant(raw, naive_is_moscow=True, date_allowed=True, end_of_day=end)
    except InstantError as exc:
        raise ValidationError(
            f"'{name}' {exc}, or a date (YYYY-MM-DD)",
            code="invalid_query",
            fields={name: f"{exc}, or a date (YYYY-MM-DD)"},
        ) from None


#: paging deeper than this is a client bug or a probe; the history screens filter instead
MAX_OFFSET = 10_000_000


def _paging(request: web.Request) -> tuple[int, int]:
    bounds = {"limit": (50, 1, 500), "offset": (0, 0, MAX_OFFSET)}
    values, problems = {}, {}
    for name, (default, low, high) in bounds.items():
        raw = request.query.get(name)
        if raw is None:
            values[name] = default
        elif raw.isascii() and raw.isdigit() and len(raw) <= 9 and low <= int(raw) <= high:
            values[name] = int(raw)
        else:
            problems[name] = f"must be an integer from {low} to {high}"
    if problems:
        raise ValidationError(
            "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_query",
            fields=problems,
        )
    return values["limit"], values["offset"]


# --- calls -----------------------------------------------------------------------------------


@routes.get("/api/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    who = await require(request, "calls:read")
    c = request.app[CONTAINER]
    q = request.query
    limit, offset = _paging(request)
    page = await c.calls.search(
        start=_when(q.get("from"), "from"),
        end=_when(q.get("to"), "to", True),
        agent=q.get("agent") or None,
        status=q.get("status") or None,
        limit=limit,
        offset=offset,
        viewer=who.name if who.role == "agent" else None,
    )
    return json_response(views.page_json(page, views.call_summary))


async def _own_call(request: web.Request) -> Principal:
    """The caller, refused (403 ``not_your_call``) when an agent and another user's call."""
    who = await require(request, "calls:read")
    await request.app[CONTAINER].desk.guard(who.name, who.role, request.match_info["call_id"])
    return who


@routes.get("/api/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    await _own_call(request)
    c = request.app[CONTAINER]
    return _call(c, await c.calls.get(request.match_info["call_id"]))


@routes.patch("/api/v1/calls/{call_id}")
async def call_identity(request: web.Request) -> web.Response:
    """The agent records the caller's name, organisation, problem, its category and subject,
    and marks the caller's identity checked or a mismatch (null clears the mark)."""
    await _own_call(request)
    c = request.app[CONTAINER]
    raw = await read_json(request)
    body = parse(schemas.CallIdentity, raw)
    details = present(body, *IDENTITY)
    if "identity_check" in raw and raw["identity_check"] is None:
        details["identity_check"] = ""
    call_id = request.match_info["call_id"]
    detail = await c.calls.set_identity(call_id, c.clock.now(), **details)
    c.desk.touched(call_id)
    return _call(c, detail)


@routes.post("/api/v1/calls/{call_id}/extend")
async def extend_window(request: web.Request) -> web.Response:
    who = await _own_call(request)
    c = request.app[CONTAINER]
    body = parse(schemas.WindowExtension, await read_json(request))
    return _call(
        c,
        await c.calls.extend(
            request.match_info["call_id"], body.reason, who.name, c.clock.now(), body.seconds
        ),
    )


@routes.post("/api/v1/calls/{call_id}/escalate")
async def escalate_call(request: web.Request) -> web.Response:
    who = await _own_call(request)
    c = request.app[CONTAINER]
    body = parse(schemas.CallIdentity, await read_json(request))
    call_id = request.match_info["call_id"]
    detail = await c.calls.escalate(call_id, who.name, c.clock.now(), **present(body, *IDENTITY))
    c.desk.touched(call_id)
    return _call(c, detail)


@routes.post("/api/v1/calls/{call_id}/outcome")
async def call_outcome(request: web.Request) -> web.Response:
    who = await _own_call(request)
    c = request.app[CONTAINER]
    body = parse(schemas.CallOutcome, await read_json(request))
    detail = await c.calls.set_outcome(
        request.match_info["call_id"],
        body.outcome,
        who.name,
        c.clock.now(),
        reason=body.reason,
        note=body.note or "",
        **present(body, *IDENTITY),
    )
    c.desk.touched(detail.call["call_id"])
    return _call(c, detail)


@routes.post("/api/v1/complaints")
async def complaint(request: web.Request) -> web.Response:
    """R-12: a caller's complaint about staff, recorded for the head of support."""
    who = await require(request, "calls:act")
    c = request.app[CONTAINER]
    body = parse(schemas.Complaint, await read_json(request))
    rid = await c.calls.complaint(body.call_id, body.note, who.name, c.clock.now())
    return json_response({"review_id": rid}, 201)


@routes.get("/api/v1/reviews")
async def reviews(request: web.Request) -> web.Response:
    """Calls ended for abuse and complaints about staff, newest first (R-12)."""
    await require(request, "reports:read")
    rows = await request.app[CONTAINER].calls.reviews()
    return json_response({"items": [views.review_json(r) for r in rows]})


# --- tickets ---------------------------------------------------------------------------------


@routes.post("/api/v1/tickets")
async def create_ticket(request: web.Request) -> web.Response:
    who = await require(request, "tickets:write")
    c = request.app[CONTAINER]
    now = c.clock.now()
    body = parse(schemas.PortalTicket, await read_json(request))
    ticket = await c.tickets.create_from_portal(
        now,
        full_name=body.full_name,
        certificate=body.certificate,
        description=body.description,
        organisation=body.organisation or "",
        category=body.category or "other",
        # unknown certificates are rate-limited per token and per address (enumeration)
        requester=(f"token:{who.name}", f"address:{request.remote}"),
    )
    return json_response(views.ticket_json(ticket, now), 201)


@routes.get("/api/v1/tickets/{ticket_id}")
async def get_ticket(request: web.Request) -> web.Response:
    await require(request, "tickets:read")
    c = request.app[CONTAINER]
    return json_response(views.ticket_json(await c.tickets.get(_ticket_id(request)), c.clock.now()))


@routes.get("/api/v1/tickets")
async def list_tickets(request: web.Request) -> web.Response:
    await require(request, "tickets:read")
    c = request.app[CONTAINER]
    q = request.query
    limit, offset = _paging(request)
    status = q.get("status") or None
    if status not in (None, "open", "overdue", "answered", "withdrawn"):
        raise ValidationError(
            "status must be open, overdue, answered or withdrawn",
            code="invalid_query",
            fields={"status": "must be open, overdue, answered or withdrawn"},
        )
    source = q.get("source") or None
    if source not in (None, "call", "portal", "voicemail"):
        raise ValidationError(
            "source must be call, portal or voicemail",
            code="invalid_query",
            fields={"source": "must be call, portal or voicemail"},
        )
    now = c.clock.now()
    page = await c.tickets.search(
        now,
        start=_when(q.get("from"), "from"),
        end=_when(q.get("to"), "to", True),
        status=status,
        source=source,
        limit=limit,
        offset=offset,
    )
    return json_response(views.page_json(page, lambda t: views.ticket_json(t, now)))


@routes.post("/api/v1/tickets/{ticket_id}/answer")
async def answer_ticket(request: web.Request) -> web.Response:
    await require(request, "tickets:answer")
    c = request.app[CONTAINER]
    body = parse(schemas.TicketAnswer, await read_json(request))
    now = c.clock.now()
    ticket = await c.tickets.answer(_ticket_id(request), body.answer, now)
    return json_response(views.ticket_json(ticket, now))


@routes.get("/api/v1/tickets/{ticket_id}/recording")
async def ticket_recording(request: web.Request) -> web.StreamResponse:
    """A voicemail ticket's recording (audio/wav), to play or download."""
    await require(request, "tickets:read")
    c = request.app[CONTAINER]
    tid = _ticket_id(request)
    path = await c.voicemail.recording(tid)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'inline; filename="ticket-{tid}.wav"',
            "Cache-Control": "no-store",
        },
    )


def _call(c, detail) -> web.Response:
    return json_response(views.call_json(detail, c.clock.now()))


def _ticket_id(request: web.Request) -> int:
    raw = request.match_info["ticket_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError(
            "a ticket id is a positive integer",
            code="invalid_ticket_id",
            fields={"ticket_id": "must be a positive integer"},
        )
    return int(raw)


# --- push ------------------------------------------------------------------------------------


@routes.get("/api/v1/stream")
async def stream(request: web.Request) -> web.WebSocketResponse:
    """WebSocket push (docs/agent-screen.md): ``hello``, then the caller's ``desk`` (the
    catch-up after every reconnect), then what happens: an agent gets their own calls, calls
    that belong to nobody and their own state; supervisors and admins everything."""
    who: Principal = await require(request, "calls:read")
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    c = request.app[CONTAINER]
    # an agent's socket gets only the notes addressed to that agent (services/notifier.py);
    # its credentials are re-checked with every other socket's, one read a tick (_Watch)
    async with (
        c.notifier.subscribe(who.name if who.role == "agent" else None) as queue,
        request.app[WATCH].watching(request) as ended,
    ):
        await ws.send_json({"type": "hello", "login": who.name, "role": who.role})
        desk = await c.desk.desk(who.name, c.clock.now())
        await _send(ws, {"type": "desk", **views.desk_json(desk)})
        reader = asyncio.ensure_future(_drain(ws))
        gone = asyncio.ensure_future(ended.wait())
        popped = _Popped()  # the calls this socket sent a call_connected for
        getter: asyncio.Future | None = None
        try:
            while not ws.closed:
                getter = getter or asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, reader, gone}, return_when=asyncio.FIRST_COMPLETED
                )
                if reader in done:
                    break
                if gone in done:  # logout, a disabled user, expiry: here or on another instance
                    await ws.close(code=SESSION_ENDED, message=b"session ended")
                    break
                msg, getter = getter.result(), None
                try:
                    if msg.get("type") == "resync":  # notes may have been missed: catch up
                        desk = await c.desk.desk(who.name, c.clock.now())
                        frames = [{"type": "desk", "resync": True, **views.desk_json(desk)}]
                    else:
                        frames = await _rendered(c, msg, popped)
                except Exception as exc:  # the database away for a moment: skip, stay open
                    log.warning("push of %s skipped: %s", msg.get("type"), exc)
                    continue
                for out in frames:
                    await _send(ws, out)
        finally:
            if getter is not None:
                getter.cancel()
            gone.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await ws.close()
    return ws


async def _send(ws: web.WebSocketResponse, message: dict) -> None:
    await ws.send_str(json.dumps(message, ensure_ascii=False, default=str))


#: notes that carry the call's window, or its ticket, or its whole pop (built lazily, once)
_WITH_WINDOW = {"window_warning", "window_overrun", "window_extended"}


class _Popped:
    """The last calls a socket sent ``call_connected`` for: each call pops once per socket,
    whether its early note (the event received) or its ``window_opened`` (the event stored)
    comes first to be shown; the other then updates it."""

    KEEP = 64

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ids

    def add(self, call_id: str) -> None:
        self._ids[call_id] = None
        if len(self._ids) > self.KEEP:
            del self._ids[next(iter(self._ids))]


async def _rendered(c, msg: dict, popped: _Popped) -> list[dict]:
    """The frames a note becomes on the socket (the pop is built here, off the ingest path,
    and only for a socket that may see the call; every such socket shares one build)."""
    note = views.note_json(msg)
    kind = msg.get("type")
    if kind == "call_connected":  # the event received, not stored yet: the pop, early
        call_id = msg["call_id"]
        if call_id in popped:
            return []
        pop = await c.desk.early_pop(msg, c.clock.now())
        if pop is None:  # nothing to pop early: its window_opened will
            return []
        popped.add(call_id)
        return [
            {
                "type": "call_connected",
                "call_id": call_id,
                "call": views.pop_json(pop, c.clock.now()),
            }
        ]
    if kind == "agent_state" and not isinstance(msg.get("state"), dict):
        state = msg.get("state")
        if state is None:  # relayed from another instance: read here, by login
            state = await c.desk.state(msg["login"], c.clock.now())
        return [{**note, "state": views.state_json(state)}]
    if kind not in _WITH_WINDOW | {"window_opened", "call_updated", "ticket_created"}:
        return [note]
    if not msg.get("call_id"):
        return [note]
    now = c.clock.now()
    pop = await c.desk.pop_for_note(msg, now)
    if pop is None:
        return [note]
    call = views.pop_json(pop, now)
    if kind == "window_opened":
        if msg["call_id"] in popped:  # popped early: now with its window
            return [note, {"type": "call_updated", "call_id": msg["call_id"], "call": call}]
        popped.add(msg["call_id"])
        return [note, {"type": "call_connected", "call_id": msg["call_id"], "call": call}]
    if kind == "call_updated":
        return [{**note, "call": call}]
    if kind == "ticket_created":
        return [{**note, "ticket": call["ticket"]}]
    return [{**note, "window": call["window"]}]


#: how often the open push sockets' sessions (or tokens) are checked to still stand: logout,
#: disable and expiry close a socket within this time, in this instance or another
STREAM_RECHECK_SECONDS = 5.0
SESSION_ENDED = 4001  # WebSocket close code: the credentials behind the socket ended


class _Watch:
    """The open push sockets' credentials, re-checked together: one read a tick for every
    session (``AuthService.sessions_standing``), not one per socket (200 agent pages were
    40 reads a second). A socket whose credentials ended has its event set. The ticking
    task runs while a socket is open; a failed check (the database away) closes nothing."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Event, tuple[object, str, str]] = {}
        self._task: asyncio.Task | None = None

    @contextlib.asynccontextmanager
    async def watching(self, request: web.Request):
        header = request.headers.get("Authorization", "")
        if header:
            cred = ("token", header.partition(" ")[2].strip())
        else:
            cred = ("session", request.cookies.get(COOKIE, ""))
        ended = asyncio.Event()
        self._open[ended] = (request.app[CONTAINER], *cred)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-watch")
        try:
            yield ended
        finally:
            self._open.pop(ended, None)
            if not self._open and self._task is not None:
                self._task.cancel()
                self._task = None

    async def _run(self) -> None:
        while self._open:
            await asyncio.sleep(STREAM_RECHECK_SECONDS)
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away for a moment: try again next tick
                log.warning("push sockets' sessions not re-checked: %s", exc)

    async def _check(self) -> None:
        open_ = list(self._open.items())
        if not open_:
            return
        c = open_[0][1][0]  # one application, one container
        cookies = {value for _, (_, kind, value) in open_ if kind == "session"}
        standing = await c.auth.sessions_standing(cookies, c.clock.now()) if cookies else set()
        tokens: dict[str, bool] = {}
        for _, (_, kind, value) in open_:
            if kind == "token" and value not in tokens:
                try:
                    await c.auth.authenticate_token(value)
                    tokens[value] = True
                except Unauthorized:
                    tokens[value] = False
        for ended, (_, kind, value) in open_:
            stands = value in standing if kind == "session" else tokens[value]
            if not stands:
                ended.set()


#: the application's one watch over its push sockets
WATCH: web.AppKey[_Watch] = web.AppKey("stream_watch")


def install(app: web.Application) -> None:
    app[WATCH] = _Watch()


async def _drain(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break
