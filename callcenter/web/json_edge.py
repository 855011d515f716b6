"""The one place a request body becomes data: JSON that no later layer can choke on.

Everything a client sends passes here before any handler or schema sees it, so the classes of
hostile input are refused once, at the root, with a 4xx naming where the problem is:

- nesting deeper than ``MAX_DEPTH`` (the decoder would recurse; no request of ours nests);
- integers of more than ``MAX_INT_DIGITS`` digits (Python would parse thousands of digits
  slowly, then the database refuses them), NaN and Infinity (not JSON), floats out of range;
- lone UTF-16 surrogates (``"\\ud800"``: valid JSON escapes, but not text: UTF-8 cannot encode
  them, so the database driver fails) and NUL characters (PostgreSQL refuses them in text,
  SQLite would keep them) in any string, keys included.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web

from callcenter.domain.errors import DomainError, ValidationError

MAX_DEPTH = 16
MAX_INT_DIGITS = 18  # every integer we take fits in a signed 64-bit column
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class MalformedJson(DomainError):
    """Not JSON at all, or not the JSON object a request body must be (400)."""

    code = "malformed_json"


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong(digits)
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _TooLong(text)
    return value


def _constant(name: str):
    raise _NotJson(name)


class _TooLong(ValueError):
    pass


class _NotJson(ValueError):
    pass


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def decode_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whose every string is text a database can store."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"request body is not UTF-8: {exc.reason}") from None
    try:
        body = _DECODER.decode(text)
    except _TooLong as exc:
        raise MalformedJson(
            f"a number in the body is out of range (at most {MAX_INT_DIGITS} digits): "
            f"{str(exc)[:24]}..."
        ) from None
    except _NotJson as exc:
        raise MalformedJson(f"{exc} is not JSON") from None
    except RecursionError:
        raise MalformedJson(f"request body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError included
        raise MalformedJson(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedJson("request body must be a JSON object")
    check_tree(body)
    return body


def check_tree(body: Any) -> None:
    """Refuse too deep a tree and strings that are not storable text, naming the field."""
    stack: list[tuple[Any, str | None, int]] = [(body, None, 0)]  # None: the body itself
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedJson(f"request body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            _check_text(node, "body" if path is None else path)
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_text(key, "a field name" if path is None else f"a field name in {path}")
                stack.append((value, key if path is None else f"{path}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))


@web.middleware
async def text_middleware(request: web.Request, handler):
    """Query parameters and path segments obey the same rule as body strings: no NUL and no
    lone surrogate (``%00``, ``%ED%A0%80``) ever reaches a handler or a database."""
    for name, value in request.query.items():
        _check_text(name, "a query parameter name")
        _check_text(value, name)
    for name, value in request.match_info.items():
        _check_text(value, name)
    return await handler(request)


def _check_text(value: str, field: str) -> None:
    bad = _BAD_TEXT.search(value)
    if bad is None:
        return
    what = "a NUL character" if bad.group() == "\x00" else "a lone UTF-16 surrogate"
    raise ValidationError(
        f"{field} contains {what}, which is not text",
        code="invalid_text",
        fields={field: f"contains {what}"},
    )
