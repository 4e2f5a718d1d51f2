"""The HTTP API over the real service with the bundled tiny model: what the test double cannot
show (a source that fails to open, live settings, real overlays, events from the engine)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from streamdeq.serve.http import create_app
from streamdeq.serve.security import SourcePolicy

from .fakes import TestClient
from .service_helpers import bundled_model, clip_file, make_service, wait_for

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    clip_file(root, frames=8)
    return root


@pytest.fixture
def running(media):
    service = make_service(bundled_model(), max_streams=2)
    service.start()
    app = create_app(
        service, token=None, allowed_hosts=None, policy=SourcePolicy(media), loopback=True
    )
    yield service, TestClient(app, base_url=BASE, raise_server_exceptions=False)
    service.stop()


def test_a_source_that_fails_to_open_is_failed_with_its_error_in_the_api(running, media):
    _, client = running
    (media / "broken.mp4").write_bytes(b"this is not a video")
    response = client.post("/api/streams", json={"source": "broken.mp4", "id": "broken"})
    assert response.status_code == 201  # adding does not wait for the source to open
    info = wait_for(
        lambda: (i := client.get("/api/streams/broken").json())["state"] == "failed" and i,
        "the broken source to fail",
    )
    assert info["error"] and "\n" not in info["error"]
    assert client.get("/healthz").status_code == 200  # one bad camera is not a sick service


def test_a_live_stream_serves_results_overlays_and_takes_new_settings(running):
    _, client = running
    body = {"source": "clip.mp4", "id": "cam", "loop": True, "settings": {"iters": 1}}
    assert client.post("/api/streams", json=body).status_code == 201
    wait_for(lambda: client.get("/api/streams/cam/result").status_code == 200, "a result")
    assert client.get("/api/streams/cam/result").json()["iters"] == 1
    overlay = client.get("/api/streams/cam/overlay.jpg")
    assert overlay.status_code == 200 and overlay.content[:2] == b"\xff\xd8"
    assert client.patch("/api/streams/cam/settings", json={"iters": 3}).json()["iters"] == 3
    wait_for(lambda: client.get("/api/streams/cam/result").json()["iters"] == 3, "M = 3 results")
    for changes, field in (({"iters": 0}, "iters"), ({"speed": 2}, "speed"), ({"mode": 1}, "mode")):
        refused = client.patch("/api/streams/cam/settings", json=changes)
        assert refused.status_code == 400 and field in refused.json()["error"]
    assert client.get("/api/streams/cam/settings").json()["iters"] == 3
    bad_id = client.post("/api/streams", json={"source": "clip.mp4", "id": "no spaces"})
    assert bad_id.status_code == 400 and "id" in bad_id.json()["error"]
    assert client.post("/api/streams", json={"source": "clip.mp4"}).status_code == 201
    too_many = client.post("/api/streams", json={"source": "clip.mp4"})
    assert too_many.status_code == 409 and "at most 2" in too_many.json()["error"]


def test_events_stream_the_engine_results_and_end_when_the_service_stops(running, media):
    service, client = running
    subscribed = threading.Event()
    subscribe = service.subscribe

    def recording_subscribe():
        subscription = subscribe()
        subscribed.set()
        return subscription

    service.subscribe = recording_subscribe

    def play_then_stop() -> None:
        subscribed.wait(30)
        service.add_stream(str(media / "clip.mp4"), stream_id="cam", loop=True, persist=False)
        wait_for(lambda: service.stream("cam")["frames"] >= 3, "three frames")
        service.stop()

    threading.Thread(target=play_then_stop, daemon=True).start()
    response = client.get("/api/events")  # returns once the stop ends the stream
    kinds = [
        line.removeprefix("event: ") for line in response.text.splitlines() if "event:" in line
    ]
    assert kinds[0] == "summary" and "result" in kinds
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert {item["stream"] for item in data if "stream" in item} == {"cam"}


def test_settings_errors_speak_json_and_name_the_cap(running):
    _, client = running
    assert client.post("/api/streams", json={"source": "clip.mp4", "id": "cam"}).status_code == 201
    wrong_type = client.patch("/api/streams/cam/settings", json={"iters": "4"})
    assert wrong_type.status_code == 400
    assert "or null" in wrong_type.json()["error"] and "None" not in wrong_type.json()["error"]
    too_many = client.patch("/api/streams/cam/settings", json={"iters": 2000})
    assert too_many.status_code == 400 and "at most 24" in too_many.json()["error"]
    assert client.get("/api/streams/cam/settings").json()["iters"] == 4
