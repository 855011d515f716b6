"""Load test (issue 14): two instances on one PostgreSQL, calls kept in flight for minutes.

Usage: python bench/bench_load.py --pg URL [--duration 600] [--quick] [--agents 200]
                                  [--in-flight 200] [--speed 0.05] [--sample 5] [--json FILE]
                                  [--tracemalloc PREFIX]

- two ``callcenter serve`` on the one database, each with its FastAGI port;
- ``--agents`` agent users, each mapped to its own queue interface (``PJSIP/<1000+i>``),
  logged in, with the agent page's push socket (``/api/v1/stream``) open on instance
  ``i % 2``, and a supervisor's socket on instance B: every frame they get is counted;
- the simulator (callcenter/telephony/simulator.py) keeping ``--in-flight`` calls going
  for ``--duration`` seconds, with its realistic scenario mix, timings compressed by
  ``--speed`` (0.05: 20x): the IVR by FastAGI, to the instances in turn; the agent's
  answer and the hangup by FastAGI on the same instance or, for every other call, posted over HTTP
  (``POST /api/v1/events``, what the process-AGI scripts do) to the *other* instance; an
  answered call's agent is one that is free, as a queue would pick;
- the oral window is the service's own setting, compressed like the calls
  (``policy.oral_window_seconds`` = 600 x speed, ``warning_seconds`` = 120 x speed), so the
  long talks (660-900 s of the call's time) overrun it and become tickets.

At the end, from the database and the sockets: every simulated call present once; each
answered call one ``agent_connected``, one window, its pop once on its own agent's socket and
on no other; each overrun window one ticket and one ``window_overrun`` frame; every long talk
warned once and ticketed, no call that ended well inside its window ticketed. Any loss or
double is listed and the exit status is 1.

Figures: calls/s and events/s served; latency percentiles of the FastAGI dialogue (service
side, as the simulator measures it), the event POST (round trip) and the pop (from the
agent's answer reported to the frame on their socket); both instances' memory (VmRSS) every
``--sample`` seconds with the number of calls served then, and a slope in MiB per 1,000 calls
after the warm-up (the first fifth of the run): memory must not grow with calls served.
What the memory is made of: ``--tracemalloc PREFIX`` (callcenter/memtrace.py) has both
instances write a heap snapshot at every progress line, or with
``CALLCENTER_TRACEMALLOC_FRAMES=0`` (no tracing, no slowdown) the allocators' own figures
into their logs, which are then kept.
Baselines, measured in the same run with the same client: a bare FastAGI echo (a two-command
dialogue, no service) and a bare HTTP event insert (bench/bare_ingest.py) on the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _common import FIGURES, ROOT, Served, env_for, free_port, json_option, pct

sys.path.insert(0, str(ROOT))

from callcenter.telephony import simulator

PASSWORD = "load-password-1"
LONG_TALK = "long_talk"
RETRIES, RETRY_SECONDS = 20, 0.5  # an event refused with a 503 is sent again (process AGI)
POP_WAIT = 180  # the most the check waits for pops still coming, after the last window

_SETUP = r"""
import asyncio, json, sys
from callcenter import bootstrap
from callcenter.adapters import db
from callcenter.config import load_settings
from callcenter.demo import demo_certificates

