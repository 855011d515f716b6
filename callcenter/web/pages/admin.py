"""The admin's pages: users, API tokens and the certificate import.

Users: every UI user with the queue interfaces Asterisk knows them by; forms add a user,
disable or enable one, and set a new password (each ends the user's sessions as the CLI
does). The interfaces form sets an agent's interfaces through
``PUT /api/v1/users/{login}/interfaces`` (the page's script sends it as JSON, so it passes the
same CSRF and validation as any API call).

Tokens: the list (never the token itself), a form that creates one and shows it once, and a
revoke button per live token.

Certificates: a CSV upload read with the CLI's reader (``Container.read_certificates``): any
bad row and nothing is imported, every bad row listed with its line; a good file is imported
in the background (one transaction, as the CLI) and its page shows the progress.

Every form is a plain HTML form (the Origin check of ``web/csrf.py``); after a change the
browser is sent back to the page with a word of what was done (``?done=KEY``, only known keys).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from callcenter.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PolicyRefused,
    ValidationError,
)
from callcenter.domain.instants import MOSCOW
from callcenter.domain.policy import WINDOW_STARTS
from callcenter.web.errors import status_for
from callcenter.web.i18n import N_
from callcenter.web.keys import CONTAINER
from callcenter.web.pages import gettext_for, language, render
from callcenter.web.pages.forms import read_form

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

USER_ROLES = ("agent", "supervisor", "admin")
TOKEN_ROLES = ("pbx", "supervisor", "portal")
#: what a redirect may say was done (anything else in ``?done=`` is ignored)
DONE_KEYS = {
    "user_added": N_("admin_done_user_added"),
    "user_disabled": N_("admin_done_user_disabled"),
    "user_enabled": N_("admin_done_user_enabled"),
    "password_set": N_("admin_done_password_set"),
    "token_revoked": N_("admin_done_token_revoked"),
}
#: the words for the use cases' refusals on these forms (others show the generic word and code)
ERROR_KEYS = {
    "user_exists": N_("admin_err_user_exists"),
    "bad_login": N_("admin_err_bad_login"),
    "bad_role": N_("admin_err_bad_role"),
    "weak_password": N_("admin_err_weak_password"),
    "no_such_user": N_("apierr_no_such_user"),
    "interface_taken": N_("apierr_interface_taken"),
    "invalid_interface": N_("apierr_invalid_interface"),
    "token_exists": N_("admin_err_token_exists"),
    "bad_name": N_("admin_err_bad_name"),
    "no_such_token": N_("admin_err_no_such_token"),
    "passwords_differ": N_("admin_err_passwords_differ"),
}
#: the upload limit of the certificate import (the app's 1 MiB limit is for other bodies)
UPLOAD_LIMIT = 64 * 1024**2
JOBS: web.AppKey[dict] = web.AppKey("import_jobs", dict)
_job_ids = itertools.count(1)


def _when(instant: datetime | None) -> str:
    return instant.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M") if instant else "—"


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _error_text(request: web.Request, exc: DomainError) -> str:
    _ = gettext_for(language(request))[0]
    key = ERROR_KEYS.get(exc.code)
    return _(key) if key else f"{_('apierr_other')} ({exc.code})"


def _done(request: web.Request) -> str:
    key = DONE_KEYS.get(request.query.get("done", ""))
    return gettext_for(language(request))[0](key) if key else ""


# --- users ---------------------------------------------------------------------------------


async def _users_page(
    request: web.Request, *, error: str = "", form: dict | None = None, status: int = 200
) -> web.Response:
    c = request.app[CONTAINER]
    users = await c.auth.users()
    interfaces = await c.desk.all_interfaces()
    rows = [
        {
            "login": u.login,
            "display_name": u.display_name,
            "role": u.role,
            "disabled": u.disabled_at is not None,
            "disabled_at": _when(u.disabled_at),
            "created": _when(u.created_at),
            "interfaces": interfaces.get(u.login, []),
        }
        for u in users
    ]
    return render(
        request,
        "admin/users.html",
        {
            "rows": rows,
            "page_lang": language(request),
            "roles": USER_ROLES,
            "done": _done(request),
            "error": error,
            "form": form or {"login": "", "display_name": "", "role": "agent", "interfaces": ""},
        },
        status,
    )


@routes.get("/admin/users")
async def users_page(request: web.Request) -> web.Response:
    return await _users_page(request)


def _split(text: str) -> list[str]:
    return [s for s in text.replace(",", " ").split() if s]


@routes.post("/admin/users")
async def add_user(request: web.Request) -> web.Response:
    form = await read_form(
        request, "login", "display_name", "role", "password", "password2", "interfaces"
    )
    c = request.app[CONTAINER]
    now = c.clock.now()
    shown = {k: form[k] for k in ("login", "display_name", "role", "interfaces")}
    try:
        if form["password"] != form["password2"]:
            raise ValidationError("the passwords differ", code="passwords_differ")
        wanted = _split(form["interfaces"])
        if wanted:  # refused before the user exists: an interface of another user, a bad one
            await c.desk.check_free(wanted, form["login"].strip())
        await c.auth.add_user(
            form["login"], form["role"], form["password"], now, form["display_name"].strip()
        )
        if wanted:
            await c.desk.set_interfaces(form["login"].strip(), wanted, now)
    except (ValidationError, Conflict) as exc:
        return await _users_page(
            request, error=_error_text(request, exc), form=shown, status=status_for(exc)
        )
    return _see_other("/admin/users?done=user_added")


@routes.post("/admin/users/{login}/disable")
async def disable_user(request: web.Request) -> web.Response:
    await read_form(request)
    c = request.app[CONTAINER]
    await c.auth.disable_user(request.match_info["login"], c.clock.now())
    return _see_other("/admin/users?done=user_disabled")


@routes.post("/admin/users/{login}/enable")
async def enable_user(request: web.Request) -> web.Response:
    await read_form(request)
    await request.app[CONTAINER].auth.enable_user(request.match_info["login"])
    return _see_other("/admin/users?done=user_enabled")


@routes.post("/admin/users/{login}/password")
async def set_password(request: web.Request) -> web.Response:
    form = await read_form(request, "password", "password2")
    c = request.app[CONTAINER]
    try:
        if form["password"] != form["password2"]:
            raise ValidationError("the passwords differ", code="passwords_differ")
        await c.auth.set_password(request.match_info["login"], form["password"])
    except ValidationError as exc:
        return await _users_page(request, error=_error_text(request, exc), status=status_for(exc))
    return _see_other("/admin/users?done=password_set")


# --- tokens --------------------------------------------------------------------------------


async def _tokens_page(
    request: web.Request, *, created: str = "", name: str = "", error: str = "", status=200
) -> web.Response:
    c = request.app[CONTAINER]
    rows = [
        {
            "name": t.name,
            "role": t.role,
            "created": _when(t.created_at),
            "revoked": _when(t.revoked_at) if t.revoked_at else "",
        }
        for t in await c.auth.tokens()
    ]
    return render(
        request,
        "admin/tokens.html",
        {
            "rows": rows,
            "roles": TOKEN_ROLES,
            "created": created,
            "created_name": name,
            "error": error,
            "done": _done(request),
        },
        status,
    )


@routes.get("/admin/tokens")
async def tokens_page(request: web.Request) -> web.Response:
    return await _tokens_page(request)


@routes.post("/admin/tokens")
async def create_token(request: web.Request) -> web.Response:
    """The new token is in this answer only (``Cache-Control: no-store``), never again."""
    form = await read_form(request, "name", "role")
    c = request.app[CONTAINER]
    try:
        token = await c.auth.create_token(form["name"], form["role"], c.clock.now())
    except (ValidationError, Conflict) as exc:
        return await _tokens_page(
            request, name=form["name"], error=_error_text(request, exc), status=status_for(exc)
        )
    return await _tokens_page(request, created=token, name=form["name"].strip(), status=201)


@routes.post("/admin/tokens/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    form = await read_form(request, "name")
    c = request.app[CONTAINER]
    try:
        await c.auth.revoke_token(form["name"], c.clock.now())
    except NotFound as exc:
        return await _tokens_page(request, error=_error_text(request, exc), status=404)
    return _see_other("/admin/tokens?done=token_revoked")


# --- certificate import --------------------------------------------------------------------


@dataclass
class ImportJob:
    """One uploaded file: read and checked (``checked`` rows of about ``lines``), then, if
    every row is good, imported in one transaction (``done`` of ``total``)."""

    id: int
    filename: str
    lines: int
    checked: int = 0
    total: int = 0
    done: int = 0
    errors: list = field(default_factory=list)
    created: int | None = None
    updated: int | None = None
    failed: str = ""
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def phase(self) -> str:
        if self.failed:
            return "failed"
        if self.errors:
            return "refused"
        if self.created is not None:
            return "done"
        return "importing" if self.total else "checking"

    @property
    def finished(self) -> bool:
        return self.phase in ("failed", "refused", "done")

    @property
    def percent(self) -> int:
        """Checking is the first half, importing the second."""
        if self.phase == "done":
            return 100
        if self.total:
            return 50 + int(50 * self.done / self.total)
        return min(50, int(50 * self.checked / max(self.lines, 1)))


PHASE_KEYS = (
    N_("admin_import_phase_checking"),
    N_("admin_import_phase_importing"),
    N_("admin_import_phase_done"),
    N_("admin_import_phase_refused"),
    N_("admin_import_phase_failed"),
)


def install(app: web.Application) -> None:
    """The app's state of these pages (before it starts): the imports under way."""
    app[JOBS] = {}


