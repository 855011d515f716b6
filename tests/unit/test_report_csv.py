"""CSV cells: text a spreadsheet would run as a formula is quoted, numbers and phone numbers
are left alone, instants are Moscow time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.adapters.report_sql import percentile
from callcenter.web.pages.reports import safe_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-cmd", "'-cmd"),
        ("+cmd", "'+cmd"),
        ("+79001234567", "+79001234567"),
        ("-5", "-5"),
        ("ООО «Ромашка»", "ООО «Ромашка»"),
        (None, ""),
        (12, "12"),
        (7.25, "7.2"),
        (datetime(2025, 11, 1, 9, 0, tzinfo=UTC), "2025-11-01 12:00:00"),
    ],
)
def test_cells(value, cell):
    assert safe_cell(value) == cell


def test_percentile_is_postgresqls_percentile_cont():
    assert percentile([], 0.9) is None
    assert percentile([300.0], 0.9) == 300.0
    assert percentile([300.0, 720.0], 0.9) == pytest.approx(678.0)
    assert percentile([720.0, 300.0, 720.0, 720.0], 0.9) == 720.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
