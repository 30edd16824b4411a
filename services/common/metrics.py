"""Prometheus metrics of one process, in its own registry (built in `__main__`, passed in).

Every process reports its CPU time and memory (process_*); every gRPC server records calls per
method and status code with their latency; processes add
their own figures (the gateway per infno, settlement the money it settles and its outbox backlog,
clearing the prepayments' usage, everyone their cache's hit ratio). Services expose the registry
on `<PREFIX>_METRICS_PORT`, the gateway on `/metrics`. Labels never carry personal data.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import start_http_server as _start_http_server

# Seconds; the national average inpatient settlement is about 0.8 s, targets are tens of ms.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ProcessMetrics:
    """The metrics of one process."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.registry = CollectorRegistry(auto_describe=True)
        # process_cpu_seconds_total, process_resident_memory_bytes...: what the process costs.
        ProcessCollector(registry=self.registry)
        self.rpc_requests = Counter(
            "medsettle_rpc_requests",
            "gRPC calls served, by method and status code",
            ["process", "method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "medsettle_rpc_duration_seconds",
            "Time to serve a gRPC call",
            ["process", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One served call."""
        self.rpc_requests.labels(self.process, method, code).inc()
        self.rpc_seconds.labels(self.process, method).observe(seconds)

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        """A process-specific counter in this registry."""
        return Counter(name, documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: list[str]) -> Histogram:
        """A process-specific latency histogram in this registry."""
        return Histogram(
            name, documentation, labels, buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def gauge(self, name: str, documentation: str, labels: list[str] | None = None) -> Gauge:
        """A process-specific gauge in this registry."""
        return Gauge(name, documentation, labels or [], registry=self.registry)

    def watch(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read at each scrape (e.g. the cache hit ratio)."""
        self.gauge(name, documentation).set_function(read)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> None:
        """Expose the registry over HTTP (a daemon thread) on host:port."""
        _start_http_server(port, addr=host, registry=self.registry)
