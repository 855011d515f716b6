"""``callcenter simulate``: play the switch against the FastAGI server, for demos and load.

Each simulated call does what Asterisk does with ``config/asterisk/extensions.conf``: a
FastAGI session for ``collect_certificate`` on the caller's channel, then — if the route is
QUEUE and the caller does not give up — ``agent_connected`` on an agent channel (with the
caller's linkedid, fact 11), then ``call_ended`` from the caller's hangup handler. Replies
follow the recorded Asterisk formats; timings are realistic unless ``--speed`` compresses
them (``--speed 0``: no waiting at all, for load).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from callcenter.telephony import emulation

SCENARIOS = (
    "valid",
    "shortcut",
    "typo",
    "unknown",
    "expired",
    "no_input",
    "abandon_ivr",
    "abandon_queue",
    "long_talk",
)
MIX = {
    "valid": 50,
    "shortcut": 10,
    "typo": 10,
    "unknown": 8,
    "expired": 5,
    "no_input": 5,
    "abandon_ivr": 4,
    "abandon_queue": 4,
    "long_talk": 4,
}
_ids = itertools.count(1)


@dataclass
class SimCall:
    scenario: str
    caller: str
    inputs: list[str | None]  # digits typed per GET DATA; None = silence; "HANGUP"
    talk_seconds: float = 0.0
    wait_seconds: float = 0.0
    agent: str = "PJSIP/101"
    uniqueid: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    route: str = ""
    service_ms: float = 0.0
    #: each FastAGI session's server-side time (ms) and each HTTP event post's time (ms)
    sessions_ms: list[float] = field(default_factory=list)
    posts_ms: list[float] = field(default_factory=list)
    connected: bool = False  # agent_connected was reported (a window opened)


class SwitchSession:
    """One FastAGI session seen from Asterisk's side, with instant or paced replies."""

    def __init__(self, call: SimCall, speed: float, rng: random.Random) -> None:
        self.call, self.speed, self.rng = call, speed, rng
        self.inputs = list(call.inputs)
        self.dead = False

    async def pause(self, seconds: float) -> None:
        if self.speed > 0 and seconds > 0:
            await asyncio.sleep(seconds * self.speed)

    async def run(
        self, host: str, port: int, script: str, env: dict[str, str], channel_vars: dict[str, str]
    ) -> float:
        """Run the script; returns the server's own time (total minus our pauses), in ms."""
        reader, writer = await asyncio.open_connection(host, port)
        paused = 0.0
        started = time.perf_counter()
        try:
            head = [
                "agi_network: yes",
                f"agi_network_script: {script}",
                f"agi_request: agi://{host}:{port}/{script}",
            ]
            lines = head + [f"{k}: {v}" for k, v in env.items()] + [""]
            writer.write(("\n".join(lines) + "\n").encode())
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                t0 = time.perf_counter()
                reply = await self.answer(raw.decode().strip(), channel_vars)
                paused += time.perf_counter() - t0
                writer.write((reply + "\n").encode())
                await writer.drain()
        finally:
            if not writer.is_closing():
                writer.write(b"HANGUP\n")  # Asterisk ends every FastAGI session so (fact 7)
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
        return (time.perf_counter() - started - paused) * 1000

    async def answer(self, line: str, vars_: dict[str, str]) -> str:
        words = emulation.parse_command_args(line)
        cmd = " ".join(words[:2]).upper()
        if self.dead and cmd not in ("GET VARIABLE", "SET VARIABLE", "GET FULL", "VERBOSE"):
            return emulation.DEAD_CHANNEL_REPLY
        if cmd == "GET VARIABLE":
            value = vars_.get(words[2])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if cmd == "SET VARIABLE":
            vars_[words[2]] = words[3] if len(words) > 3 else ""
            self.call.variables[words[2]] = vars_[words[2]]
            return "200 result=1"
        if cmd == "GET FULL":
            return "200 result=1 ()"
        if cmd == "STREAM FILE":
            await self.pause(2.0)
            return "200 result=0 endpos=16000"
        if words[0].upper() == "SAY":
            await self.pause(1.5)
            return "200 result=0"
        if cmd == "GET DATA":
            await self.pause(2.5)
            typed = self.inputs.pop(0) if self.inputs else None
            if typed == "HANGUP":
                self.dead = True
                return "200 result=-1"
            if typed is None:
                await self.pause(int(words[3]) / 1000 if len(words) > 3 else 7)
                return "200 result= (timeout)"
            await self.pause(0.35 * len(typed))
            return f"200 result={typed}"
        if cmd == "CHANNEL STATUS":
            return emulation.DEAD_CHANNEL_REPLY if self.dead else "200 result=6"
        if words[0].upper() == "VERBOSE":
            return "200 result=1"
        return "200 result=0"


