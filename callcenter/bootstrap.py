"""The composition root: builds engine, repositories, services and the web app from settings."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from callcenter.adapters import db
from callcenter.adapters.clock import SystemClock
from callcenter.adapters.gauges import read_gauges
from callcenter.adapters.metrics import Metrics
from callcenter.adapters.recordings import RecordingStore, recordings_folder
from callcenter.adapters.report_sql import ReportSql, ReviewSql
from callcenter.adapters.repositories import CertificateReader, UnitOfWork
from callcenter.calendar import MOSCOW, CalendarOverrides, WorkCalendar, load_overrides
from callcenter.config import Settings
from callcenter.domain.certificates import CheckDigit, NumberFormat
from callcenter.domain.events import InstantRange
from callcenter.domain.policy import PolicyVersion
from callcenter.services.agent_desk import AgentDesk
from callcenter.services.auth import AuthService
from callcenter.services.escalation import TicketFactory
from callcenter.services.forwarding import OutboxWorker
from callcenter.services.helpdesk import AnswerPoller, HelpdeskInbox
from callcenter.services.ivr import IvrService, LockoutRule
from callcenter.services.notifier import Notifier
from callcenter.services.policy import PolicyService
from callcenter.services.registry import CertificateRegistry
from callcenter.services.reports import ReportService, Reviews
from callcenter.services.retention import Retention
from callcenter.services.scheduler import Scheduler
from callcenter.services.supervision import SupervisorQueries
from callcenter.services.tickets import TicketService
from callcenter.services.timing import CallTiming
from callcenter.services.voicemail import VoicemailService

log = logging.getLogger(__name__)


def base_policy(settings: Settings) -> PolicyVersion:
    p = settings.policy
    return PolicyVersion(
        effective_from=date(2000, 1, 1),
        oral_window_seconds=p.oral_window_seconds,
        warning_seconds=p.warning_seconds,
        written_answer_hours=p.written_answer_hours,
        day_start=p.day_start,
        day_end=p.day_end,
        window_start=p.window_start,
        note="base policy from configuration",
    )


def build_helpdesk(settings: Settings):
    from callcenter.adapters.helpdesk import build

    return build(settings)


def number_format(settings: Settings) -> NumberFormat:
    c = settings.certificates
    return NumberFormat(c.min_length, c.max_length, CheckDigit(c.check_digit))


class Calendars:
    """One WorkCalendar per working-day span, all sharing the configured overrides."""

    def __init__(self, overrides: CalendarOverrides | None) -> None:
        self.overrides = overrides

    @functools.lru_cache(maxsize=16)  # noqa: B019 - lives as long as the process
    def for_hours(self, day_start: time, day_end: time) -> WorkCalendar:
        return WorkCalendar(
            day_start=day_start, day_end=day_end, overrides=self.overrides, tz=MOSCOW
        )

    def for_policy(self, policy: PolicyVersion) -> WorkCalendar:
        return self.for_hours(policy.day_start, policy.day_end)


def build_calendars(settings: Settings) -> Calendars:
    path = settings.calendar.overrides_file
    return Calendars(load_overrides(path) if path else None)


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    clock: object
    registry: CertificateRegistry
    auth: AuthService
    policy: PolicyService
    calendars: Calendars
    reader: CertificateReader
    calls: CallTiming
    tickets: TicketService
    notifier: Notifier
    scheduler: Scheduler
    outbox: OutboxWorker | None
    ivr: IvrService
    desk: AgentDesk
    voicemail: VoicemailService
    #: the configured helpdesk adapter (None: tickets live here only), its answer poller
    #: (Redmine) and the webhook's inbox of answers
    helpdesk: object | None = None
    answers: AnswerPoller | None = None
    helpdesk_inbox: HelpdeskInbox | None = None
    #: on PostgreSQL: the notes' relay between instances (run by ``serve``)
    bridge: object | None = None
    #: whether an exception means "the database cannot be reached now" (a 503, not a 500);
    #: installed here so that web/ need not import the adapters that know the drivers
    is_outage: Callable[[BaseException], bool] = db.is_unavailable
    metrics: Metrics = field(default_factory=Metrics)
    #: set by ``serve`` when it runs FastAGI: whether the server is listening now
    fastagi_listening: Callable[[], bool] | None = None
    retention: Retention | None = None
    #: the supervisor's screens (issue 11): board, history, a call, a certificate
    supervisor: SupervisorQueries | None = None
    #: the supervisor's reports and the call log's filtered reads and exports
    reports: ReportService | None = None
    reviews: Reviews | None = None

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def read_certificates(self, path, progress=None):
        """A certificate CSV read and checked row by row as the CLI reads it (the admin's
        upload page): ``ParsedFile`` with the certificates or every bad row's line and reason;
        ``progress(rows)`` is told the rows read so far now and then."""
        from callcenter.adapters.certificate_csv import read_certificates

        return read_certificates(
            path,
            number_format(self.settings),
            self.settings.certificates.validity_months,
            progress=progress,
        )

    async def ping_database(self) -> None:
        """Raise unless the database answers a trivial query (the liveness probe's question)."""
        await db.ping(self.engine)

    async def readiness(self) -> dict[str, str]:
        """What ``/healthz/ready`` reports: "ok" or what is wrong, per part (the database
        answers, its migrations are at this code's head, FastAGI listens when enabled)."""
        parts: dict[str, str] = {}
        try:
            await db.ping(self.engine)
            parts["database"] = "ok"
        except Exception as exc:  # the probe answers whatever the database does
            parts["database"] = f"unavailable: {type(exc).__name__}"
        if parts["database"] == "ok":
            try:
                current, head = await db.current_revision(self.engine), _head_revision()
                parts["migrations"] = "ok" if current == head else f"at {current}, code at {head}"
            except Exception as exc:
                parts["migrations"] = f"unknown: {type(exc).__name__}"
        else:
            parts["migrations"] = "unknown: database unavailable"
        if self.settings.fastagi.enabled:
            listening = self.fastagi_listening is not None and self.fastagi_listening()
            parts["fastagi"] = "ok" if listening else "not listening"
        return parts

    async def warm(self, connections: int = 2) -> None:
        """Open, before the first call, what the first calls would otherwise open while
        their callers wait: the policy book, the lookup reader's connections with their
        statements prepared, ``connections`` of the engine's pool, and on SQLite the event
        writer's own connection. A burst of calls at start-up (a restart while calls queue,
        the benchmark's opening 50) then finds them ready. Raises what the database raises."""
        from callcenter.adapters.event_sql import inline_sqlite

        await self.policy.book()
        await self.reader.warm(connections)

        async def one() -> None:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")

        await asyncio.gather(*(one() for _ in range(connections)))
        writer = inline_sqlite(self.engine)
        if writer is not None:
            writer.warm()

    async def close(self) -> None:
        if self.bridge is not None:  # a mapping changed by the command line: told to all
            await self.bridge.flush_pending()
        await self.notifier.close()
        if self.outbox is not None:
            await self.outbox.close()
        await self.reader.dispose()
        await self.engine.dispose()
        self.auth.close()


@functools.cache
def _head_revision() -> str:
    return db.head_revision()


def build(settings: Settings, *, clock=None, engine: AsyncEngine | None = None) -> Container:
    """Wire everything; nothing is connected until first use."""
    engine = engine or db.create_engine(
        settings.database.url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )
    sessions = db.session_factory(engine)
    uow_factory = functools.partial(UnitOfWork, sessions)
    reader = CertificateReader(settings.database.url, settings.database.pool_size)
    registry = CertificateRegistry(
        uow_factory, reader, number_format(settings), settings.certificates.lookup_cache_seconds
    )
    policy = PolicyService(
        uow_factory,
        base_policy(settings),
        settings.policy.min_notice_days,
        read_uow=functools.partial(UnitOfWork, sessions, read_only=True),
    )
    calendars = build_calendars(settings)
    rule = LockoutRule(settings.ivr.lockout_failures, settings.ivr.lockout_window_seconds)
    clock = clock or SystemClock()
    notifier = Notifier()
    bridge = None
    if engine.dialect.name == "postgresql":  # several instances may share it: relay the notes
        from callcenter.adapters.pg_notify import PgBridge

        bridge = PgBridge(settings.database.url, notifier)
        notifier.relay = bridge.send
    hd = settings.helpdesk
    helpdesk = build_helpdesk(settings)
    factory = TicketFactory(policy, calendars, forwarding_enabled=helpdesk is not None)
    # SQLite has one writer; PostgreSQL batches mostly wait on round trips, so a few overlap
    writers = 1 if engine.dialect.name == "sqlite" else 2
    timing = CallTiming(
        uow_factory,
        policy,
        factory,
        registry,
        notifier,
        writers=writers,
        is_outage=db.is_unavailable,
        grace=timedelta(seconds=settings.timers.grace_seconds),
        instants=InstantRange(
            past=timedelta(seconds=settings.events.max_past_seconds),
            future=timedelta(seconds=settings.events.max_future_seconds),
        ),
    )
    tickets = TicketService(uow_factory, factory, registry, notifier)
    scheduler = Scheduler(
        timing,
        tickets,
        clock,
        settings.timers.resync_seconds,
        notifier=notifier,
        is_outage=db.is_unavailable,
    )
    metrics = Metrics()
    scheduler.on_lag = metrics.observe_timer_lag
    ivr = IvrService(uow_factory, registry, policy, calendars, rule)
    ivr.on_locked = lambda: metrics.inc(
        "callcenter_refusals_total",
        "Requests refused, by kind: what an operator watches for an attack.",
        kind="locked",
    )
    scheduler.on_parked = lambda kind: metrics.inc(
        "callcenter_timers_parked_total",
        "Timers given up after failing fires that waiting would not cure (see the log).",
        kind=kind,
    )
    recordings = RecordingStore(recordings_folder(settings))
    voicemail = VoicemailService(
        uow_factory,
        factory,
        registry,
        notifier,
        recordings,
        max_bytes=44 + 16000 * (settings.voicemail.max_seconds + 2),
    )
    timing.on_timer = tickets.on_timer = voicemail.on_timer = scheduler.add
    outbox = answers = None
    if helpdesk is not None:
        timeout = settings.forwarding.timeout_seconds if hd.kind == "none" else hd.timeout_seconds
        backoff = (
            settings.forwarding.max_backoff_seconds if hd.kind == "none" else hd.max_backoff_seconds
        )
        batch = 20
        outbox = OutboxWorker(
            uow_factory,
            helpdesk,
            clock,
            batch=batch,
            max_backoff=backoff,
            # a claim outlives a slow batch (Redmine: a lookup, uploads and the issue each)
            lease_seconds=batch * 3 * timeout + 30,
        )
        factory.on_outbox = outbox.wake
        if getattr(helpdesk, "polls", False):
            answers = AnswerPoller(
                uow_factory,
                helpdesk,
                tickets,
                clock,
                poll_seconds=hd.poll_seconds,
                overlap_seconds=hd.overlap_seconds,
                max_backoff_seconds=hd.max_backoff_seconds,
            )
    inbox = HelpdeskInbox(
        tickets, hd.secret if hd.kind == "webhook" else "", hd.signature_tolerance_seconds
    )

    async def gauges() -> dict[str, float]:
        now = clock.now()
        soon = calendars.for_policy(await policy.in_force_at(now)).add_working_hours(now, 1)
        return await read_gauges(sessions, now, soon, helpdesk.kind if helpdesk else None)

    metrics.refresh_with(gauges)
    desk = AgentDesk(
        uow_factory,
        timing.queries,
        registry,
        notifier,
        read_uow=functools.partial(UnitOfWork, sessions, read_only=True),
        reader=reader,
    )
    notifier.owner = desk.owner_of_note  # agents' pushes go to the call's owner only

    async def calendar_at(now):
        return calendars.for_policy(await policy.in_force_at(now))

    return Container(
        settings=settings,
        metrics=metrics,
        engine=engine,
        sessions=sessions,
        clock=clock,
        reader=reader,
        registry=registry,
        auth=AuthService(uow_factory, session_hours=settings.http.session_hours),
        policy=policy,
        calendars=calendars,
        calls=timing,
        tickets=tickets,
        notifier=notifier,
        bridge=bridge,
        scheduler=scheduler,
        outbox=outbox,
        ivr=ivr,
        desk=desk,
        helpdesk=helpdesk,
        answers=answers,
        helpdesk_inbox=inbox,
        voicemail=voicemail,
        retention=Retention(
            uow_factory, settings.retention.personal_data_months, recordings.remove
        ),
        supervisor=SupervisorQueries(
            functools.partial(UnitOfWork, sessions, read_only=True),
            policy,
            calendars,
            timing.queries,
        ),
        reports=ReportService(ReportSql(sessions), calendar_at, clock),
        reviews=Reviews(ReviewSql(sessions), clock),
    )
