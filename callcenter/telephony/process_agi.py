"""The blocking driver behind ``agi_scripts/*.py``: pyst2 for the AGI session, HTTP for the service.

pyst2's ``AGI()`` reads the environment block and installs the SIGHUP handler (Asterisk
signals the script when the caller hangs up, fact 6; without a handler the script would die
mid-report). Commands go out through pyst2's ``send_command``; replies are read with our own
parser because pyst2's ``get_result`` turns ``200 result=-1`` into an exception that cannot
tell a hangup from a missing prompt, and has no notion of 511.

Imports stay lean: a process AGI is started for every call, and its start-up is most of its
cost. A dialogue with the service up (plain HTTP) imports no ``typing``, ``dataclasses``,
``socket``, ``urllib``, ``tempfile``, ``pprint``, ``http.client`` or domain module; what only
rare paths need (TLS, the settings file, the local calendar, the spool's default folder) is
imported there.
``tests/unit/test_process_agi_lean.py`` and ``tests/e2e/test_agi_lean.py`` hold it so.
"""

from __future__ import annotations

import os
import sys

from callcenter.telephony import agi
from callcenter.telephony import ivr as flows
from callcenter.telephony.service_client import HttpError, ServiceClient, quote, utc_now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from callcenter.telephony.spool import Spool

DEAD = flows.DEAD


def resolve(action, client: ServiceClient, spool: Spool | LazySpool | None = None):
    """Answer a flow's service action over HTTP (or SERVICE_DOWN)."""
    if isinstance(action, flows.Report):
        # stamped when it happened, so a retry from the spool is the same event (same key)
        event = {"at": utc_now_iso(), **action.event}
        was_down = client.down
        ok = client.call("POST", "/api/v1/events", event)
        if ok is None:
            err = client.last_error
            if not was_down and isinstance(err, HttpError) and err.permanent:
                client.down = False  # the service answered: only this event is refused
                return None  # (and kept out of the spool, where it would block the rest)
            if spool is not None:
                spool.keep(event)
            return flows.SERVICE_DOWN
        return ok
    if isinstance(action, flows.WorkingTime):
        # with the service down (a report failed, or this question does), the local calendar
        got = None if client.down else client.call("GET", "/api/v1/ivr/working-time")
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
    if isinstance(action, flows.Voicemail):
        return _leave_voicemail(action, client, spool)
    raise TypeError(f"unknown action {action!r}")


VOICEMAIL_TIMEOUT = 10.0  # up to ~1 MiB to send: longer than a lookup


def _leave_voicemail(action, client: ServiceClient, spool=None):
    """Send the recording Asterisk wrote on this host to the service; the file is removed
    once a ticket holds it. If the service cannot take it now, the message is spooled (the
    file stays where Asterisk wrote it) and handed over with the spool's events later:
    :data:`flows.KEPT`."""
    message = voicemail_message(action.call_id, action.caller, action.number, action.path)
    left = utc_now_iso()  # sent with the message only if it has to wait in the spool
    try:
        got = send_voicemail(client, message)
    except OSError as exc:  # the recording cannot be read: nothing to keep
        client.errors.append(f"voicemail {action.path}: {exc}")
        return None
    if got is None:
        err = client.last_error
        if isinstance(err, HttpError) and err.permanent:
            client.down = False
            return None  # refused for good (an invalid certificate, a broken file)
        if spool is not None:  # dated when it was left: its ticket's clock starts then
            spool.keep({"voicemail": {**message, "at": left}})
            return flows.KEPT
        return flows.SERVICE_DOWN
    return int(got["ticket_id"])


def voicemail_message(call_id: str, caller: str | None, number: str, path: str) -> dict:
    return {"call_id": call_id, "caller": caller, "number": number, "path": path}


def send_voicemail(client: ServiceClient, message: dict):
    """POST a kept or fresh message with its recording; the file is removed once a ticket
    holds it. None if it was not taken (``client.last_error`` says why); OSError if the
    recording cannot be read."""
    import base64

    with open(message["path"], "rb") as fh:
        audio = fh.read()
    body = {k: message[k] for k in ("call_id", "caller", "number", "at") if message.get(k)}
    body["recording"] = base64.b64encode(audio).decode("ascii")
    got = client.call("POST", "/api/v1/ivr/voicemail", body, timeout=VOICEMAIL_TIMEOUT)
    if got is not None:
        try:
            os.unlink(message["path"])
        except OSError:
            pass
    return got


def _local_working_time():
    """The service is down: decide from the configured calendar (policy base hours).

    Built here from ``callcenter.calendar`` itself: a driver does not import the composition
    root (``bootstrap``), which would bring the storage and web layers into a script.
    """
    try:
        from datetime import UTC, datetime

        from callcenter.calendar import MOSCOW, WorkCalendar, load_overrides
        from callcenter.config import load_settings

        settings = load_settings()
        path = settings.calendar.overrides_file
        cal = WorkCalendar(
            day_start=settings.policy.day_start,
            day_end=settings.policy.day_end,
            overrides=load_overrides(path) if path else None,
            tz=MOSCOW,
        )
        now = datetime.now(UTC)
        return flows.OpenState(cal.is_open(now), cal.next_opening(now))
    except Exception:  # never strand the caller over a calendar problem
        return flows.SERVICE_DOWN


_SECTIONS = (
    "CALLCENTER_CERTIFICATES_",
    "CALLCENTER_IVR_",
    "CALLCENTER_AGI_",
    "CALLCENTER_VOICEMAIL_",
)


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


class LazySpool:
    """The spool of one service URL, imported when first used: most calls keep nothing, and
    a process AGI's start-up is most of its cost. Has the :class:`Spool` methods the driver
    uses (``keep``, ``flush``)."""

    def __init__(self, directory: str | None, owner: str) -> None:
        self._directory, self._owner = directory, owner
        self._spool: Spool | None = None

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            from callcenter.telephony.spool import Spool

            self._spool = Spool(self._directory, owner=self._owner)
        return self._spool

    def keep(self, event: dict) -> None:
        self.spool.keep(event)

    def flush(self, client: ServiceClient, limit: int = 200) -> int:
        return self.spool.flush(client, limit)


def drive(flow, session, client: ServiceClient, spool: Spool | LazySpool | None) -> flows.Outcome:
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
    closed, its spool files are written, pyst2 has flushed every command, and the scripts
    register no exit work of their own. The one exit work a library may have registered is
    ``logging``'s (when a rare path loaded it), so logging is shut down here explicitly, then
    standard output and error are flushed and the process ends with ``os._exit``. If a flush
    fails, it exits the ordinary way, as ``sys.exit(code)``.
    """
    logging = sys.modules.get("logging")
    try:
        if logging is not None:
            logging.shutdown()
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
    spool = LazySpool(spool_dir, owner=url)
    outcome = drive(flows.FLOWS[script](session.env, opts), session, client, spool)
    for err in client.errors:
        print(f"callcenter {script} call {outcome.call_id}: service error: {err}", file=sys.stderr)
    if script == "call_ended" and not client.down:
        spool.flush(client)  # the caller is gone: a good moment to catch up
    client.close()
    return 0
