"""One table maps domain error classes to HTTP statuses; every error leaves as JSON."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from callcenter.domain import errors as e
from callcenter.web.json_edge import decode_object

log = logging.getLogger(__name__)


class UnsupportedMediaType(e.DomainError):
    code = "unsupported_media_type"


STATUS_BY_CLASS: list[tuple[type[e.DomainError], int]] = [
    (UnsupportedMediaType, 415),
    (e.TooManyAttempts, 429),
    (e.ValidationError, 422),
    (e.PolicyRefused, 422),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.Unavailable, 503),
    (e.DomainError, 400),
]


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


#: the error code an error answer carries, for the refusal metrics (no parsing the body back)
ERROR_CODE: web.ResponseKey[str] = web.ResponseKey("error_code", str)


def json_response(data, status: int = 200) -> web.Response:
    """JSON with Cyrillic as UTF-8 on the wire, not \\u escapes."""
    return web.json_response(data, status=status, dumps=_dumps)


def json_error(status: int, code: str, message: str, **extra) -> web.Response:
    response = json_response({"error": code, "message": message, **extra}, status)
    response[ERROR_CODE] = code
    return response


def refusal_kind(status: int, code: str | None) -> str | None:
    """How ``/metrics`` files a refused request (None: not a refusal)."""
    if code == "csrf_refused":
        return "csrf"
    if status == 429:
        return "throttled"
    if status in (401, 403):
        return "unauthorized"
    if status in (400, 413, 415, 422):
        return "bad_input"
    return None


def status_for(exc: e.DomainError) -> int:
    return next(status for cls, status in STATUS_BY_CLASS if isinstance(exc, cls))


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Domain errors, aiohttp's own HTTP errors and surprises all become JSON bodies."""
    from callcenter.web.keys import CONTAINER

    container = request.app[CONTAINER]
    metrics = container.metrics
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except e.DomainError as exc:
        response = json_error(status_for(exc), exc.code, exc.message, **exc.details)
        if isinstance(exc, e.TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_error(
            exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason
        )
    except Exception as exc:
        if container.is_outage(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
            response = json_error(
                503, "database_unavailable", "the database is unavailable; try again shortly"
            )
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = json_error(500, "internal_error", "internal error; it has been logged")
    metrics.inc(
        "callcenter_http_requests_total",
        "HTTP requests by route and status.",
        route=route_name,
        method=request.method,
        status=str(response.status),
    )
    kind = refusal_kind(response.status, response.get(ERROR_CODE))
    if kind is not None:
        metrics.inc(
            "callcenter_refusals_total",
            "Requests refused, by kind: what an operator watches for an attack.",
            kind=kind,
        )
    metrics.observe(time.perf_counter() - started, route=route_name, method=request.method)
    return response


async def read_json(request: web.Request) -> dict:
    """The request body as a JSON object (see ``json_edge``), or a 4xx saying what is wrong.

    Only ``application/json``: a form or ``text/plain`` body is what a cross-site page can
    send without asking, so it is refused before it is read (see ``csrf``)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}",
            code="unsupported_media_type",
        )
    return decode_object(await request.read())
