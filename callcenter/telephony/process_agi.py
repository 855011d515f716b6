"""The blocking driver behind ``agi_scripts/*.py``: pyst2 for the AGI session, HTTP for the service.

pyst2's ``AGI()`` reads the environment block and installs the SIGHUP handler (Asterisk
signals the script when the caller hangs up, fact 6; without a handler the script would die
mid-report). Commands go out through pyst2's ``send_command``; replies are read with our own
parser because pyst2's ``get_result`` turns ``200 result=-1`` into an exception that cannot
tell a hangup from a missing prompt, and has no notion of 511.

Imports stay lean: a process AGI is started for every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any
from urllib.parse import quote, urlsplit

from callcenter.telephony import agi
from callcenter.telephony import ivr as flows

DEAD = flows.DEAD
REPORT_TIMEOUT = 1.5


class _HttpError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """A 4xx that sending again cannot fix (auth and rate limits aside)."""
        return 400 <= self.status < 500 and self.status not in (401, 403, 408, 429)


class _Stale(Exception):
    """A kept-alive socket the server had closed: nothing was answered, try a fresh one."""


class ServiceClient:
    """A few JSON calls with hard timeouts; after one failure it stops trying for this call.

    A raw HTTP/1.1 keep-alive client on a socket: ``http.client`` imports the ``email``
    package, which alone costs a process AGI ~30 ms at every call's start.
    """

    def __init__(self, base_url: str, token: str, lookup_timeout: float = 3.0) -> None:
        parts = urlsplit(base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        self._auth = f"Bearer {token}"
        self.lookup_timeout = lookup_timeout
        self._sock = None
        self._buf = b""
        self.down = False
        self.errors: list[str] = []
        self.last_error: Exception | None = None

    def call(self, method: str, path: str, body: Any = None, timeout: float = REPORT_TIMEOUT):
        """The decoded JSON answer, or None when the service failed (and is now 'down')."""
        if self.down:
            return None
        try:
            try:
                return self._request(method, path, body, timeout)
            except _Stale:
                self.close()  # aiohttp drops idle keep-alive sockets after 75 s
                return self._request(method, path, body, timeout)
        except (OSError, _HttpError, _Stale, ValueError, KeyError, IndexError) as exc:
            self.last_error = exc
            self.down = True
            self.errors.append(f"{method} {path}: {exc}")
            self.close()
            return None

    def _connect(self, timeout: float):
        import socket

        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        if self._tls:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        return sock

    def _request(self, method: str, path: str, body: Any, timeout: float):
        deadline = time.monotonic() + timeout
        payload = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        head = (
            f"{method} {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Authorization: {self._auth}\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        reused = self._sock is not None
        if self._sock is None:
            self._sock = self._connect(timeout)
        self._sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            self._sock.sendall(head.encode() + payload)
            status_line, headers = self._read_head(deadline)
        except (ConnectionError, BrokenPipeError) as exc:
            if reused and not self._buf:
                raise _Stale(str(exc)) from exc
            raise
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _HttpError("chunked responses are not supported")
        length = int(headers.get("content-length", "0"))
        data = self._read_exact(length, deadline)
        if headers.get("connection", "").lower() == "close":
            self.close()
        status = int(status_line.split()[1])
        if status >= 400:
            raise _HttpError(f"HTTP {status}: {data[:200]!r}", status)
        return json.loads(data) if data else {}

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("service answer timed out")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("service closed the connection")
        self._buf += chunk

    def _read_head(self, deadline: float) -> tuple[str, dict[str, str]]:
        while b"\r\n\r\n" not in self._buf:
            self._fill(deadline)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return lines[0], headers

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._buf = None, b""


def resolve(action, client: ServiceClient, spool: Spool | None = None):
    """Answer a flow's service action over HTTP (or SERVICE_DOWN)."""
    if isinstance(action, flows.Report):
        ok = client.call("POST", "/api/v1/events", action.event)
        if ok is None:
            rejected = isinstance(client.last_error, _HttpError) and client.last_error.permanent
            if spool is not None and not rejected:  # a rejected event would block the spool
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
                err = client.last_error
                if not (isinstance(err, _HttpError) and err.permanent):
                    break
                client.down = False  # the service answered; only this event is refused
                os.replace(path, path + ".rejected")
                continue
            with contextlib.suppress(FileNotFoundError):  # another hangup handler sent it too
                os.unlink(path)
            sent += 1
        return sent


_SECTIONS = ("CALLCENTER_CERTIFICATES_", "CALLCENTER_IVR_", "CALLCENTER_AGI_")


def options_from_env() -> tuple[flows.IvrOptions, str, str, float, str]:
    """Options, service URL, token, lookup budget and spool folder for a script.

    Settings are read as everywhere (defaults < CALLCENTER_CONFIG file < CALLCENTER_*
    variables), but only when something asks for them: with just CALLCENTER_URL and
    CALLCENTER_TOKEN the defaults apply and the script starts ~15 ms sooner.
    """
    url = os.environ.get("CALLCENTER_URL")
    token = os.environ.get("CALLCENTER_TOKEN")
    spool = os.environ.get("CALLCENTER_AGI_SPOOL_DIR")
    tuned = any(k.startswith(_SECTIONS) and k != "CALLCENTER_AGI_SPOOL_DIR" for k in os.environ)
    if url and token and not tuned and not os.environ.get("CALLCENTER_CONFIG"):
        return flows.IvrOptions(source="agi"), url, token, 3.0, spool or _default_spool()
    from callcenter.config import load_settings

    s = load_settings()
    opts = flows.IvrOptions.from_settings(s, "agi")
    url = url or s.agi.service_url
    token = token or s.agi.token
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
