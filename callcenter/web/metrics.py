"""A few Prometheus metrics written by hand in the text exposition format."""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    esc = lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels) + "}"


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self.help: dict[str, str] = {}
        self.hist_counts: dict[tuple, list[int]] = {}
        self.hist_sums: dict[tuple, float] = defaultdict(float)
        self.samples: dict[str, list[float]] = defaultdict(list)  # for percentiles in /metrics
        self.gauges: dict[str, callable] = {}

    def inc(self, name: str, help_: str, value: float = 1.0, **labels: str) -> None:
        self.help.setdefault(name, help_)
        self.counters[name][tuple(sorted(labels.items()))] += value

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.hist_counts.setdefault(key, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.hist_sums[key] += seconds

    def sample(self, name: str, help_: str, value: float, keep: int = 10_000) -> None:
        """A summary kept as the last ``keep`` values; /metrics shows its quantiles."""
        self.help.setdefault(name, help_)
        values = self.samples[name]
        values.append(value)
        if len(values) > keep:
            del values[: len(values) - keep]

    def gauge(self, name: str, help_: str, fn) -> None:
        self.help[name] = help_
        self.gauges[name] = fn

    def render(self) -> str:
        out: list[str] = []
        for name, series in sorted(self.counters.items()):
            out += [f"# HELP {name} {self.help[name]}", f"# TYPE {name} counter"]
            out += [f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items())]
        for name, fn in sorted(self.gauges.items()):
            out += [f"# HELP {name} {self.help[name]}", f"# TYPE {name} gauge", f"{name} {fn():g}"]
        for name, values in sorted(self.samples.items()):
            ordered = sorted(values)
            out += [f"# HELP {name} {self.help[name]}", f"# TYPE {name} summary"]
            for q in (0.5, 0.9, 0.99):
                v = ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0
                out.append(f'{name}{{quantile="{q}"}} {v:.6f}')
            out += [f"{name}_sum {sum(ordered):.6f}", f"{name}_count {len(ordered)}"]
        if self.hist_counts:
            h = "callcenter_http_request_duration_seconds"
            out += [f"# HELP {h} HTTP request latency.", f"# TYPE {h} histogram"]
            for key, counts in sorted(self.hist_counts.items()):
                acc = 0
                for bound, c in zip((*BUCKETS, float("inf")), counts, strict=True):
                    acc += c
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    out.append(f"{h}_bucket{_labels((*key, ('le', le)))} {acc}")
                out.append(f"{h}_sum{_labels(key)} {self.hist_sums[key]:.6f}")
                out.append(f"{h}_count{_labels(key)} {acc}")
        return "\n".join(out) + "\n"
