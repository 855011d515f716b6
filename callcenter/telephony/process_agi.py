"""The blocking driver behind ``agi_scripts/*.py``: pyst2 for the AGI session, HTTP for the service.

pyst2's ``AGI()`` reads the environment block and installs the SIGHUP handler (Asterisk
signals the script when the caller hangs up, fact 6; without a handler the script would die
mid-report). Commands go out through pyst2's ``send_command``; replies are read with our own
parser because pyst2's ``get_result`` turns ``200 result=-1`` into an exception that cannot
tell a hangup from a missing prompt, and has no notion of 511.

Imports stay lean: a process AGI is started for every call.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import quote, urlsplit

from callcenter.telephony import agi
from callcenter.telephony import ivr as flows

DEAD = flows.DEAD
REPORT_TIMEOUT = 1.5


class ServiceClient:
    """A few JSON calls with hard timeouts; after one failure it stops trying for this call."""

    def __init__(self, base_url: str, token: str, lookup_timeout: float = 3.0) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.lookup_timeout = lookup_timeout
        self._conn: HTTPConnection | None = None
        self.down = False
        self.errors: list[str] = []

    def call(self, method: str, path: str, body: Any = None, timeout: float = REPORT_TIMEOUT):
        """The decoded JSON answer, or None when the service failed (and is now 'down')."""
        if self.down:
            return None
        payload = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        try:
            if self._conn is None:
                cls = HTTPSConnection if self._https else HTTPConnection
                self._conn = cls(self._host, self._port, timeout=timeout)
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
            self._conn.request(method, self._prefix + path, payload, self._headers)
            resp = self._conn.getresponse()
            data = resp.read()
            if resp.status >= 400:
                raise HTTPException(f"HTTP {resp.status}: {data[:200]!r}")
            return json.loads(data) if data else {}
        except (OSError, HTTPException, ValueError) as exc:
            self.down = True
            self.errors.append(f"{method} {path}: {exc}")
            if self._conn is not None:
                self._conn.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def resolve(action, client: ServiceClient, spool: Spool | None = None):
    """Answer a flow's service action over HTTP (or SERVICE_DOWN)."""
    if isinstance(action, flows.Report):
        ok = client.call("POST", "/api/v1/events", action.event)
        if ok is None:
            if spool is not None:
                spool.keep(action.event)
            return flows.SERVICE_DOWN
        return ok
    if isinstance(action, flows.WorkingTime):
        got = client.call("GET", "/api/v1/ivr/working-time")
        if got is None:
            return _local_working_time()
        from datetime import datetime

        return flows.OpenState(bool(got["open"]), datetime.fromisoformat(got["next_opening"]))
    if isinstance(action, flows.CallerCertificates):
        got = client.call("GET", "/api/v1/certificates?phone=" + quote(action.caller))
        if got is None:
            return flows.SERVICE_DOWN
        return [flows.Hint(c["number"], c["status"]) for c in got.get("certificates", [])]
    if isinstance(action, flows.Check):
        got = client.call(
            "POST",
            "/api/v1/ivr/check",
            {"call_id": action.call_id, "caller": action.caller, "number": action.number},
            timeout=client.lookup_timeout,
        )
        return flows.SERVICE_DOWN if got is None else got["status"]
    raise TypeError(f"unknown action {action!r}")


def _local_working_time():
    """The service is down: decide from the configured calendar (policy base hours)."""
    try:
        from datetime import UTC, datetime

        from callcenter.bootstrap import build_calendars
        from callcenter.config import load_settings

        settings = load_settings()
        cal = build_calendars(settings).for_hours(
            settings.policy.day_start, settings.policy.day_end
        )
        now = datetime.now(UTC)
        return flows.OpenState(cal.is_open(now), cal.next_opening(now))
    except Exception:  # never strand the caller over a calendar problem
        return flows.SERVICE_DOWN


