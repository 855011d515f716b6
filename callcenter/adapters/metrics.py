"""Prometheus metrics through ``prometheus_client``, one registry per service instance.

A registry of its own (not the library's global one) so that every container, and so every
test, counts only what it did. Counters are created on first use from the name and labels a
caller gives (``inc``), so a module that counts something needs no registration step; the
histograms and gauges the operator's dashboards rely on are declared here, with their units
in their names (``_seconds``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric

from callcenter.domain.samples import FloatRing

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: HTTP and AGI latencies: a lookup takes about a millisecond, a slow page a second
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: how late a timer fires after its due time: normally milliseconds, seconds when overloaded
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0)


class _Samples:
    """A summary kept as the last ``keep`` values, exported with its quantiles (what the
    benchmarks read: prometheus_client's own Summary has no quantiles)."""

    def __init__(self, name: str, documentation: str, keep: int = 10_000) -> None:
        self.name, self.documentation, self.keep = name, documentation, keep
        #: 8 bytes a value (a list of floats took 32, and shifted all of them on each add)
        self.values = FloatRing(keep)

    def add(self, value: float) -> None:
        self.values.append(value)

    def collect(self):
        ordered = sorted(self.values)
        metric = Metric(self.name, self.documentation, "summary")
        for q in (0.5, 0.9, 0.99):
            value = ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0
            metric.add_sample(self.name, {"quantile": str(q)}, value)
        metric.add_sample(self.name + "_sum", {}, sum(ordered))
        metric.add_sample(self.name + "_count", {}, len(ordered))
        yield metric


Refresh = Callable[[], Awaitable[dict[str, float]]]


class Metrics:
    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters: dict[str, Counter] = {}
        self._children: dict[tuple, object] = {}  # labelled children: labels() takes a lock
        self._samples: dict[str, _Samples] = {}
        self._refreshers: list[Refresh] = []
        r = self.registry
        self.http_latency = Histogram(
            "callcenter_http_request_duration_seconds",
            "HTTP request latency, by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.agi_lookup_latency = Histogram(
            "callcenter_agi_lookup_duration_seconds",
            "Certificate lookups made for the IVR (FastAGI in-process, process AGI over HTTP).",
            ["transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.timer_lag = Histogram(
            "callcenter_timer_fire_lag_seconds",
            "How long after its due time a timer's fire was done (committed), by timer kind.",
            ["kind"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._gauges = {
            name: Gauge(name, text, registry=r)
            for name, text in (
                ("callcenter_calls_in_progress", "Calls started and not ended (last 24 h)."),
                ("callcenter_oral_windows_open", "Oral windows running (open or extended)."),
                (
                    "callcenter_tickets_due_soon",
                    "Unanswered tickets due within the next working hour.",
                ),
                ("callcenter_tickets_overdue", "Unanswered tickets past their due time."),
                ("callcenter_outbox_backlog", "Messages waiting to leave through the outbox."),
                (
                    "callcenter_outbox_oldest_age_seconds",
                    "Age of the oldest undelivered outbox message (0 when none).",
                ),
                (
                    "callcenter_helpdesk_last_sync_timestamp_seconds",
                    "When answers were last read from the helpdesk successfully (Unix time; "
                    "0 when never or no polling helpdesk).",
                ),
            )
        }

    # --- what callers record ----------------------------------------------------------------

    def inc(self, name: str, help_: str, value: float = 1.0, **labels: str) -> None:
        """Count ``value`` on counter ``name`` (created on first use with these label names)."""
        key = (name, *labels.values())  # one caller, one label order: a cheap cache key
        child = self._children.get(key)
        if child is None:
            counter = self._counters.get(name)
            if counter is None:
                counter = Counter(name, help_, sorted(labels), registry=self.registry)
                self._counters[name] = counter
            child = self._children[key] = counter.labels(**labels) if labels else counter
        child.inc(value)

    def observe(self, seconds: float, *, route: str, method: str = "GET") -> None:
        """One HTTP request's latency."""
        key = ("http", route, method)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.http_latency.labels(route=route, method=method)
        child.observe(seconds)

    def observe_lookup(self, seconds: float, transport: str) -> None:
        """One certificate lookup made for the IVR (``fastagi`` in-process, ``http``)."""
        self.agi_lookup_latency.labels(transport=transport).observe(seconds)

    def observe_timer_lag(self, kind: str, seconds: float) -> None:
        self.timer_lag.labels(kind=kind).observe(max(0.0, seconds))

    def sample(self, name: str, help_: str, value: float) -> None:
        """A value for summary ``name``, exported with its 0.5 / 0.9 / 0.99 quantiles."""
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = _Samples(name, help_)
            self.registry.register(samples)
        samples.add(value)

    def refresh_with(self, fn: Refresh) -> None:
        """``fn`` is awaited before each scrape and returns gauge values by name (a database
        read, so the gauges are as fresh as the scrape and cost nothing between scrapes)."""
        self._refreshers.append(fn)

    async def render(self) -> bytes:
        for fn in self._refreshers:
            try:
                values = await fn()
            except Exception as exc:  # a scrape must answer even when the database does not
                log.warning("metrics: could not refresh gauges: %s", exc)
                continue
            for name, value in values.items():
                self._gauges[name].set(value)
        return generate_latest(self.registry)
