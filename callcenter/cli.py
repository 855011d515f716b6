"""The ``callcenter`` command. Every user mistake ends in one line on stderr and a non-zero exit.

One concern, the command line, though long: each command is a few lines that parse their
arguments, call one use case of the container and print its answer, and the parser is one
table of them. What a command does lives in ``services/``; what it prints lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import re
import sys
from datetime import date, datetime

from callcenter.calendar import MOSCOW, CalendarError
from callcenter.config import ConfigError, Settings, load_settings
from callcenter.domain.errors import DomainError
from callcenter.domain.instants import InstantError, parse_instant

log = logging.getLogger("callcenter")


class UsageError(Exception):
    """A bad argument value that argparse could not catch."""


def _parse_instant(text: str, what: str) -> datetime:
    """The domain's one instant parser; here a value without an offset is Moscow time (the
    README's rule for the command line), and a bare date is refused, never taken as midnight."""
    try:
        return parse_instant(text.strip(), naive_is_moscow=True)
    except InstantError as exc:
        raise UsageError(f"{what}: {text!r} {exc}") from None


def _iso(value: datetime) -> str:
    return value.astimezone(MOSCOW).isoformat(timespec="seconds")


def _settings(args) -> Settings:
    return load_settings(getattr(args, "config", None))


async def _container(args, *, migrate: bool = True):
    from callcenter import bootstrap
    from callcenter.adapters import db

    settings = _settings(args)
    container = bootstrap.build(settings)
    if migrate and settings.database.auto_migrate:
        await db.upgrade(container.engine)
    return container


# --- commands --------------------------------------------------------------------------------


async def cmd_db_upgrade(args) -> int:
    from callcenter.adapters import db

    c = await _container(args, migrate=False)
    try:
        await db.upgrade(c.engine, args.revision)
        print(f"database at revision {await db.current_revision(c.engine)}")
    finally:
        await c.close()
    return 0


async def cmd_db_backup(args) -> int:
    from callcenter.adapters import backup

    try:
        print(await asyncio.to_thread(backup.backup, _settings(args).database.url, args.file))
    except backup.BackupError as exc:
        raise UsageError(str(exc)) from None
    return 0


async def cmd_db_restore(args) -> int:
    from callcenter.adapters import backup, db

    settings = _settings(args)
    try:
        print(await asyncio.to_thread(backup.restore, settings.database.url, args.file))
    except backup.BackupError as exc:
        raise UsageError(str(exc)) from None
    if settings.database.auto_migrate:  # a backup of an older release: bring it to this code
        c = await _container(args, migrate=False)
        try:
            await db.upgrade(c.engine)
            print(f"database at revision {await db.current_revision(c.engine)}")
        finally:
            await c.close()
    return 0


async def cmd_retention_run(args) -> int:
    c = await _container(args)
    try:
        months = args.months if args.months is not None else c.retention.months
        if months <= 0:
            raise UsageError(
                "retention is off: set [retention] personal_data_months "
                "(CALLCENTER_RETENTION_PERSONAL_DATA_MONTHS) or give --months"
            )
        report = await c.retention.run(c.clock.now(), dry_run=args.dry_run, months=months)
    finally:
        await c.close()
    verb = "would anonymise" if args.dry_run else "anonymised"
    print(
        f"{verb} personal data older than {_iso(report.cutoff)}: {report.calls} call(s), "
        f"{report.events} event(s), {report.ivr_failures} IVR failure(s), "
        f"{report.tickets} ticket(s), {report.recordings} recording(s), "
        f"{report.outbox} outbox message(s)"
    )
    return 0


async def cmd_certificates_import(args) -> int:
    from callcenter.adapters.certificate_csv import read_certificates
    from callcenter.bootstrap import number_format

    settings = _settings(args)
    parsed = read_certificates(
        args.file, number_format(settings), settings.certificates.validity_months
    )
    if len(parsed.errors) == 1 and not parsed.errors[0][0] and not parsed.rows:
        raise UsageError(parsed.errors[0][1])  # the file itself: one line, as any mistake
    if parsed.errors:
        for line, reason in parsed.errors:
            where = f"line {line}" if line else "file"
            print(f"{args.file}: {where}: {reason}", file=sys.stderr)
        print(
            f"nothing imported: {len(parsed.errors)} problem(s) in {parsed.rows} row(s)",
            file=sys.stderr,
        )
        return 1
    c = await _container(args)
    try:
        progress = _Progress(len(parsed.certificates)) if len(parsed.certificates) >= 5000 else None
        created, updated = await c.registry.import_certificates(
            parsed.certificates, c.clock.now(), progress=progress
        )
        if progress:
            progress.done()
    finally:
        await c.close()
    print(f"imported {created + updated} certificate(s): {created} new, {updated} updated")
    return 0


