"""The caller dialogue, written once as a sans-IO state machine (a generator).

The flow yields *actions* and is sent their results:

- :class:`Agi` — an AGI command line; the driver answers with the :class:`AgiReply`.
- :class:`WorkingTime` — is the line open now; answered with :class:`OpenState`.
- :class:`CallerCertificates` — the caller-ID shortcut; a list of :class:`Hint`.
- :class:`Check` — the certificate lookup with lockout accounting; a status string.
- :class:`Report` — a call event for the service; the answer is ignored.

A service action may be answered with :data:`SERVICE_DOWN` instead; the flow asks no more
questions of a service that failed once in a call (its reports are still handed over: the
process AGI keeps them in its spool and sends them later), and never leaves the caller without
a route.
Three drivers run it: the pyst2 script (blocking I/O), the FastAGI server (asyncio) and tests.
The flow has no clock and no I/O of its own, so it imports only the standard library and the
AGI wire helpers (a process-AGI script must start fast).

One concern in ~500 lines: the three flows share their steps (prompts, retries, reports) and
the records they exchange with the drivers, and a process AGI loads the dialogue as one
module at every call's start.
"""

from __future__ import annotations

from callcenter.domain.numbers import number_problem
from callcenter.telephony import agi
from callcenter.telephony import variables as v
from callcenter.telephony.prompts import sound

# No typing, dataclasses or datetime at run time: a process AGI imports this module at every
# call's start, and ``dataclasses`` alone pulls in ``inspect`` (~8 ms). The records below are
# what ``@dataclass`` generated for them, written out: same fields and argument order, same
# equality, hashing and repr; the frozen ones refuse assignment with an AttributeError.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from datetime import datetime
    from typing import Any


_Frozen = agi.FrozenRecord
_set = object.__setattr__

# --- actions ---------------------------------------------------------------------------------


class Agi(_Frozen):
    __slots__ = __match_args__ = ("line",)
    line: str

    def __init__(self, line: str) -> None:
        _set(self, "line", line)


class WorkingTime(_Frozen):
    __slots__ = ()

    def __init__(self) -> None:
        pass


class CallerCertificates(_Frozen):
    __slots__ = __match_args__ = ("caller",)
    caller: str

    def __init__(self, caller: str) -> None:
        _set(self, "caller", caller)


class Check(_Frozen):
    __slots__ = __match_args__ = ("call_id", "caller", "number")
    call_id: str
    caller: str | None
    number: str

    def __init__(self, call_id: str, caller: str | None, number: str) -> None:
        _set(self, "call_id", call_id)
        _set(self, "caller", caller)
        _set(self, "number", number)


class Voicemail(_Frozen):
    """A message recorded on the closed line (``path``: the WAV file Asterisk wrote); the
    driver answers with the ticket's id, or SERVICE_DOWN / None when none was made."""

    __slots__ = __match_args__ = ("call_id", "caller", "number", "path")
    call_id: str
    caller: str | None
    number: str
    path: str

    def __init__(self, call_id: str, caller: str | None, number: str, path: str) -> None:
        _set(self, "call_id", call_id)
        _set(self, "caller", caller)
        _set(self, "number", number)
        _set(self, "path", path)


class Report(_Frozen):
    __slots__ = __match_args__ = ("event",)
    event: dict[str, Any]

    def __init__(self, event: dict[str, Any]) -> None:
        _set(self, "event", event)


class _ServiceDown:
    def __repr__(self) -> str:
        return "SERVICE_DOWN"


SERVICE_DOWN = _ServiceDown()


class _Kept:
    def __repr__(self) -> str:
        return "KEPT"


#: What a driver answers a Voicemail with when the service could not take the message now but
#: the driver kept it (its spool) to hand over later: no ticket number yet, nothing lost.
KEPT = _Kept()

#: What a driver answers when the channel is gone (pipe closed, socket closed, no reply).
DEAD = agi.parse_reply("511 Command Not Permitted on a dead channel or intercept routine")


