"""Typed, frozen settings: code defaults < TOML file < ``CALLCENTER_<SECTION>_<KEY>`` variables.

This is the only module that reads ``os.environ`` for settings. Every value is checked once at
start; a bad one raises :class:`ConfigError` naming the key, never a traceback deep in the code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

ENV_PREFIX = "CALLCENTER_"
CONFIG_ENV = "CALLCENTER_CONFIG"
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///var/callcenter.sqlite3"


class ConfigError(ValueError):
    """A setting is missing, unknown or has a bad value; the message names the key."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = DEFAULT_SQLITE_URL
    auto_migrate: bool = True
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    session_hours: int = 12
    secure_cookies: bool = False
    #: unused since sessions are kept server-side; still accepted so older files load
    secret_key: str = ""


@dataclass(frozen=True)
class FastAgiSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573
    #: a connection that has not sent its whole AGI environment by then is closed
    idle_timeout_seconds: float = 10.0
    #: the most a caller waits on one service answer (the lookup: [ivr] lookup_timeout_seconds);
    #: past it the call goes on without the service (a frozen database holds no caller)
    step_budget_seconds: float = 1.5
    #: WatchdogSec in the systemd unit: the FastAGI loop pings systemd (sd_notify WATCHDOG=1)
    #: while it runs; nothing to set here, the interval comes from systemd (WATCHDOG_USEC)


@dataclass(frozen=True)
class CertificateSettings:
    min_length: int = 6
    max_length: int = 20
    check_digit: str = "none"
    validity_months: int = 12
    lookup_cache_seconds: float = 2.0


@dataclass(frozen=True)
class PolicySettings:
    """The base policy version (in force from the beginning of time until a published one)."""

    oral_window_seconds: int = 600
    warning_seconds: int = 120
    written_answer_hours: int = 12
    day_start: time = time(9, 0)
    day_end: time = time(18, 0)
    window_start: str = "agent_answer"
    min_notice_days: int = 15


@dataclass(frozen=True)
class CalendarSettings:
    """The business calendar counts in Moscow time, as the regulation does: the zone is not
    a setting (``domain.instants.MOSCOW``), so working hours, due times and every instant
    in an answer cannot disagree."""

    overrides_file: str = ""


@dataclass(frozen=True)
class IvrSettings:
    language: str = "ru"
    max_attempts: int = 3
    digit_timeout_ms: int = 7000
    lookup_timeout_seconds: float = 3.0
    lockout_failures: int = 5
    lockout_window_seconds: int = 3600
    queue: str = "support"


@dataclass(frozen=True)
class AgiSettings:
    """How the AGI scripts reach the service (``CALLCENTER_URL``/``CALLCENTER_TOKEN`` win)."""

    service_url: str = "http://127.0.0.1:8080"
    token: str = ""
    #: "" = each side's own default: ``serve`` keeps its spool in its data directory (beside
    #: the SQLite file, else ``var/``), a script in the system temp directory
    spool_dir: str = ""


@dataclass(frozen=True)
class VoicemailSettings:
    """The closed line that takes a message (R-9 going further): outside working time the
    caller may leave the certificate number and a recorded message, which becomes a written
    ticket with source ``voicemail``."""

    enabled: bool = True
    #: where Asterisk writes the recording (RECORD FILE runs on the PBX); the service or the
    #: process AGI reads it from there once, so it must be readable by them
    record_dir: str = "/var/spool/asterisk/callcenter-voicemail"
    #: the longest message; a WAV second is 16 KB and a process AGI sends the recording in
    #: one JSON body of at most 1 MiB (base64), hence at most 45 s
    max_seconds: int = 40
    #: this much silence ends the message (RECORD FILE's s=)
    silence_seconds: int = 4
    #: where the service keeps recordings with their tickets; empty: ``recordings`` beside the
    #: SQLite file (``var/recordings`` on PostgreSQL). Kept as long as the calls (never
    #: deleted by the service).
    dir: str = ""


