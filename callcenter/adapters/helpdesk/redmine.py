"""Redmine through its REST API (``X-Redmine-API-Key``): issues out, answers back.

Delivery: look the ticket's key up in the ``ticket_field`` custom field first (a retried
delivery finds the issue it made before, so there is never a second), else upload the
attachments (``POST /uploads.json``) and create the issue in the project and tracker, due on
the ticket's Moscow due date (the exact instant is in the description).

Answers: issues of ours updated since a moment (``updated_on>=``, the issue list's filter,
in Redmine's own clock); an issue's answer is its first journal, not by the service's own user,
that is a public note or moves the status to ``answered_status``, at the journal's time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from callcenter.adapters.helpdesk.base import (
    Answer,
    Delivery,
    DeliveryError,
    HelpdeskConfigError,
    IssueChange,
    ticket_id_of,
)
from callcenter.domain.instants import MOSCOW

log = logging.getLogger(__name__)
PAGE = 100

_SOURCES = {"call": "звонок", "portal": "портал", "voicemail": "голосовая почта"}


def _utc(text: str) -> datetime:
    """Redmine's instants (``2026-11-27T17:58:27Z``) as aware UTC datetimes."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _redmine_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _match(items: list[dict], wanted: str) -> dict | None:
    """An item by numeric id or by name (case-insensitive)."""
    w = wanted.strip()
    for it in items:
        if (w.isdigit() and it.get("id") == int(w)) or str(it.get("name", "")).casefold() == (
            w.casefold()
        ):
            return it
    return None


class RedmineError(DeliveryError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"Redmine answered HTTP {status}: {text[:300]}")
        self.status = status


