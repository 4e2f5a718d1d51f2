"""Prometheus metrics of a service (over the test double) and the health status."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamdeq.serve.metrics import ServeMetrics, health_status

from .fakes import FakeService, TestClient


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def service() -> FakeService:
    service = FakeService()
    service.add_stream("a.mp4", stream_id="a")
    service.add_stream("b.mp4", stream_id="b")
    return service


def test_per_stream_counters_come_from_the_service(service):
    metrics = ServeMetrics(service)
    for _ in range(3):
        service.push_result("a")
    service.infos["b"].update(drops=4, resets=1, reconnects=2)
    service.decoder_restarts = 1
    values = samples(metrics.render().decode())
    assert values[("streamdeq_stream_frames_total", (("stream", "a"),))] == 3
    assert values[("streamdeq_stream_frames_total", (("stream", "b"),))] == 0
    assert values[("streamdeq_stream_drops_total", (("stream", "b"),))] == 4
    assert values[("streamdeq_stream_resets_total", (("stream", "b"),))] == 1
    assert values[("streamdeq_stream_reconnects_total", (("stream", "b"),))] == 2
    assert values[("streamdeq_stream_lag_frames", (("stream", "a"),))] == 0
    assert values[("streamdeq_engine_ticks_total", ())] == 3
    assert values[("streamdeq_decoder_restarts_total", ())] == 1
    assert values[("streamdeq_streams", ())] == 2


def test_each_new_tick_is_observed_once(service):
    metrics = ServeMetrics(service)
    service.push_result("a")
    service.push_result("b")
    metrics.render()
    service.push_result("a")
    values = samples(metrics.render().decode())
    assert values[("streamdeq_engine_tick_seconds_count", ())] == 3
    assert values[("streamdeq_engine_tick_seconds_sum", ())] == pytest.approx(0.03)
    assert values[("streamdeq_engine_batch_size_count", ())] == 3
    assert values[("streamdeq_engine_batch_size_bucket", (("le", "1.0"),))] == 3


def test_result_latencies_fill_a_histogram_per_stream(service):
    metrics = ServeMetrics(service)
    metrics.observe_results(
        [{"stream": "a", "latency_ms": 20.0}, {"stream": "a", "latency_ms": 300.0}]
    )
    metrics.observe_results([{"stream": "b", "latency_ms": float("nan")}])  # not observed
    values = samples(metrics.render().decode())
    count = ("streamdeq_result_latency_seconds_count", (("stream", "a"),))
    assert values[count] == 2
    bucket = ("streamdeq_result_latency_seconds_bucket", (("le", "0.025"), ("stream", "a")))
    assert values[bucket] == 1
    assert ("streamdeq_result_latency_seconds_count", (("stream", "b"),)) not in values


def test_a_removed_stream_leaves_the_metrics(service):
    metrics = ServeMetrics(service)
    metrics.observe_results([{"stream": "a", "latency_ms": 20.0}])
    service.remove_stream("a")
    text = metrics.render().decode()
    assert 'stream="a"' not in text and 'stream="b"' in text


def test_the_observer_thread_feeds_latencies_until_stopped(service):
    metrics = ServeMetrics(service)
    metrics.start()
    try:
        service.push_result("a", latency_ms=40.0)
        count = ("streamdeq_result_latency_seconds_count", (("stream", "a"),))
        for _ in range(200):  # the observer wakes on the result; give it up to ~10 s
            if samples(metrics.render().decode()).get(count) == 1:
                break
            metrics._stopping.wait(0.05)
        assert samples(metrics.render().decode())[count] == 1
    finally:
        metrics.stop()
    assert metrics._thread is None and service.subscriptions == set()


def test_two_apps_never_share_series(service):
    first, second = ServeMetrics(service), ServeMetrics(service)
    first.observe_results([{"stream": "a", "latency_ms": 20.0}])
    assert "streamdeq_result_latency_seconds_count" not in second.render().decode()


@pytest.mark.parametrize(
    ("health", "status"),
    [
        ({"status": "ok", "model_loaded": True, "streams": 2, "live": 0}, 200),
        ({"status": "ok", "model_loaded": False, "streams": 0, "live": 0}, 503),
        ({"status": "starting", "model_loaded": True, "streams": 0, "live": 0}, 503),
        ({"status": "stopping", "model_loaded": True, "streams": 1, "live": 1}, 503),
    ],
)
def test_health_status(health, status):
    assert health_status(health) == status


def test_the_metrics_endpoint_serves_the_text_format(service):
    from streamdeq.serve.http import create_app
    from streamdeq.serve.security import SourcePolicy

    app = create_app(service, token="t", allowed_hosts=None, policy=SourcePolicy(), loopback=True)
    response = TestClient(app, base_url="http://127.0.0.1:8000").get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "streamdeq_stream_frames_total" in response.text


def test_the_resets_help_says_loops_and_reconnections_are_not_resets(service):
    text = ServeMetrics(service).render().decode()  # the fixture's streams: "a" and "b"
    [help_line] = [line for line in text.splitlines() if "HELP streamdeq_stream_resets" in line]
    assert "not loops, reconnections" in help_line