def _jobs(app: web.Application) -> dict[int, ImportJob]:
    return app[JOBS]


@routes.get("/admin/certificates")
async def certificates_page(request: web.Request) -> web.Response:
    jobs = sorted(_jobs(request.app).values(), key=lambda j: -j.id)[:10]
    return render(request, "admin/certificates.html", {"error": "", "jobs": jobs})


async def _save_upload(request: web.Request, into: Path) -> tuple[str, int]:
    """The ``file`` field of a multipart form streamed to ``into``: its name and lines."""
    if request.content_type != "multipart/form-data":
        raise ValidationError("send the file as a form upload", code="not_a_form")
    reader = await request.multipart()
    size = lines = 0
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) != "file":
            continue
        with into.open("wb") as out:
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
                if size > UPLOAD_LIMIT:
                    raise ValidationError(
                        f"the file is over {UPLOAD_LIMIT // 1024**2} MiB",
                        code="file_too_large",
                        fields={"file": "too large"},
                    )
                lines += chunk.count(b"\n")
                out.write(chunk)
        if size == 0:
            break
        # browsers escape ``"``, CR and LF in the name as %22, %0D, %0A (aiohttp escapes more)
        return unquote(part.filename or "") or "upload.csv", lines
    raise ValidationError("choose a CSV file", code="no_file", fields={"file": "missing"})


