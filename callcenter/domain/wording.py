"""Due times in words, to read to a caller: "до 12:00 вторника, 17 марта" and
"by 12:00 on Tuesday, 17 March" (Moscow time). Pure functions, stdlib only."""

from __future__ import annotations

from datetime import datetime

from callcenter.domain.instants import MOSCOW

#: genitive case: "до 12:00 вторника, 17 марта"
WEEKDAYS_RU_GENITIVE = (
    "понедельника",
    "вторника",
    "среды",
    "четверга",
    "пятницы",
    "субботы",
    "воскресенья",
)
MONTHS_RU_GENITIVE = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _moscow(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a due time must be an aware datetime")
    return at.astimezone(MOSCOW)


def due_words_ru(at: datetime) -> str:
    """``до 12:00 вторника, 17 марта`` for 2026-03-17T12:00+03:00."""
    m = _moscow(at)
    return (
        f"до {m:%H:%M} {WEEKDAYS_RU_GENITIVE[m.weekday()]}, "
        f"{m.day} {MONTHS_RU_GENITIVE[m.month - 1]}"
    )


def due_words_en(at: datetime) -> str:
    """``by 12:00 on Tuesday, 17 March`` for 2026-03-17T12:00+03:00."""
    m = _moscow(at)
    return f"by {m:%H:%M} on {WEEKDAYS_EN[m.weekday()]}, {m.day} {MONTHS_EN[m.month - 1]}"
