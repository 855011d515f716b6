"""The blocking driver behind ``agi_scripts/*.py``: pyst2 for the AGI session, HTTP for the service.

pyst2's ``AGI()`` reads the environment block and installs the SIGHUP handler (Asterisk
signals the script when the caller hangs up, fact 6; without a handler the script would die
mid-report). Commands go out through pyst2's ``send_command``; replies are read with our own
parser because pyst2's ``get_result`` turns ``200 result=-1`` into an exception that cannot
tell a hangup from a missing prompt, and has no notion of 511.

Imports stay lean: a process AGI is started for every call, and its start-up is most of its
cost. A dialogue with the service up (plain HTTP) imports no ``typing``, ``dataclasses``,
``socket``, ``urllib``, ``tempfile``, ``pprint``, ``http.client`` or domain module; what only
rare paths need (TLS, the settings file, the local calendar, the spool) is imported there.
``tests/unit/test_process_agi_lean.py`` and ``tests/e2e/test_agi_lean.py`` hold it so.
"""

from __future__ import annotations

import json
import os
import sys
import time

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
        scheme, hostname, port, path = _split_url(base_url)
        self._tls = scheme == "https"
        self._host = hostname or "127.0.0.1"
        self._port = port or (443 if self._tls else 80)
        self._prefix = path.rstrip("/")
        self._auth = f"Bearer {token}"
        self.lookup_timeout = lookup_timeout
        self._sock = None
        self._buf = b""
        self.down = False
        self.errors: list[str] = []
        self.last_error: Exception | None = None

    def call(self, method: str, path: str, body: object = None, timeout: float = REPORT_TIMEOUT):
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
        if not self._tls:
            return _tcp_connection(self._host, self._port, timeout)
        import socket
        import ssl

        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        return ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)

    def _request(self, method: str, path: str, body: object, timeout: float):
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


