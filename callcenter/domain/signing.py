"""The webhook signature (``X-Callcenter-Signature``): HMAC-SHA256 over a timestamp and the body.

``X-Callcenter-Signature: t=1795802275,v1=<hex>`` where ``v1`` is
``HMAC-SHA256(secret, f"{t}.".encode() + body)``. The receiver recomputes it over the raw
body it got and refuses a signature whose ``t`` is further than the tolerance from its own
clock, so a captured request cannot be replayed later; within the tolerance a receiver
remembers the signatures it accepted (:class:`ReplayGuard`). Several ``v1=`` values may be
sent while a secret is being rotated; one match is enough. Stdlib only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

from callcenter.domain.errors import Unauthorized

HEADER = "X-Callcenter-Signature"
SCHEME = "v1"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},{SCHEME}={mac.hexdigest()}"


def parse(header: str) -> tuple[int, list[str]]:
    """(timestamp, signatures) of a header; Unauthorized when it is not one."""
    stamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            stamp = int(value)
        elif key == SCHEME and value:
            sigs.append(value)
    if stamp is None or not sigs:
        raise Unauthorized(
            f"{HEADER} must be 't=UNIX_SECONDS,{SCHEME}=HEX'", code="bad_signature_header"
        )
    return stamp, sigs


def verify(secret: str, header: str | None, body: bytes, now: float, tolerance: float) -> str:
    """The matching signature of a genuine, fresh request; Unauthorized otherwise."""
    if not header:
        raise Unauthorized(f"{HEADER} is required", code="missing_signature")
    stamp, sigs = parse(header)
    if abs(now - stamp) > tolerance:
        raise Unauthorized(
            f"the signature's time is {int(now - stamp)} s from ours (at most {int(tolerance)})",
            code="stale_signature",
        )
    expected = sign(secret, body, stamp).rpartition("=")[2]
    for sig in sigs:
        if hmac.compare_digest(sig, expected):
            return sig
    raise Unauthorized("the signature does not match the body", code="bad_signature")


class ReplayGuard:
    """Signatures accepted within the tolerance: the same one again is a replay.

    In this process only; a second instance behind a balancer keeps its own (the time bound
    still holds for both)."""

    def __init__(self, tolerance: float, keep: int = 100_000) -> None:
        self.tolerance, self.keep = tolerance, keep
        self._seen: OrderedDict[str, float] = OrderedDict()

    def admit(self, signature: str, now: float) -> None:
        while self._seen and (
            next(iter(self._seen.values())) < now - 2 * self.tolerance
            or len(self._seen) > self.keep
        ):
            self._seen.popitem(last=False)
        if signature in self._seen:
            raise Unauthorized("this signed request was received already", code="replayed")
        self._seen[signature] = now
