"""The sample Asterisk configuration in config/asterisk/ (contract §2).

A small reader for Asterisk ``.conf`` files and a small dialplan interpreter live here, in
the test, so the checks read the files the way Asterisk does: contexts, ``exten``/``same``
lines, priority labels, ``${...}`` and ``$[...]`` substitution before an application sees
its arguments, Gosub/Return, hangup handlers, and Queue()'s gosub argument (7th from
Asterisk 21, 8th on 20, where the 7th is the old macro). Each check returns a list of
problems, so the last tests can break a copy of a file and watch the checker object.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from callcenter.config import FastAgiSettings, IvrSettings
from callcenter.telephony import variables as v

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "config" / "asterisk"
ENTRIES = {"support-line": "process", "support-line-fastagi": "fastagi"}
QUEUE_NAME = IvrSettings().queue
ASTERISK_22 = 221001
ASTERISK_20 = 200500


# --- .conf files -----------------------------------------------------------------------------


class ConfError(ValueError):
    """A line the reader (and Asterisk) would not accept."""


@dataclass
class Entry:
    key: str
    op: str
    value: str
    where: str


@dataclass
class Conf:
    sections: dict[str, list[Entry]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def values(self, section: str, key: str) -> list[str]:
        return [e.value for e in self.sections.get(section, []) if e.key == key]

    def value(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None


def _strip_comment(line: str) -> str:
    """Drop a ``;`` comment; ``\\;`` is a literal semicolon."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and line[i + 1 : i + 2] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse_conf(text: str, name: str = "<conf>", base: Path | None = None) -> Conf:
    conf = Conf()
    _parse_into(conf, text, name, base, depth=0)
    return conf


def _parse_into(conf: Conf, text: str, name: str, base: Path | None, depth: int) -> None:
    section: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{name}:{lineno}"
        if raw.lstrip().startswith(";--"):
            raise ConfError(f"{where}: block comments are not supported by this reader")
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("#"):
            m = re.fullmatch(r'#(try)?include\s+"?([^"]+)"?', line)
            if not m:
                raise ConfError(f"{where}: unknown directive {line!r}")
            target = (base or Path(".")) / m.group(2)
            if depth > 5 or not target.exists():
                if not m.group(1):
                    raise ConfError(f"{where}: #include {m.group(2)} not found")
                continue
            _parse_into(
                conf, target.read_text(encoding="utf-8"), str(target), target.parent, depth + 1
            )
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]]+)\](\([^)]*\))?", line)
            if not m:
                raise ConfError(f"{where}: bad section header {line!r}")
            section = m.group(1).strip()
            conf.order.append(section)
            conf.sections.setdefault(section, [])
            continue
        m = re.match(r"([^=]+?)\s*(=>|=)\s*(.*)$", line)
        if not m or section is None:
            raise ConfError(f"{where}: expected `key = value` inside a section: {line!r}")
        conf.sections[section].append(Entry(m.group(1).strip(), m.group(2), m.group(3), where))


def load(name: str, directory: Path = CONF_DIR) -> Conf:
    path = directory / name
    return parse_conf(path.read_text(encoding="utf-8"), str(path), path.parent)


# --- application arguments ------------------------------------------------------------------


