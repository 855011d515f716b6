"""Due times in words, as an agent reads them to a caller."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.domain.instants import MOSCOW
from callcenter.domain.wording import due_words_en, due_words_ru


@pytest.mark.parametrize(
    ("at", "ru", "en"),
    [
        (datetime(2026, 3, 17, 12, 0, tzinfo=MOSCOW), "до 12:00 вторника, 17 марта",
         "by 12:00 on Tuesday, 17 March"),
        (datetime(2026, 3, 18, 9, 5, tzinfo=MOSCOW), "до 09:05 среды, 18 марта",
         "by 09:05 on Wednesday, 18 March"),
        (datetime(2026, 5, 1, 17, 30, tzinfo=MOSCOW), "до 17:30 пятницы, 1 мая",
         "by 17:30 on Friday, 1 May"),
        (datetime(2026, 2, 1, 10, 0, tzinfo=MOSCOW), "до 10:00 воскресенья, 1 февраля",
         "by 10:00 on Sunday, 1 February"),
        # an instant in UTC is read in Moscow time: 21:30 UTC on the 31st is 00:30 on the 1st
        (datetime(2026, 12, 31, 21, 30, tzinfo=UTC), "до 00:30 пятницы, 1 января",
         "by 00:30 on Friday, 1 January"),
    ],
)  # fmt: skip
def test_due_words(at, ru, en):
    assert due_words_ru(at) == ru
    assert due_words_en(at) == en


def test_every_weekday_and_month_has_its_genitive():
    seen_days = {due_words_ru(datetime(2026, 6, d, 12, tzinfo=MOSCOW)).split()[2] for d in
                 range(1, 8)}  # fmt: skip
    assert seen_days == {
        "понедельника,", "вторника,", "среды,", "четверга,", "пятницы,", "субботы,",
        "воскресенья,",
    }  # fmt: skip
    months = [due_words_ru(datetime(2026, m, 10, 12, tzinfo=MOSCOW)).split()[-1] for m in
              range(1, 13)]  # fmt: skip
    assert months[0] == "января" and months[4] == "мая" and months[11] == "декабря"
    assert len(set(months)) == 12


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError):
        due_words_ru(datetime(2026, 3, 17, 12, 0))