@dataclass(frozen=True)
class AmiSettings:
    """The Asterisk Manager Interface as a second source of call events."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callcenter"
    secret: str = ""
    #: the support line's queues, comma-separated (empty: [ivr] queue); queue events of any
    #: other queue, and calls that never entered the line, are not taken
    queues: str = ""


@dataclass(frozen=True)
class TimerSettings:
    """How often each process re-reads pending deadlines (to see other instances' windows),
    and how long a window's timer waits for events sent along with its opening one."""

    resync_seconds: float = 30.0
    grace_seconds: float = 5.0


@dataclass(frozen=True)
class EventSettings:
    """How far from the service's clock an event's ``at`` may be: further back, a week-long
    outage's spool still counts; further ahead, a clock is wrong (a 422 naming ``at``)."""

    max_past_seconds: int = 7 * 86400
    max_future_seconds: int = 300


@dataclass(frozen=True)
class ForwardingSettings:
    """Optional forwarding of tickets to an external helpdesk (empty url: the built-in portal)."""

    url: str = ""
    token: str = ""
    timeout_seconds: float = 10.0
    max_backoff_seconds: float = 300.0


@dataclass(frozen=True)
class HelpdeskSettings:
    """Where written tickets live: ``none`` (here only), ``redmine`` or a signed ``webhook``.

    ``[forwarding] url`` (deprecated) still works: with ``kind = "none"`` it means a webhook
    to that url, its ``token`` sent as a bearer token, signed when ``secret`` is set.
    """

    kind: str = "none"
    url: str = ""
    #: Redmine: a user's API key (``X-Redmine-API-Key``); also CALLCENTER_HELPDESK_API_KEY
    api_key: str = ""
    #: Redmine: the project's identifier (or numeric id) and the tracker's name (or id)
    project: str = ""
    tracker: str = ""
    #: Redmine: moving an issue to this status (name or id) counts as the written answer
    answered_status: str = ""
    #: Redmine: the issue custom field holding our ticket key (the idempotency marker)
    ticket_field: str = "Callcenter ticket"
    #: Redmine: the marker is ``<ticket_prefix>-<our ticket id>``: one prefix per callcenter
    #: database sharing a Redmine (a test instance, a second site)
    ticket_prefix: str = "cc"
    poll_seconds: float = 60.0
    #: how far back each poll looks before the newest change it has already seen
    overlap_seconds: float = 300.0
    #: webhook: the shared HMAC-SHA256 secret of ``X-Callcenter-Signature`` both ways
    secret: str = ""
    #: webhook: a signature older (or newer) than this is refused as a replay
    signature_tolerance_seconds: int = 300
    timeout_seconds: float = 10.0
    max_backoff_seconds: float = 300.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    #: "text" (one human line) or "json" (one JSON object a line, with the call id of a line
    #: about a call: for a log collector)
    format: str = "text"


@dataclass(frozen=True)
class RetentionSettings:
    #: calls (and their tickets) older than this many months lose their personal data
    #: (caller numbers, names, organisations, descriptions, recordings) but keep their
    #: timing; 0 keeps everything. Run daily by ``serve`` and by ``callcenter retention run``.
    personal_data_months: int = 0


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    fastagi: FastAgiSettings = field(default_factory=FastAgiSettings)
    certificates: CertificateSettings = field(default_factory=CertificateSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    calendar: CalendarSettings = field(default_factory=CalendarSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)
    timers: TimerSettings = field(default_factory=TimerSettings)
    events: EventSettings = field(default_factory=EventSettings)
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)
    helpdesk: HelpdeskSettings = field(default_factory=HelpdeskSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    source: str = "defaults"

    def replace(self, **sections: Any) -> Settings:
        """A copy with sections or fields changed: ``replace(policy={"warning_seconds": 5})``."""
        changes = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, dict):
                value = dataclasses.replace(current, **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)


_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("certificates", "check_digit"): ("none", "luhn"),
    ("policy", "window_start"): ("agent_answer", "queue_entry"),
    ("ivr", "language"): ("ru", "en"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
    ("logging", "format"): ("text", "json"),
    ("helpdesk", "kind"): ("none", "redmine", "webhook"),
}


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings) if f.name != "source"}


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    time: 'a time like "09:00"',
    str: "a string",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _from_text(raw: str, target: type) -> Any:
    """Environment variables are text: parse them into the field's type."""
    text = raw.strip()
    if target is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(raw)
    if target is time:
        return time.fromisoformat(text)
    return target(text) if target in (int, float) else raw


