from datetime import UTC, date, datetime, time

import pytest

from callcenter.domain.errors import PolicyRefused, ValidationError
from callcenter.domain.policy import MOSCOW, PolicyBook, PolicyVersion, check_notice

BASE = PolicyVersion(effective_from=date(2000, 1, 1))


def test_notice_of_fifteen_calendar_days():
    published = datetime(2026, 3, 1, 23, 30, tzinfo=MOSCOW)
    check_notice(PolicyVersion(effective_from=date(2026, 3, 16)), published)
    with pytest.raises(PolicyRefused) as err:
        check_notice(PolicyVersion(effective_from=date(2026, 3, 15)), published)
    assert "2026-03-16" in err.value.message
    assert err.value.code == "policy_notice_too_short"


def test_notice_counts_moscow_days_not_utc():
    """21:30 UTC on 1 March is already 2 March in Moscow, so 16 March is too soon."""
    published = datetime(2026, 3, 1, 21, 30, tzinfo=UTC)
    check_notice(PolicyVersion(effective_from=date(2026, 3, 17)), published)
    with pytest.raises(PolicyRefused):
        check_notice(PolicyVersion(effective_from=date(2026, 3, 16)), published)


def test_version_in_force_at_arrival():
    v2 = PolicyVersion(effective_from=date(2026, 4, 1), oral_window_seconds=900, id=2)
    v3 = PolicyVersion(effective_from=date(2026, 6, 1), oral_window_seconds=300, id=3)
    book = PolicyBook(BASE, [v3, v2])
    at = lambda *a: datetime(*a, tzinfo=MOSCOW)  # noqa: E731
    assert book.in_force_at(at(2026, 3, 31, 23, 59)) is BASE
    assert book.in_force_at(at(2026, 4, 1, 0, 0)) is v2
    assert book.in_force_at(at(2026, 5, 31, 23, 59)).oral_window_seconds == 900
    assert book.in_force_at(at(2026, 6, 1)).oral_window_seconds == 300
    # 31 March 21:30 UTC is 1 April 00:30 in Moscow
    assert book.in_force_at(datetime.fromisoformat("2026-03-31T21:30:00+00:00")) is v2


@pytest.mark.parametrize(
    "kw",
    [
        {"oral_window_seconds": 0},
        {"warning_seconds": 600},
        {"written_answer_hours": 0},
        {"day_start": time(18), "day_end": time(9)},
        {"window_start": "whenever"},
    ],
)
def test_insane_versions_are_refused(kw):
    with pytest.raises(ValidationError):
        PolicyVersion(effective_from=date(2027, 1, 1), **kw).check()