# The characters urllib.parse.urlsplit and quote() leave alone; anything else takes the
# standard library's way (urllib.parse costs a script ~3 ms to import).
_PLAIN_HOST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _split_url(url: str) -> tuple[str, str | None, int | None, str]:
    """Scheme, host name, port and path of the service URL, as ``urlsplit`` reads them."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    host, colon, port = netloc.partition(":")
    if (
        sep
        and scheme in ("http", "https")
        and host
        and _PLAIN_HOST.issuperset(host)
        and (not colon or (port.isascii() and port.isdigit() and 0 < int(port) <= 65535))
        and _URL_SAFE.issuperset(path)
    ):
        return scheme, host, int(port) if colon else None, slash + path
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port, parts.path


def _quote(text: str) -> str:
    """``urllib.parse.quote(text)``."""
    if _URL_SAFE.issuperset(text):
        return text
    from urllib.parse import quote

    return quote(text)


def _tcp_connection(host: str, port: int, timeout: float):
    """``socket.create_connection((host, port), timeout)`` on the C-level socket type.

    The ``socket`` module costs a script ~3 ms to import (it builds enums of every
    constant); ``_socket.socket`` is the type its ``socket`` class derives from, and all
    this client needs: connect, settimeout, sendall, recv, close.
    """
    import _socket

    first_error = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error
    raise OSError("getaddrinfo returns an empty list")


def _utc_now_iso() -> str:
    """``datetime.now(UTC).isoformat()`` without importing datetime (~1.5 ms a start)."""
    now = time.time()
    whole = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (
        f".{int((now - whole) * 1e6):06d}+00:00"
    )


def resolve(action, client: ServiceClient, spool: Spool | None = None):
    """Answer a flow's service action over HTTP (or SERVICE_DOWN)."""
    if isinstance(action, flows.Report):
        # stamped when it happened, so a retry from the spool is the same event (same key)
        event = {"at": _utc_now_iso(), **action.event}
        was_down = client.down
        ok = client.call("POST", "/api/v1/events", event)
        if ok is None:
            err = client.last_error
            if not was_down and isinstance(err, _HttpError) and err.permanent:
                client.down = False  # the service answered: only this event is refused
                return None  # (and kept out of the spool, where it would block the rest)
            if spool is not None:
                spool.keep(event)
            return flows.SERVICE_DOWN
        return ok
    if isinstance(action, flows.WorkingTime):
        got = client.call("GET", "/api/v1/ivr/working-time")
        if got is None:
            return _local_working_time()
        from datetime import datetime

        return flows.OpenState(bool(got["open"]), datetime.fromisoformat(got["next_opening"]))
    if isinstance(action, flows.CallerCertificates):
        got = client.call("GET", "/api/v1/certificates?phone=" + _quote(action.caller))
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
    Without a directory the default one is used, found only when first needed.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._dir = directory

    @property
    def dir(self) -> str:
        if self._dir is None:
            self._dir = _default_spool()
        return self._dir

    @dir.setter
    def dir(self, directory: str) -> None:
        self._dir = directory

    def keep(self, event: dict) -> None:
        """Write the event down with the time it happened, since it will arrive late."""
        event = {"at": _utc_now_iso(), **event}
        try:
            os.makedirs(self.dir, exist_ok=True)
            name = os.path.join(self.dir, f"{time.time():.6f}-{os.getpid()}.json")
            with open(name + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(event, fh, ensure_ascii=False)
            os.replace(name + ".tmp", name)
        except OSError as exc:
            print(f"callcenter: cannot spool event: {exc}", file=sys.stderr)

    def entries(self, limit: int = 200):
        """(path, event) of the spooled events, oldest first (unreadable ones skipped)."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))[:limit]
        except OSError:
            return
        for n in names:
            path = os.path.join(self.dir, n)
            try:
                with open(path, encoding="utf-8") as fh:
                    yield path, json.load(fh)
            except (OSError, ValueError):
                continue

    @staticmethod
    def settle(path: str, sent: bool) -> None:
        """Sent: the file goes. Refused for good: kept aside as ``.rejected`` for a person."""
        try:
            if sent:
                os.unlink(path)
            else:
                os.replace(path, path + ".rejected")
        except FileNotFoundError:  # another hangup handler (or the service) sent it too
            pass

    def flush(self, client: ServiceClient, limit: int = 200) -> int:
        """Send spooled events over HTTP, oldest first; stop at the first failure."""
        sent = 0
        for path, event in self.entries(limit):
            if client.call("POST", "/api/v1/events", event) is None:
                err = client.last_error
                if not (isinstance(err, _HttpError) and err.permanent):
                    break
                client.down = False  # the service answered; only this event is refused
                self.settle(path, sent=False)
                continue
            self.settle(path, sent=True)
            sent += 1
        return sent


_SECTIONS = ("CALLCENTER_CERTIFICATES_", "CALLCENTER_IVR_", "CALLCENTER_AGI_")


def options_from_env() -> tuple[flows.IvrOptions, str, str, float, str | None]:
    """Options, service URL, token, lookup budget and spool folder for a script.

    Settings are read as everywhere (defaults < CALLCENTER_CONFIG file < CALLCENTER_*
    variables), but only when something asks for them: with just CALLCENTER_URL and
    CALLCENTER_TOKEN the defaults apply and the script starts ~15 ms sooner. The spool
    folder is None for the default one (``tempfile`` is imported only if it is used).
    """
    url = os.environ.get("CALLCENTER_URL")
    token = os.environ.get("CALLCENTER_TOKEN")
    spool = os.environ.get("CALLCENTER_AGI_SPOOL_DIR")
    tuned = any(k.startswith(_SECTIONS) and k != "CALLCENTER_AGI_SPOOL_DIR" for k in os.environ)
    if url and token and not tuned and not os.environ.get("CALLCENTER_CONFIG"):
        return flows.IvrOptions(source="agi"), url, token, 3.0, spool or None
    from callcenter.config import load_settings

    s = load_settings()
    opts = flows.IvrOptions.from_settings(s, "agi")
    url = url or s.agi.service_url
    token = token or s.agi.token
    return opts, url, token, s.ivr.lookup_timeout_seconds, s.agi.spool_dir or None


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


def _pyst2_agi():
    """pyst2's ``AGI`` class, imported without the two modules it needs only for show.

    ``asterisk.agi`` imports ``pprint`` only to pretty-print the environment into its debug
    stream (which goes to /dev/null here), and ``pprint`` imports ``dataclasses`` and
    ``inspect``: ~10 ms at every call. It imports ``six`` only for ``PY3``. While it is
    imported, minimal stand-ins take their places in ``sys.modules`` (``pformat`` is
    ``repr``); then they are taken out again, so any later ``import pprint`` gets the real
    one. The session is still pyst2's own ``AGI()``. Should a pyst2 release need more of
    either module, the import falls back to the ordinary one.
    """
    module = sys.modules.get("asterisk.agi")
    if module is not None:
        return module.AGI
    stand_ins = {}
    if "pprint" not in sys.modules:
        pprint = stand_ins["pprint"] = type(sys)("pprint")
        pprint.pformat = lambda obj, *args, **kwargs: repr(obj)
    if "six" not in sys.modules:
        six = stand_ins["six"] = type(sys)("six")
        six.PY3 = True
    sys.modules.update(stand_ins)
    try:
        from asterisk import agi as module
    except ImportError:
        sys.modules.pop("asterisk.agi", None)
        module = None
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    if module is None:
        from asterisk import agi as module
    return module.AGI


def exit_now(code: int) -> None:
    """End the script's process with ``code``, skipping the interpreter's teardown.

    A process AGI is over when Asterisk sees its pipes close, at the very end of the
    process; tearing the interpreter down (every module's objects, one by one) costs a
    script ~5 ms more. Nothing of the script's own is left to do by then: its socket is
    closed, its spool files are written, and pyst2 has flushed every command. So standard
    output and error are flushed and the process ends with ``os._exit``, unless something
    registered exit work (``atexit``, e.g. ``logging`` once the settings were loaded) or a
    flush fails: then it exits the ordinary way, as ``sys.exit(code)``.
    """
    import atexit

    pending = getattr(atexit, "_ncallbacks", None)
    if pending is None or pending():
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


def main(script: str) -> int:
    """Entry point of ``agi_scripts/<script>.py`` (its exit code)."""
    AGI = _pyst2_agi()
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