def _coerce(key: str, raw: Any, target: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or fail naming the key."""
    try:
        if isinstance(raw, str) and target is not str:
            return _from_text(raw, target)
        if target is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if type(raw) is target:
            return raw
    except ValueError:
        pass
    kind = _KIND_NAMES.get(target, getattr(target, "__name__", str(target)))
    raise ConfigError(f"{key}: expected {kind}, got {raw!r}")


def _validate(s: Settings) -> None:
    """Cross-field and range checks that types alone cannot express."""
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(s, section), key)
        if value not in allowed:
            raise ConfigError(
                f"{section}.{key}: must be one of {', '.join(allowed)}, got {value!r}"
            )
    checks = [
        ("http.port", 0 < s.http.port < 65536, "must be a TCP port (1-65535)"),
        ("fastagi.port", 0 < s.fastagi.port < 65536, "must be a TCP port (1-65535)"),
        ("ami.port", 0 < s.ami.port < 65536, "must be a TCP port (1-65535)"),
        (
            "fastagi.idle_timeout_seconds",
            0 < s.fastagi.idle_timeout_seconds <= 300,
            "must be between 0 and 300 seconds",
        ),
        ("ami.secret", not s.ami.enabled or bool(s.ami.secret), "is required when ami.enabled"),
        (
            "fastagi.step_budget_seconds",
            0 < s.fastagi.step_budget_seconds <= 10,
            "must be between 0 and 10 seconds",
        ),
        (
            "voicemail.max_seconds",
            5 <= s.voicemail.max_seconds <= 45,
            "must be between 5 and 45 seconds",
        ),
        (
            "voicemail.silence_seconds",
            1 <= s.voicemail.silence_seconds <= 30,
            "must be between 1 and 30 seconds",
        ),
        ("certificates.min_length", s.certificates.min_length >= 1, "must be at least 1"),
        (
            "certificates.max_length",
            s.certificates.max_length >= s.certificates.min_length,
            "must not be below certificates.min_length",
        ),
        ("certificates.validity_months", s.certificates.validity_months >= 1, "must be at least 1"),
        ("policy.oral_window_seconds", s.policy.oral_window_seconds > 0, "must be positive"),
        (
            "retention.personal_data_months",
            0 <= s.retention.personal_data_months <= 1200,
            "must be between 0 (keep everything) and 1200 months",
        ),
        (
            "policy.warning_seconds",
            0 <= s.policy.warning_seconds < s.policy.oral_window_seconds,
            "must be between 0 and policy.oral_window_seconds",
        ),
        ("policy.written_answer_hours", s.policy.written_answer_hours > 0, "must be positive"),
        ("policy.day_end", s.policy.day_end > s.policy.day_start, "must be after policy.day_start"),
        ("ivr.max_attempts", s.ivr.max_attempts >= 1, "must be at least 1"),
        (
            "ivr.digit_timeout_ms",
            1000 <= s.ivr.digit_timeout_ms <= 60000,
            "must be between 1000 and 60000 ms",
        ),
        (
            "ivr.lookup_timeout_seconds",
            0 < s.ivr.lookup_timeout_seconds <= 10,
            "must be between 0 and 10 seconds",
        ),
        ("database.url", "://" in s.database.url, "must be an SQLAlchemy URL"),
        (
            "timers.resync_seconds",
            0.05 <= s.timers.resync_seconds <= 3600,
            "must be between 0.05 and 3600 seconds",
        ),
        (
            "timers.grace_seconds",
            0 <= s.timers.grace_seconds <= 3600,
            "must be between 0 and 3600 seconds",
        ),
        (
            "events.max_past_seconds",
            60 <= s.events.max_past_seconds <= 366 * 86400,
            "must be between 60 seconds and 366 days",
        ),
        (
            "events.max_future_seconds",
            0 <= s.events.max_future_seconds <= 86400,
            "must be between 0 and 86400 seconds",
        ),
        (
            "forwarding.url",
            not s.forwarding.url or s.forwarding.url.startswith(("http://", "https://")),
            "must be an http(s) URL or empty",
        ),
    ]
    checks += _helpdesk_checks(s.helpdesk)
    for key, ok, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message}")


def _helpdesk_checks(h: HelpdeskSettings) -> list[tuple[str, bool, str]]:
    url_ok = h.url.startswith(("http://", "https://"))
    checks = [
        (
            "helpdesk.poll_seconds",
            0.05 <= h.poll_seconds <= 86400,
            "must be between 0.05 and 86400 seconds",
        ),
        (
            "helpdesk.overlap_seconds",
            0 <= h.overlap_seconds <= 86400,
            "must be between 0 and 86400 seconds",
        ),
        (
            "helpdesk.signature_tolerance_seconds",
            1 <= h.signature_tolerance_seconds <= 3600,
            "must be between 1 and 3600 seconds",
        ),
        ("helpdesk.timeout_seconds", 0 < h.timeout_seconds <= 300, "must be 0-300 seconds"),
        ("helpdesk.max_backoff_seconds", h.max_backoff_seconds >= 1, "must be at least 1"),
    ]
    if h.kind != "none":
        checks.append(("helpdesk.url", url_ok, f"must be an http(s) URL when kind is {h.kind}"))
    if h.kind == "redmine":
        checks.append(
            (
                "helpdesk.ticket_prefix",
                bool(re.fullmatch(r"[A-Za-z0-9_.]{1,20}", h.ticket_prefix)),
                "must be 1-20 letters, digits, '_' or '.'",
            )
        )
        for key in ("api_key", "project", "tracker", "answered_status", "ticket_field"):
            checks.append(
                (f"helpdesk.{key}", bool(getattr(h, key).strip()), "is required for Redmine")
            )
    if h.kind == "webhook":
        checks.append(("helpdesk.secret", len(h.secret) >= 16, "must be at least 16 characters"))
    return checks


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: typing.Mapping[str, str] | None = None
) -> Settings:
    """Build the settings once: defaults, then the TOML file, then the environment."""
    env = os.environ if environ is None else environ
    path = path or env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {p}: not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p}: not valid TOML ({exc})") from exc
        source = str(p)

    sections = _section_types()
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for name, raw_section in data.items():
        if name not in sections:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(sections)})")
        if not isinstance(raw_section, dict):
            raise ConfigError(f"{name}: must be a [section] table")
        hints = typing.get_type_hints(sections[name])
        for key, raw in raw_section.items():
            if key not in hints:
                raise ConfigError(f"{name}.{key}: unknown key")
            values[name][key] = _coerce(f"{name}.{key}", raw, hints[key])

    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            continue  # CALLCENTER_URL, CALLCENTER_TOKEN, CALLCENTER_CONFIG... belong to others
        hints = typing.get_type_hints(sections[section])
        if key not in hints:
            raise ConfigError(f"{var}: unknown key {section}.{key}")
        values[section][key] = _coerce(var, raw, hints[key])

    settings = Settings(**{n: sections[n](**v) for n, v in values.items()}, source=source)
    _validate(settings)
    return settings
