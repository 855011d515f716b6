"""What the agent does with a call (R-2, R-8, R-10, R-12): who and what about, an early
written request, an outcome, a complaint. Each is one unit of work on the locked call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callcenter.domain.calls import REFUSAL_REASONS, Outcome, WindowStatus
from callcenter.domain.errors import Conflict, NotFound, ValidationError
from callcenter.services.effects import Aftermath, Effects
from callcenter.services.escalation import Escalation
from callcenter.services.oral_window import OralWindows

log = logging.getLogger(__name__)
IDENTITY_FIELDS = (
    "caller_name",
    "organisation",
    "description",
    "category",
    "subject",
    "identity_check",
)


class AgentActions:
    def __init__(
        self,
        uow_factory: Callable,
        windows: OralWindows,
        escalation: Escalation,
        aftermath: Aftermath,
    ) -> None:
        self._uow = uow_factory
        self.windows = windows
        self.escalation = escalation
        self.aftermath = aftermath

    async def escalate(self, call_id: str, by: str, now: datetime, **details: Any) -> None:
        """The agent turns the call into a written request early (clause 4.2)."""
        fx = Effects()
        async with self._uow() as uow:
            win = await self.windows.for_action(uow, call_id, now)
            if not win.escalate(now) or not await uow.windows.transition(
                call_id, WindowStatus.ESCALATED, now
            ):
                raise Conflict("the oral window is already closed", code="window_closed")
            await _save_identity(uow, call_id, now, details)
            await uow.calls.update_fields(
                call_id, now, outcome=Outcome.ESCALATED.value, outcome_at=now, outcome_by=by
            )
            await self.escalation.escalate(uow, call_id, now, "agent", fx, by=by, **details)
            await uow.commit()
        self.aftermath.release(fx)

    async def set_identity(self, call_id: str, now: datetime, **details: Any) -> None:
        """R-2/R-8: the agent records who is calling and what about."""
        async with self._uow() as uow:
            if await uow.calls.get(call_id) is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            await _save_identity(uow, call_id, now, details)
            await uow.commit()

    async def set_outcome(
        self,
        call_id: str,
        outcome: str,
        by: str,
        now: datetime,
        reason: str | None = None,
        note: str = "",
        **details: Any,
    ) -> None:
        """Resolved orally, refused (with a reason), ended for abuse (R-10, R-12)."""
        try:
            kind = Outcome(outcome)
        except ValueError:
            raise ValidationError(
                f"outcome must be one of {', '.join(o.value for o in Outcome)}",
                code="invalid_outcome",
                fields={"outcome": "unknown value"},
            ) from None
        if kind is Outcome.ESCALATED:
            return await self.escalate(call_id, by, now, **details)
        if kind is Outcome.REFUSED and reason not in REFUSAL_REASONS:
            raise ValidationError(
                f"a refusal needs a reason: {', '.join(REFUSAL_REASONS)}",
                code="reason_required",
                fields={"reason": "is required"},
            )
        if kind is Outcome.ABUSIVE and not (note or "").strip():
            raise ValidationError(
                "say what happened: the supervisor reviews it",
                code="note_required",
                fields={"note": "is required"},
            )
        fx = Effects()
        async with self._uow() as uow:
            call = await uow.calls.get(call_id)
            if call is None:
                raise NotFound(f"no call {call_id}", code="call_not_found")
            await uow.calls.lock(call_id, now)
            await _save_identity(uow, call_id, now, details)
            await uow.calls.update_fields(
                call_id,
                now,
                outcome=kind.value,
                outcome_reason=reason,
                outcome_note=note or "",
                outcome_at=now,
                outcome_by=by,
            )
            win = await uow.windows.get(call_id)
            if (
                win is not None
                and win.meet(now)
                and await uow.windows.transition(call_id, WindowStatus.MET, now)
            ):
                if kind is Outcome.RESOLVED:
                    fx.notes.append({"type": "window_met", "call_id": call_id})
                else:
                    fx.notes.append(
                        {"type": "window_closed", "call_id": call_id, "outcome": kind.value}
                    )
            if kind is Outcome.ABUSIVE:
                rid = await uow.reviews.add("abuse", call_id, note, by, now)
                fx.notes.append(
                    {
                        "type": "supervisor_alert",
                        "kind": "abuse",
                        "review_id": rid,
                        "call_id": call_id,
                        "agent": by,
                        "note": note,
                    }
                )
            await uow.commit()
        self.aftermath.release(fx)
        if kind is Outcome.ABUSIVE:
            log.warning("call %s ended for abuse by %s: supervisor notified", call_id, by)

    async def complaint(self, call_id: str | None, note: str, by: str, now: datetime) -> int:
        """R-12: a complaint about staff goes to the head of support's review list (its text
        checked by the web layer's schema)."""
        async with self._uow() as uow:
            rid = await uow.reviews.add("complaint", call_id, note.strip(), by, now)
            await uow.commit()
        self.aftermath.release(
            Effects(
                notes=[
                    {
                        "type": "supervisor_alert",
                        "kind": "complaint",
                        "review_id": rid,
                        "call_id": call_id,
                    }
                ]
            )
        )
        return rid


async def _save_identity(uow, call_id, now, details) -> None:
    fields = {k: v for k, v in details.items() if k in IDENTITY_FIELDS and v}
    if "identity_check" in details:  # "" (the API's null) clears the mark
        fields["identity_check"] = details["identity_check"] or None
    if fields:
        await uow.calls.update_fields(call_id, now, **fields)