@routes.post("/admin/certificates")
async def upload_certificates(request: web.Request) -> web.Response:
    """The file is kept in a folder of its own until its job is over; the browser goes to the
    job's page at once and watches it being checked, then imported."""
    c = request.app[CONTAINER]
    _ = gettext_for(language(request))[0]
    tmp = Path(tempfile.mkdtemp(prefix="cc-import-"))
    path = tmp / "upload.csv"
    try:
        filename, lines = await _save_upload(request, path)
    except ValidationError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        word = {
            "no_file": N_("admin_import_no_file"),
            "file_too_large": N_("admin_import_too_large"),
        }
        error = _(word.get(exc.code, "apierr_validation"))
        return render(request, "admin/certificates.html", {"error": error, "jobs": []}, 422)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    job = ImportJob(next(_job_ids), filename, max(lines - 1, 1))
    _jobs(request.app)[job.id] = job

    def checked(rows: int) -> None:
        job.checked = rows

    def imported(done: int, total: int) -> None:
        job.done = done

    async def run() -> None:
        try:
            loop = asyncio.get_running_loop()
            parsed = await loop.run_in_executor(None, c.read_certificates, path, checked)
            job.checked = parsed.rows
            if parsed.errors or not parsed.certificates:
                job.errors = parsed.errors or [(0, _("admin_import_empty"))]
                return
            job.total = len(parsed.certificates)
            job.created, job.updated = await c.registry.import_certificates(
                parsed.certificates, c.clock.now(), progress=imported
            )
        except Exception as exc:  # the page says it failed; the log has why
            log.exception("certificate import %s failed", job.id)
            job.failed = type(exc).__name__
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    job.task = asyncio.get_running_loop().create_task(run())
    return _see_other(f"/admin/certificates/jobs/{job.id}")


def _job(request: web.Request) -> ImportJob:
    raw = request.match_info["job_id"]
    ok = raw.isascii() and raw.isdigit() and len(raw) <= 9
    job = _jobs(request.app).get(int(raw)) if ok else None
    if job is None:
        raise NotFound("no such import", code="import_not_found")
    return job


@routes.get("/admin/certificates/jobs/{job_id}")
async def job_page(request: web.Request) -> web.Response:
    return render(request, "admin/import_job.html", {"job": _job(request)})


@routes.get("/admin/certificates/jobs/{job_id}/progress")
async def job_progress(request: web.Request) -> web.Response:
    """The progress fragment the job page polls (htmx) until the job is over."""
    return render(request, "admin/import_progress.html", {"job": _job(request)})


