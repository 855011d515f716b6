"""The one instant parser and formatter: explicit rules, one home."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.domain.instants import MOSCOW, InstantError, format_instant, parse_instant


@pytest.mark.parametrize(
    "raw",
    ["2026-03-17T11:00:00+03:00", "2026-03-17T08:00:00Z", "2026-03-17 11:00:00+03:00",
     "2026-03-17T11:00:00 03:00"],  # the last: '+03:00' in a URL query decodes to ' 03:00'
)  # fmt: skip
def test_instants_with_an_offset(raw):
    assert parse_instant(raw) == datetime(2026, 3, 17, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["2026-03-17", "2026-03-17T11:00", "yesterday", "", None, 17])
def test_refused_with_the_expected_form(raw):
    with pytest.raises(InstantError) as err:
        parse_instant(raw)
    assert "ISO 8601 date-time with an offset" in str(err.value)


def test_a_bare_date_is_refused_not_taken_as_midnight():
    with pytest.raises(InstantError, match="not a bare date"):
        parse_instant("2026-03-17")


def test_date_filters_and_moscow_default_only_when_asked():
    assert parse_instant("2026-03-17", date_allowed=True) == datetime(2026, 3, 17, tzinfo=MOSCOW)
    end = parse_instant("2026-03-17", date_allowed=True, end_of_day=True)
    assert end == datetime(2026, 3, 18, tzinfo=MOSCOW)
    naive = parse_instant("2026-03-17T11:00", naive_is_moscow=True)
    assert naive == datetime(2026, 3, 17, 11, 0, tzinfo=MOSCOW)
    with pytest.raises(InstantError, match="real date"):
        parse_instant("2026-02-30", date_allowed=True)


def test_out_of_range_offsets_are_refused():
    with pytest.raises(InstantError, match="range"):
        parse_instant("0001-01-01T00:00:00+05:00")


def test_format_is_moscow_with_its_offset():
    assert format_instant(datetime(2026, 3, 17, 8, 0, tzinfo=UTC)) == "2026-03-17T11:00:00+03:00"
    assert format_instant(None) is None
