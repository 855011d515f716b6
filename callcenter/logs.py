"""Logging set-up for ``serve`` and the command line: text or JSON lines, the call id in each.

``[logging] format = "json"`` writes one JSON object a line (``ts``, ``level``, ``logger``,
``message``, ``call_id`` when the line is about a call, ``exc`` with a traceback), for a log
collector; ``text`` keeps the human line, with ``[call ID]`` added when known. The call id
comes from the record's ``extra={"call_id": ...}`` or from the context variable of
:mod:`callcenter.domain.log_context`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from callcenter.domain.log_context import CALL_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s:%(call_tag)s %(message)s"


class CallIdFilter(logging.Filter):
    """Gives every record a ``call_id`` (None when not about a call) and a ``call_tag``."""

    def filter(self, record: logging.LogRecord) -> bool:
        call_id = getattr(record, "call_id", None) or CALL_ID.get()
        record.call_id = call_id
        record.call_tag = f" [call {call_id}]" if call_id else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None) or CALL_ID.get()
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text", stream=None) -> logging.Handler:
    """Replace the root logger's handlers with one writing ``fmt`` lines at ``level``."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
