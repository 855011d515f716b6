"""Event shapes the store could not take are refused up front, with the field named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.domain.errors import ValidationError
from callcenter.domain.events import parse_event

NOW = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_that_cannot_be_stored_is_a_422_not_a_500(raw):
    with pytest.raises(ValidationError) as err:
        parse_event({"event": "call_started", "call_id": "1.2", "at": raw}, NOW)
    assert "at" in err.value.details["fields"]


def test_the_edges_that_can_be_stored_are_taken():
    ev = parse_event(
        {"event": "call_started", "call_id": "1.2", "at": "0001-01-01T05:00:00+01:00"}, NOW
    )
    assert ev.at.astimezone(UTC).year == 1
