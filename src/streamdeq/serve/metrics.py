"""Prometheus metrics and the health check of a running service.

Counters the service already keeps (frames, drops, resets, reconnects, lag, ticks) are read at
scrape time by a custom collector, so they can never drift from what the API shows. Distributions
(per-result latency, tick time, batch size) need every sample, so an observer thread reads a
subscription of its own and the engine's recent ticks and feeds histograms. Each app gets its own
``CollectorRegistry``: two services in one process (tests, embedding) never share series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import SubscriptionClosed

log = logging.getLogger(__name__)

#: Result latency buckets in seconds: from a tiny model on a GPU to a large one on a CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = LATENCY_BUCKETS
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_PER_STREAM_COUNTERS = (
    ("frames", "Frames processed"),
    ("drops", "Frames dropped because the engine was behind"),
    ("resets", "State resets by the engine (shot change, divergence); not loops, reconnections"),
    ("reconnects", "Source reconnections"),
)


class _Subscription(Protocol):
    def get(self, timeout: float | None) -> list[dict]: ...

    def close(self) -> None: ...


class MetricsSource(Protocol):
    """The part of ``Service`` metrics need."""

    def metrics(self) -> dict: ...

    def health(self) -> dict: ...

    def subscribe(self) -> _Subscription: ...


class _ServiceCollector(Collector):
    """Per-stream counters and engine totals, read from ``service.metrics()`` at scrape time."""

    def __init__(self, service: MetricsSource) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        snapshot = self.service.metrics()
        streams: Mapping[str, Mapping[str, Any]] = snapshot.get("streams", {})
        for key, text in _PER_STREAM_COUNTERS:
            family = CounterMetricFamily(f"streamdeq_stream_{key}", text, labels=["stream"])
            for stream_id, values in streams.items():
                family.add_metric([stream_id], float(values.get(key, 0)))
            yield family
        lag = GaugeMetricFamily(
            "streamdeq_stream_lag_frames",
            "Frames the stream is behind its source",
            labels=["stream"],
        )
        for stream_id, values in streams.items():
            lag.add_metric([stream_id], float(values.get("lag_frames", 0.0)))
        yield lag
        yield CounterMetricFamily(
            "streamdeq_engine_ticks", "Batched engine steps", value=float(snapshot.get("ticks", 0))
        )
        yield CounterMetricFamily(
            "streamdeq_decoder_restarts",
            "Decoder processes started again after they died",
            value=float(snapshot.get("decoder_restarts", 0)),
        )
        health = self.service.health()
        yield GaugeMetricFamily(
            "streamdeq_streams", "Streams", value=float(health.get("streams", 0))
        )
        yield GaugeMetricFamily(
            "streamdeq_streams_live",
            "Streams delivering frames",
            value=float(health.get("live", 0)),
        )


class ServeMetrics:
    """The metrics of one service: a registry, its histograms, and the thread that feeds them.

    Args:
        service: the service to watch (anything with ``metrics``, ``health``, ``subscribe``).
    """

    def __init__(self, service: MetricsSource) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.registry.register(_ServiceCollector(service))
        self.latency = Histogram(
            "streamdeq_result_latency_seconds",
            "Time from a frame's arrival to its result",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tick_time = Histogram(
            "streamdeq_engine_tick_seconds",
            "Time of one batched engine step",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "streamdeq_engine_batch_size",
            "Streams stepped together in one engine step",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._ticks_seen = 0
        self._latency_streams: set[str] = set()
        self._thread: threading.Thread | None = None
        self._subscription: _Subscription | None = None
        self._stopping = threading.Event()

    def observe_results(self, results: Iterable[Mapping[str, Any]]) -> None:
        """Feed the latency histogram with results (as a subscription yields them)."""
        with self._lock:
            for result in results:
                latency_ms = result.get("latency_ms")
                if isinstance(latency_ms, int | float) and latency_ms == latency_ms:  # not NaN
                    stream_id = str(result.get("stream"))
                    self.latency.labels(stream_id).observe(latency_ms / 1000.0)
                    self._latency_streams.add(stream_id)

    def sync_engine(self) -> None:
        """Observe the ticks the engine made since the last call, and forget removed streams.

        ``service.metrics()`` keeps only recent ticks, so ticks older than that window are
        counted (by the collector) but not in the histograms.
        """
        snapshot = self.service.metrics()
        ticks = int(snapshot.get("ticks", 0))
        tick_ms = list(snapshot.get("recent_tick_ms", ()))
        batch_sizes = list(snapshot.get("recent_batch_sizes", ()))
        with self._lock:
            new = ticks - self._ticks_seen if ticks >= self._ticks_seen else ticks
            self._ticks_seen = ticks
            for value in tick_ms[len(tick_ms) - min(new, len(tick_ms)) :]:
                self.tick_time.observe(float(value) / 1000.0)
            for value in batch_sizes[len(batch_sizes) - min(new, len(batch_sizes)) :]:
                self.batch_size.observe(float(value))
            for gone in self._latency_streams - set(snapshot.get("streams", {})):
                self.latency.remove(gone)
                self._latency_streams.discard(gone)

    def render(self) -> bytes:
        """The Prometheus text exposition, brought up to date first."""
        self.sync_engine()
        return generate_latest(self.registry)

    def start(self) -> None:
        """Start the observer thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._subscription = self.service.subscribe()
        self._thread = threading.Thread(target=self._observe, name="serve-metrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the observer thread and close its subscription."""
        self._stopping.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = self._subscription = None

    def _observe(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        while not self._stopping.is_set():
            try:
                self.observe_results(subscription.get(timeout=0.5))
                self.sync_engine()
            except SubscriptionClosed:
                return
            except Exception:  # a metrics hiccup must never take the service down
                log.exception("metrics observer failed; retrying")
                self._stopping.wait(1.0)


def health_status(health: Mapping[str, Any]) -> int:
    """The HTTP status of ``/healthz``: 200 when the service runs with its model loaded, else 503.

    Streams that are reconnecting or failed do not make the service unhealthy: restarting it
    would not bring a camera back, and the per-stream state says which one is down.
    """
    return 200 if health.get("status") == "ok" and health.get("model_loaded") else 503