async def main(agents, password):
    c = bootstrap.build(load_settings())
    await db.upgrade(c.engine)
    now = c.clock.now()
    await c.registry.import_certificates(demo_certificates(now), now)
    cookies = []
    try:
        for i in range(agents):
            login = f"agent{i:03d}"
            await c.auth.add_user(login, "agent", password, now, display_name=f"Агент {i}")
            await c.desk.set_interfaces(login, [f"PJSIP/{1000 + i}"], now)
            session = await c.auth.open_session(login, password, now, f"10.1.{i // 250}.{i % 250}")
            cookies.append(session.cookie)
        token = await c.auth.create_token("load-pbx", "pbx", now)
        sup = await c.auth.create_token("load-supervisor", "supervisor", now)
    finally:
        await c.close()
    print(json.dumps({"cookies": cookies, "token": token, "supervisor": sup}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""

#: the floor of a FastAGI dialogue: read the environment, two commands, close
_BARE_AGI = r"""
import asyncio, sys

async def session(reader, writer):
    try:
        while (await reader.readline()).strip():
            pass
        for cmd in (b"GET VARIABLE CHANNEL(linkedid)\n", b"SET VARIABLE CC_ROUTE QUEUE\n"):
            writer.write(cmd)
            await writer.drain()
            await reader.readline()
    except ConnectionError:
        pass  # the switch hung up first
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(session, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def always_open(work: Path) -> dict[str, str]:
    """Settings that keep the line open whenever the run happens (every dialogue can queue)."""
    import datetime as dt

    year = dt.date.today().year
    days = [dt.date(year, 1, 1) + dt.timedelta(d) for d in range(730)]
    p = work / "always-open.toml"
    p.write_text("working_days = [" + ", ".join(f'"{d}"' for d in days) + "]\n")
    return {
        "CALLCENTER_CALENDAR_OVERRIDES_FILE": str(p),
        "CALLCENTER_POLICY_DAY_START": "00:00",
        "CALLCENTER_POLICY_DAY_END": "23:59",
    }


def window_settings(speed: float) -> dict[str, str]:
    """The oral window and its warning compressed like the calls (whole seconds)."""
    window = max(4, round(600 * speed))
    warning = max(1, min(window - 1, round(120 * speed)))
    return {
        "CALLCENTER_POLICY_ORAL_WINDOW_SECONDS": str(window),
        "CALLCENTER_POLICY_WARNING_SECONDS": str(warning),
        "CALLCENTER_TIMERS_GRACE_SECONDS": "1",
        "CALLCENTER_TIMERS_RESYNC_SECONDS": "2",
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 when xs do not vary)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


class Socket:
    """A push socket and every frame it got, read by a task of its own."""

    def __init__(self, http, url: str, headers: dict, connect_times: dict, pops: list) -> None:
        self.http, self.url, self.headers = http, url, headers
        self.connect_times, self.pops = connect_times, pops
        self.frames: Counter = Counter()  # (type, call_id) -> count
        self.opened = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closed_early = False

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.opened.wait(), 60)

    async def _run(self) -> None:
        import aiohttp

        async with self.http.ws_connect(
            self.url + "/api/v1/stream", headers=self.headers, heartbeat=30
        ) as ws:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                kind = frame.get("type")
                if kind == "desk":
                    self.opened.set()
                call_id = frame.get("call_id")
                self.frames[(kind, call_id)] += 1
                if kind == "call_connected" and call_id in self.connect_times:
                    self.pops.append(time.perf_counter() - self.connect_times[call_id])
        self.closed_early = True

    def calls(self, kind: str) -> Counter:
        return Counter({cid: n for (k, cid), n in self.frames.items() if k == kind})


@dataclass
class Outcome:
    """What one load run did, measured and found."""

    calls: list = field(default_factory=list)  # SimCall, each done
    errors: list[str] = field(default_factory=list)  # the client's own failures
    problems: list[str] = field(default_factory=list)  # losses and doubles found
    seconds: float = 0.0
    events: int = 0
    memory: list[tuple[float, int, float, float]] = field(default_factory=list)
    pops: list[float] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)
    retries: int = 0  # event posts sent again after a 503 or a lost connection
    #: answered calls: from just before the agent's answer was reported to just after the
    #: hangup was (s, the simulator's clock): the longest the call's own instants can span
    lasted: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # found, but not a loss or a double


async def _scalar_rows(url: str, sql: str) -> list[tuple]:
    from sqlalchemy import text

    from callcenter.adapters import db

    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def drive(
    instances: list[Served],
    creds: dict,
    *,
    agents: int,
    in_flight: int,
    duration: float,
    speed: float,
    sample: float,
    seed: int,
    out,
    mix: dict[str, int] | None = None,
    snapshots: bool = False,
) -> Outcome:
    """Connect the sockets, keep ``in_flight`` calls going for ``duration`` s, wait for the
    last calls and their timers; the calls and what the sockets got."""
    import aiohttp

    res = Outcome()
    res.counts["speed"] = speed
    rng = random.Random(seed)
    numbers, contacts = simulator.demo_numbers(datetime.now(UTC))
    mix = mix or simulator.MIX
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    connect_times: dict[str, float] = {}
    interfaces = [f"PJSIP/{1000 + i}" for i in range(agents)]
    free: asyncio.Queue[str] = asyncio.Queue()
    for iface in interfaces:
        free.put_nowait(iface)
    pbx = {"Authorization": f"Bearer {creds['token']}"}
    b = instances[-1]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets: list[Socket] = []
        for i, cookie in enumerate(creds["cookies"]):
            srv = instances[i % len(instances)]
            headers = {"Cookie": f"cc_session={cookie}", "Origin": srv.url}
            sockets.append(Socket(http, srv.url, headers, connect_times, res.pops))
        sup = Socket(http, b.url, {"Authorization": f"Bearer {creds['supervisor']}"}, {}, [])
        for s in (*sockets, sup):
            await s.start()
        out(f"{len(sockets)} agent sockets open ({len(instances)} instances) and a supervisor's")

        def poster(srv: Served):
            async def post(body: dict) -> None:
                """What the process AGI does (telephony/process_agi.py, ``resolve``): the
                event is stamped with when it happened from its first send (the call's clock
                wins: an overloaded instance that reads the request seconds later must not
                date the event then); a 503 (the database away or overloaded) or a lost
                connection is not an acknowledgement, so the same event is sent again;
                anything else but a 2xx is a failure."""
                body = {"at": datetime.now(UTC).isoformat(), **body}
                for attempt in range(RETRIES + 1):
                    try:
                        async with http.post(
                            srv.url + "/api/v1/events", json=body, headers=pbx
                        ) as r:
                            text = await r.text()
                            if r.status < 300:
                                return
                            if r.status != 503 or attempt == RETRIES:
                                raise RuntimeError(f"POST {body['event']}: {r.status} {text}")
                    except aiohttp.ClientConnectionError:
                        if attempt == RETRIES:
                            raise
                    res.retries += 1
                    await asyncio.sleep(RETRY_SECONDS)

            return post

        posters = [poster(s) for s in instances]
        started = time.monotonic()
        end = started + duration
        n = 0

        def on_connect(call) -> None:
            connect_times[call.uniqueid] = time.perf_counter()

        async def worker() -> None:
            nonlocal n
            while time.monotonic() < end:
                k = n
                n += 1
                iface = await free.get()
                call = simulator.plan_call(
                    rng.choices(kinds, weights)[0], rng, numbers, contacts, [iface]
                )
                ivr = instances[k % len(instances)]
                post = posters[(k + 1) % len(instances)] if (k // 2) % 2 else None
                try:
                    await simulator.simulate_call(
                        "127.0.0.1", ivr.agi_port, call, speed, rng, post=post,
                        on_connect=on_connect,
                    )  # fmt: skip
                    if call.uniqueid in connect_times:
                        res.lasted[call.uniqueid] = (
                            time.perf_counter() - connect_times[call.uniqueid]
                        )
                    res.calls.append(call)
                except Exception as exc:
                    res.errors.append(f"call {call.uniqueid} ({call.scenario}): {exc!r}")
                    res.calls.append(call)
                finally:
                    free.put_nowait(iface)

        async def sampler() -> None:
            while True:
                res.memory.append(
                    (time.monotonic() - started, len(res.calls),
                     *(rss_mib(s.proc.pid) for s in instances))
                )  # fmt: skip
                res.loads.append(loadavg())
                await asyncio.sleep(sample)

        sampling = asyncio.create_task(sampler())
        progress_every = max(sample, duration / 10)

        async def progress() -> None:
            while True:
                await asyncio.sleep(progress_every)
                m = res.memory[-1] if res.memory else None
                rss = " / ".join(f"{x:.0f}" for x in m[2:]) if m else "?"
                out(
                    f"  {time.monotonic() - started:5.0f} s: {len(res.calls)} calls done, "
                    f"{len(res.errors)} client errors, RSS {rss} MiB, load {loadavg()}"
                )
                if snapshots:  # --tracemalloc: each instance writes a heap snapshot
                    for s in instances:
                        s.proc.send_signal(signal.SIGUSR2)

        reporting = asyncio.create_task(progress())
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        res.seconds = time.perf_counter() - t0
        reporting.cancel()
        if snapshots:
            for s in instances:
                s.proc.send_signal(signal.SIGUSR2)
        sampling.cancel()
        res.memory.append(
            (time.monotonic() - started, len(res.calls), *(rss_mib(s.proc.pid) for s in instances))
        )
        res.loads.append(loadavg())

        # the last windows: their deadline, the grace and a resync, then nothing may fire again
        # and the events a FastAGI session kept in its spool while the database was away
        url = instances[0].db_url
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            (left,) = await _scalar_rows(
                url,
                "SELECT (SELECT count(*) FROM oral_windows WHERE status IN ('open', 'extended'))"
                " + (SELECT count(*) FROM calls WHERE ended_at IS NULL)",
            )
            if left[0] == 0:
                break
            await asyncio.sleep(1)
        connected = {c.uniqueid: c.agent for c in res.calls if c.connected}
        by_agent = {iface: sockets[i] for i, iface in enumerate(interfaces)}

        def unpopped() -> int:
            return sum(
                1 for c, a in connected.items() if not by_agent[a].frames[("call_connected", c)]
            )

        # the pops still on their way: under overload a socket renders its notes minutes
        # late (pop p99 188 s at half speed), so wait while they keep coming, for up to
        # POP_WAIT s more, and say how many came late (a late pop is not a lost one)
        late_from, waited = unpopped(), time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and unpopped():
            before = unpopped()
            await asyncio.sleep(0.5)
            if unpopped() < before:
                deadline = min(waited + POP_WAIT, time.monotonic() + 30)
        if late_from:
            res.notes.append(
                f"{late_from - unpopped()} of {late_from} pops not there when the last window "
                f"closed came within {time.monotonic() - waited:.0f} s more"
            )
        await asyncio.sleep(5)  # two resyncs more: nothing fires again
        check(res, url, sockets, sup, interfaces)
        for s in (*sockets, sup):
            if s.task:
                s.task.cancel()
    return res


def check(res: Outcome, url: str, sockets: list[Socket], sup: Socket, interfaces) -> None:
    """Every loss and double, from the database and the sockets, into ``res.problems``."""
    p = res.problems
    calls = {c.uniqueid: c for c in res.calls}
    if len(calls) != len(res.calls):
        p.append(f"the simulator reused call ids ({len(res.calls) - len(calls)})")

    def q(sql: str) -> list[tuple]:
        return _sync(url, sql)

    stored = {r[0] for r in q("SELECT call_id FROM calls")}
    lost, extra = set(calls) - stored, stored - set(calls)
    if lost:
        p.append(f"{len(lost)} calls lost (not in the database): {sorted(lost)[:5]}")
    if extra:
        p.append(f"{len(extra)} calls in the database the simulator did not make")
    ended = {r[0] for r in q("SELECT call_id FROM calls WHERE ended_at IS NOT NULL")}
    if set(calls) - ended:
        p.append(f"{len(set(calls) - ended)} calls without their end")
    for event in ("call_started", "agent_connected"):
        doubled = q(
            f"SELECT call_id, count(*) FROM call_events WHERE event = '{event}' "
            "GROUP BY call_id HAVING count(*) > 1"
        )
        if doubled:
            p.append(f"{len(doubled)} calls with {event} stored more than once: {doubled[:3]}")
    answered = {cid for cid, c in calls.items() if c.connected}
    have = {r[0] for r in q("SELECT call_id FROM call_events WHERE event = 'agent_connected'")}
    if answered - have:
        p.append(f"{len(answered - have)} answered calls without their agent_connected")
    windows = {r[0]: r[1:] for r in q("SELECT call_id, status, warned_at FROM oral_windows")}
    if set(windows) != answered:
        p.append(
            f"windows: {len(answered - set(windows))} answered calls without one, "
            f"{len(set(windows) - answered)} for calls not answered"
        )
    still = [cid for cid, (status, _) in windows.items() if status in ("open", "extended")]
    if still:
        p.append(f"{len(still)} windows still open after the run")
    overrun = {cid for cid, (status, _) in windows.items() if status in ("overrun", "escalated")}
    tickets = q("SELECT call_id, count(*) FROM tickets WHERE source = 'call' GROUP BY call_id")
    ticketed = {cid for cid, _ in tickets}
    doubled = [cid for cid, n in tickets if n > 1]
    if doubled:
        p.append(f"{len(doubled)} calls with more than one ticket")
    if ticketed != overrun:
        p.append(
            f"tickets: {len(overrun - ticketed)} overrun windows without one, "
            f"{len(ticketed - overrun)} for windows not overrun"
        )
    window = float(_sync(url, "SELECT max(length_seconds) FROM oral_windows")[0][0] or 0)
    speed = res.counts.get("speed", 0)
    long_talks = {cid for cid in answered if calls[cid].scenario == LONG_TALK}
    if long_talks - ticketed:
        p.append(f"{len(long_talks - ticketed)} long talks past their window without a ticket")
    # a call ended well inside its window by its own clock: from before its answer was
    # reported to after its hangup was. Not by its planned talk alone: the simulator talks
    # only once the answer's report returned (a FastAGI dialogue, or a POST answered only
    # once stored), so under overload a short talk can end past the window by the instants
    # the bench itself sent, and its ticket is due (the real process AGI gives up after
    # 1.5 s and spools; the bench's POST waits for the answer)
    short = {cid for cid in answered if res.lasted.get(cid, window) < window - 2}
    if short & ticketed:
        p.append(f"{len(short & ticketed)} tickets for calls that ended well inside the window")
    planned = {cid for cid in answered if calls[cid].talk_seconds * speed < window - 2}
    if (planned - short) & ticketed:
        res.notes.append(
            f"{len((planned - short) & ticketed)} calls ticketed with a talk planned well inside "
            "the window that lasted past it, from the answer reported to the hangup reported "
            "(the answer's report waited on the overloaded service before the talk began)"
        )
    warned = {cid for cid, (_, at) in windows.items() if at is not None}
    if long_talks - warned:
        p.append(f"{len(long_talks - warned)} long talks never warned")
    # the sockets: each pop once, on its own agent's socket only; windows' news once
    mine: dict[str, set[str]] = defaultdict(set)
    for cid in answered:
        mine[calls[cid].agent].add(cid)
    wrong = missing = twice = 0
    for iface, s in zip(interfaces, sockets, strict=True):
        got = s.calls("call_connected")
        missing += len(mine[iface] - set(got))
        wrong += len(set(got) - mine[iface])
        twice += sum(1 for n in got.values() if n > 1)
    if missing or wrong or twice:
        p.append(f"pops: {missing} missing, {wrong} on another agent's socket, {twice} twice")
    for kind, expected in (
        ("call_connected", answered),
        ("window_overrun", overrun),
        ("window_warning", warned),
        ("ticket_created", ticketed),
    ):
        got = sup.calls(kind)
        if set(got) - expected or any(n > 1 for n in got.values()):
            p.append(
                f"supervisor's {kind}: {len(set(got) - expected)} unexpected, "
                f"{sum(1 for n in got.values() if n > 1)} more than once"
            )
        if expected - set(got):
            # not a loss of data: the notifier keeps a bounded queue per socket; one that falls
            # a whole queue behind loses what it had not read and is told to resync (a fresh
            # desk; the board reads itself again) (services/notifier.py, _put). The board's
            # socket takes every note, so under load it is the one that falls behind
            resyncs = sup.frames[("desk", None)] - 1  # the first desk is the connect's
            res.notes.append(
                f"supervisor's socket: {len(expected - set(got))} of {len(expected)} "
                f"{kind} frames skipped by {resyncs} resync(s) (it fell behind)"
            )
            if resyncs < 1:
                p.append(f"supervisor's socket: {kind} frames missing without a resync")
    if any(s.closed_early for s in (*sockets, sup)):
        p.append(f"{sum(s.closed_early for s in (*sockets, sup))} sockets closed during the run")
    res.counts.update(
        calls=len(calls), answered=len(answered), windows=len(windows), warned=len(warned),
        overrun=len(overrun), tickets=len(ticketed), long_talks=len(long_talks),
        events=_sync(url, "SELECT count(*) FROM call_events")[0][0],
    )  # fmt: skip


def _sync(url: str, sql: str) -> list[tuple]:
    """A query from synchronous code inside the running loop (a thread, a loop of its own)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _scalar_rows(url, sql)).result()


def setup(db_url: str, work: Path, agents: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SETUP, str(agents), PASSWORD],
        env=env_for(db_url, CALLCENTER_LOGGING_LEVEL="WARNING"),
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_instances(
    db_url: str, work: Path, speed: float, count: int = 2, tracemalloc: str | None = None
) -> list[Served]:
    extra = {**always_open(work), **window_settings(speed)}
    if tracemalloc:  # callcenter/memtrace.py: snapshots on SIGUSR2
        extra["CALLCENTER_TRACEMALLOC"] = tracemalloc
        frames = os.environ.get("CALLCENTER_TRACEMALLOC_FRAMES")  # 0: allocator figures only
        if frames is not None:
            extra["CALLCENTER_TRACEMALLOC_FRAMES"] = frames
    instances = []
    try:
        for i in range(count):
            home = work / f"instance-{'ab'[i]}"
            home.mkdir(exist_ok=True)
            s = Served(db_url, home, **extra)
            s.db_url = db_url
            instances.append(s)
    except BaseException:
        for s in instances:
            s.stop()
        raise
    return instances


def run_load(
    db_url: str,
    work: Path,
    *,
    agents: int = 200,
    in_flight: int = 200,
    duration: float = 600,
    speed: float = 0.05,
    sample: float = 5,
    seed: int = 14,
    out=print,
    mix: dict[str, int] | None = None,
    tracemalloc: str | None = None,
) -> Outcome:
    """The whole harness on an emptied PostgreSQL database (its public schema is wiped):
    set up, two instances, the run, the checks. Used by the bench and the fault suite.
    ``mix``: the scenarios' weights (default: the simulator's realistic mix)."""
    from tests.conftest import reset_postgres

    asyncio.run(reset_postgres(db_url))
    creds = setup(db_url, work, agents)
    instances = start_instances(db_url, work, speed, tracemalloc=tracemalloc)
    try:
        cpu0 = [s.cpu_seconds() for s in instances]
        res = asyncio.run(
            drive(
                instances,
                creds,
                agents=agents,
                in_flight=in_flight,
                duration=duration,
                speed=speed,
                sample=sample,
                seed=seed,
                out=out,
                mix=mix,
                snapshots=bool(tracemalloc),
            )
        )
        res.counts["cpu_seconds"] = [
            s.cpu_seconds() - c for s, c in zip(instances, cpu0, strict=True)
        ]
        for s in instances:
            if s.proc.poll() is not None:
                res.problems.append(f"instance on port {s.port} ended during the run")
    finally:
        for s in instances:
            if s.proc.poll() is None:
                s.stop()
    return res


# --- baselines, same run, same client -----------------------------------------------------


async def _bare_dialogues(port: int, n: int, conc: int) -> list[float]:
    sem = asyncio.Semaphore(conc)
    lat: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            call = simulator.plan_call("valid", random.Random(i), ["1000000000017"], {})
            s = simulator.SwitchSession(call, 0.0, random.Random(i))
            env = simulator._env(call, f"PJSIP/p-{i:08x}", "support-line")
            lat.append(await s.run("127.0.0.1", port, "collect_certificate", env, {}))

    await asyncio.gather(*(one(i) for i in range(n)))
    return lat


async def _bare_posts(url: str, n: int, conc: int, tag: str) -> list[float]:
    import aiohttp

    sem = asyncio.Semaphore(conc)
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(i: int) -> None:
            body = {"event": "call_started", "call_id": f"bare-{tag}-{i}", "caller_number": "79001"}
            async with sem:
                t0 = time.perf_counter()
                async with http.post(url + "/api/v1/events", json=body) as r:
                    await r.read()
                    if r.status >= 300:
                        raise RuntimeError(f"bare insert: {r.status}")
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
    return lat


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("a baseline server did not start")


def baselines(db_url: str, n: int, conc: int) -> dict[str, list[float]]:
    """A bare FastAGI echo's dialogues and a bare HTTP event insert's posts (ms)."""
    out = {}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE_AGI, str(port)])
    try:
        _wait_port(port, proc)
        asyncio.run(_bare_dialogues(port, 100, conc))  # warm-up
        out["agi"] = asyncio.run(_bare_dialogues(port, n, conc))
    finally:
        proc.terminate()
        proc.wait(10)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_ingest.py"), db_url, str(port)],
        env=env_for(db_url),
    )
    try:
        _wait_port(port, proc)
        asyncio.run(_bare_posts(f"http://127.0.0.1:{port}", 100, conc, "warm"))
        out["post"] = asyncio.run(_bare_posts(f"http://127.0.0.1:{port}", n, conc, "run"))
    finally:
        proc.terminate()
        proc.wait(10)
    return out


