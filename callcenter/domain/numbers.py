"""What a registration number looks like: the rules, with nothing but the standard library.

Used by the registry (``certificates.NumberFormat``) and by the IVR flow, which a process AGI
imports at every call's start and must keep lean.
"""

from __future__ import annotations


def luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 check over a digit string (last digit is the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def number_problem(number: str, min_length: int, max_length: int, luhn: bool) -> str | None:
    """Why ``number`` cannot be a registration number, or None when it can."""
    if not number:
        return "empty"
    if not number.isascii() or not number.isdigit():
        return "must contain digits only"
    if not min_length <= len(number) <= max_length:
        return f"must be {min_length}-{max_length} digits long"
    if luhn and not luhn_ok(number):
        return "check digit does not match"
    return None
