"""A fake Asterisk 22 AMI server for tests: a real TCP socket, the recorded byte streams.

One concern (the manager's side of a session) in ~440 lines, most of them its recorded
behaviour.

It behaves like the manager of ``/work/shared/asterisk-transcripts`` (file 07 and README
facts 14-15) and can replay the complete AMI streams recorded for files 05 and 06
(``raw/ami-q5-queue-agent-answer.log``, ``raw/ami-q6-queue-abandon.log``) byte for byte::

    async with FakeAmiServer() as server:          # 127.0.0.1, a free port
        client = AmiClient(server.host, server.port, "test", "test", on_event)
        ...
        await server.wait_logins(1)
        await server.replay(Q5.events)              # every event of the call, in order
        await server.replay(Q5.events, rewrite=distinct_ids(Q5.events, 1))  # another call
        await server.drop()                         # the network goes away

Behaviour (``07:line``):

* On connect: the banner ``Asterisk Call Manager/11.0.0\\r\\n``, one line, no empty line.
* ``Login`` with the configured ``username``/``secret``: ``Response: Success`` / ``Message:
  Authentication accepted``; then ``FullyBooted`` and ``SuccessfulAuth`` (the recorded
  ones) if the session's event mask lets ``system``/``security`` through (07.4 logged in
  with ``Events: off`` and got neither). A wrong login: after ``auth_fail_delay`` seconds
  (Asterisk: ~1 s, 07:94) ``Response: Error`` / ``Message: Authentication failed``, then
  the server closes the connection.
* Any action but Login/Logoff/Challenge before login: ``Message: Permission denied``
  (the connection stays). No ``Action`` header: ``Message: Missing action in request``.
* ``Ping``: ``Response: Success``, ``Ping: Pong``, ``Timestamp: <epoch>.<usec>``
  (``answer_pings = False`` makes connections opened from then on ignore pings, to test
  keepalive timeouts).
* ``Events`` (``EventMask``): ``Response: Success`` / ``Events: On|Off``.
* ``Logoff``: ``Response: Goodbye`` / ``Message: Thanks for all the fish.``, then a close.
* ``QueuePause`` (``app_queue.c``, ``manager_pause_queue_member``): without ``Interface`` or
  ``Paused``, ``Message: Need 'Interface' and 'Paused' parameters.``; an interface that is
  no member (``members``, interface -> queues) ``Message: Interface not found``; otherwise
  ``Response: Success`` / ``Message: Interface paused successfully`` (``unpaused``) and one
  ``QueueMemberPause`` event per queue (``queue_member_blob_create``'s fields: ``Paused``
  ``1``/``0``, ``PausedReason``), as :meth:`FakeAmiServer.member_paused` sends for a pause
  made on the phone.
* Anything else: ``Message: Invalid/unknown command: <Action>. Use Action: ListCommands
  to show available commands.``
* ``ActionID`` is echoed as the line right after ``Response:`` and omitted if not sent.
* Events go only to logged-in sessions whose mask (``Events:`` of Login: absent/``on`` =
  all, ``off`` = none, else a class list such as ``call,agent``) includes a class of the
  event's ``Privilege`` (``call,all`` -> call). Events without Privilege always go.

Client messages are parsed here with a plain ``readuntil(b"\\r\\n\\r\\n")``, independently of
the framer under test.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TRANSCRIPTS = Path("/work/shared/asterisk-transcripts")
RAW = TRANSCRIPTS / "raw"
RAW_Q5 = RAW / "ami-q5-queue-agent-answer.log"
RAW_Q6 = RAW / "ami-q6-queue-abandon.log"
RAW_07 = RAW / "ami-07-basics.log"

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EVENT_CLASSES = frozenset(
    "system call log verbose command agent user config dtmf reporting cdr dialplan "
    "originate agi cc aoc test security message".split()
)

# '<seconds> <dir> <text>'; a bare '<<' / '>>' is the empty line that ends a message.
_LOG_LINE = re.compile(r"^\s*(\d+\.\d+) (<<|>>|##)(?: (.*))?$")


@dataclass(frozen=True)
class LogMessage:
    """One message of a raw log: who sent it, when (s since connect), its exact bytes."""

    direction: str  # '<<' from Asterisk, '>>' from the client
    t: float
    data: bytes
    connection: int  # 1-based TCP connection number in the log

    @property
    def lines(self) -> list[tuple[str, str]]:
        out = []
        for line in self.data.decode().split("\r\n"):
            if line:
                key, _, value = line.partition(": ")
                out.append((key, value))
        return out

    @property
    def first(self) -> tuple[str, str]:
        return self.lines[0]

    @property
    def name(self) -> str:
        """The Event, Response or Action value."""
        return self.first[1]

    def get(self, key: str) -> str | None:
        for k, v in self.lines:
            if k == key:
                return v
        return None


def parse_log(path: Path) -> tuple[list[bytes], list[LogMessage]]:
    """The banners and the messages of a raw AMI log, both directions, in order. Message bytes
    are rebuilt exactly: each logged line + ``\\r\\n``, then the empty ``\\r\\n``. The
    recorder's ``[EOF: ...]`` markers and ``##`` comments are not data."""
    banners: list[bytes] = []
    messages: list[LogMessage] = []
    connection = 0
    current: dict[str, tuple[float, list[str]]] = {}
    expect_banner = False
    for raw_line in path.read_text(encoding="ascii").splitlines():
        m = _LOG_LINE.match(raw_line)
        if not m:
            continue
        t, direction, text = float(m.group(1)), m.group(2), m.group(3)
        if direction == "##":
            if text and text.startswith("connecting to"):
                connection += 1
                current.clear()
                expect_banner = True
            continue
        if text is not None and text.startswith("[EOF:"):
            continue
        if direction == "<<" and expect_banner and text:
            expect_banner = False
            banners.append(text.encode() + b"\r\n")
            continue
        if text is None:  # the empty line: end of a message
            started = current.pop(direction, None)
            if started is not None:
                data = "".join(f"{line}\r\n" for line in started[1]) + "\r\n"
                messages.append(LogMessage(direction, started[0], data.encode(), connection))
            continue
        current.setdefault(direction, (t, []))[1].append(text)
    return banners, messages