# --- the timing policy ---------------------------------------------------------------------

POLICY_NUMBERS = ("oral_window_seconds", "warning_seconds", "written_answer_hours")
POLICY_FIELDS = (*POLICY_NUMBERS, "effective_from", "day_start", "day_end", "window_start", "note")


def _policy_row(v, current, now: datetime) -> dict:
    return {
        "id": v.id,
        "effective_from": v.effective_from.strftime("%d.%m.%Y"),
        "oral_minutes": v.oral_window_seconds / 60,
        "oral_window_seconds": v.oral_window_seconds,
        "warning_seconds": v.warning_seconds,
        "written_answer_hours": v.written_answer_hours,
        "hours": f"{v.day_start:%H:%M}–{v.day_end:%H:%M}",
        "window_start": v.window_start,
        "published": _when(v.published_at),
        "note": v.note,
        "in_force": v is current,
        "scheduled": v.effective_at > now,
    }


async def _policy_page(
    request: web.Request, *, error: str = "", form: dict | None = None, status: int = 200
) -> web.Response:
    c = request.app[CONTAINER]
    now = c.clock.now()
    book = await c.policy.book()
    current = book.in_force_at(now)
    earliest = now.astimezone(MOSCOW).date() + timedelta(days=c.policy.min_notice_days)
    if form is None:
        form = {
            "effective_from": earliest.isoformat(),
            "oral_window_seconds": str(current.oral_window_seconds),
            "warning_seconds": str(current.warning_seconds),
            "written_answer_hours": str(current.written_answer_hours),
            "day_start": f"{current.day_start:%H:%M}",
            "day_end": f"{current.day_end:%H:%M}",
            "window_start": current.window_start,
            "note": "",
        }
    rows = [_policy_row(v, current, now) for v in reversed(book.versions)]
    return render(
        request,
        "admin/policy.html",
        {
            "rows": rows,
            "earliest": earliest.isoformat(),
            "notice_days": c.policy.min_notice_days,
            "form": form,
            "error": error,
            "done": _done(request),
            "window_starts": WINDOW_STARTS,
        },
        status,
    )


@routes.get("/policy")
async def policy_page(request: web.Request) -> web.Response:
    return await _policy_page(request)


@routes.post("/policy")
async def publish_policy(request: web.Request) -> web.Response:
    """A new version from the form (the 15-day rule applies: a date too soon is refused with
    the earliest allowed one named)."""
    form = await read_form(request, *POLICY_FIELDS)
    c = request.app[CONTAINER]
    _ = gettext_for(language(request))[0]
    now = c.clock.now()
    try:
        try:
            effective = date.fromisoformat(form["effective_from"])
        except ValueError:
            raise ValidationError("not a date", code="policy_bad_date") from None
        numbers = {}
        for name in POLICY_NUMBERS:
            raw = form[name].strip()
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
                raise ValidationError("not a number", code="policy_bad_number")
            numbers[name] = int(raw)
        try:
            day_start = datetime.strptime(form["day_start"], "%H:%M").time()
            day_end = datetime.strptime(form["day_end"], "%H:%M").time()
        except ValueError:
            raise ValidationError("not a time", code="policy_bad_time") from None
        current = await c.policy.in_force_at(now)
        version = replace(
            current,
            effective_from=effective,
            id=None,
            published_at=None,
            note=form["note"].strip(),
            day_start=day_start,
            day_end=day_end,
            window_start=form["window_start"],
            **numbers,
        )
        await c.policy.publish(version, now)
    except PolicyRefused as exc:
        return await _policy_page(
            request,
            error=_("policy_too_soon", earliest=exc.details.get("earliest", "")),
            form=form,
            status=422,
        )
    except ValidationError as exc:
        key = POLICY_ERRORS.get(exc.code, "policy_invalid")
        text = _(key) if key != "policy_invalid" else f"{_(key)}: {exc.message}"
        return await _policy_page(request, error=text, form=form, status=422)
    return _see_other("/policy?done=policy_published")


POLICY_ERRORS = {
    "policy_bad_date": N_("policy_bad_date"),
    "policy_bad_number": N_("policy_bad_number"),
    "policy_bad_time": N_("policy_bad_time"),
    "invalid_policy": N_("policy_invalid"),
}
DONE_KEYS["policy_published"] = N_("admin_done_policy_published")
WINDOW_START_KEYS = (N_("policy_start_agent_answer"), N_("policy_start_queue_entry"))
