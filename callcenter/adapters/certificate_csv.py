"""Reading the certificate CSV: every row is checked before anything is imported."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from callcenter.domain.certificates import (
    Certificate,
    Contact,
    HolderType,
    NumberFormat,
    ProductVersion,
    Service,
    default_valid_to,
    normalize_phone,
)
from callcenter.domain.errors import ValidationError

COLUMNS = (
    "number",
    "holder_type",
    "holder_name",
    "organisation",
    "contacts",
    "product",
    "version",
    "valid_from",
    "valid_to",
    "services",
)
REQUIRED = ("number", "valid_from")
PROGRESS_ROWS = 1000
_CONTACT = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<phone>[^<>]+)>\s*$")


@dataclass
class ParsedFile:
    certificates: list[Certificate] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0


def _date(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a date like 2026-01-31") from None


def parse_contacts(text: str) -> list[Contact]:
    contacts = []
    for part in (p for p in text.split(";") if p.strip()):
        m = _CONTACT.match(part)
        if not m:
            raise ValueError(f"contact {part.strip()!r} is not like 'Full Name <+7XXXXXXXXXX>'")
        phone = normalize_phone(m["phone"])
        if phone is None:
            raise ValueError(f"contact phone {m['phone']!r} is not a phone number")
        contacts.append(Contact(m["name"], phone))
    return contacts


def parse_row(row: dict[str, str], fmt: NumberFormat, validity_months: int) -> Certificate:
    """One CSV row as a certificate, or ValueError with every problem of the row."""
    problems: list[str] = []
    get = lambda k: (row.get(k) or "").strip()  # noqa: E731

    number = get("number")
    if (p := fmt.problem(number)) is not None:
        problems.append(f"number {number!r}: {p}")

    holder_name, organisation = get("holder_name"), get("organisation")
    raw_type = get("holder_type") or ("organisation" if organisation else "person")
    try:
        holder_type = HolderType(raw_type)
    except ValueError:
        problems.append(f"holder_type {raw_type!r} must be person or organisation")
        holder_type = HolderType.PERSON
    if holder_type is HolderType.PERSON and not holder_name:
        problems.append("holder_name is required for a person")
    if holder_type is HolderType.ORGANISATION and not organisation:
        problems.append("organisation is required for an organisation")

    contacts: list[Contact] = []
    try:
        contacts = parse_contacts(get("contacts"))
    except ValueError as exc:
        problems.append(str(exc))

    version = get("version")
    if version:
        try:
            ProductVersion.parse(version)
        except ValidationError as exc:
            problems.append(exc.message)

    valid_from = valid_to = None
    if not get("valid_from"):
        problems.append("valid_from is required")
    else:
        try:
            valid_from = _date(get("valid_from"), "valid_from")
        except ValueError as exc:
            problems.append(str(exc))
    if get("valid_to"):
        try:
            valid_to = _date(get("valid_to"), "valid_to")
        except ValueError as exc:
            problems.append(str(exc))
    if valid_from and valid_to and valid_to < valid_from:
        problems.append("valid_to is before valid_from")

    services: tuple[Service, ...] = tuple(Service)
    if get("services"):
        codes = [s.strip() for s in get("services").split(";") if s.strip()]
        bad = [s for s in codes if s not in {m.value for m in Service}]
        if bad:
            problems.append(f"unknown service {', '.join(bad)} (use {', '.join(Service)})")
        else:
            services = tuple(dict.fromkeys(Service(s) for s in codes))

    if problems:
        raise ValueError("; ".join(problems))
    assert valid_from is not None
    return Certificate(
        number=number,
        holder_type=holder_type,
        holder_name=holder_name,
        organisation=organisation,
        product=get("product"),
        version=version,
        valid_from=valid_from,
        valid_to=valid_to or default_valid_to(valid_from, validity_months),
        services=services,
        contacts=contacts,
    )


def read_certificates(
    path: str | Path,
    fmt: NumberFormat,
    validity_months: int = 12,
    progress: Callable[[int], None] | None = None,
) -> ParsedFile:
    """Parse the whole file; ``errors`` lists (line, reason) for every bad row.
    ``progress`` is told the rows read so far every :data:`PROGRESS_ROWS` rows."""
    out = ParsedFile()
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        out.errors.append((0, f"cannot open {path}: {exc.strerror}"))
        return out
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                out.errors.append((1, "the file is empty: a header row is required"))
                return out
            header = [h.strip() for h in header]
            reader.fieldnames = header
            unknown = [h for h in header if h not in COLUMNS]
            missing = [c for c in REQUIRED if c not in header]
            if unknown or missing:
                msg = []
                if missing:
                    msg.append(f"missing column(s): {', '.join(missing)}")
                if unknown:
                    msg.append(
                        f"unknown column(s): {', '.join(unknown)} (known: {', '.join(COLUMNS)})"
                    )
                out.errors.append((1, "; ".join(msg)))
                return out
            seen: dict[str, int] = {}
            line = reader.line_num + 1
            for row in reader:
                out.rows += 1
                if progress and out.rows % PROGRESS_ROWS == 0:
                    progress(out.rows)
                if None in row:
                    out.errors.append((line, f"{len(row[None])} more field(s) than the header has"))
                else:
                    try:
                        cert = parse_row(row, fmt, validity_months)
                        if cert.number in seen:
                            raise ValueError(
                                f"number {cert.number} already given on line {seen[cert.number]}"
                            )
                        seen[cert.number] = line
                        out.certificates.append(cert)
                    except ValueError as exc:
                        out.errors.append((line, str(exc)))
                line = reader.line_num + 1
        except UnicodeDecodeError as exc:
            out.errors.append((0, f"the file is not UTF-8 ({exc.reason} at byte {exc.start})"))
        except csv.Error as exc:
            out.errors.append((reader.line_num, f"broken CSV: {exc}"))
    return out