@dataclass(frozen=True)
class Recording:
    """A monitor session (files 05/06): login, every event of the call, Logoff."""

    banner: bytes
    login_response: LogMessage
    session_events: tuple[LogMessage, ...]  # FullyBooted, SuccessfulAuth (sent at login)
    events: tuple[LogMessage, ...]  # everything else Asterisk sent until the Logoff
    goodbye: LogMessage | None


def load_recording(path: Path) -> Recording:
    banners, messages = parse_log(path)
    login_at = next(
        i for i, m in enumerate(messages) if m.direction == "<<" and m.first[0] == "Response"
    )
    after: list[LogMessage] = []
    goodbye = None
    for m in messages[login_at + 1 :]:
        if m.direction == ">>":  # the Logoff: the call's stream is over
            rest = messages[messages.index(m) + 1 :]
            goodbye = next((r for r in rest if r.direction == "<<"), None)
            break
        after.append(m)
    assert all(m.first[0] == "Event" for m in after), "a response inside the event stream"
    session = tuple(m for m in after if m.name in ("FullyBooted", "SuccessfulAuth"))
    events = tuple(m for m in after if m not in session)
    return Recording(banners[0], messages[login_at], session, events, goodbye)


def rewrite_ids(data: bytes, mapping: Mapping[str, str] | Callable[[str], str]) -> bytes:
    """``data`` with the values of every ``*Uniqueid``/``*Linkedid`` line (any case, so CEL's
    ``UniqueID``/``LinkedID`` too) replaced through ``mapping``; other bytes unchanged."""
    out = []
    for line in data.split(b"\r\n"):
        key, sep, value = line.partition(b": ")
        k = key.lower()
        if sep and (k.endswith(b"uniqueid") or k.endswith(b"linkedid")):
            old = value.decode()
            new = mapping(old) if callable(mapping) else mapping.get(old, old)
            line = key + sep + new.encode()
        out.append(line)
    return b"\r\n".join(out)


def distinct_ids(events: Iterable[LogMessage], n: int) -> dict[str, str]:
    """A mapping that turns the ids of a recorded call into those of call number ``n``
    (``1795483251.54`` -> ``1795483251.1054`` for n=1): replaying it gives another call."""
    mapping: dict[str, str] = {}
    for ev in events:
        for key, value in ev.lines:
            k = key.lower()
            if (k.endswith("uniqueid") or k.endswith("linkedid")) and re.fullmatch(
                r"\d+\.\d+", value
            ):
                epoch, seq = value.split(".")
                mapping[value] = f"{epoch}.{int(seq) + 1000 * n}"
    return mapping