class RedmineHelpdesk:
    kind = "redmine"
    polls = True

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        project: str,
        tracker: str,
        answered_status: str,
        ticket_field: str = "Callcenter ticket",
        ticket_prefix: str = "cc",
        timeout: float = 10.0,
    ) -> None:
        self.prefix = ticket_prefix
        self.base = url.rstrip("/")
        self.api_key = api_key
        self.project, self.tracker = project, tracker
        self.answered_status, self.ticket_field = answered_status, ticket_field
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids: dict[str, int] | None = None  # project, tracker, status, field, user

    # --- HTTP --------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, headers={"X-Redmine-API-Key": self.api_key}
            )
        return self._session

    async def _call(
        self, method: str, path: str, *, params=None, body=None, data=None, headers=None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            kwargs["data"] = json.dumps(body, ensure_ascii=False).encode()
            kwargs["headers"] = {"Content-Type": "application/json", **(headers or {})}
        elif data is not None:
            kwargs["data"] = data
        async with self._http().request(method, self.base + path, **kwargs) as resp:
            raw = await resp.read()
            try:
                parsed = json.loads(raw) if raw.strip() else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return resp.status, parsed

    async def _json(self, method: str, path: str, ok=(200,), **kw) -> Any:
        status, parsed = await self._call(method, path, **kw)
        if status not in ok:
            raise RedmineError(status, parsed if isinstance(parsed, str) else json.dumps(parsed))
        return parsed

    # --- what the configuration names ----------------------------------------------------------

    async def inspect(self) -> tuple[list[str], list[str], dict[str, int]]:
        """(what is fine, what is missing, the resolved ids): each configured name checked."""
        ok: list[str] = []
        missing: list[str] = []
        ids: dict[str, int] = {}
        status, me = await self._call("GET", "/users/current.json")
        if status in (401, 403):
            missing.append(
                "api_key: refused by Redmine (enable the REST API in Administration > "
                "Settings > API, and use the key of an active user)"
            )
            return ok, missing, ids
        if status != 200:
            missing.append(f"url: {self.base} is not a Redmine REST API (HTTP {status})")
            return ok, missing, ids
        user = me["user"]
        ids["user"] = user["id"]
        ok.append(f"api_key: user {user.get('login')} (id {user['id']})")

        status, found = await self._call(
            "GET",
            f"/projects/{quote(self.project, safe='')}.json",
            params={"include": "trackers,issue_custom_fields"},
        )
        if status != 200:
            why = "not visible to that user" if status == 403 else "no such project"
            missing.append(f"project: {self.project!r}: {why} (HTTP {status})")
            return ok, missing, ids
        project = found["project"]
        ids["project"] = project["id"]
        ok.append(f"project: {project['identifier']} (id {project['id']})")
        tracker = _match(project.get("trackers", []), self.tracker)
        if tracker is None:
            enabled = ", ".join(t["name"] for t in project.get("trackers", [])) or "none"
            missing.append(
                f"tracker: {self.tracker!r} is not enabled in project {project['identifier']} "
                f"(enabled: {enabled})"
            )
        else:
            ids["tracker"] = tracker["id"]
            ok.append(f"tracker: {tracker['name']} (id {tracker['id']})")

        statuses = (await self._json("GET", "/issue_statuses.json"))["issue_statuses"]
        answered = _match(statuses, self.answered_status)
        if answered is None:
            names = ", ".join(s["name"] for s in statuses)
            missing.append(f"answered_status: no status {self.answered_status!r} (known: {names})")
        else:
            ids["status"] = answered["id"]
            ok.append(f"answered_status: {answered['name']} (id {answered['id']})")

        await self._inspect_field(project, ids, ok, missing)
        return ok, missing, ids

    async def _inspect_field(self, project, ids, ok, missing) -> None:
        want = self.ticket_field
        status, fields = await self._call("GET", "/custom_fields.json")
        if status == 200:
            field = _match(
                [f for f in fields["custom_fields"] if f.get("customized_type") == "issue"], want
            )
            if field is None:
                missing.append(
                    f"ticket_field: no issue custom field {want!r} (create one: format Text, "
                    "'Used as a filter', for all projects, for the tracker)"
                )
                return
            problems = []
            if field.get("field_format") != "string":
                problems.append(f"its format is {field.get('field_format')}, not Text (string)")
            if not field.get("is_filter"):
                problems.append("'Used as a filter' is off")
            if not field.get("visible", True):
                problems.append("it is not visible")
            tracker_ids = {t["id"] for t in field.get("trackers", [])}
            if "tracker" in ids and ids["tracker"] not in tracker_ids:
                problems.append(f"it is not enabled for tracker {self.tracker!r}")
            # the API does not say "for all projects": a field enabled for this project alone
            # is listed with it; otherwise the first delivery would find out (HTTP 422)
            scope = (
                "enabled in the project"
                if any(c.get("id") == field["id"] for c in project.get("issue_custom_fields", []))
                else "not enabled for this project alone: it must be 'For all projects'"
            )
            if problems:
                missing.append(f"ticket_field: {field['name']!r}: " + "; ".join(problems))
                return
            ids["field"] = field["id"]
            ok.append(f"ticket_field: {field['name']} (id {field['id']}), filterable, {scope}")
            return
        # not an administrator: only the project's own fields (and numeric ids) can be seen
        field = _match(project.get("issue_custom_fields", []), want)
        if field is None and want.strip().isdigit():
            field = {"id": int(want), "name": want}
        if field is None:
            missing.append(
                f"ticket_field: {want!r} cannot be seen with this key (custom fields are "
                "listed to administrators only): give its numeric id instead"
            )
            return
        ids["field"] = field["id"]
        ok.append(f"ticket_field: {field['name']} (id {field['id']}; its options not checked)")

    async def resolve(self) -> dict[str, int]:
        """The configured names as Redmine ids, once; HelpdeskConfigError naming what is off."""
        if self._ids is None:
            _ok, missing, ids = await self.inspect()
            if missing:
                raise HelpdeskConfigError(missing)
            self._ids = ids
        return self._ids

    async def check(self) -> tuple[list[str], list[str]]:
        ok, missing, _ids = await self.inspect()
        return ok, missing

    # --- delivery ----------------------------------------------------------------------------

    def issue_url(self, issue_id: int | str) -> str:
        return f"{self.base}/issues/{issue_id}"

    def marker(self, key: str) -> str:
        """The ticket field's value for an outbox key (``ticket-42`` -> ``cc-42``)."""
        tid = ticket_id_of(key)
        if tid is None:
            raise DeliveryError(f"outbox key {key!r} names no ticket")
        return f"{self.prefix}-{tid}"

    def ticket_of(self, marker: str | None) -> int | None:
        head, _, tail = (marker or "").rpartition("-")
        return int(tail) if head == self.prefix and tail.isascii() and tail.isdigit() else None

    async def find(self, key: str) -> int | None:
        """The issue already carrying ``key``'s marker in the ticket field, whatever its status."""
        ids = await self.resolve()
        key = self.marker(key)
        found = await self._json(
            "GET",
            "/issues.json",
            params={
                "project_id": ids["project"],
                "status_id": "*",
                f"cf_{ids['field']}": key,
                "limit": 2,
            },
        )
        issues = [
            i
            for i in found["issues"]
            if any(
                c.get("id") == ids["field"] and c.get("value") == key
                for c in i.get("custom_fields", [])
            )
        ]
        return issues[0]["id"] if issues else None

    async def deliver(self, topic: str, key: str, payload: dict[str, Any]) -> Delivery | None:
        ids = await self.resolve()
        if topic == "ticket.withdrawn":
            issue = await self.find(key.removesuffix("-withdrawn"))
            if issue is not None:
                reason = payload.get("withdrawn_reason") or ""
                await self._json(
                    "PUT",
                    f"/issues/{issue}.json",
                    ok=(200, 204),
                    body={"issue": {"notes": f"Обращение отозвано: {reason}".strip()}},
                )
            return None
        issue = await self.find(key)
        if issue is None:
            uploads = [await self.upload(a) for a in payload.get("attachments") or []]
            issue_body = self.issue_fields(self.marker(key), payload, ids)
            if uploads:
                issue_body["uploads"] = uploads
            created = await self._json(
                "POST", "/issues.json", ok=(201,), body={"issue": issue_body}
            )
            issue = created["issue"]["id"]
            log.info("ticket %s is Redmine issue #%s", payload.get("id"), issue)
        return Delivery(str(issue), self.issue_url(issue))

    async def upload(self, attachment: dict[str, Any]) -> dict[str, str]:
        """A file on our disk as a Redmine upload token (``POST /uploads.json``)."""
        path = Path(attachment["path"])
        name = attachment.get("filename") or path.name
        ctype = attachment.get("content_type") or (
            mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise DeliveryError(f"attachment {path}: {exc}") from exc
        got = await self._json(
            "POST",
            "/uploads.json",
            ok=(201,),
            params={"filename": name},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return {"token": got["upload"]["token"], "filename": name, "content_type": ctype}

    def issue_fields(self, marker: str, p: dict[str, Any], ids: dict[str, int]) -> dict[str, Any]:
        due = datetime.fromisoformat(p["due_at"]).astimezone(MOSCOW)
        received = datetime.fromisoformat(p["received_at"]).astimezone(MOSCOW)
        who = p.get("full_name") or p.get("organisation") or "без имени"
        source = _SOURCES.get(p.get("source") or "", p.get("source"))
        return {
            "project_id": ids["project"],
            "tracker_id": ids["tracker"],
            "subject": f"[{source}] {who}: {(p.get('description') or '')[:120]}".strip()[:255],
            "description": describe(p),
            # the request's own dates: Redmine would start it today, and refuse a due date
            # before that for a ticket delivered late (after an outage)
            "start_date": received.date().isoformat(),
            "due_date": due.date().isoformat(),
            "custom_fields": [{"id": ids["field"], "value": marker}],
        }

    # --- answers -----------------------------------------------------------------------------

    async def changed_since(self, since: datetime | None) -> list[IssueChange]:
        """Issues of ours updated at or after ``since`` (all of them when None), oldest first."""
        ids = await self.resolve()
        params: dict[str, Any] = {
            "project_id": ids["project"],
            "status_id": "*",
            f"cf_{ids['field']}": f"~{self.prefix}-",
            "sort": "updated_on",
            "limit": PAGE,
        }
        if since is not None:
            params["updated_on"] = ">=" + _redmine_time(since)
        out: list[IssueChange] = []
        offset = 0
        while True:
            page = await self._json("GET", "/issues.json", params={**params, "offset": offset})
            for issue in page["issues"]:
                key = next(
                    (
                        c.get("value")
                        for c in issue.get("custom_fields", [])
                        if c["id"] == ids["field"]
                    ),
                    None,
                )
                tid = self.ticket_of(key)
                if tid is not None:
                    out.append(IssueChange(tid, str(issue["id"]), _utc(issue["updated_on"])))
            offset += len(page["issues"])
            if not page["issues"] or offset >= page.get("total_count", 0):
                return out

    async def answer_of(self, change: IssueChange) -> Answer | None:
        """The issue's first public reply by staff, or its move to the answered status."""
        ids = await self.resolve()
        status, found = await self._call(
            "GET", f"/issues/{change.ref}.json", params={"include": "journals"}
        )
        if status in (403, 404):  # deleted or hidden since it was listed: nothing to read
            log.warning("Redmine issue #%s: HTTP %s, its answer cannot be read", change.ref, status)
            return None
        if status != 200:
            raise RedmineError(status, str(found))
        journals = sorted(
            found["issue"].get("journals", []), key=lambda j: (_utc(j["created_on"]), j["id"])
        )
        for j in journals:
            if (j.get("user") or {}).get("id") == ids["user"]:
                continue  # our own notes (a withdrawal) are not an answer
            notes = (j.get("notes") or "").strip()
            public_note = bool(notes) and not j.get("private_notes")
            answered = any(
                d.get("property") == "attr"
                and d.get("name") == "status_id"
                and str(d.get("new_value")) == str(ids["status"])
                for d in j.get("details", [])
            )
            if public_note or answered:
                return Answer(
                    change.ticket_id,
                    _utc(j["created_on"]),
                    notes if public_note else f"Статус: {self.answered_status}",
                    change.ref,
                    self.issue_url(change.ref),
                )
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def describe(p: dict[str, Any]) -> str:
    """The issue's description (Textile/Markdown-neutral plain lines)."""
    lines = [
        f"Обращение № {p.get('id')} ({_SOURCES.get(p.get('source') or '', p.get('source'))})",
        f"Получено: {p.get('received_at')}",
        f"Срок ответа: {p.get('due_at')} (12 рабочих часов по регламенту)",
        "",
        f"Заявитель: {p.get('full_name') or '—'}",
        f"Организация: {p.get('organisation') or '—'}",
        f"Сертификат: {p.get('certificate') or '—'}",
        f"Категория: {p.get('category')}",
    ]
    cov = p.get("coverage")
    if cov:
        lines += [
            f"Владелец: {cov.get('holder_name') or cov.get('organisation') or '—'}",
            f"Продукт: {cov.get('product') or '—'}, версия {cov.get('version')}, "
            f"сборка {cov.get('build')}",
            f"Действует: {cov.get('valid_from')} — {cov.get('valid_to')}; "
            f"услуги: {', '.join(cov.get('services') or []) or '—'}",
        ]
    call = p.get("call")
    if call:
        lines += [
            "",
            f"Звонок {p.get('call_id')} с номера {call.get('caller_number') or '—'}, "
            f"оператор {call.get('agent_name') or call.get('agent') or '—'}",
            f"Начало: {call.get('started_at')}; в очереди: {call.get('queued_at')}; "
            f"ответ оператора: {call.get('connected_at')}; конец: {call.get('ended_at')}",
            f"Срок устного ответа: {call.get('oral_deadline_at')} ({call.get('window_status')})",
        ]
        for e in call.get("extensions") or []:
            lines.append(f"Продление на {e['seconds']} с ({e['at']}, {e['by']}): {e['reason']}")
        if p.get("escalation_reason"):
            lines.append(f"Переведено в письменную форму: {p['escalation_reason']}")
    lines += ["", "Описание:", p.get("description") or ""]
    return "\n".join(lines)
