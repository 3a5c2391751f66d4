"""Every Prometheus metric the service exports, defined in one place.

Each app gets its own CollectorRegistry, so tests can build many apps without duplicated series.
With one process that registry is what /metrics shows. With several Gunicorn workers (a shared
store allows them) the master sets PROMETHEUS_MULTIPROC_DIR before forking
(connection_flask.multiprocess), every worker's counters and histograms go to files there, and a
scrape, whichever worker answers it, adds them all up into the pod's total. Not through those
files: the store's gauges, read from the store once per scrape (it is shared state, summing it per
worker would count it twice), and the process_* metrics, which are one process's each
(prometheus_client's multiprocess mode does not export them; the pod's CPU and memory are the
kubelet's container metrics).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from connection_flask import __version__
from connection_flask.errors import REASONS
from connection_flask.store.errors import StoreUnavailable

# The _created series double the scrape size and no dashboard or alert here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "connection_flask"

# Endpoint label values: the view names, plus "other" for unknown routes. Bounded by design. A
# view may name its request's value in the WSGI environ under ENDPOINT_KEY instead (environ_keys).
ENDPOINTS = (
    "publish",
    "getconnection",
    "retract",
    "retract_partition",
    "dump",
    "stats",
    "reset_stats",
    "reset_service",
    "purge",
    "api_partitions",
    "api_connections",
    "api_watch",
    "healthz",
    "readyz",
    "metrics",
    "other",
)
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
# Series created at 0 so rates and error ratios exist before the first such request.
_EXPECTED_REQUESTS = (
    ("publish", "POST", (200, 400)),
    ("getconnection", "POST", (200, 400, 404)),
    ("retract", "POST", (200, 400, 404)),
    ("retract_partition", "POST", (200, 400, 404)),
    ("healthz", "GET", (200,)),
    ("readyz", "GET", (200, 503)),
    ("metrics", "GET", (200,)),
)
LOOKUP_OUTCOMES = ("hit", "miss", "unknown_partition")
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

METRIC_NAMES = frozenset(
    f"{PREFIX}_{name}"
    for name in (
        "requests_total",
        "request_duration_seconds",
        "connections_published_total",
        "lookups_total",
        "lookup_results_total",
        "partitions",
        "stored_entries",
        "live_entries",
        "entries_expired_total",
        "entries_purged_total",
        "rejected_requests_total",
        "watches",
        "build_info",
    )
)


class _RegistryGauges(Collector):
    """Partitions and entries, read at scrape time in O(1) (Registry.counts): partitions and
    stored entries are exact; live entries follow publishes and retracts at once and expiry as
    of the sweeper's last visit to each partition."""

    def __init__(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        try:
            partitions, stored, live = self._counts()
        except StoreUnavailable:
            # Redis down: the scrape still succeeds with every counter, the gauges go missing
            # (a gap on the dashboard, not a made-up 0), and /readyz says why.
            return
        yield GaugeMetricFamily(f"{PREFIX}_partitions", "Partitions held.", value=partitions)
        yield GaugeMetricFamily(
            f"{PREFIX}_stored_entries", "Entries held, expired or not.", value=stored
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_live_entries",
            "Entries visible to lookups (within ENTRY_TTL), expiry as of the last sweep.",
            value=live,
        )


def multiprocess_dir() -> str | None:
    """The directory this process's metric values are written to, or None when they live in the
    process. prometheus_client chose at its import, from PROMETHEUS_MULTIPROC_DIR then: ask
    which value class it chose, not the variable, which may have been set too late."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.multiprocess_dir = multiprocess_dir()
        self._store_gauges = _RegistryGauges(counts)
        if self.multiprocess_dir is None:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            r.register(self._store_gauges)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.published = Counter(
            f"{PREFIX}_connections_published",
            "Connections stored by publish calls (republishes included).",
            registry=r,
        )
        self.lookups = Counter(
            f"{PREFIX}_lookups", "Lookups answered, by outcome.", ["outcome"], registry=r
        )
        self.lookup_results = Counter(
            f"{PREFIX}_lookup_results", "Connections returned by lookups.", registry=r
        )
        self.expired = Counter(
            f"{PREFIX}_entries_expired",
            "Entries removed automatically after ENTRY_TTL plus the purge grace period.",
            registry=r,
        )
        self.purged = Counter(
            f"{PREFIX}_entries_purged", "Expired entries removed by /purge.", registry=r
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused with a 4xx before reaching the registry, by reason.",
            ["reason"],
            registry=r,
        )
        self.watches = Gauge(
            f"{PREFIX}_watches", "Watches (admin API, index=N) waiting now.", registry=r
        )
        Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
            registry=r,
            # Every live worker says 1: reported once, not summed, and gone with its process.
            multiprocess_mode="livemax",
        ).labels(__version__, platform.python_version()).set(1)

        for endpoint in ENDPOINTS:
            self.latency.labels(endpoint)
        for outcome in LOOKUP_OUTCOMES:
            self.lookups.labels(outcome)
        for reason in REASONS:
            self.rejected.labels(reason)
        # Children are cached: labels() takes a lock and hashes on every call.
        self._request_children: dict[tuple[str, str, int], Counter] = {
            (endpoint, method, status): self.requests.labels(endpoint, method, status)
            for endpoint, method, statuses in _EXPECTED_REQUESTS
            for status in statuses
        }
        self._latency_children = {e: self.latency.labels(e) for e in ENDPOINTS}
        self._lookup_children = {o: self.lookups.labels(o) for o in LOOKUP_OUTCOMES}

    def exposition(self) -> bytes:
        """The /metrics body: this process's registry, or with several workers a fresh registry
        per scrape that adds up every worker's files (prometheus_client's documented way)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        PlatformCollector(registry=registry)  # python_info: the same in every worker
        registry.register(self._store_gauges)
        return generate_latest(registry)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        if endpoint not in self._latency_children:
            endpoint = "other"
        if method not in METHODS:
            method = "other"
        key = (endpoint, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(endpoint, method, status)
        child.inc()
        self._latency_children[endpoint].observe(seconds)

    def observe_lookup(self, results: int | None) -> None:
        if results is None:
            self._lookup_children["unknown_partition"].inc()
            return
        self._lookup_children["hit" if results else "miss"].inc()
        if results:
            self.lookup_results.inc(results)