def split_args(data: str, sep: str = ",") -> list[str]:
    """Split at top-level separators, as Asterisk does: not inside quotes, (), [] or {}.

    The parts are returned raw (quotes kept), so the caller can see how they were written.
    """
    parts, depth, quoted, cur, i = [], 0, False, [], 0
    while i < len(data):
        ch = data[i]
        if ch == "\\" and i + 1 < len(data):
            cur.append(data[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and data.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def unquote(arg: str) -> str:
    arg = arg.strip()
    return arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == '"' else arg


def split_call(text: str) -> tuple[str, str]:
    """``App(data)`` -> ("App", "data"); the data runs to the LAST closing parenthesis."""
    text = text.strip()
    if "(" not in text:
        return text, ""
    app, rest = text.split("(", 1)
    if not rest.endswith(")"):
        raise ConfError(f"unbalanced parentheses in {text!r}")
    return app.strip(), rest[:-1]


# --- dialplan --------------------------------------------------------------------------------


@dataclass
class Prio:
    number: int
    label: str | None
    app: str
    data: str
    where: str


Dialplan = dict[str, dict[str, list[Prio]]]  # context -> extension -> priorities in order


def build_dialplan(conf: Conf) -> Dialplan:
    plan: Dialplan = {}
    for context in conf.order:
        if context in ("general", "globals") or context in plan:
            continue
        exts: dict[str, list[Prio]] = {}
        current: str | None = None
        for e in conf.sections[context]:
            if e.key == "exten":
                ext, rest = (p.strip() for p in e.value.split(",", 1))
                current = ext
            elif e.key == "same":
                if current is None:
                    raise ConfError(f"{e.where}: `same` before any `exten`")
                rest = e.value
            else:
                continue
            prio_text, call = (p.strip() for p in rest.split(",", 1))
            m = re.fullmatch(r"(\d+|n)(?:\(([^)]+)\))?", prio_text)
            if not m:
                raise ConfError(f"{e.where}: bad priority {prio_text!r}")
            prios = exts.setdefault(current, [])
            if m.group(1) == "n":
                if not prios:
                    raise ConfError(f"{e.where}: priority n without a priority 1")
                number = prios[-1].number + 1
            else:
                number = int(m.group(1))
            app, data = split_call(call)
            prios.append(Prio(number, m.group(2), app, data, e.where))
        plan[context] = exts
    return plan


def pattern_matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    regex = ""
    for token in re.findall(r"\[[^\]]+\]|.", pattern[1:]):
        regex += {
            "X": "[0-9]",
            "Z": "[1-9]",
            "N": "[2-9]",
            ".": ".+",
            "!": ".*",
        }.get(token, token if token.startswith("[") else re.escape(token))
    return re.fullmatch(regex, exten) is not None


def find_exten(plan: Dialplan, context: str, exten: str) -> str | None:
    exts = plan.get(context, {})
    if exten in exts:
        return exten
    return next((p for p in exts if pattern_matches(p, exten)), None)


def locate(plan: Dialplan, spec: str, context: str, exten: str) -> tuple[str, str, int]:
    """A Goto/Gosub destination ``[[context,]exten,]priority|label`` -> a real position."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) == 3:
        context, exten, prio = parts
    elif len(parts) == 2:
        exten, prio = parts
    elif len(parts) == 1:
        prio = parts[0]
    else:
        raise ConfError(f"bad destination {spec!r}")
    if "${" in spec:
        raise ConfError(f"destination {spec!r} is computed at run time and cannot be checked")
    if context not in plan:
        raise ConfError(f"destination {spec!r}: no context [{context}]")
    found = find_exten(plan, context, exten)
    if found is None:
        raise ConfError(f"destination {spec!r}: no extension {exten} in [{context}]")
    prios = plan[context][found]
    for index, p in enumerate(prios):
        if (prio.isdigit() and p.number == int(prio)) or p.label == prio:
            return context, found, index
    raise ConfError(f"destination {spec!r}: no priority {prio} in {exten}@{context}")


# --- a small dialplan interpreter ------------------------------------------------------------


class SimError(Exception):
    """The dialplan did something Asterisk would refuse or the interpreter cannot follow."""


class _Hangup(Exception):
    pass


class _Return(Exception):
    pass


@dataclass
class Channel:
    name: str
    linkedid: str
    variables: dict[str, str] = field(default_factory=dict)
    inherit: set[str] = field(default_factory=set)
    handlers: list[str] = field(default_factory=list)
    language: str = "en"
    dead: bool = False


@dataclass
class Step:
    channel: str
    app: str
    data: str


class AgiRun(NamedTuple):
    channel: str
    name: str
    args: list[str]
    dead: bool  # run by a hangup handler


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    agis: list[AgiRun] = field(default_factory=list)
    agi_targets: list[str] = field(default_factory=list)  # as expanded, valid or not
    queued: list[dict[str, str]] = field(default_factory=list)  # caller variables at Queue()
    agent_returned: bool = False


AgiFn = Callable[[Channel, str, list[str]], str]


def agi_script_name(target: str) -> str | None:
    """The script an AGI() target names, if it is one of ours written the right way."""
    m = re.fullmatch(r"agi://([A-Za-z0-9.\-]+):(\d+)/([a-z_]+)", target)
    if m:
        return m.group(3) if m.group(3) in v.SCRIPTS else None
    m = re.fullmatch(r"/(?:[^/]+/)*agi_scripts/([a-z_]+)\.py", target)
    if m:
        return m.group(1) if m.group(1) in v.SCRIPTS else None
    return None


class Asterisk:
    """Runs a call through the dialplan the way Asterisk would, recording every step."""

    def __init__(
        self,
        plan: Dialplan,
        agi: AgiFn,
        *,
        version: int = ASTERISK_22,
        agent_answers: bool = True,
    ):
        self.plan, self.agi_fn, self.version = plan, agi, version
        self.agent_answers = agent_answers
        self.run = Run()
        self.depth = 0

    # variables and expressions

    def get(self, chan: Channel, frame: dict[str, str], name: str) -> str:
        if name in frame:
            return frame[name]
        fn = re.fullmatch(r"([A-Z_]+)\((.*)\)", name)
        if fn:
            func, arg = fn.groups()
            if func == "CHANNEL" and arg == "linkedid":
                return chan.linkedid
            if func == "CHANNEL" and arg == "language":
                return chan.language
            if func == "CALLERID" and arg == "num":
                return "79001234567"
            if func == "VERSION" and arg == "ASTERISK_VERSION_NUM":
                return str(self.version)
            raise SimError(f"the interpreter does not know the function {name}")
        if name == "CHANNEL":
            return chan.name
        return chan.variables.get(name, "")

    def expand(self, chan: Channel, frame: dict[str, str], text: str) -> str:
        while True:
            new = re.sub(
                r"\$\{([^${}]*)\}", lambda m: self.get(chan, frame, m.group(1)), text, count=1
            )
            if new == text:
                break
            text = new
        while "$[" in text:
            start = text.rindex("$[")
            end = text.index("]", start)
            text = text[:start] + self.evaluate(text[start + 2 : end]) + text[end + 1 :]
        return text

    @staticmethod
    def evaluate(expr: str) -> str:
        m = re.fullmatch(r'\s*("[^"]*"|\S+)\s*(=|!=|<=|>=|<|>)\s*("[^"]*"|\S+)\s*', expr)
        if not m:
            raise SimError(f"the interpreter cannot evaluate $[{expr}]")
        left, op, right = m.groups()
        a: str | int = left
        b: str | int = right
        if left.lstrip("-").isdigit() and right.lstrip("-").isdigit():
            a, b = int(left), int(right)
        result = {
            "=": a == b,
            "!=": a != b,
            "<": a < b,
            ">": a > b,
            "<=": a <= b,
            ">=": a >= b,
        }[op]
        return "1" if result else "0"

    @staticmethod
    def true(cond: str) -> bool:
        cond = cond.strip()
        return cond not in ("", "0")

    # running

    def call(self, entry: str, exten: str = "s", preset: dict[str, str] | None = None) -> Run:
        caller = Channel("PJSIP/trunk-00000001", "1795483251.54")
        caller.variables.update(preset or {})
        found = find_exten(self.plan, entry, exten)
        if found is None:
            raise SimError(f"[{entry}] does not answer {exten}")
        try:
            self.execute(caller, entry, found, 0, {})
        except _Hangup:
            pass
        caller.dead = True  # hangup handlers run on the dead caller channel (fact 13)
        for handler in reversed(caller.handlers):
            self.subroutine(caller, handler)
        return self.run

    def subroutine(
        self, chan: Channel, spec: str, args: list[str] | None = None, here=("", "")
    ) -> None:
        """Gosub: run ``[[context,]exten,]prio[(args)]`` until its Return()."""
        m = re.fullmatch(r"([^(]*)(?:\((.*)\))?", spec)
        assert m is not None
        if m.group(2) is not None:
            args = split_args(m.group(2))
        context, exten, index = locate(self.plan, m.group(1), *here)
        self.depth += 1
        try:
            self.execute(
                chan, context, exten, index, {f"ARG{i}": a for i, a in enumerate(args or [], 1)}
            )
        except _Return:
            return
        finally:
            self.depth -= 1
        raise SimError(f"subroutine {spec} on {chan.name} ended without Return()")

    def execute(self, chan: Channel, context: str, exten: str, index: int, frame) -> None:
        for _ in range(500):
            prios = self.plan[context][exten]
            if index >= len(prios):
                # autofallthrough: Asterisk hangs up a channel that runs out of priorities
                raise _Hangup
            p = prios[index]
            data = self.expand(chan, frame, p.data)
            self.run.steps.append(Step(chan.name, p.app, data))
            jump = self.app(chan, p, data, context, exten)
            if jump is None:
                index += 1
            else:
                context, exten, index = jump
        raise SimError("the dialplan loops")

    def app(self, chan: Channel, p: Prio, data: str, context: str, exten: str):
        app = p.app.lower()
        if app in ("noop", "verbose", "log", "wait", "answer", "playback"):
            return None
        if app == "set":
            self.set(chan, data)
            return None
        if app in ("execif", "gotoif"):
            cond, rest = data.split("?", 1)
            branches = split_args(rest, ":")
            chosen = branches[0] if self.true(cond) else (branches[1] if len(branches) > 1 else "")
            if not chosen:
                return None
            if app == "gotoif":
                return locate(self.plan, chosen, context, exten)
            inner_app, inner_data = split_call(chosen)
            return self.app(chan, Prio(0, None, inner_app, "", p.where), inner_data, context, exten)
        if app == "goto":
            return locate(self.plan, data, context, exten)
        if app == "gosub":
            self.subroutine(chan, data, here=(context, exten))
            return None
        if app == "return":
            if not self.depth:
                raise SimError(f"{p.where}: Return() outside a subroutine")
            raise _Return
        if app == "hangup":
            raise _Hangup
        if app == "agi":
            return self.agi(chan, data)
        if app == "queue":
            return self.queue(chan, data, p)
        raise SimError(f"{p.where}: the interpreter does not know {p.app}()")

    def set(self, chan: Channel, data: str) -> None:
        name, value = data.split("=", 1)
        if name == "CHANNEL(hangup_handler_push)":
            chan.handlers.append(value)
        elif name == "CHANNEL(language)":
            chan.language = value
        elif "(" in name:
            raise SimError(f"the interpreter does not know Set({name}=...)")
        else:
            bare = name.lstrip("_")
            chan.variables.pop(bare, None)
            chan.inherit.discard(bare)
            if value:
                chan.variables[bare] = value
                if name.startswith("__"):
                    chan.inherit.add(bare)

    def agi(self, chan: Channel, data: str):
        target, *args = [unquote(a) for a in split_args(data)]
        self.run.agi_targets.append(target)
        name = agi_script_name(target)
        if name is None:
            status = "NOTFOUND" if not target.startswith("agi://") else "FAILURE"
        else:
            self.run.agis.append(AgiRun(chan.name, name, args, chan.dead))
            status = self.agi_fn(chan, name, args)
        chan.variables["AGISTATUS"] = status
        if status == "HANGUP":
            raise _Hangup
        return None

    def queue(self, chan: Channel, data: str, p: Prio):
        args = split_args(data)
        args += [""] * (9 - len(args))
        if unquote(args[0]) != QUEUE_NAME:
            raise SimError(f"{p.where}: Queue({args[0]}) is not the queue {QUEUE_NAME!r}")
        if self.version < 210000:
            if args[6].strip():
                raise SimError(
                    f"{p.where}: on Asterisk 20 Queue()'s 7th argument is the macro: "
                    f"{args[6]} would be run with Macro()"
                )
            gosub = args[7]
        else:
            if args[7].strip():
                raise SimError(f"{p.where}: Queue()'s 8th argument is the rule: {args[7]}")
            gosub = args[6]
        self.run.queued.append(dict(chan.variables))
        if not self.agent_answers:
            chan.variables["QUEUESTATUS"] = "TIMEOUT"
            return None
        agent = Channel("PJSIP/101-00000002", chan.linkedid, language=chan.language)
        agent.variables = {k: val for k, val in chan.variables.items() if k in chan.inherit}
        agent.inherit = set(chan.inherit)
        agent.variables["MEMBERINTERFACE"] = "PJSIP/101"
        if gosub.strip():
            context, *gosub_args = split_args(unquote(gosub))
            self.subroutine(agent, f"{context},s,1", gosub_args)
        self.run.agent_returned = True
        if "c" in unquote(args[1]):
            return None  # the caller would continue in the dialplan after the agent hangs up
        raise _Hangup  # the agent hangs up; without `c` the caller goes with it (fact 13)


# --- checks ----------------------------------------------------------------------------------


def _collect_agi(
    status: str = "SUCCESS",
    *,
    route: str | None = None,
    cert: str | None = None,
    others: str = "SUCCESS",
) -> AgiFn:
    """A fake of the three scripts: collect_certificate sets what it was told to."""

    def fn(chan: Channel, name: str, args: list[str]) -> str:
        if name != "collect_certificate":
            return others
        chan.variables[v.CALL_ID] = chan.linkedid
        if route is not None:
            chan.variables[v.ROUTE] = route
        if cert is not None:
            chan.variables[v.CERT_STATUS] = cert
        return status

    return fn


def _simulate(plan: Dialplan, entry: str, agi: AgiFn, **kw) -> Run:
    preset = kw.pop("preset", None)
    return Asterisk(plan, agi, **kw).call(entry, preset=preset)


def flow_problems(plan: Dialplan) -> list[str]:
    """Every route, the fallback and the hangup handler, on both entries and both versions."""
    problems: list[str] = []
    if not plan:
        return ["no dialplan"]
    for entry in ENTRIES:
        if entry not in plan:
            problems.append(f"no entry context [{entry}]")
            continue

        def run(label: str, agi: AgiFn, entry=entry, **kw) -> Run | None:
            try:
                return _simulate(plan, entry, agi, **kw)
            except (SimError, ConfError) as exc:
                problems.append(f"[{entry}] {label}: {exc}")
                return None

        def names(r: Run, dead: bool | None = None) -> list[str]:
            return [a.name for a in r.agis if dead is None or a.dead == dead]

        for version in (ASTERISK_22, ASTERISK_20):
            for route in v.ROUTES:
                label = f"CC_ROUTE={route} on Asterisk {version}"
                r = run(label, _collect_agi(route=route, cert=v.VALID), version=version)
                if r is None:
                    continue
                if route == v.QUEUE:
                    if not r.queued:
                        problems.append(f"[{entry}] {label}: the caller never reached Queue()")
                    connected = [a for a in r.agis if a.name == "agent_connected"]
                    if not connected or connected[0].channel == r.steps[0].channel:
                        problems.append(
                            f"[{entry}] {label}: agent_connected did not run on the agent's channel"
                        )
                    elif connected[0].args[:1] != ["1795483251.54"]:
                        problems.append(
                            f"[{entry}] {label}: agent_connected did not get the "
                            f"caller's linkedid: {connected[0].args}"
                        )
                    if not r.agent_returned:
                        problems.append(f"[{entry}] {label}: the agent Gosub did not return")
                elif r.queued:
                    problems.append(f"[{entry}] {label}: the caller was queued")
                if names(r, dead=True) != ["call_ended"]:
                    problems.append(
                        f"[{entry}] {label}: call_ended ran {names(r, True)} times after the hangup"
                    )

        failures = {
            "the FastAGI server refused (FAILURE, nothing set)": dict(
                agi=_collect_agi("FAILURE", others="FAILURE")
            ),
            "a missing script (NOTFOUND)": dict(agi=_collect_agi("NOTFOUND")),
            "a clean exit without a route": dict(agi=_collect_agi("SUCCESS")),
            "an unknown route": dict(agi=_collect_agi(route="ELSEWHERE", cert=v.VALID)),
            "a stale CC_ROUTE on the channel and a failed AGI": dict(
                agi=_collect_agi("FAILURE"),
                preset={v.ROUTE: v.REFUSED, v.CERT_STATUS: v.LOCKED},
            ),
        }
        for label, kw in failures.items():
            r = run(label, **kw)
            if r is None:
                continue
            if not r.queued:
                problems.append(f"[{entry}] {label}: the caller was not queued (no fallback)")
                continue
            at_queue = r.queued[0]
            if at_queue.get(v.CERT_STATUS) != v.UNVERIFIED or at_queue.get(v.ROUTE) != v.QUEUE:
                problems.append(
                    f"[{entry}] {label}: queued with CC_CERT_STATUS="
                    f"{at_queue.get(v.CERT_STATUS)!r} CC_ROUTE={at_queue.get(v.ROUTE)!r}"
                )
            if not r.agent_returned:
                problems.append(f"[{entry}] {label}: the agent Gosub did not return")

        # A missing prompt makes AGISTATUS=FAILURE after a clean decision (fact 10).
        r = run(
            "REFUSED with AGISTATUS=FAILURE",
            _collect_agi("FAILURE", route=v.REFUSED, cert=v.EXPIRED),
        )
        if r is not None and r.queued:
            problems.append(f"[{entry}] an explicit REFUSED with AGISTATUS=FAILURE was queued")

        # The caller hangs up during the dialogue: the hangup handler must already be there.
        r = run("hangup during collect_certificate", _collect_agi("HANGUP"))
        if r is not None and names(r, dead=True) != ["call_ended"]:
            problems.append(
                f"[{entry}] a caller hanging up during collect_certificate is "
                "not reported by call_ended"
            )
        if r is not None:
            steps = [s for s in r.steps if s.channel == r.steps[0].channel]
            push = next((i for i, s in enumerate(steps) if "hangup_handler_push" in s.data), None)
            collect = next(i for i, s in enumerate(steps) if s.app.lower() == "agi")
            if push is None or push > collect:
                problems.append(
                    f"[{entry}] the hangup handler is not pushed before the collect_certificate AGI"
                )

        # Nobody answers: the caller leaves the queue and is told about the portal.
        r = run("no agent answers", _collect_agi(route=v.QUEUE, cert=v.VALID), agent_answers=False)
        if r is not None and names(r, dead=True) != ["call_ended"]:
            problems.append(f"[{entry}] queue timeout: call_ended did not run")
    return problems


def agi_problems(plan: Dialplan, root: Path = ROOT) -> list[str]:
    """Each entry reaches all three scripts, named and located the way contract §2 says."""
    problems: list[str] = []
    fastagi = FastAgiSettings()
    for entry, kind in ENTRIES.items():
        if entry not in plan:
            problems.append(f"no entry context [{entry}]")
            continue
        try:
            run = _simulate(plan, entry, _collect_agi(route=v.QUEUE, cert=v.VALID))
        except (SimError, ConfError) as exc:
            problems.append(f"[{entry}]: {exc}")
            continue
        targets = {agi_script_name(t) or t: t for t in run.agi_targets}
        for name in v.SCRIPTS:
            if name not in targets:
                problems.append(f"[{entry}] never runs {name}")
        for name, target in targets.items():
            if name not in v.SCRIPTS:
                problems.append(f"[{entry}] AGI({target}) is not one of {v.SCRIPTS}")
            elif kind == "fastagi":
                m = re.fullmatch(r"agi://([^:/]+):(\d+)/(\w+)", target)
                if not m:
                    problems.append(f"[{entry}] {target} is not agi://HOST:PORT/{name}")
                elif int(m.group(2)) != fastagi.port:
                    problems.append(
                        f"[{entry}] {target}: port is not the service's "
                        f"[fastagi] port {fastagi.port}"
                    )
            else:
                if not target.startswith("/") or not target.endswith(f"agi_scripts/{name}.py"):
                    problems.append(
                        f"[{entry}] {target} is not an absolute .../agi_scripts/{name}.py"
                    )
                script = root / "agi_scripts" / f"{name}.py"
                if script.exists() and not os.access(script, os.X_OK):
                    problems.append(f"{script} is not executable")
    reachable = reachable_contexts(plan)
    for context, exts in plan.items():
        for p in (p for ps in exts.values() for p in ps if p.app.lower() == "agi"):
            if context not in reachable:
                problems.append(f"{p.where}: AGI() in [{context}], which no call reaches")
    return problems


def reachable_contexts(plan: Dialplan) -> set[str]:
    seen, todo = set(), [c for c in ENTRIES if c in plan]
    while todo:
        context = todo.pop()
        if context in seen:
            continue
        seen.add(context)
        for ps in plan[context].values():
            for p in ps:
                for target in destinations(p):
                    todo.append(target.split(",")[0] if target.count(",") == 2 else context)
    return seen


def queue_gosub(args: list[str]) -> tuple[int, str] | None:
    """Queue()'s gosub as written: the 7th argument, or the 8th after an empty 7th (Asterisk 20)."""
    for index in (6, 7):
        if index < len(args) and args[index].strip():
            return index, args[index].strip()
    return None


def destinations(p: Prio) -> list[str]:
    """The places a priority can send a channel to, as written (``context,exten,prio``)."""
    app, data = p.app.lower(), p.data
    if app in ("goto", "gosub"):
        return [re.sub(r"\(.*\)$", "", data)]
    if app in ("gotoif", "gosubif"):
        _, rest = data.split("?", 1)
        return [re.sub(r"\(.*\)$", "", b) for b in split_args(rest, ":") if b]
    if app == "set" and data.startswith("CHANNEL(hangup_handler_push)="):
        return [re.sub(r"\(.*\)$", "", data.split("=", 1)[1])]
    if app == "queue" and (gosub := queue_gosub(split_args(data))):
        return [split_args(unquote(gosub[1]))[0] + ",s,1"]
    return []


def structure_problems(plan: Dialplan) -> list[str]:
    """Targets exist, subroutines Return(), Queue() is written the way the docs require."""
    problems: list[str] = []
    subroutines: set[tuple[str, str]] = set()
    seventh = 0
    for context, exts in plan.items():
        for exten, prios in exts.items():
            for p in prios:
                app = p.app.lower()
                for target in destinations(p):
                    try:
                        located = locate(plan, target, context, exten)
                    except ConfError as exc:
                        problems.append(f"{p.where}: {exc}")
                        continue
                    if app != "goto" and app != "gotoif":
                        subroutines.add(located[:2])
                if app == "queue":
                    problems += _queue_call_problems(p)
                    gosub = queue_gosub(split_args(p.data))
                    seventh += gosub is not None and gosub[0] == 6
    if not seventh:
        problems.append("no Queue() passes the gosub as its 7th argument (Asterisk 21 and later)")
    for context, exten in sorted(subroutines):
        last = plan[context][exten][-1]
        if last.app.lower() != "return":
            problems.append(f"{last.where}: subroutine {exten}@{context} does not end in Return()")
    return problems


def _queue_call_problems(p: Prio) -> list[str]:
    problems = []
    args = split_args(p.data)
    if unquote(args[0]) != QUEUE_NAME:
        problems.append(f"{p.where}: Queue({args[0]}) is not {QUEUE_NAME!r}")
    if len(args) > 1 and "c" in unquote(args[1]):
        problems.append(
            f"{p.where}: Queue() has the `c` option: the caller would stay in the "
            "dialplan after the agent hangs up"
        )
    gosub = queue_gosub(args)
    if gosub is None:
        return [*problems, f"{p.where}: Queue() has no gosub argument"]
    index, raw = gosub
    quoted = len(raw) >= 2 and raw[0] == raw[-1] == '"'
    if not quoted and len(args) > index + 1:
        problems.append(
            f"{p.where}: Queue()'s gosub is not double-quoted: its commas split it "
            f"into the rule and position arguments: {args[index:]}"
        )
    elif len(args) > index + 1:
        problems.append(f"{p.where}: Queue() has arguments after the gosub: {args[index + 1 :]}")
    if index == 7 and args[6].strip():
        problems.append(f"{p.where}: Queue()'s 7th argument is set as well as the 8th")
    return problems


def queue_problems(conf: Conf) -> list[str]:
    if QUEUE_NAME not in conf.sections:
        return [f"no [{QUEUE_NAME}] queue"]
    problems = []
    for key, want in {
        "setinterfacevar": "yes",
        "setqueuevar": "yes",
        "setqueueentryvar": "yes",
        "ringinuse": "no",
        "joinempty": "yes",
        "leavewhenempty": "no",
    }.items():
        if conf.value(QUEUE_NAME, key) != want:
            problems.append(f"[{QUEUE_NAME}] {key} should be {want}")
    for key in ("strategy", "timeout"):
        if conf.value(QUEUE_NAME, key) is None:
            problems.append(f"[{QUEUE_NAME}] has no {key}")
    if conf.value(QUEUE_NAME, "membergosub"):
        problems.append(f"[{QUEUE_NAME}] membergosub= passes its arguments unexpanded (fact 11)")
    members = conf.values(QUEUE_NAME, "member")
    if not members:
        problems.append(f"[{QUEUE_NAME}] has no example member")
    for m in members:
        if not re.fullmatch(r"[A-Za-z]+/[^,]+(,.*)?", m):
            problems.append(f"[{QUEUE_NAME}] bad member line {m!r}")
    return problems


def manager_problems(conf: Conf) -> list[str]:
    problems = []
    general = {"enabled": "yes", "port": "5038", "bindaddr": "127.0.0.1"}
    for key, want in general.items():
        if conf.value("general", key) != want:
            problems.append(f"[general] {key} should be {want}")
    users = [s for s in conf.sections if s != "general"]
    if users != ["callcenter"]:
        return [*problems, f"expected one user [callcenter], found {users}"]
    if not conf.value("callcenter", "secret"):
        problems.append("[callcenter] has no secret")
    if conf.values("callcenter", "deny") != ["0.0.0.0/0.0.0.0"]:
        problems.append("[callcenter] should deny=0.0.0.0/0.0.0.0")
    if "127.0.0.1/255.255.255.255" not in conf.values("callcenter", "permit"):
        problems.append("[callcenter] should permit=127.0.0.1/255.255.255.255")
    read = {c.strip() for c in (conf.value("callcenter", "read") or "").split(",")}
    # QueueCallerJoin / AgentConnect / QueueCallerAbandon are `agent`, Hangup is `call`,
    # HangupHandlerRun is `dialplan`, FullyBooted is `system`.
    for needed in ("call", "agent", "dialplan", "system"):
        if needed not in read and "all" not in read:
            problems.append(f"[callcenter] read= lacks {needed}")
    write = {c.strip() for c in (conf.value("callcenter", "write") or "").split(",")}
    if write - {"system", "agent"}:
        problems.append(f"[callcenter] write= should be minimal, not {sorted(write)}")
    if "agent" not in write:  # QueuePause is registered with EVENT_FLAG_AGENT (app_queue.c)
        problems.append("[callcenter] write= lacks agent (the agent page's QueuePause)")
    return problems


# --- the shipped files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return build_dialplan(load("extensions.conf"))


def test_the_files_parse():
    for name in ("extensions.conf", "queues.conf", "manager.conf"):
        assert load(name).sections, name


def test_entry_contexts_answer_s_and_any_did(plan):
    for entry in ENTRIES:
        for exten in ("s", "74951234567", "+74951234567"):
            assert find_exten(plan, entry, exten), (entry, exten)


def test_every_route_has_its_branch_and_failures_are_queued(plan):
    assert flow_problems(plan) == []


def test_agis_are_the_contract_scripts(plan):
    assert agi_problems(plan) == []


def test_targets_exist_and_subroutines_return(plan):
    assert structure_problems(plan) == []


def test_channel_variable_names_are_the_shared_ones():
    text = (CONF_DIR / "extensions.conf").read_text(encoding="utf-8")
    used = set(re.findall(r"\bCC_[A-Z_]+", text))
    dialplan_only = {"CC_AGI_PREFIX", "CC_AGI_SUFFIX", "CC_AGI_LOCAL"}
    shared = {v.CALL_ID, v.CERT_NUMBER, v.CERT_STATUS, v.ROUTE, v.AGENT_GONE}
    assert used - dialplan_only <= shared, used - dialplan_only - shared
    for value in re.findall(r'"\$\{CC_ROUTE\}" = "(\w+)"', text):
        assert value in v.ROUTES


def test_queue_config():
    assert queue_problems(load("queues.conf")) == []


def test_manager_config():
    assert manager_problems(load("manager.conf")) == []


def test_readme_names_the_entry_contexts_and_the_token_command():
    readme = (CONF_DIR / "README.md").read_text(encoding="utf-8")
    for needed in (*ENTRIES, "CALLCENTER_URL", "CALLCENTER_TOKEN", "tokens create", "--role pbx"):
        assert needed in readme, needed


# --- the checks can fail ---------------------------------------------------------------------


def _broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (CONF_DIR / name).read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {name}: update this test"
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


DIALPLAN_BREAKS = {
    "no REFUSED branch": (
        ' same => n,GotoIf($["${CC_ROUTE}" = "REFUSED"]?cc-refused,s,1)\n',
        "",
        "CC_ROUTE=REFUSED on Asterisk 221001: the caller was queued",
    ),
    "no fallback": (" same => n,Goto(cc-fallback,s,1)\n", " same => n,Hangup()\n", "no fallback"),
    "stale route kept": (" same => n,Set(CC_ROUTE=)\n", "", "stale CC_ROUTE"),
    "no hangup handler": (
        " same => n,Set(CHANNEL(hangup_handler_push)=cc-hangup,s,1)\n",
        " same => n,NoOp()\n",
        "not pushed before",
    ),
    "Asterisk 20 not handled": (
        " same => n,GotoIf($[${VERSION(ASTERISK_VERSION_NUM)} < 210000]?asterisk20)\n",
        " same => n,NoOp()\n",
        "7th argument is the macro",
    ),
}


@pytest.mark.parametrize("case", sorted(DIALPLAN_BREAKS))
def test_flow_checker_catches(tmp_path, case):
    old, new, expected = DIALPLAN_BREAKS[case]
    path = _broken(tmp_path, "extensions.conf", old, new)
    problems = flow_problems(build_dialplan(load(path.name, tmp_path)))
    assert any(expected in p for p in problems), problems


def test_flow_checker_catches_a_handler_pushed_after_the_agi(tmp_path):
    push = " same => n,Set(CHANNEL(hangup_handler_push)=cc-hangup,s,1)\n"
    agi = " same => n,AGI(${CC_AGI_PREFIX}collect_certificate${CC_AGI_SUFFIX})\n"
    text = (CONF_DIR / "extensions.conf").read_text(encoding="utf-8")
    assert push in text and agi in text
    (tmp_path / "extensions.conf").write_text(
        text.replace(push, "").replace(agi, agi + push), encoding="utf-8"
    )
    problems = flow_problems(build_dialplan(load("extensions.conf", tmp_path)))
    assert any("not pushed before" in p for p in problems), problems


STRUCTURE_BREAKS = {
    "gosub not quoted": (
        'Queue(support,,,,3600,,"cc-agent-connected,${CHANNEL(linkedid)},${CHANNEL}")',
        "Queue(support,,,,3600,,cc-agent-connected,${CHANNEL(linkedid)},${CHANNEL})",
        "not double-quoted",
    ),
    "no Return": (
        "AGI(${CC_AGI_LOCAL}agent_connected.py,${ARG1}))\n same => n(done),Return()\n",
        "AGI(${CC_AGI_LOCAL}agent_connected.py,${ARG1}))\n",
        "does not end in Return()",
    ),
    "missing context": ("Goto(cc-fallback,s,1)", "Goto(cc-fallbak,s,1)", "no context"),
    "c option": ('Queue(support,,,,3600,,"cc', 'Queue(support,c,,,3600,,"cc', "`c` option"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE_BREAKS))
def test_structure_checker_catches(tmp_path, case):
    old, new, expected = STRUCTURE_BREAKS[case]
    path = _broken(tmp_path, "extensions.conf", old, new)
    problems = structure_problems(build_dialplan(load(path.name, tmp_path)))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("collect_certificate${CC_AGI_SUFFIX})", "collect_cert${CC_AGI_SUFFIX})", "never runs"),
        ("agi://127.0.0.1:4573/", "agi://127.0.0.1:4574/", "[fastagi] port"),
        (
            "/usr/local/share/callcenter/agi_scripts/",
            "/usr/local/share/callcenter/agi/",
            "never runs",
        ),
    ],
)
def test_agi_checker_catches(tmp_path, old, new, expected):
    path = _broken(tmp_path, "extensions.conf", old, new)
    problems = agi_problems(build_dialplan(load(path.name, tmp_path)))
    assert any(expected in p for p in problems), problems


