"""The call a piece of work is about, for the log lines it writes (stdlib only).

Set where a call's work begins (an event recorded, a FastAGI dialogue's service action, a
timer fired); a logging filter (``callcenter.logs``) copies it into every record, so a line
about a call carries its id whichever module wrote it. A context variable, so concurrent
calls on one loop never see each other's id.
"""

from __future__ import annotations

from contextvars import ContextVar

CALL_ID: ContextVar[str | None] = ContextVar("callcenter_call_id", default=None)


def bind_call(call_id: str | None) -> None:
    """This task (and the tasks it starts) is about ``call_id`` from now on."""
    if call_id:
        CALL_ID.set(str(call_id))
