"""Reading an HTML form's fields as text a database can store, or a 4xx."""

from __future__ import annotations

from aiohttp import web

from callcenter.domain.errors import ValidationError
from callcenter.web.json_edge import check_tree

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


async def read_form(request: web.Request, *names: str, limit: int = 1000) -> dict[str, str]:
    """The named fields (missing ones empty): text only, each at most ``limit`` characters."""
    if request.content_type not in FORM_TYPES:
        raise ValidationError("send the form as a form", code="not_a_form")
    try:
        data = await request.post()
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("the form is not UTF-8 text", code="invalid_text") from None
    values = {}
    for name in names:
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            raise ValidationError(
                f"{name} must be text of at most {limit} characters",
                code="invalid_request",
                fields={name: "too long"},
            )
        values[name] = value
    check_tree(values)
    return values
