"""Per-call cost of the working-time calendar: ``add_working_hours`` must be flat in N.

Run: ``.venv/bin/python bench/bench_calendar.py [--calls 20000] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from _common import FIGURES, json_option

from callcenter.calendar import MOSCOW, WorkCalendar

HOURS = (12, 100, 500, 2000)


def random_instants(rng: random.Random, count: int) -> list[datetime]:
    """Instants over 2024–2026, half in UTC and half in Moscow, to pay for zone conversion."""
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    span = int(timedelta(days=3 * 365).total_seconds())
    out = []
    for i in range(count):
        at = origin + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        out.append(at if i % 2 else at.astimezone(MOSCOW))
    return out


def per_call_us(fn: Callable[[datetime], object], instants: list[datetime], repeat: int) -> float:
    """Best of ``repeat`` passes, so a stray scheduler hiccup does not skew the figure."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for at in instants:
            fn(at)
        best = min(best, time.perf_counter() - t0)
    return best / len(instants) * 1e6


def main() -> None:
    """Warm the year cache first: the figure of interest is steady-state cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    json_option(parser)
    args = parser.parse_args()

    cal = WorkCalendar()
    instants = random_instants(random.Random(args.seed), args.calls)
    t0 = time.perf_counter()
    for at in instants[:100]:
        cal.add_working_hours(at, max(HOURS))
    warm_ms = (time.perf_counter() - t0) * 1e3

    rows = [
        (
            f"add_working_hours N={n}",
            per_call_us(lambda at, n=n: cal.add_working_hours(at, n), instants, args.repeat),
        )
        for n in HOURS
    ]
    rows.append(("is_open", per_call_us(cal.is_open, instants, args.repeat)))
    rows.append(("next_opening", per_call_us(cal.next_opening, instants, args.repeat)))
    week = timedelta(days=7)
    rows.append(
        (
            "working_seconds_between 1w",
            per_call_us(
                lambda at: cal.working_seconds_between(at, at + week), instants, args.repeat
            ),
        )
    )

    width = max(len(name) for name, _ in rows)
    print(
        f"{args.calls} random starts over 2024-2026, best of {args.repeat}; "
        f"warm-up {warm_ms:.1f} ms"
    )
    print(f"{'operation':<{width}}  µs/call")
    print(f"{'-' * width}  -------")
    for name, us in rows:
        print(f"{name:<{width}}  {us:7.2f}")
    first = rows[0][1]
    for name, us in rows:
        flat = name.startswith("add_working_hours") and name != rows[0][0]
        FIGURES.add(f"calendar {name}", us, "µs",
                    baseline=first if flat else None,
                    baseline_label=rows[0][0] if flat else "",
                    goal="ratio <= 2" if flat else None)  # fmt: skip
    FIGURES.write(args.json, "bench_calendar", calls=args.calls)


if __name__ == "__main__":
    main()
