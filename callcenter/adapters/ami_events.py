"""Which AMI events stand for which call events: the second source of the same bodies.

The dialplan hooks (AGI / FastAGI) report a call only where the dialplan calls them. AMI sees
every queue join, agent answer, abandon and hangup, so the 10-minute window stays right even
if a hook is missing. :func:`to_call_event` turns the four events that matter into the same
bodies the HTTP API takes (``callcenter.domain.events``).

Every channel event of a call (caller, agent, Local ``;1``/``;2`` halves) carries ``Linkedid``
= the caller channel's uniqueid; queue events are reported on the caller channel. CEL events
spell the ids ``UniqueID``/``LinkedID``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from callcenter.adapters.ami_codec import get_field as _get
from callcenter.domain.errors import Conflict, Unavailable


def to_call_event(ev: Mapping[str, str]) -> dict[str, Any] | None:
    """The call-event body (``callcenter.domain.events.parse_event``) an AMI event stands
    for, or None if it stands for none.

    ============================  ==============================================================
    AMI event                     body
    ============================  ==============================================================
    ``QueueCallerJoin``           ``queued``: ``queue`` = Queue
    ``AgentConnect``              ``agent_connected``: ``agent`` = Interface (the member,
                                  e.g. ``Local/agent1@agents/n``), ``agent_name`` = MemberName,
                                  ``hold_seconds`` = HoldTime
    ``QueueCallerAbandon``        ``call_ended``: ``hangup_by`` = caller, ``abandoned`` = queue
    ``Hangup`` (Uniqueid ==       ``call_ended``: ``cause`` = Cause (e.g. ``"16"``). The agent's
    Linkedid, i.e. the caller's   channels and the Local ``;2`` halves hang up with the same
    own channel)                  Linkedid and are ignored.
    anything else (CEL too)       None
    ============================  ==============================================================

    ``call_id`` is the Linkedid (the caller channel's uniqueid; queue events are reported on
    the caller channel). ``at`` is set only if the event has a ``Timestamp`` field
    (``timestampevents=yes`` in manager.conf); otherwise the service stamps the receipt time.
    """
    name = (_get(ev, "Event") or "").lower()
    if name not in _MAPPED:
        return None
    call_id = _get(ev, "Linkedid")
    if not call_id:
        return None
    body: dict[str, Any] = {"event": _MAPPED[name], "call_id": call_id}
    at = _timestamp(ev)
    if at is not None:
        body["at"] = at
    body["source"] = "ami"
    if name == "queuecallerjoin":
        queue = _get(ev, "Queue")
        if not queue:
            return None
        body["queue"] = queue
    elif name == "agentconnect":
        # 'Member' is what Asterisk <= 11 called the interface.
        agent = _get(ev, "Interface") or _get(ev, "Member")
        if not agent:
            return None
        body["agent"] = agent
        member_name = _get(ev, "MemberName")
        if member_name:
            body["agent_name"] = member_name
        hold = _int(_get(ev, "HoldTime"))
        if hold is not None and 0 <= hold <= 86400:
            body["hold_seconds"] = hold
    elif name == "queuecallerabandon":
        body["hangup_by"] = "caller"
        body["abandoned"] = "queue"
    else:  # hangup
        if _get(ev, "Uniqueid") != call_id:
            return None
        cause = _get(ev, "Cause")
        if cause:
            body["cause"] = cause
    return body


_MAPPED = {
    "queuecallerjoin": "queued",
    "agentconnect": "agent_connected",
    "queuecallerabandon": "call_ended",
    "hangup": "call_ended",
}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _timestamp(ev: Mapping[str, str]) -> str | None:
    raw = _get(ev, "Timestamp")
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return None


def member_pause(ev: Mapping[str, str]) -> tuple[str, bool, str | None] | None:
    """``(interface, paused, reason)`` of a ``QueueMemberPause`` event, else None.

    Asterisk 22 (``app_queue.c``, ``queue_member_blob_create``) sends one per queue the member
    is in, with ``Interface``, ``Paused`` (``1``/``0``) and ``PausedReason``; older versions
    spelt the reason ``Reason``."""
    if (_get(ev, "Event") or "").lower() != "queuememberpause":
        return None
    interface = _get(ev, "Interface") or _get(ev, "Location")
    paused = (_get(ev, "Paused") or "").strip().lower()
    if not interface or paused not in ("0", "1", "true", "false", "yes", "no"):
        return None
    reason = _get(ev, "PausedReason") or _get(ev, "Reason") or None
    return interface, paused in ("1", "true", "yes"), reason


def queue_pause(client) -> Callable[[str, bool, str | None], Awaitable[None]]:
    """The desk's pauser: ``QueuePause`` for one interface in every queue (no ``Queue``).

    Asterisk answers ``Response: Success`` / ``Message: Interface paused successfully`` (or
    ``unpaused``), or ``Response: Error`` / ``Message: Interface not found``
    (``manager_pause_queue_member``). A session that is down is :class:`Unavailable` (503);
    a refusal is a :class:`Conflict` naming the interface and Asterisk's message."""
    from callcenter.adapters.ami import AmiError

    async def pause(interface: str, paused: bool, reason: str | None) -> None:
        fields = {"Interface": interface, "Paused": "true" if paused else "false"}
        if reason:
            fields["Reason"] = reason
        try:
            reply = await client.action("QueuePause", **fields)
        except AmiError as exc:
            raise Unavailable(
                f"the switch's manager interface does not answer now: {exc}", code="ami_down"
            ) from None
        if (_get(reply, "Response") or "").lower() != "success":
            raise Conflict(
                f"Asterisk refused to pause {interface}: {_get(reply, 'Message') or 'no reason'}",
                code="ami_refused",
            )

    return pause