def plan_call(
    scenario: str,
    rng: random.Random,
    numbers: list[str],
    contacts: dict[str, str],
    agents: list[str] | None = None,
) -> SimCall:
    """A call of the given kind with random but plausible inputs and timings; answered by
    one of ``agents`` (queue member interfaces; default: the demo's operators)."""
    from callcenter.demo import AGENT_INTERFACES  # the demo's operators answer on these

    n = next(_ids)
    uniqueid = f"{int(time.time())}.{n}"
    caller = f"7900{rng.randrange(10**7):07d}"
    valid = rng.choice(numbers) if numbers else "1000000000017"
    talk = rng.uniform(60, 480)
    inputs: list[str | None] = [valid]
    if scenario == "shortcut" and contacts:
        caller, valid = rng.choice(sorted(contacts.items()))
        inputs = ["1"]
    elif scenario == "typo":
        inputs = [valid[:-1] + str((int(valid[-1]) + 3) % 10), valid]
    elif scenario == "unknown":
        inputs = [f"9{rng.randrange(10**9):09d}" for _ in range(3)]
    elif scenario == "expired":
        inputs = ["1000000000033"]
    elif scenario == "no_input":
        inputs = [None, None, None]
    elif scenario == "abandon_ivr":
        inputs = ["HANGUP"]
    elif scenario == "long_talk":
        talk = rng.uniform(660, 900)
    return SimCall(
        scenario,
        caller,
        inputs,
        talk_seconds=talk,
        wait_seconds=rng.uniform(3, 40),
        agent=rng.choice(agents or AGENT_INTERFACES),
        uniqueid=uniqueid,
    )


def _env(call: SimCall, channel: str, context: str) -> dict[str, str]:
    return {
        "agi_channel": channel,
        "agi_language": "ru",
        "agi_type": "PJSIP",
        "agi_uniqueid": call.uniqueid,
        "agi_version": "22.10.1",
        "agi_callerid": call.caller,
        "agi_calleridname": "unknown",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "4951234567",
        "agi_rdnis": "unknown",
        "agi_context": context,
        "agi_extension": "s",
        "agi_priority": "4",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140520195507904",
    }


async def simulate_call(
    host: str,
    port: int,
    call: SimCall,
    speed: float,
    rng: random.Random,
    *,
    post=None,
    on_connect=None,
) -> SimCall:
    """Play one call. ``post``: an ``async (body) -> None`` that sends an event over HTTP
    (``POST /api/v1/events``); given, the agent's answer and the hangup are reported by it,
    as the process-AGI scripts report them, instead of by FastAGI sessions (the IVR is
    FastAGI either way). ``on_connect(call)``: called just before the agent's answer is
    reported (a screen-pop clock starts there)."""
    caller_chan = f"PJSIP/provider-{next(_ids):08x}"
    vars_ = {"CHANNEL(linkedid)": call.uniqueid}
    session = SwitchSession(call, speed, rng)
    env = _env(call, caller_chan, "support-line")
    await _session(call, session, host, port, "collect_certificate", env, vars_)
    call.route = call.variables.get("CC_ROUTE", "")
    if call.route == "QUEUE" and call.scenario != "abandon_queue":
        await session.pause(call.wait_seconds)
        if on_connect is not None:
            on_connect(call)
        call.connected = True
        if post is not None:
            body = {
                "event": "agent_connected",
                "call_id": call.uniqueid,
                "agent": call.agent,
                "source": "agi",
                "hold_seconds": int(call.wait_seconds),
            }
            await _post(call, post, body)
        else:
            agent_chan = f"{call.agent}-{next(_ids):08x}"
            agent_vars = {
                "CHANNEL(linkedid)": call.uniqueid,
                "ARG1": call.uniqueid,
                "MEMBERINTERFACE": call.agent,
                "MEMBERNAME": f"Оператор {call.agent[-3:]}",
                "QEHOLDTIME": str(int(call.wait_seconds)),
            }
            env = _env(call, agent_chan, "cc-agent-connected")
            agent = SwitchSession(call, speed, rng)
            await _session(call, agent, host, port, "agent_connected", env, agent_vars)
        await session.pause(call.talk_seconds)
        vars_["MEMBERINTERFACE"] = call.agent
    elif call.route == "QUEUE":
        await session.pause(call.wait_seconds)
    if post is not None:
        ended = {"event": "call_ended", "call_id": call.uniqueid, "source": "agi"}
        ended["hangup_by"] = "caller"
        if call.route == "QUEUE" and not call.connected:
            ended["abandoned"] = "queue"
        elif not call.route:
            ended["abandoned"] = "ivr"
        await _post(call, post, ended)
        return call
    hangup = SwitchSession(call, speed, rng)
    hangup.dead = True
    env = _env(call, caller_chan, "cc-hangup")
    await _session(call, hangup, host, port, "call_ended", env, vars_)
    return call


