from datetime import date

import pytest

from callcenter.domain.certificates import (
    Certificate,
    CheckDigit,
    HolderType,
    LookupStatus,
    NumberFormat,
    ProductVersion,
    Service,
    default_valid_to,
    luhn_complete,
    luhn_ok,
    normalize_phone,
)
from callcenter.domain.errors import ValidationError


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("4539578763621486", True),
        ("0", True),
        ("1", False),
    ],
)
def test_luhn(number, ok):
    assert luhn_ok(number) is ok


def test_luhn_complete_makes_valid_numbers_and_catches_single_digit_typos():
    n = luhn_complete("10000000000")
    assert luhn_ok(n)
    for i in range(len(n)):
        for d in "0123456789":
            if d != n[i]:
                assert not luhn_ok(n[:i] + d + n[i + 1 :])


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("", "empty"),
        ("12a456", "digits only"),
        ("١٢٣٤٥٦", "digits only"),
        ("12345", "6-20"),
        ("1" * 21, "6-20"),
        ("123456", None),
    ],
)
def test_number_format(number, problem):
    got = NumberFormat(6, 20).problem(number)
    assert (got is None) if problem is None else (problem in got)


def test_luhn_format_rejects_bad_check_digit():
    fmt = NumberFormat(6, 20, CheckDigit.LUHN)
    assert fmt.problem("79927398713") is None
    assert "check digit" in fmt.problem("79927398714")
    with pytest.raises(ValidationError) as err:
        fmt.validate("79927398714")
    assert err.value.code == "invalid_certificate_number"


@pytest.mark.parametrize(
    ("text", "version", "build"),
    [("5.0.13000", 5, "0.13000"), ("12.3", 12, "3"), ("7", 7, ""), (" 4.1.2050 ", 4, "1.2050")],
)
def test_version_parsing_r4(text, version, build):
    assert ProductVersion.parse(text) == ProductVersion(version, build)


@pytest.mark.parametrize("text", ["", "v5", "5.0.1.2", "5..1", "five"])
def test_bad_versions(text):
    with pytest.raises(ValidationError):
        ProductVersion.parse(text)


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("79001234567", "+79001234567"),
        ("89001234567", "+79001234567"),
        ("+7 (900) 123-45-67", "+79001234567"),
        ("9001234567", "+79001234567"),
        ("unknown", None),
        ("101", None),
        ("+49 30 1234567", "+49301234567"),
    ],
)
def test_phone_normalisation(raw, phone):
    assert normalize_phone(raw) == phone


def test_twelve_months_inclusive():
    assert default_valid_to(date(2026, 3, 1)) == date(2027, 2, 28)
    assert default_valid_to(date(2024, 2, 29)) == date(2025, 2, 27)
    assert default_valid_to(date(2026, 1, 31), 1) == date(2026, 2, 27)


def make(**kw):
    base = dict(
        number="123456",
        holder_type=HolderType.PERSON,
        holder_name="Иванов Иван Иванович",
        organisation="",
        product="P",
        version="5.0.1",
        valid_from=date(2026, 1, 1),
        valid_to=date(2026, 12, 31),
        services=(Service.INSTALL, Service.ADMIN),
    )
    base.update(kw)
    return Certificate(**base)


@pytest.mark.parametrize(
    ("day", "service", "status"),
    [
        (date(2025, 12, 31), None, LookupStatus.NOT_YET_VALID),
        (date(2026, 1, 1), None, LookupStatus.VALID),
        (date(2026, 12, 31), None, LookupStatus.VALID),
        (date(2027, 1, 1), None, LookupStatus.EXPIRED),
        (date(2026, 6, 1), Service.ADMIN, LookupStatus.VALID),
        (date(2026, 6, 1), Service.RECOVERY, LookupStatus.NOT_COVERED),
        (date(2027, 6, 1), Service.RECOVERY, LookupStatus.EXPIRED),
    ],
)
def test_entitlement(day, service, status):
    assert make().status_on(day, service) is status
