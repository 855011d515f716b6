"""Support certificates (R-1, R-4, R-6, R-10, R-13): numbers, holders, coverage, entitlement."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from callcenter.domain import cert_status
from callcenter.domain.errors import ValidationError
from callcenter.domain.numbers import luhn_ok, number_problem


class Service(enum.StrEnum):
    """The five services of clause 5.1."""

    INSTALL = "install"
    ADMIN = "admin"
    KIT_RESTORE = "kit_restore"
    RECOVERY = "recovery"
    BUILD_UPDATE = "build_update"


ALL_SERVICES: tuple[Service, ...] = tuple(Service)

SERVICE_TITLES = {
    Service.INSTALL: ("Установка и настройка", "Installation and configuration"),
    Service.ADMIN: ("Администрирование", "Administration"),
    Service.KIT_RESTORE: ("Восстановление дистрибутива", "Restoring a lost or destroyed kit"),
    Service.RECOVERY: ("Восстановление работоспособности", "Restoring components that stopped"),
    Service.BUILD_UPDATE: ("Обновление сборки", "Updating the build of the version in use"),
}


class HolderType(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class LookupStatus(enum.StrEnum):
    """What a lookup answers: the first five words of the vocabulary in ``cert_status``."""

    VALID = cert_status.VALID
    UNKNOWN = cert_status.UNKNOWN
    EXPIRED = cert_status.EXPIRED
    NOT_YET_VALID = cert_status.NOT_YET_VALID
    NOT_COVERED = cert_status.NOT_COVERED


class CheckDigit(enum.StrEnum):
    NONE = "none"
    LUHN = "luhn"


def luhn_complete(payload: str) -> str:
    """``payload`` plus the Luhn check digit that makes it valid (for demo data and tests)."""
    for d in "0123456789":
        if luhn_ok(payload + d):
            return payload + d
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NumberFormat:
    """What a registration number looks like, so typos are caught before any lookup."""

    min_length: int = 6
    max_length: int = 20
    check_digit: CheckDigit = CheckDigit.NONE

    def problem(self, number: str) -> str | None:
        """Why ``number`` cannot be a registration number, or None when it can."""
        luhn = self.check_digit is CheckDigit.LUHN
        return number_problem(number, self.min_length, self.max_length, luhn)

    def validate(self, number: str) -> str:
        problem = self.problem(number)
        if problem:
            raise ValidationError(
                f"certificate number {problem}",
                code="invalid_certificate_number",
                fields={"number": problem},
            )
        return number


_VERSION_RE = re.compile(r"^\s*(\d+)(?:\.(\d+)(?:\.(\d+))?)?\s*$")


@dataclass(frozen=True)
class ProductVersion:
    """R-4: the version is the first group of digits, the build the second and third."""

    version: int
    build: str

    @classmethod
    def parse(cls, text: str) -> ProductVersion:
        m = _VERSION_RE.match(text or "")
        if not m:
            raise ValidationError(f"version {text!r} is not like 5.0.13000", code="invalid_version")
        build = ".".join(g for g in (m.group(2), m.group(3)) if g is not None)
        return cls(int(m.group(1)), build)


_PHONE_DIGITS = re.compile(r"\D+")


def normalize_phone(raw: str) -> str | None:
    """A Russian number as ``+7XXXXXXXXXX`` from any caller-ID form (8..., 7..., +7 (...))."""
    digits = _PHONE_DIGITS.sub("", raw or "")
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "+7" + digits
    if 8 <= len(digits) <= 15 and (raw or "").strip().startswith("+"):
        return "+" + digits
    return None


@dataclass(frozen=True)
class Contact:
    """A person authorised to call for the certificate (R-1)."""

    full_name: str
    phone: str


@dataclass
class Certificate:
    number: str
    holder_type: HolderType
    holder_name: str
    organisation: str
    product: str
    version: str
    valid_from: date
    valid_to: date
    services: tuple[Service, ...] = ALL_SERVICES
    contacts: list[Contact] = field(default_factory=list)
    first_request_at: datetime | None = None

    @property
    def product_version(self) -> ProductVersion | None:
        try:
            return ProductVersion.parse(self.version) if self.version else None
        except ValidationError:
            return None

    def status_on(self, day: date, service: Service | None = None) -> LookupStatus:
        """Entitlement on a calendar day (``valid_to`` inclusive), optionally for one service."""
        if day < self.valid_from:
            return LookupStatus.NOT_YET_VALID
        if day > self.valid_to:
            return LookupStatus.EXPIRED
        if service is not None and service not in self.services:
            return LookupStatus.NOT_COVERED
        return LookupStatus.VALID

    def has_contact_phone(self, phone: str) -> bool:
        return any(c.phone == phone for c in self.contacts)


def add_months(d: date, months: int) -> date:
    """``d`` plus calendar months, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def default_valid_to(valid_from: date, months: int = 12) -> date:
    """12 months of cover, inclusive: from 2026-03-01 to 2027-02-28."""
    from datetime import timedelta

    return add_months(valid_from, months) - timedelta(days=1)


@dataclass(frozen=True)
class LookupResult:
    number: str
    status: LookupStatus
    certificate: Certificate | None = None
    service: Service | None = None

    def to_dict(self) -> dict:
        out: dict = {"number": self.number, "status": self.status.value, "last4": self.number[-4:]}
        if self.service is not None:
            out["service"] = self.service.value
        cert = self.certificate
        if cert is None:
            return out
        pv = cert.product_version
        out.update(
            holder_type=cert.holder_type.value,
            holder_name=cert.holder_name,
            organisation=cert.organisation,
            contacts=[{"full_name": c.full_name, "phone": c.phone} for c in cert.contacts],
            product=cert.product,
            version_string=cert.version,
            version=pv.version if pv else None,
            build=pv.build if pv else None,
            valid_from=cert.valid_from.isoformat(),
            valid_to=cert.valid_to.isoformat(),
            services=[s.value for s in cert.services],
            first_request_at=cert.first_request_at.isoformat() if cert.first_request_at else None,
        )
        return out