async def _session(call: SimCall, session: SwitchSession, host, port, script, env, vars_):
    ms = await session.run(host, port, script, env, vars_)
    call.service_ms += ms
    call.sessions_ms.append(ms)


async def _post(call: SimCall, post, body: dict) -> None:
    t0 = time.perf_counter()
    await post(body)
    call.posts_ms.append((time.perf_counter() - t0) * 1000)


async def run(
    host: str,
    port: int,
    calls: int,
    concurrency: int,
    scenario: str,
    speed: float,
    numbers: list[str],
    contacts: dict[str, str],
    seed: int | None = None,
    interval: float = 0.0,
) -> list[SimCall]:
    rng = random.Random(seed)
    sem = asyncio.Semaphore(concurrency)
    kinds = list(MIX) if scenario == "mixed" else [scenario]
    weights = [MIX[k] for k in kinds]

    async def one(i: int) -> SimCall:
        async with sem:
            call = plan_call(rng.choices(kinds, weights)[0], rng, numbers, contacts)
            return await simulate_call(host, port, call, speed, rng)

    tasks = []
    for i in range(calls):
        tasks.append(asyncio.ensure_future(one(i)))
        if interval:
            await asyncio.sleep(interval)
    return list(await asyncio.gather(*tasks))


def summary(done: list[SimCall], seconds: float) -> str:
    routes = Counter((c.scenario, c.route or "-") for c in done)
    lines = [f"{len(done)} calls in {seconds:.1f} s ({_rate(len(done), seconds)})"]
    for (scen, route), n in sorted(routes.items()):
        lines.append(f"  {scen:<14} -> {route:<8} {n}")
    ms = [c.service_ms for c in done if c.service_ms]
    if ms:
        lines.append(f"service-side time per call: median {statistics.median(ms):.1f} ms")
    return "\n".join(lines)


def _rate(count: int, seconds: float) -> str:
    """Calls per second with the digits that matter: 5 calls in 14 s is 0.36/s, not 0/s."""
    per_second = count / max(seconds, 1e-9)
    if per_second >= 10:
        return f"{per_second:.0f}/s"
    return f"{per_second:.2g}/s, {per_second * 60:.3g}/min"


def demo_numbers(now) -> tuple[list[str], dict[str, str]]:
    from callcenter.calendar import MOSCOW
    from callcenter.demo import demo_certificates

    certs = demo_certificates(now)
    day = now.astimezone(MOSCOW).date()
    valid = [c.number for c in certs if c.status_on(day).value == "VALID"]
    contacts = {
        ct.phone.lstrip("+"): c.number for c in certs if c.number in valid for ct in c.contacts
    }
    return valid, contacts


def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "simulate", parents=[common], help="play the switch: place calls through the FastAGI server"
    )
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=5)
    p.add_argument("--scenario", choices=("mixed", *SCENARIOS), default="mixed")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time factor: 1 = real time, 0.01 = 100x faster, 0 = no waiting",
    )
    p.add_argument(
        "--number",
        action="append",
        default=[],
        help="a valid certificate number to use (default: the demo ones)",
    )
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_cmd)


def _user_error(message: str) -> int:
    """A bad argument: one line on stderr and exit code 2, as every ``callcenter`` command."""
    import sys

    print(f"callcenter: error: {message}", file=sys.stderr)
    return 2


async def _cmd(args) -> int:
    from datetime import UTC, datetime

    from callcenter.config import load_settings

    if args.calls < 1 or args.concurrency < 1 or args.speed < 0:
        return _user_error("--calls and --concurrency must be positive, --speed not negative")
    s = load_settings(getattr(args, "config", None))
    numbers, contacts = demo_numbers(datetime.now(UTC))
    if args.number:
        numbers, contacts = args.number, {}
    t0 = time.perf_counter()
    try:
        done = await run(
            s.fastagi.host,
            s.fastagi.port,
            args.calls,
            args.concurrency,
            args.scenario,
            args.speed,
            numbers,
            contacts,
            args.seed,
        )
    except ConnectionRefusedError:
        return _user_error(
            f"nothing listens on agi://{s.fastagi.host}:{s.fastagi.port}/ "
            "(is `callcenter serve` running?)"
        )
    print(summary(done, time.perf_counter() - t0))
    return 0
