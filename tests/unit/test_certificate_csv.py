from datetime import date

from callcenter.adapters.certificate_csv import read_certificates
from callcenter.domain.certificates import CheckDigit, HolderType, NumberFormat, Service

FMT = NumberFormat(6, 20)
HEADER = (
    "number,holder_type,holder_name,organisation,contacts,product,version,"
    "valid_from,valid_to,services\n"
)


def write(tmp_path, text, name="c.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_good_file_with_cyrillic_and_defaults(tmp_path):
    p = write(
        tmp_path,
        HEADER + '123456,person,Иванов Иван Иванович,,"Иванов Иван Иванович <+79001234567>",'
        "Продукт,5.0.13000,2026-03-01,,\n"
        + '234567,organisation,,ООО «Ромашка»,"Смирнова А. С. <89002223344>; '
        'Кузнецов П. <+7 900 555-66-77>",,,2026-01-15,2026-06-30,install;admin\n',
    )
    parsed = read_certificates(p, FMT)
    assert parsed.errors == []
    a, b = parsed.certificates
    assert a.holder_name == "Иванов Иван Иванович"
    assert a.valid_to == date(2027, 2, 28)
    assert a.services == tuple(Service)
    assert b.holder_type is HolderType.ORGANISATION
    assert [c.phone for c in b.contacts] == ["+79002223344", "+79005556677"]
    assert b.services == (Service.INSTALL, Service.ADMIN)


def test_columns_in_any_order_and_optional_ones_absent(tmp_path):
    p = write(tmp_path, "valid_from,number,holder_name\n2026-01-01,123456,Пётр\n")
    parsed = read_certificates(p, FMT)
    assert parsed.errors == []
    assert parsed.certificates[0].number == "123456"


def test_every_bad_row_is_reported_with_its_line(tmp_path):
    p = write(
        tmp_path,
        HEADER
        + "123456,person,Иванов,,,,,2026-01-01,,\n"  # line 2 ok
        + "12ab56,person,Иванов,,,,,2026-01-01,,\n"  # line 3 bad number
        + '"345678",person,"Многострочное\nимя",,,,,2026-01-01,,\n'  # lines 4-5 ok
        + "456789,alien,,,,,,2026-13-01,,fly\n"  # line 6: many problems
        + "123456,person,Иванов,,,,,2026-01-01,,\n"  # line 7 duplicate
        + "567890,person,Иванов,,Bad Contact,,x.y,2026-01-01,2025-01-01,\n"  # line 8
        + "678901,organisation,Иванов,,,,,2026-01-01,,\n"  # line 9 no organisation
        + "789012,person,Иванов,,,,,2026-01-01,,,extra\n",
    )  # line 10 extra field
    parsed = read_certificates(p, FMT)
    lines = [line for line, _ in parsed.errors]
    assert lines == [3, 6, 7, 8, 9, 10]
    reasons = dict(parsed.errors)
    assert "digits only" in reasons[3]
    assert "holder_type" in reasons[6] and "valid_from" in reasons[6] and "fly" in reasons[6]
    assert "line 2" in reasons[7]
    assert "contact" in reasons[8] and "version" in reasons[8] and "before" in reasons[8]
    assert "organisation is required" in reasons[9]
    assert "more field" in reasons[10]


def test_check_digit_enforced_when_configured(tmp_path):
    p = write(
        tmp_path,
        "number,holder_name,valid_from\n79927398713,A,2026-01-01\n79927398714,B,2026-01-01\n",
    )
    parsed = read_certificates(p, NumberFormat(6, 20, CheckDigit.LUHN))
    assert [line for line, _ in parsed.errors] == [3]


def test_header_problems(tmp_path):
    assert (
        "missing column"
        in read_certificates(write(tmp_path, "number\n1234567\n"), FMT).errors[0][1]
    )
    assert (
        "unknown column"
        in read_certificates(write(tmp_path, "number,valid_from,colour\n"), FMT).errors[0][1]
    )
    assert "empty" in read_certificates(write(tmp_path, ""), FMT).errors[0][1]


def test_not_utf8_and_missing_file(tmp_path):
    p = write(tmp_path, HEADER + "123456,person,Иванов,,,,,2026-01-01,,\n", encoding="cp1251")
    assert "not UTF-8" in read_certificates(p, FMT).errors[0][1]
    assert "cannot open" in read_certificates(tmp_path / "nope.csv", FMT).errors[0][1]


def test_bom_is_accepted(tmp_path):
    p = write(tmp_path, "\ufeff" + "number,holder_name,valid_from\n123456,Иванов,2026-01-01\n")
    assert read_certificates(p, FMT).errors == []