class Spool:
    """Events the service could not take are kept in files and sent again later.

    Events are idempotent on the service, so sending one twice is harmless; losing one is not.
    """

    def __init__(self, directory: str) -> None:
        self.dir = directory

    def keep(self, event: dict) -> None:
        """Write the event down with the time it happened, since it will arrive late."""
        from datetime import UTC, datetime

        event = {"at": datetime.now(UTC).isoformat(), **event}
        try:
            os.makedirs(self.dir, exist_ok=True)
            name = os.path.join(self.dir, f"{time.time():.6f}-{os.getpid()}.json")
            with open(name + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(event, fh, ensure_ascii=False)
            os.replace(name + ".tmp", name)
        except OSError as exc:
            print(f"callcenter: cannot spool event: {exc}", file=sys.stderr)

    def flush(self, client: ServiceClient, limit: int = 200) -> int:
        """Send spooled events, oldest first; stop at the first failure."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))[:limit]
        except OSError:
            return 0
        sent = 0
        for n in names:
            path = os.path.join(self.dir, n)
            try:
                with open(path, encoding="utf-8") as fh:
                    event = json.load(fh)
            except (OSError, ValueError):
                continue
            if client.call("POST", "/api/v1/events", event) is None:
                break
            os.unlink(path)
            sent += 1
        return sent


def options_from_env() -> tuple[flows.IvrOptions, str, str, float, str]:
    """Options, service URL, token, lookup budget and spool folder for a script.

    Settings come as everywhere (defaults < CALLCENTER_CONFIG file < CALLCENTER_* variables);
    ``CALLCENTER_URL`` and ``CALLCENTER_TOKEN`` override ``[agi] service_url`` and ``token``.
    """
    from callcenter.config import load_settings

    s = load_settings()
    opts = flows.IvrOptions(
        min_length=s.certificates.min_length,
        max_length=s.certificates.max_length,
        luhn=s.certificates.check_digit == "luhn",
        max_attempts=s.ivr.max_attempts,
        digit_timeout_ms=s.ivr.digit_timeout_ms,
        queue=s.ivr.queue,
        source="agi",
    )
    url = os.environ.get("CALLCENTER_URL") or s.agi.service_url
    token = os.environ.get("CALLCENTER_TOKEN") or s.agi.token
    return opts, url, token, s.ivr.lookup_timeout_seconds, s.agi.spool_dir or _default_spool()


def _default_spool() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), "callcenter-agi-spool")


def drive(flow, session, client: ServiceClient, spool: Spool | None) -> flows.Outcome:
    """Run a flow against a live AGI session: commands to Asterisk, actions to the service."""
    parser = agi.ReplyParser()
    dead = False
    try:
        action = next(flow)
        while True:
            if isinstance(action, flows.Agi):
                result = DEAD if dead else _exchange(session, parser, action.line)
                dead = dead or result is DEAD
            else:
                result = resolve(action, client, spool)
            action = flow.send(result)
    except StopIteration as stop:
        return stop.value


def _exchange(session, parser: agi.ReplyParser, line: str) -> agi.AgiReply:
    """Send one command and read its whole reply (multi-line 520 included)."""
    try:
        session.send_command(line.rstrip("\n"))
        while True:
            raw = session.stdin.readline()
            if not raw:
                return DEAD  # AGIEXITONHANGUP=yes closes the pipes (fact 6)
            reply = parser.feed_line(raw)
            if isinstance(reply, agi.AgiReply):
                return reply
    except (BrokenPipeError, ConnectionResetError):
        return DEAD


def main(script: str) -> int:
    """Entry point of ``agi_scripts/<script>.py``."""
    from asterisk.agi import AGI

    devnull = open(os.devnull, "w")  # pyst2 echoes every command to stderr
    session = AGI(stdin=sys.stdin, stdout=sys.stdout, stderr=devnull)
    opts, url, token, budget, spool_dir = options_from_env()
    client = ServiceClient(url, token, budget)
    spool = Spool(spool_dir)
    outcome = drive(flows.FLOWS[script](session.env, opts), session, client, spool)
    for err in client.errors:
        print(f"callcenter {script} call {outcome.call_id}: service error: {err}", file=sys.stderr)
    if script == "call_ended" and not client.down:
        spool.flush(client)  # the caller is gone: a good moment to catch up
    client.close()
    return 0
