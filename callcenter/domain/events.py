"""Call events as the PBX reports them (contract §3): validated strictly, stdlib only.

Each event names the call by Asterisk's linkedid of the caller's channel. ``at`` is when it
happened on the switch (ISO 8601, with an offset); without it the service's receipt time is
used. An ``at`` must be believable (:class:`InstantRange`): a switch that boots with its
clock in 1970 must not open a window whose deadline passed half a century ago.

The same event sent twice is the same event, whether or not the sender said when it
happened (:meth:`CallEvent.dedup_key`): with ``at``, the key is the event's kind, call,
instant and fields, so a retry (the spool's, stamped once) is recognised and two real
occurrences at different instants are both kept; without ``at``, the receipt time is not the
event's and must not be in its key, so the key is the kind, call and fields alone (for
``certificate_checked`` the ``attempt`` is one of them): a repeat of it is the same event,
and the first receipt, the earliest, is the instant the call keeps, as the projection would
have taken anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callcenter.domain.cert_status import CERT_STATUSES
from callcenter.domain.errors import ValidationError
from callcenter.domain.instants import InstantError, parse_instant

HANGUP_BY = ("caller", "agent", "system")
_CALL_ID = re.compile(r"^[0-9A-Za-z._\-:]{1,64}$")

# event -> {field: (type, required, max length or allowed values)}
_STR = str
SCHEMA: dict[str, dict[str, tuple[type, bool, Any]]] = {
    "call_started": {
        "caller_number": (_STR, False, 40),
        "channel": (_STR, False, 200),
        "dnid": (_STR, False, 40),
    },
    "certificate_checked": {
        "certificate": (_STR, False, 32),
        "status": (_STR, True, CERT_STATUSES),
        "attempt": (int, False, (1, 100)),
    },
    "queued": {"queue": (_STR, True, 80)},
    "agent_connected": {
        "agent": (_STR, True, 200),
        "agent_name": (_STR, False, 200),
        "hold_seconds": (int, False, (0, 86400)),
    },
    "call_ended": {
        "hangup_by": (_STR, False, HANGUP_BY),
        "cause": (_STR, False, 40),
        "abandoned": (_STR, False, ("ivr", "queue")),
    },
}
COMMON = {"event", "call_id", "at", "source"}
SOURCES = ("agi", "fastagi", "ami", "simulator", "api", "agent")


@dataclass(frozen=True)
class CallEvent:
    event: str
    call_id: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "api"
    at_given: bool = True

    def dedup_key(self) -> str:
        """Same event, same key: type, call, instant (when the sender gave it) and fields,
        never the source nor the receipt time (see the module's docstring)."""
        key = self.__dict__.get("_key")
        if key is None:
            instant = self.at.isoformat() if self.at_given else None
            canon = json.dumps(
                [self.event, self.call_id, instant, self.data],
                sort_keys=True,
                ensure_ascii=False,
            )
            key = hashlib.sha256(canon.encode()).hexdigest()
            object.__setattr__(self, "_key", key)  # computed once: a hash per sort is costly
        return key

    @classmethod
    def stored(
        cls, event: str, call_id: str, at: datetime, data: dict, source: str, key: str
    ) -> CallEvent:
        """An event read back from the store, with the key it was stored under."""
        ev = cls(event, call_id, at, data, source)
        object.__setattr__(ev, "_key", key)
        return ev

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "call_id": self.call_id,
            "at": self.at.isoformat(),
            "source": self.source,
            **self.data,
        }


@dataclass(frozen=True)
class InstantRange:
    """Which instants an event may carry, relative to the service's clock when it arrives.

    Far enough back for a spool replayed after an outage (a week by default: a longer
    outage is noticed, and what it kept is set aside as ``.rejected``, not lost, to be sent
    again with the limit raised); barely ahead, as clocks on one network drift by seconds,
    not minutes. ``years``: the calendar's years, which due times are counted in.
    """

    past: timedelta = timedelta(days=7)
    future: timedelta = timedelta(minutes=5)
    years: tuple[int, int] = (datetime.min.year, datetime.max.year)

    def problem(self, at: datetime, now: datetime) -> str | None:
        """Why ``at`` is not believable at ``now`` (None: it is)."""
        if not self.years[0] <= at.year <= self.years[1]:
            return f"must be within the calendar's years {self.years[0]}..{self.years[1]}"
        if now - at > self.past:
            return (
                f"is more than {_span(self.past)} before the service's clock "
                f"({now.isoformat()}): is the switch's clock right?"
            )
        if at - now > self.future:
            return (
                f"is more than {_span(self.future)} after the service's clock "
                f"({now.isoformat()}): is the switch's clock right?"
            )
        return None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def parse_event(
    body: Any, received_at: datetime, accepted: InstantRange | None = None
) -> CallEvent:
    """A validated event, or ValidationError listing every problem by field.

    ``accepted``: the instants believable now (by default :class:`InstantRange`'s)."""
    if not isinstance(body, dict):
        raise ValidationError("an event must be a JSON object", code="invalid_event")
    problems: dict[str, str] = {}
    kind = body.get("event")
    if not isinstance(kind, str) or kind not in SCHEMA:
        problems["event"] = f"must be one of {', '.join(SCHEMA)}"
        raise ValidationError(_summary(problems), code="invalid_event", fields=problems)
    call_id = body.get("call_id")
    if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
        problems["call_id"] = "must be the caller channel's linkedid (1-64 of 0-9 A-Z . _ - :)"
    at = received_at
    at_given = "at" in body and body["at"] is not None
    if at_given:
        try:
            at = parse_instant(body["at"])
        except InstantError as exc:
            problems["at"] = str(exc)
        else:
            wrong = (accepted or InstantRange()).problem(at, received_at)
            if wrong is not None:
                problems["at"] = wrong
    source = body.get("source", "api")
    if source not in SOURCES:
        problems["source"] = f"must be one of {', '.join(SOURCES)}"
    spec = SCHEMA[kind]
    data: dict[str, Any] = {}
    for name, value in body.items():
        if name in COMMON:
            continue
        if name not in spec:
            problems[name] = f"is not a field of {kind}"
            continue
        typ, _, rule = spec[name]
        if value is None:
            continue
        if typ is int:
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not (rule[0] <= value <= rule[1])
            ):
                problems[name] = f"must be an integer from {rule[0]} to {rule[1]}"
                continue
        elif not isinstance(value, str):
            problems[name] = "must be a string"
            continue
        elif isinstance(rule, tuple) and value not in rule:
            problems[name] = f"must be one of {', '.join(rule)}"
            continue
        elif isinstance(rule, int) and len(value) > rule:
            problems[name] = f"must be at most {rule} characters"
            continue
        data[name] = value
    for name, (_, required, _) in spec.items():
        if required and data.get(name) in (None, "") and name not in problems:
            problems[name] = "is required"
    if problems:
        raise ValidationError(_summary(problems), code="invalid_event", fields=problems)
    return CallEvent(kind, call_id, at, data, source, at_given)


def _summary(problems: dict[str, str]) -> str:
    return "; ".join(f"{k} {v}" for k, v in problems.items())