class _Progress:
    """A bar on a terminal, a line every 10 % otherwise; always on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.tty, self.last = total, sys.stderr.isatty(), -1

    def __call__(self, done: int, total: int) -> None:
        pct = done * 100 // max(total, 1)
        if self.tty:
            bar = "#" * (pct // 4)
            print(f"\rimporting [{bar:<25}] {pct:3d}% {done}/{total}", end="", file=sys.stderr)
        elif pct // 10 != self.last // 10:
            print(f"importing: {pct}% ({done}/{total})", file=sys.stderr)
        self.last = pct

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


async def cmd_certificates_show(args) -> int:
    c = await _container(args)
    try:
        c.registry.number_format.validate(args.number)
        result = await c.registry.lookup(args.number, c.clock.now())
        if result.certificate is None:
            raise UsageError(f"no certificate {args.number}")
    finally:
        await c.close()
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    return 0


async def _policy_at(args, at: datetime):
    c = await _container(args)
    try:
        return await c.policy.in_force_at(at), c.calendars
    finally:
        await c.close()


async def cmd_calendar_due(args) -> int:
    received = _parse_instant(args.received, "--received")
    policy, calendars = await _policy_at(args, received)
    hours = policy.written_answer_hours if args.hours is None else args.hours
    if hours < 0:
        raise UsageError("--hours must not be negative")
    print(_iso(calendars.for_policy(policy).add_working_hours(received, hours)))
    return 0


async def cmd_calendar_open(args) -> int:
    at = _parse_instant(args.at, "--at")
    policy, calendars = await _policy_at(args, at)
    cal = calendars.for_policy(policy)
    print("open" if cal.is_open(at) else f"closed until {_iso(cal.next_opening(at))}")
    return 0


def _read_password() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last column is left as it is."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip())


async def cmd_users_add(args) -> int:
    password = _read_password()
    c = await _container(args)
    try:
        wanted = await c.desk.check_free(args.interface or [], args.login)
        await c.auth.add_user(
            args.login, args.role, password, c.clock.now(), display_name=args.name or ""
        )
        if wanted:
            await c.desk.set_interfaces(args.login, wanted, c.clock.now())
    finally:
        await c.close()
    on = f" on {', '.join(wanted)}" if wanted else ""
    print(f"user {args.login} ({args.role}) created{on}")
    return 0


async def cmd_users_interfaces(args) -> int:
    c = await _container(args)
    try:
        if args.set is None:
            found = await c.desk.interfaces(args.login)
        else:
            found = await c.desk.set_interfaces(args.login, args.set, c.clock.now())
    finally:
        await c.close()
    if found:
        print("\n".join(found))
    else:
        print(f"user {args.login} has no interfaces")
    return 0


async def cmd_users_list(args) -> int:
    c = await _container(args)
    try:
        users = await c.auth.users()
        interfaces = await c.desk.all_interfaces()
    finally:
        await c.close()
    if not users:
        print("no users (add one with `callcenter users add LOGIN --role ...`)")
        return 0
    _table(
        ("LOGIN", "ROLE", "STATUS", "CREATED", "INTERFACES", "NAME"),
        [
            (
                u.login,
                u.role,
                "enabled" if u.disabled_at is None else f"disabled {_iso(u.disabled_at)}",
                _iso(u.created_at),
                ",".join(interfaces.get(u.login, [])) or "-",
                u.display_name,
            )
            for u in users
        ],
    )
    return 0


async def cmd_users_disable(args) -> int:
    c = await _container(args)
    try:
        changed = await c.auth.disable_user(args.login, c.clock.now())
    finally:
        await c.close()
    print(
        f"user {args.login} disabled; its sessions have ended"
        if changed
        else f"user {args.login} was already disabled"
    )
    return 0


async def cmd_users_enable(args) -> int:
    c = await _container(args)
    try:
        changed = await c.auth.enable_user(args.login)
    finally:
        await c.close()
    print(f"user {args.login} enabled" if changed else f"user {args.login} was already enabled")
    return 0


async def cmd_users_passwd(args) -> int:
    password = _read_password()
    c = await _container(args)
    try:
        await c.auth.set_password(args.login, password)
    finally:
        await c.close()
    print(f"password of {args.login} changed; its sessions have ended")
    return 0


async def cmd_tokens_create(args) -> int:
    c = await _container(args)
    try:
        token = await c.auth.create_token(args.name, args.role, c.clock.now())
    finally:
        await c.close()
    print(f"token {args.name!r} ({args.role}) created; it is shown only once:")
    print(token)
    return 0


async def cmd_tokens_list(args) -> int:
    c = await _container(args)
    try:
        tokens = await c.auth.tokens()
    finally:
        await c.close()
    if not tokens:
        print("no tokens (create one with `callcenter tokens create NAME --role ...`)")
        return 0
    _table(
        ("NAME", "ROLE", "CREATED", "REVOKED"),
        [
            (
                t.name,
                t.role,
                _iso(t.created_at),
                "-" if t.revoked_at is None else _iso(t.revoked_at),
            )
            for t in tokens
        ],
    )
    return 0


async def cmd_tokens_revoke(args) -> int:
    c = await _container(args)
    try:
        count = await c.auth.revoke_token(args.name, c.clock.now())
    finally:
        await c.close()
    print(f"token {args.name!r} revoked" + (f" ({count} of that name)" if count > 1 else ""))
    return 0


async def cmd_policy_list(args) -> int:
    c = await _container(args)
    try:
        book = await c.policy.book()
        now = c.clock.now()
        current = book.in_force_at(now)
    finally:
        await c.close()
    for v in book.versions:
        mark = "*" if v == current else " "
        d = v.to_dict()
        print(
            f"{mark} from {d['effective_from']}: oral window {d['oral_window_seconds']} s, "
            f"warning {d['warning_seconds']} s before, written answer "
            f"{d['written_answer_hours']} working h, day {d['day_start']}-{d['day_end']}, "
            f"window starts at {d['window_start']}" + (f" ({v.note})" if v.note else "")
        )
    return 0


async def cmd_policy_publish(args) -> int:
    from dataclasses import replace

    try:
        effective = date.fromisoformat(args.effective)
    except ValueError:
        raise UsageError(f"--effective: {args.effective!r} is not a date like 2027-01-15") from None
    c = await _container(args)
    try:
        now = c.clock.now()
        current = await c.policy.in_force_at(now)
        changes = {
            k: getattr(args, k)
            for k in (
                "oral_window_seconds",
                "warning_seconds",
                "written_answer_hours",
                "window_start",
            )
            if getattr(args, k) is not None
        }
        for k in ("day_start", "day_end"):
            if getattr(args, k) is not None:
                try:
                    changes[k] = datetime.strptime(getattr(args, k), "%H:%M").time()
                except ValueError:
                    raise UsageError(f"--{k.replace('_', '-')}: expected HH:MM") from None
        version = replace(
            current,
            effective_from=effective,
            id=None,
            published_at=None,
            note=args.note or "",
            **changes,
        )
        stored = await c.policy.publish(version, now)
    finally:
        await c.close()
    print(f"policy published: takes effect {stored.effective_from.isoformat()} 00:00 Moscow time")
    return 0


async def cmd_helpdesk_check(args) -> int:
    """Each thing the configured helpdesk needs, fine or missing; exit 1 when one is missing."""
    from callcenter.adapters.helpdesk import build

    settings = _settings(args)
    helpdesk = build(settings)
    if helpdesk is None:
        print('helpdesk: kind = "none": tickets stay in this service; nothing to check')
        return 0
    name = (
        "webhook (deprecated [forwarding] url)"
        if settings.helpdesk.kind == "none"
        else (helpdesk.kind)
    )
    print(f"helpdesk: {name} at {getattr(helpdesk, 'base', None) or helpdesk.url}")
    try:
        ok, missing = await helpdesk.check()
    except Exception as exc:  # not reachable, not HTTP, timed out: one line saying so
        ok, missing = [], [f"url: cannot be reached ({type(exc).__name__}: {exc})"]
    finally:
        await helpdesk.close()
    for line in ok:
        print(f"ok       {line}")
    for line in missing:
        print(f"MISSING  {line}")
    print("helpdesk: ready" if not missing else f"helpdesk: {len(missing)} thing(s) missing")
    return 1 if missing else 0


async def cmd_serve(args) -> int:
    from callcenter.serve import serve

    settings = _settings(args)
    await serve(settings, demo=args.demo)
    return 0


# --- parser ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr rather than a usage block, and a
    mistyped command names the closest one."""

    def error(self, message: str):
        match = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            typed, choices = match[1], re.findall(r"'([^']*)'", match[2])
            close = difflib.get_close_matches(typed, choices, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; one of: {', '.join(choices)}"
            message = f"unknown command '{typed}'{hint}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    help_ = "TOML configuration (default: $CALLCENTER_CONFIG or built-in defaults)"
    p = _Parser(
        prog="callcenter",
        description="Support-line call logging: IVR, oral-window timing, tickets.",
    )
    p.add_argument("--config", metavar="FILE", help=help_)
    p.add_argument("--version", action="version", version=f"callcenter {_version()}")
    # Also accepted after the subcommand; SUPPRESS keeps it from hiding the one given before.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=help_)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", parents=[common], help="run the service (HTTP, FastAGI, timers)")
    s.add_argument("--demo", action="store_true", help="seed demo certificates and users")
    s.set_defaults(func=cmd_serve)

    dbp = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="sub", required=True
    )
    up = dbp.add_parser("upgrade", parents=[common], help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    bk = dbp.add_parser(
        "backup",
        parents=[common],
        help="copy the database to FILE (SQLite: online backup; PostgreSQL: pg_dump)",
    )
    bk.add_argument("file", metavar="FILE")
    bk.set_defaults(func=cmd_db_backup)
    rs = dbp.add_parser(
        "restore",
        parents=[common],
        help="replace the database with the backup in FILE (stop serve first), then migrate",
    )
    rs.add_argument("file", metavar="FILE")
    rs.set_defaults(func=cmd_db_restore)

    ret = sub.add_parser("retention", help="personal-data retention").add_subparsers(
        dest="sub", required=True
    )
    rr = ret.add_parser(
        "run",
        parents=[common],
        help="anonymise calls older than [retention] personal_data_months (timing kept)",
    )
    rr.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    rr.add_argument(
        "--months", type=int, default=None, help="override personal_data_months (at least 1)"
    )
    rr.set_defaults(func=cmd_retention_run)

    cert = sub.add_parser("certificates", help="the certificate registry").add_subparsers(
        dest="sub", required=True
    )
    imp = cert.add_parser("import", parents=[common], help="validate and upsert a CSV file")
    imp.add_argument("file", metavar="FILE.csv")
    imp.set_defaults(func=cmd_certificates_import)
    show = cert.add_parser("show", parents=[common], help="print a certificate as JSON")
    show.add_argument("number")
    show.set_defaults(func=cmd_certificates_show)

    cal = sub.add_parser("calendar", help="working-time calendar").add_subparsers(
        dest="sub", required=True
    )
    due = cal.add_parser("due", parents=[common], help="when a written answer is due")
    due.add_argument(
        "--received",
        required=True,
        metavar="ISO8601",
        help="when the request arrived (no offset = Moscow time)",
    )
    due.add_argument(
        "--hours",
        type=float,
        default=None,
        metavar="N",
        help="working hours (default: the policy in force, 12)",
    )
    due.set_defaults(func=cmd_calendar_due)
    op = cal.add_parser("open", parents=[common], help="is the phone line open at an instant")
    op.add_argument("--at", required=True, metavar="ISO8601")
    op.set_defaults(func=cmd_calendar_open)

    from callcenter.services.auth import TOKEN_ROLES, USER_ROLES

    users = sub.add_parser("users", help="UI users").add_subparsers(dest="sub", required=True)
    ua = users.add_parser("add", parents=[common], help="create a user; password on stdin")
    ua.add_argument("login")
    ua.add_argument("--role", required=True, choices=USER_ROLES)
    ua.add_argument("--name", help="display name (Cyrillic welcome)")
    ua.add_argument(
        "--interface",
        action="append",
        metavar="IFACE",
        help="a queue member interface Asterisk knows the agent by (PJSIP/101); repeatable",
    )
    ua.set_defaults(func=cmd_users_add)
    ui = users.add_parser(
        "interfaces", parents=[common], help="print a user's interfaces, or --set them"
    )
    ui.add_argument("login")
    ui.add_argument(
        "--set",
        nargs="*",
        metavar="IFACE",
        help="replace the user's interfaces (none given: clear them)",
    )
    ui.set_defaults(func=cmd_users_interfaces)
    ul = users.add_parser("list", parents=[common], help="every user, its role and status")
    ul.set_defaults(func=cmd_users_list)
    for name, func, help_text in (
        ("disable", cmd_users_disable, "refuse the user's logins and end its sessions now"),
        ("enable", cmd_users_enable, "let a disabled user log in again"),
        ("passwd", cmd_users_passwd, "set a new password (on stdin); ends the user's sessions"),
    ):
        up = users.add_parser(name, parents=[common], help=help_text)
        up.add_argument("login")
        up.set_defaults(func=func)

    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="sub", required=True)
    tc = tokens.add_parser("create", parents=[common], help="create a token and print it once")
    tc.add_argument("name")
    tc.add_argument(
        "--role",
        required=True,
        choices=TOKEN_ROLES,
        help="pbx: the switch; supervisor: also reads calls and tickets; "
        "portal: posts written requests",
    )
    tc.set_defaults(func=cmd_tokens_create)
    tl = tokens.add_parser("list", parents=[common], help="name, role, created, revoked")
    tl.set_defaults(func=cmd_tokens_list)
    tr = tokens.add_parser("revoke", parents=[common], help="revoke the live token of that name")
    tr.add_argument("name")
    tr.set_defaults(func=cmd_tokens_revoke)

    pol = sub.add_parser("policy", help="the versioned timing policy").add_subparsers(
        dest="sub", required=True
    )
    pl = pol.add_parser("list", parents=[common], help="show every version; * = in force now")
    pl.set_defaults(func=cmd_policy_list)
    pp = pol.add_parser(
        "publish",
        parents=[common],
        help="publish a version (at least 15 days before it takes effect)",
    )
    pp.add_argument("--effective", required=True, metavar="YYYY-MM-DD")
    pp.add_argument("--oral-window-seconds", type=int)
    pp.add_argument("--warning-seconds", type=int)
    pp.add_argument("--written-answer-hours", type=int)
    pp.add_argument("--day-start", metavar="HH:MM")
    pp.add_argument("--day-end", metavar="HH:MM")
    pp.add_argument("--window-start", choices=["agent_answer", "queue_entry"])
    pp.add_argument("--note")
    pp.set_defaults(func=cmd_policy_publish)

    hd = sub.add_parser("helpdesk", help="the helpdesk tickets go to").add_subparsers(
        dest="sub", required=True
    )
    hc = hd.add_parser(
        "check", parents=[common], help="credentials, project, tracker, status, custom field"
    )
    hc.set_defaults(func=cmd_helpdesk_check)

    _extend(sub, common)
    return p


def _extend(sub, common) -> None:
    """Commands owned by other modules register here."""
    from callcenter.telephony import render_prompts, simulator

    simulator.add_parser(sub, common)
    render_prompts.add_parser(sub, common)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callcenter")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # `callcenter` alone: what it can do, not an error
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(args.func(args)) or 0
    except (UsageError, ConfigError, CalendarError) as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
    except DomainError as exc:
        print(f"callcenter: error: {exc.message}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
    except Exception as exc:
        from callcenter.adapters.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable) or type(exc).__module__.startswith(
            ("sqlalchemy", "asyncpg", "alembic")
        ):
            print(f"callcenter: error: database problem: {exc}".splitlines()[0], file=sys.stderr)
            return 3
        raise
    return 2


if __name__ == "__main__":
    sys.exit(main())
