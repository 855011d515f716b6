"""Use cases of the certificate registry: entitlement lookup and bulk import."""

from __future__ import annotations

import logging
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime

from callcenter.domain.certificates import (
    Certificate,
    LookupResult,
    LookupStatus,
    NumberFormat,
    Service,
    normalize_phone,
)
from callcenter.domain.errors import NotFound, ValidationError
from callcenter.domain.instants import MOSCOW

log = logging.getLogger(__name__)
IMPORT_BATCH = 2000


class _TtlCache:
    """A small cache with a time-to-live: lookups repeat during a call, imports are rare.

    Entries are kept in the order they were put, which with one ``ttl`` for all is the order
    they expire in: each put drops the expired ones from the front, so what is kept follows
    the lookup rate over ``ttl`` seconds, not the number of callers ever looked up (expired
    entries used to stay until ``size``, 50,000 certificates, a few months of distinct
    callers). ``size`` only caps a burst."""

    def __init__(
        self, ttl: float, size: int = 50_000, clock: Callable[[], float] = _time.monotonic
    ) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._data: OrderedDict[str, tuple[float, Certificate | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str):
        hit = self._data.get(key)
        if hit is None or hit[0] < self.clock():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Certificate | None) -> None:
        if self.ttl <= 0:
            return
        now = self.clock()
        data = self._data
        while data:
            oldest = next(iter(data.values()))
            if oldest[0] >= now:
                break
            data.popitem(last=False)
        data[key] = (now + self.ttl, value)
        data.move_to_end(key)
        if len(data) > self.size:
            data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def forget(self, key: str) -> None:
        self._data.pop(key, None)


class CertificateRegistry:
    def __init__(
        self, uow_factory: Callable, reader, number_format: NumberFormat, cache_seconds: float = 2.0
    ) -> None:
        self._uow = uow_factory
        self.reader = reader
        self.number_format = number_format
        self._cache = _TtlCache(cache_seconds)

    async def _load(self, number: str) -> Certificate | None:
        hit, cert = self._cache.get(number)
        if hit:
            return cert
        cert = await self.reader.get(number)
        self._cache.put(number, cert)
        return cert

    async def lookup(self, number: str, at: datetime, service: str | None = None) -> LookupResult:
        """Entitlement on the Moscow calendar day of ``at`` (R-6, R-13)."""
        self.number_format.validate(number)
        svc = _service(service)
        cert = await self._load(number)
        if cert is None:
            return LookupResult(number, LookupStatus.UNKNOWN, service=svc)
        return LookupResult(number, cert.status_on(at.astimezone(MOSCOW).date(), svc), cert, svc)

    def forget(self, number: str) -> None:
        """The cached copy of this certificate is stale (its first request was just stored):
        the next lookup reads it again, instead of finding it unmarked for ``cache_seconds``
        and writing the mark again on every call meanwhile."""
        self._cache.forget(number)

    async def get(self, number: str) -> Certificate:
        cert = await self._load(number)
        if cert is None:
            raise NotFound(f"no certificate {number}", code="certificate_not_found")
        return cert

    async def by_phone(self, raw_phone: str, at: datetime) -> list[LookupResult]:
        """Certificates that list this caller as an authorised contact, with their status."""
        phone = normalize_phone(raw_phone)
        if phone is None:
            return []
        certs = await self.reader.by_phone(phone)
        for cert in certs:  # the number the caller types next is then looked up here
            self._cache.put(cert.number, cert)
        day = at.astimezone(MOSCOW).date()
        return [LookupResult(c.number, c.status_on(day), c) for c in certs]

    async def import_certificates(
        self,
        certs: Sequence[Certificate],
        now: datetime,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[int, int]:
        """Upsert all certificates in one transaction; returns (created, updated)."""
        created = updated = 0
        async with self._uow() as uow:
            for i in range(0, len(certs), IMPORT_BATCH):
                batch = certs[i : i + IMPORT_BATCH]
                existing = await uow.certificates.existing_numbers([c.number for c in batch])
                updated += len(existing)
                created += len(batch) - len(existing)
                await uow.certificates.upsert_many(batch, now)
                if progress:
                    progress(min(i + IMPORT_BATCH, len(certs)), len(certs))
            await uow.commit()
        self._cache.clear()
        log.info("imported certificates: %d created, %d updated", created, updated)
        return created, updated


def _service(code: str | None) -> Service | None:
    if code in (None, ""):
        return None
    try:
        return Service(code)
    except ValueError:
        raise ValidationError(
            f"unknown service {code!r}; use one of {', '.join(s.value for s in Service)}",
            code="unknown_service",
            fields={"service": "unknown service code"},
        ) from None