class OpenState(_Frozen):
    __slots__ = __match_args__ = ("open", "next_opening")
    open: bool
    next_opening: datetime | None

    def __init__(self, open: bool, next_opening: datetime | None = None) -> None:
        _set(self, "open", open)
        _set(self, "next_opening", next_opening)


class Hint(_Frozen):
    __slots__ = __match_args__ = ("number", "status")
    number: str
    status: str

    def __init__(self, number: str, status: str) -> None:
        _set(self, "number", number)
        _set(self, "status", status)


# --- options and outcome ---------------------------------------------------------------------


class IvrOptions(_Frozen):
    """What the flow needs to know; built from settings by the drivers."""

    __slots__ = __match_args__ = (
        "min_length",
        "max_length",
        "luhn",
        "max_attempts",
        "digit_timeout_ms",
        "offer_timeout_ms",
        "queue",
        "source",
        "language",
        "voicemail",
        "record_dir",
        "record_max_ms",
        "record_silence_s",
    )
    min_length: int
    max_length: int
    luhn: bool
    max_attempts: int
    digit_timeout_ms: int
    offer_timeout_ms: int
    queue: str
    source: str
    language: str
    voicemail: bool
    record_dir: str
    record_max_ms: int
    record_silence_s: int

    def __init__(
        self,
        min_length: int = 6,
        max_length: int = 20,
        luhn: bool = False,
        max_attempts: int = 3,
        digit_timeout_ms: int = 7000,
        offer_timeout_ms: int = 5000,
        queue: str = "support",
        source: str = "agi",
        language: str = "ru",
        voicemail: bool = True,
        record_dir: str = "/var/spool/asterisk/callcenter-voicemail",
        record_max_ms: int = 40_000,
        record_silence_s: int = 4,
    ) -> None:
        _set(self, "min_length", min_length)
        _set(self, "max_length", max_length)
        _set(self, "luhn", luhn)
        _set(self, "max_attempts", max_attempts)
        _set(self, "digit_timeout_ms", digit_timeout_ms)
        _set(self, "offer_timeout_ms", offer_timeout_ms)
        _set(self, "queue", queue)
        _set(self, "source", source)
        _set(self, "language", language)
        _set(self, "voicemail", voicemail)
        _set(self, "record_dir", record_dir)
        _set(self, "record_max_ms", record_max_ms)
        _set(self, "record_silence_s", record_silence_s)

    @classmethod
    def from_settings(cls, settings, source: str) -> IvrOptions:
        """The options of ``callcenter.config.Settings`` (duck-typed: this module stays lean)."""
        c, i, vm = settings.certificates, settings.ivr, settings.voicemail
        return cls(
            min_length=c.min_length,
            max_length=c.max_length,
            luhn=c.check_digit == "luhn",
            max_attempts=i.max_attempts,
            digit_timeout_ms=i.digit_timeout_ms,
            queue=i.queue,
            source=source,
            language=i.language,
            voicemail=vm.enabled,
            record_dir=vm.record_dir,
            record_max_ms=vm.max_seconds * 1000,
            record_silence_s=vm.silence_seconds,
        )

    def number_problem(self, digits: str) -> str | None:
        """The local check, so a typo costs no lookup (the registry's own rules)."""
        return number_problem(digits, self.min_length, self.max_length, self.luhn)


_NEW_LIST: list[str] = []  # a marker, never used as a list


class Outcome(agi.Record):
    """How a flow ended (a mutable record, compared by its fields)."""

    __slots__ = __match_args__ = (
        "call_id",
        "route",
        "status",
        "number",
        "hung_up",
        "service_down",
        "attempts",
        "log",
    )
    call_id: str
    route: str
    status: str
    number: str
    hung_up: bool
    service_down: bool
    attempts: int
    log: list[str]

    def __init__(
        self,
        call_id: str = "",
        route: str = "",
        status: str = "",
        number: str = "",
        hung_up: bool = False,
        service_down: bool = False,
        attempts: int = 0,
        log: list[str] = _NEW_LIST,  # a fresh list for each outcome
    ) -> None:
        self.call_id = call_id
        self.route = route
        self.status = status
        self.number = number
        self.hung_up = hung_up
        self.service_down = service_down
        self.attempts = attempts
        self.log = [] if log is _NEW_LIST else log