# --- the report ---------------------------------------------------------------------------


def memory_report(res: Outcome, warmup: float, out=print) -> list[dict]:
    """The series, and per instance the slope after the warm-up in MiB per 1,000 calls and
    whether memory grows with calls served: it does when the slope, over the calls served
    after the warm-up, comes to more than 10 % of the RSS at the warm-up's end."""
    series = res.memory
    step = max(1, len(series) // 30)
    out("memory (VmRSS, MiB) over time:   s    calls   instance A   instance B   load")
    for i, (t, n, *rss) in enumerate(series):
        if i % step == 0 or i == len(series) - 1:
            load = res.loads[i] if i < len(res.loads) else ""
            out(f"  {t:30.0f} {n:8d} " + " ".join(f"{x:12.1f}" for x in rss) + f"   {load}")
    after = [m for m in series if m[0] >= warmup] or series
    verdicts = []
    for k, name in enumerate("AB"):
        xs = [m[1] for m in after]
        ys = [m[2 + k] for m in after]
        per_k = slope(xs, ys) * 1000
        served = xs[-1] - xs[0]
        growth = per_k * served / 1000
        grows = len(after) >= 3 and growth > 0.10 * ys[0]
        half = len(after) // 2
        late = slope(xs[half:], ys[half:]) * 1000 if len(after) - half >= 3 else per_k
        verdicts.append({"instance": name, "slope": per_k, "late_slope": late, "start": ys[0],
                         "end": ys[-1], "served": served, "grows": grows,
                         "growth": growth})  # fmt: skip
        out(
            f"instance {name}: {ys[0]:.1f} -> {ys[-1]:.1f} MiB after the warm-up "
            f"({served} calls); slope {per_k:+.3f} MiB per 1,000 calls (second half "
            f"{late:+.3f}) -> "
            f"{'GROWS with calls served' if grows else 'does not grow with calls served'}"
        )
    return verdicts


def _ms(label: str, values: list[float], unit_ms: bool = True) -> str:
    if not values:
        return f"{label:<48} (none)"
    k = 1 if unit_ms else 1000
    return (
        f"{label:<48} p50 {statistics.median(values) * k:7.2f} ms   p90 {pct(values, 90) * k:7.2f}"
        f" ms   p99 {pct(values, 99) * k:7.2f} ms   n={len(values)}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", help="PostgreSQL URL (postgresql+asyncpg://...): the bench's own "
                    "database, its public schema is wiped")  # fmt: skip
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    ap.add_argument("--quick", action="store_true", help="20 s, 50 agents and calls, speed 0.025")
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--in-flight", type=int, default=200, help="calls kept going at once")
    ap.add_argument("--speed", type=float, default=0.05,
                    help="the calls' time factor (0.05: a 10-minute call lasts 30 s)")  # fmt: skip
    ap.add_argument("--sample", type=float, default=5, help="memory sampled every N s")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--tracemalloc", metavar="PREFIX",
                    help="trace both instances' heap (slows them): a snapshot "
                    "PREFIX.<pid>.<n>.snap at every progress line (callcenter/memtrace.py "
                    "compares two)")  # fmt: skip
    json_option(ap)
    a = ap.parse_args()
    if not a.pg:
        print("bench_load: needs PostgreSQL (--pg URL): two instances share one database",
              file=sys.stderr)  # fmt: skip
        return 2
    if a.quick:
        a.duration, a.agents, a.in_flight, a.speed = 20, 50, 50, 0.025
    if a.agents < a.in_flight:
        print("bench_load: --agents must be at least --in-flight (one agent per call)",
              file=sys.stderr)  # fmt: skip
        return 2
    conc = min(a.in_flight, 50)
    print(f"load: 2 instances on PostgreSQL, {a.agents} agent sockets, {a.in_flight} calls in "
          f"flight for {a.duration:.0f} s at speed {a.speed:g}; load {loadavg()}")  # fmt: skip
    from tests.conftest import reset_postgres

    asyncio.run(reset_postgres(a.pg))  # the bare insert's rows go with the schema after it
    base = baselines(a.pg, 2000 if not a.quick else 500, conc)
    print(_ms(f"bare FastAGI echo dialogue ({conc} at once)", base["agi"]))
    print(_ms(f"bare HTTP event insert POST ({conc} at once)", base["post"]))
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-load-"))
    res = run_load(
        a.pg, tmp, agents=a.agents, in_flight=a.in_flight, duration=a.duration,
        speed=a.speed, sample=a.sample, seed=a.seed, tracemalloc=a.tracemalloc,
    )  # fmt: skip
    c = res.counts
    dialogues = [ms for call in res.calls for ms in call.sessions_ms]
    posts = [ms for call in res.calls for ms in call.posts_ms]
    loads = " -> ".join(res.loads[:: max(1, len(res.loads) // 4)])
    print(f"served {c.get('calls', 0)} calls in {res.seconds:.0f} s: "
          f"{c.get('calls', 0) / res.seconds:.1f} calls/s, "
          f"{c.get('events', 0) / res.seconds:.1f} events/s stored "
          f"({c.get('events', 0)} events); load {loads}")  # fmt: skip
    print(f"  answered {c.get('answered')}, windows {c.get('windows')}, warned "
          f"{c.get('warned')}, overrun {c.get('overrun')}, tickets {c.get('tickets')} "
          f"(long talks {c.get('long_talks')}); {res.retries} event posts sent again after "
          f"a 503; service CPU "
          f"{' + '.join(f'{x:.0f}' for x in c.get('cpu_seconds', []))} s")  # fmt: skip
    print(_ms("FastAGI dialogue, service side", dialogues))
    print(_ms("event POST (process-AGI style), round trip", posts))
    print(_ms("pop: agent's answer reported -> frame", res.pops, unit_ms=False))
    verdicts = memory_report(res, 0.2 * a.duration)
    for e in res.errors[:10]:
        print("client error:", e)
    for note in res.notes:
        print("NOTE:", note)
    for pr in res.problems:
        print("PROBLEM:", pr)
    ok = not res.problems and not res.errors
    if ok and not a.tracemalloc:  # the instances' logs hold the allocators' figures
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok or a.tracemalloc:
        print(f"the instances' logs are kept in {tmp}/instance-a and instance-b")
    print("no call, window or ticket lost or doubled" if ok else
          f"FAILED: {len(res.problems)} problems, {len(res.errors)} client errors")  # fmt: skip
    bare_agi, bare_post = "bare FastAGI echo, same run", "bare HTTP event insert, same run"
    FIGURES.add("load: calls/s, 2 instances, PostgreSQL", c.get("calls", 0) / res.seconds,
                "calls/s")  # fmt: skip
    FIGURES.add("load: events/s stored", c.get("events", 0) / res.seconds, "events/s")
    if dialogues:
        FIGURES.add("load: FastAGI dialogue p99", pct(dialogues, 99), "ms",
                    baseline=pct(base["agi"], 99), baseline_label=bare_agi)  # fmt: skip
    if posts:
        FIGURES.add("load: event POST p99", pct(posts, 99), "ms",
                    baseline=pct(base["post"], 99), baseline_label=bare_post)  # fmt: skip
    if res.pops:
        FIGURES.add("load: pop p99", pct(res.pops, 99) * 1000, "ms", goal="<= 50")
    for v in verdicts:
        FIGURES.add(f"load: memory slope, instance {v['instance']}", v["slope"],
                    "MiB/1000 calls")  # fmt: skip
        # "grows": the slope over the calls served after the warm-up adds more than 10 % of
        # the instance's memory at the start of them
        FIGURES.add(f"load: memory growth after warm-up, instance {v['instance']}",
                    v["growth"] / v["start"] * 100, "%", goal="<= 10")  # fmt: skip
    FIGURES.add("load: calls lost or doubled", len(res.problems) + len(res.errors), "",
                goal="<= 0")  # fmt: skip
    FIGURES.write(a.json, "bench_load", duration=a.duration, agents=a.agents,
                  in_flight=a.in_flight, speed=a.speed)  # fmt: skip
    # a loss or a double fails the run; memory growth is a figure with its goal (the table
    # says whether it was met), so `make bench` keeps every other figure of the run
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