def test_agi_checker_catches_a_script_that_is_not_executable(tmp_path, plan):
    scripts = tmp_path / "agi_scripts"
    scripts.mkdir()
    for name in v.SCRIPTS:
        (scripts / f"{name}.py").write_text("#!/usr/bin/env python3\n", encoding="utf-8")
        (scripts / f"{name}.py").chmod(0o755)
    (scripts / "call_ended.py").chmod(0o644)
    assert agi_problems(plan, tmp_path) == [f"{scripts / 'call_ended.py'} is not executable"]


def test_queue_checker_catches(tmp_path):
    path = _broken(tmp_path, "queues.conf", "setinterfacevar = yes", "setinterfacevar = no")
    assert queue_problems(load(path.name, tmp_path)) == [
        f"[{QUEUE_NAME}] setinterfacevar should be yes"
    ]
    renamed = _broken(tmp_path, "queues.conf", f"[{QUEUE_NAME}]", "[helpdesk]")
    assert queue_problems(load(renamed.name, tmp_path)) == [f"no [{QUEUE_NAME}] queue"]


def test_manager_checker_catches(tmp_path):
    path = _broken(tmp_path, "manager.conf", "read = call,agent,dialplan,system", "read = call")
    problems = manager_problems(load(path.name, tmp_path))
    assert "[callcenter] read= lacks agent" in problems


def test_reader_understands_comments_includes_and_operators(tmp_path):
    (tmp_path / "extra.conf").write_text("[more]\nkey => value ; trailing\n", encoding="utf-8")
    conf = parse_conf(
        "; a comment\n[a]\nx = 1 ; note\ny => semi\\;colon\n#include extra.conf\n",
        base=tmp_path,
    )
    assert conf.value("a", "x") == "1"
    assert conf.value("a", "y") == "semi;colon"
    assert conf.value("more", "key") == "value"
    with pytest.raises(ConfError, match="inside a section"):
        parse_conf("orphan = 1\n")
    with pytest.raises(ConfError, match="not found"):
        parse_conf("#include nowhere.conf\n", base=tmp_path)