def _parse_mask(value: str | None) -> frozenset[str]:
    if value is None:
        return EVENT_CLASSES
    v = value.strip().lower()
    if v in ("on", "yes", "true", "y", "t", "1"):
        return EVENT_CLASSES
    if v in ("off", "no", "false", "n", "f", "0", ""):
        return frozenset()
    return frozenset(part.strip() for part in v.split(",")) & EVENT_CLASSES


def _privilege(data: bytes) -> frozenset[str] | None:
    m = re.search(rb"\r\nPrivilege: ([^\r]*)\r\n", data)
    if m is None:
        return None
    return frozenset(m.group(1).decode().split(",")) - {"all"}


@dataclass(eq=False)
class ServerSession:
    """One client connection as the server sees it."""

    number: int
    writer: asyncio.StreamWriter
    answer_pings: bool = True
    authenticated: bool = False
    mask: frozenset[str] = frozenset()
    actions: list[dict[str, str]] = field(default_factory=list)

    def wants(self, data: bytes) -> bool:
        if not self.authenticated:
            return False
        classes = _privilege(data)
        return classes is None or bool(classes & self.mask)


class FakeAmiServer:
    def __init__(
        self,
        *,
        username: str = "test",
        secret: str = "test",
        auth_fail_delay: float = 0.02,
        answer_pings: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.username, self.secret = username, secret
        self.auth_fail_delay = auth_fail_delay
        self.answer_pings = answer_pings
        self.host = host
        self.port = 0
        self.sessions: list[ServerSession] = []  # every connection ever, in order
        self.login_attempts = 0
        self.logins = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._session_events = Q5.session_events
        #: queue members, interface -> the queues it is in (QueuePause acts on these)
        self.members: dict[str, list[str]] = {}
        self.paused: dict[str, tuple[bool, str]] = {}

    # ---- lifecycle

    async def start(self) -> FakeAmiServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop()
        if self._handlers:
            await asyncio.wait(self._handlers)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAmiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what tests drive

    @property
    def active(self) -> list[ServerSession]:
        return [s for s in self.sessions if not s.writer.is_closing()]

    @property
    def actions(self) -> list[dict[str, str]]:
        """Every action received, all connections, in order."""
        return [a for s in self.sessions for a in s.actions]

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 5.0) -> None:
        """Poll ``predicate`` until it holds (TimeoutError after ``seconds``)."""
        async with asyncio.timeout(seconds):
            while not predicate():  # noqa: ASYNC110 - polling any condition is the point
                await asyncio.sleep(0.002)

    async def wait_logins(self, n: int, seconds: float = 5.0) -> None:
        await self.wait_for(lambda: self.logins >= n, seconds)

    async def replay(
        self,
        events: Sequence[LogMessage],
        *,
        speed: float | None = None,
        rewrite: Mapping[str, str] | Callable[[str], str] | None = None,
        chunk: int | None = None,
    ) -> int:
        """Send ``events`` to every logged-in session that wants them. ``speed``: None = as
        fast as possible, else keep the recorded gaps divided by ``speed``. ``chunk``: write
        in pieces of that many bytes (each drained) to split messages across reads.
        Returns how many messages were sent (counting each session)."""
        sent = 0
        prev = events[0].t if events else 0.0
        for ev in events:
            if speed:
                await asyncio.sleep(max(0.0, ev.t - prev) / speed)
                prev = ev.t
            data = rewrite_ids(ev.data, rewrite) if rewrite is not None else ev.data
            for session in self.active:
                if session.wants(data):
                    await self._write(session, data, chunk)
                    sent += 1
        return sent

    async def member_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        """A pause or unpause of a member (from the phone, or by QueuePause): one
        ``QueueMemberPause`` per queue, to every session whose mask lets ``agent`` through."""
        self.paused[interface] = (paused, reason)
        for queue in self.members.get(interface, []):
            fields = [
                ("Event", "QueueMemberPause"),
                ("Privilege", "agent,all"),
                ("Queue", queue),
                ("MemberName", interface),
                ("Interface", interface),
                ("StateInterface", interface),
                ("Membership", "static"),
                ("Penalty", "0"),
                ("CallsTaken", "0"),
                ("LastCall", "0"),
                ("LastPause", str(int(time.time()))),
                ("LoginTime", str(int(time.time()))),
                ("InCall", "0"),
                ("Status", "1"),
                ("Paused", "1" if paused else "0"),
                ("PausedReason", reason if paused else ""),
                ("Ringinuse", "0"),
                ("Wrapuptime", "0"),
            ]
            data = ("".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode()
            for session in self.active:
                if session.wants(data):
                    await self._write(session, data, None)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are to every logged-in session (for partial messages)."""
        for session in self.active:
            if session.authenticated:
                await self._write(session, data, None)

    async def drop(self) -> None:
        """Abort every open connection (no FIN handshake courtesy, like a dead network)."""
        for session in self.active:
            session.writer.transport.abort()
        await asyncio.sleep(0)

    # ---- protocol

    async def _write(self, session: ServerSession, data: bytes, chunk: int | None) -> None:
        try:
            if chunk:
                for i in range(0, len(data), chunk):
                    session.writer.write(data[i : i + chunk])
                    await session.writer.drain()
            else:
                session.writer.write(data)
                await session.writer.drain()
        except (ConnectionError, OSError):
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = ServerSession(len(self.sessions) + 1, writer, self.answer_pings)
        self.sessions.append(session)
        try:
            writer.write(BANNER)
            await writer.drain()
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                action = _parse_action(raw)
                session.actions.append(action)
                if not await self._respond(session, action):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._handlers.discard(task)

    async def _respond(self, session: ServerSession, action: dict[str, str]) -> bool:
        """Answer one action; False = close the connection afterwards."""
        name = action.get("Action", "")
        aid = action.get("ActionID")
        lname = name.lower()
        if not name:
            await self._reply(session, "Error", aid, ("Message", "Missing action in request"))
        elif not session.authenticated and lname not in ("login", "logoff", "challenge"):
            await self._reply(session, "Error", aid, ("Message", "Permission denied"))
        elif lname == "login":
            self.login_attempts += 1
            if action.get("Username") != self.username or action.get("Secret") != self.secret:
                await asyncio.sleep(self.auth_fail_delay)
                await self._reply(session, "Error", aid, ("Message", "Authentication failed"))
                return False
            session.authenticated = True
            session.mask = _parse_mask(action.get("Events"))
            self.logins += 1
            await self._reply(session, "Success", aid, ("Message", "Authentication accepted"))
            for ev in self._session_events:
                if session.wants(ev.data):
                    await self._write(session, ev.data, None)
        elif lname == "logoff":
            await self._reply(session, "Goodbye", aid, ("Message", "Thanks for all the fish."))
            return False
        elif lname == "ping":
            if session.answer_pings:
                await self._reply(
                    session, "Success", aid, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")
                )
        elif lname == "queuepause":
            iface, paused_s = action.get("Interface", ""), action.get("Paused", "")
            if not iface or not paused_s:
                text = "Need 'Interface' and 'Paused' parameters."
                await self._reply(session, "Error", aid, ("Message", text))
            elif iface not in self.members:
                await self._reply(session, "Error", aid, ("Message", "Interface not found"))
            else:
                paused = paused_s.strip().lower() in ("1", "true", "yes", "on", "y", "t")
                word = "paused" if paused else "unpaused"
                await self._reply(
                    session, "Success", aid, ("Message", f"Interface {word} successfully")
                )
                await self.member_paused(iface, paused, action.get("Reason", ""))
        elif lname == "events":
            session.mask = _parse_mask(action.get("EventMask"))
            await self._reply(session, "Success", aid, ("Events", "On" if session.mask else "Off"))
        else:
            text = (
                f"Invalid/unknown command: {name}. "
                "Use Action: ListCommands to show available commands."
            )
            await self._reply(session, "Error", aid, ("Message", text))
        return True

    async def _reply(
        self, session: ServerSession, response: str, aid: str | None, *fields: tuple[str, str]
    ) -> None:
        lines = [("Response", response)]
        if aid is not None:
            lines.append(("ActionID", aid))
        lines.extend(fields)
        data = "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n"
        await self._write(session, data.encode(), None)


def _parse_action(raw: bytes) -> dict[str, str]:
    action: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if line:
            key, _, value = line.partition(":")
            action.setdefault(key.strip(), value[1:] if value.startswith(" ") else value)
    return action


Q5 = load_recording(RAW_Q5)
Q6 = load_recording(RAW_Q6)