class CallerHungUp(Exception):
    """The caller left mid-dialogue; the flow stops at once."""


if TYPE_CHECKING:
    Flow = Generator[Any, Any, Outcome]


def __getattr__(name: str):
    """``Flow``, the type of a flow (``Generator[Any, Any, Outcome]``), built on first use."""
    if name == "Flow":
        from collections.abc import Generator
        from typing import Any

        return Generator[Any, Any, Outcome]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_FAIL_PROMPTS = {
    v.UNKNOWN: "not-found",
    v.EXPIRED: "expired",
    v.NOT_YET_VALID: "not-yet-valid",
    v.NOT_COVERED: "not-found",
}


#: a message shorter than this says nothing: no ticket. RECORD FILE keeps 1 s of the silence
#: that ended it, so this is that second and half a second more (at 8 kHz)
MIN_MESSAGE_SAMPLES = 12000


def _file_name(call_id: str) -> str:
    """The recording's file name (no extension) for a call id such as ``1795482833.0``."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in call_id)
    return "voicemail-" + (safe.lstrip(".") or "call")


#: the language a caller switches to with ``*`` after the welcome
OTHER_LANGUAGE = {"ru": "en", "en": "ru"}

#: the keys that end a prompt preceding a digit collection (``#`` alone says nothing yet)
TYPE_AHEAD = "0123456789*"


def caller_number(env: dict[str, str]) -> str | None:
    """The caller's number the dialogue asks the service with (the caller-ID shortcut, the
    lockout); None without caller ID ("unknown", anonymous, no digits)."""
    raw = env.get("agi_callerid", "").strip()
    if not raw or raw.lower() == "unknown" or not any(ch.isdigit() for ch in raw):
        return None
    return raw


def collect_certificate(env: dict[str, str], opts: IvrOptions) -> Flow:
    """The support-line dialogue: working time, certificate number, entitlement, route."""
    out = Outcome()
    service_up = True

    def service(action, always: bool = False) -> Generator[Any, Any, Any]:
        nonlocal service_up
        if not service_up and not always:
            return SERVICE_DOWN
        result = yield action
        if result is SERVICE_DOWN:
            service_up = False
            out.service_down = True
            out.log.append(f"service unavailable at {type(action).__name__}")
        return result

    def command(line: str) -> Generator[Any, Any, agi.AgiReply]:
        reply = yield Agi(line)
        if reply.code == 511:
            raise CallerHungUp
        if reply.code == 200 and reply.result == "-1":
            # -1 is a hangup, or a prompt file that is missing (fact 4): ask the channel.
            status = yield Agi(agi.channel_status())
            if status.code != 200:
                raise CallerHungUp
            out.log.append(f"missing sound file? {line.strip()}")
        return reply

    def play(*names: str) -> Generator[Any, Any, None]:
        for name in names:
            yield from command(agi.stream_file(sound(name)))

    def play_ahead(*names: str) -> Generator[Any, Any, str]:
        """Prompts that precede a digit collection, streamed with the digits as escape
        digits: a caller who types ahead ends the prompt, and the key pressed is returned
        to be fed into the collection (fact 16: without escape digits it would be lost)."""
        for name in names:
            reply = yield from command(agi.stream_file(sound(name), TYPE_AHEAD))
            if reply.dtmf:
                return reply.dtmf
        return ""

    def identify(ahead: str) -> Generator[Any, Any, str]:
        """The number, up to ``max_attempts`` tries, each failure told why: the status it
        ends with (VALID, LOCKED, UNVERIFIED when the service is down, else the last one)."""
        status = v.NO_INPUT
        while out.attempts < opts.max_attempts:
            out.attempts += 1
            digits = yield from collect("enter-number", ahead, opts.max_length)
            ahead = ""
            if not digits:
                said = "no-input"
            elif (problem := opts.number_problem(digits)) is not None:
                out.log.append(f"attempt {out.attempts}: rejected locally ({problem})")
                status = v.UNKNOWN
                out.number = digits[: opts.max_length]
                said = "invalid-number"
            else:
                out.number = digits
                checked = yield from service(Check(out.call_id, caller, digits))
                status = v.UNVERIFIED if checked is SERVICE_DOWN else checked
                yield from report(
                    "certificate_checked", certificate=digits, status=status, attempt=out.attempts
                )
                if status in (v.VALID, v.LOCKED, v.UNVERIFIED):
                    return status
                said = _FAIL_PROMPTS.get(status, "not-found")
            if out.attempts < opts.max_attempts:
                ahead = yield from play_ahead(said, "try-again")
            else:
                yield from play(said)
        if status == v.NO_INPUT:
            yield from report("certificate_checked", status=v.NO_INPUT, attempt=out.attempts)
        return status

    def voicemail() -> Generator[Any, Any, None]:
        """The closed line takes a message: the number (same lookup and lockout as in
        hours), a recording, a ticket whose number is read back. An invalid certificate is
        told why and not recorded."""
        reply = yield from command(agi.get_data(sound("vm-offer"), opts.offer_timeout_ms, 1))
        if reply.digits != "1":
            return
        status = yield from identify("")
        if status == v.LOCKED:
            yield from play("locked")
            return
        if status == v.UNVERIFIED:
            yield from play("vm-unavailable")
            return
        if status != v.VALID:
            yield from play("vm-refused")
            return
        yield from play("vm-record")
        path = opts.record_dir.rstrip("/") + "/" + _file_name(out.call_id)
        reply = yield Agi(
            agi.record_file(path, "wav", "#", opts.record_max_ms, silence_s=opts.record_silence_s)
        )
        if reply.code != 200:
            raise CallerHungUp  # 511: gone before the recording started
        hung_up = reply.data == "hangup"  # the message up to the hangup is kept
        if reply.data in ("writefile", "randomerror", "waitfor") or (
            reply.result == "-1" and not hung_up
        ):
            out.log.append(f"recording failed: {reply.raw}")
            alive = yield Agi(agi.channel_status())
            if alive.code != 200:
                raise CallerHungUp
            yield from play("vm-unavailable")
            return
        if (reply.endpos or 0) < MIN_MESSAGE_SAMPLES:
            out.log.append("no message recorded")
            if hung_up:
                raise CallerHungUp
            yield from play("vm-empty")
            return
        ticket = yield from service(
            Voicemail(out.call_id, caller, out.number, path + ".wav"), always=True
        )
        if hung_up:  # the message is kept; nobody is left to hear its number
            out.hung_up = True
            out.log.append("caller hung up after leaving a message")
            yield from report("call_ended", hangup_by="caller")
            return
        if ticket is KEPT:  # spooled: it becomes a ticket when the service is back
            out.log.append("message kept for the service")
            yield from play("vm-kept")
            return
        if not isinstance(ticket, int):
            yield from play("vm-unavailable")
            return
        yield from play("vm-saved")
        yield from command(agi.say_digits(ticket))
        yield from play("goodbye")

    def greet() -> Generator[Any, Any, str]:
        """The prompts in ``[ivr] language``, the welcome, and the offer of the other language
        (``*``); a key typed ahead over them is returned (fact 16)."""
        if env.get("agi_language") != opts.language:
            yield from command(agi.set_variable("CHANNEL(language)", opts.language))
        ahead = yield from play_ahead("welcome", "other-language")
        if ahead == "*":
            other = OTHER_LANGUAGE.get(opts.language, "ru")
            yield from command(agi.set_variable("CHANNEL(language)", other))
            out.log.append(f"the caller switched to {other}")
            ahead = ""
        return ahead

    def collect(prompt: str, ahead: str, max_digits: int) -> Generator[Any, Any, str]:
        """GET DATA of the number; after a key typed ahead, no prompt (the caller is already
        typing) and that key first. Sent at once: DTMF between commands is discarded."""
        if not ahead:
            reply = yield from command(
                agi.get_data(sound(prompt), opts.digit_timeout_ms, max_digits)
            )
            return reply.digits or ""
        if max_digits <= 1:
            return ahead
        reply = yield from command(agi.get_data("", opts.digit_timeout_ms, max_digits - 1))
        return ahead + (reply.digits or "")

    def report(event: str, **fields: Any) -> Generator[Any, Any, None]:
        body = {"event": event, "call_id": out.call_id, "source": opts.source}
        body.update({k: val for k, val in fields.items() if val is not None})
        # always handed over, even once the service failed: the driver keeps what it
        # cannot deliver (the process AGI's spool) rather than lose the call's history
        yield from service(Report(body), always=True)

    def finish(route: str, status: str) -> Generator[Any, Any, None]:
        out.route, out.status = route, status
        yield from command(agi.set_variable(v.CERT_NUMBER, out.number))
        yield from command(agi.set_variable(v.CERT_STATUS, status))
        yield from command(agi.set_variable(v.ROUTE, route))

    caller = caller_number(env)
    try:
        linked = yield from command(agi.get_variable("CHANNEL(linkedid)"))
        out.call_id = (linked.data if linked.code == 200 and linked.data else None) or env.get(
            "agi_uniqueid", "unknown"
        )
        yield from command(agi.set_variable(v.CALL_ID, out.call_id))
        yield from report(
            "call_started",
            caller_number=caller,
            channel=env.get("agi_channel") or None,
            dnid=None if env.get("agi_dnid") in (None, "", "unknown") else env["agi_dnid"],
        )

        # always asked, even once a report failed: a driver that cannot reach the service
        # answers from its local calendar (closed on a Saturday is closed, service or not)
        state = yield from service(WorkingTime(), always=True)
        if state is SERVICE_DOWN or state is None:
            state = OpenState(True)  # the driver could not tell; queue rather than strand
        if not state.open:
            yield from finish(v.ROUTE_CLOSED, v.CLOSED)
            yield from greet()
            yield from play("closed")
            if state.next_opening is not None:
                yield from play("opens-at")
                when = int(state.next_opening.timestamp())
                yield from command(
                    agi.format_command("SAY DATETIME", when, "", "AdB", "Europe/Moscow")
                )
                yield from command(agi.say_number(state.next_opening.hour))
                yield from play("hours-moscow")
            yield from play("portal")
            yield from report("certificate_checked", status=v.CLOSED)
            if opts.voicemail:
                yield from voicemail()
            return out

        ahead = yield from greet()

        if caller and not ahead:
            hints = yield from service(CallerCertificates(caller))
            valid = [h for h in hints if h.status == v.VALID] if isinstance(hints, list) else []
            if len(valid) == 1:
                ahead = yield from play_ahead("offer-cert-ending")
                if not ahead:
                    reply = yield from command(agi.say_digits(valid[0].number[-4:], TYPE_AHEAD))
                    ahead = reply.dtmf or ""
                if not ahead:
                    reply = yield from command(
                        agi.get_data(sound("offer-press-1"), opts.offer_timeout_ms, 1)
                    )
                    if reply.digits == "1":
                        out.number = valid[0].number
                        yield from report(
                            "certificate_checked", certificate=out.number, status=v.VALID, attempt=1
                        )
                        return (yield from _queue(out, opts, finish, report, play))
                    if reply.digits and reply.digits != "2":
                        ahead = reply.digits  # not an answer: the first key of a number

        status = yield from identify(ahead)
        if status in (v.VALID, v.UNVERIFIED):
            return (yield from _queue(out, opts, finish, report, play, status))
        if status == v.LOCKED:
            yield from finish(v.REFUSED, v.LOCKED)
            yield from play("locked")
            return out
        yield from finish(v.REFUSED, status)
        yield from play("refused")
        return out
    except CallerHungUp:
        out.hung_up = True
        out.log.append("caller hung up in the IVR")
        if out.call_id:
            yield from report("call_ended", hangup_by="caller", abandoned="ivr")
        return out


def _queue(out: Outcome, opts: IvrOptions, finish, report, play, status: str = v.VALID):
    yield from finish(v.QUEUE, status)
    yield from play("connecting")
    yield from report("queued", queue=opts.queue)
    return out


def _value(reply: agi.AgiReply) -> str:
    """The text of a GET (FULL) VARIABLE reply; "" when unset (``200 result=0``) or failed."""
    return reply.data or "" if reply.code == 200 and reply.result == "1" else ""


def _interface(channel: str) -> str:
    """The device of a channel: ``PJSIP/101-0000002a`` -> ``PJSIP/101``."""
    base = channel.split(";", 1)[0]
    head, sep, tail = base.rpartition("-")
    return head if sep and tail and all(c in "0123456789abcdef" for c in tail) else base


def agent_connected(env: dict[str, str], opts: IvrOptions) -> Flow:
    """On the agent's channel (Queue()'s Gosub): which agent answered whose call (fact 11)."""
    out = Outcome()
    linked = _value((yield Agi(agi.get_variable("CHANNEL(linkedid)"))))
    arg1 = _value((yield Agi(agi.get_variable("ARG1"))))
    if arg1.startswith("${"):
        arg1 = ""  # membergosub= passes its arguments unexpanded (fact 11)
    out.call_id = arg1 or linked or env.get("agi_arg_1", "") or env.get("agi_uniqueid", "")
    agent = _value((yield Agi(agi.get_variable("MEMBERINTERFACE")))) or _interface(
        env.get("agi_channel", "")
    )
    name = _value((yield Agi(agi.get_variable("MEMBERNAME"))))
    hold = _value((yield Agi(agi.get_variable("QEHOLDTIME"))))
    body = {
        "event": "agent_connected",
        "call_id": out.call_id,
        "agent": agent,
        "source": opts.source,
    }
    if name and name != agent:
        body["agent_name"] = name
    if hold.isascii() and hold.isdigit() and len(hold) <= 5 and int(hold) <= 86400:
        body["hold_seconds"] = int(hold)  # anything else would cost the report its 422
    result = yield Report(body)
    out.service_down = result is SERVICE_DOWN
    out.route = "connected"
    return out


def call_ended(env: dict[str, str], opts: IvrOptions) -> Flow:
    """The caller's hangup handler, in dead mode (fact 13): who hung up, and where."""
    out = Outcome()
    linked = _value((yield Agi(agi.get_variable("CHANNEL(linkedid)"))))
    out.call_id = (
        linked or _value((yield Agi(agi.get_variable(v.CALL_ID)))) or env.get("agi_uniqueid", "")
    )
    route = _value((yield Agi(agi.get_variable(v.ROUTE))))
    member = _value((yield Agi(agi.get_variable("MEMBERINTERFACE"))))
    cause = _value((yield Agi(agi.get_variable("HANGUPCAUSE"))))
    source = _value((yield Agi(agi.get_full_variable("${CHANNEL(hangupsource)}"))))
    body: dict[str, Any] = {"event": "call_ended", "call_id": out.call_id, "source": opts.source}
    own = env.get("agi_channel", "")
    if source and own and source == own:
        body["hangup_by"] = "caller"
    elif source.startswith("dialplan/") or route in (v.ROUTE_CLOSED, v.REFUSED):
        body["hangup_by"] = "system"
    elif source and member and source.startswith(member.split("/n")[0]):
        body["hangup_by"] = "agent"
    elif not source and member:
        # Local-channel members leave hangupsource empty (fact 17): the agent's own hangup
        # handler ([cc-agent-hangup]) marks this channel when the agent's side went first
        gone = _value((yield Agi(agi.get_full_variable("${SHARED(" + v.AGENT_GONE + ")}"))))
        body["hangup_by"] = "agent" if gone else "caller"
    if not member:
        if route == v.QUEUE:
            body["abandoned"] = "queue"
        elif not route:
            body["abandoned"] = "ivr"
    if cause:
        body["cause"] = cause
    result = yield Report(body)
    out.service_down = result is SERVICE_DOWN
    out.route = route
    return out


FLOWS = {
    "collect_certificate": collect_certificate,
    "agent_connected": agent_connected,
    "call_ended": call_ended,
}


def run_to_end(flow: Flow, answer) -> Outcome:
    """Drive a flow with a plain function (used by tests and the simulator)."""
    try:
        action = next(flow)
        while True:
            action = flow.send(answer(action))
    except StopIteration as stop:
        return stop.value
