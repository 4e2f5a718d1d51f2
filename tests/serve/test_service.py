"""The service core: sources of every kind, latest-only frames, live settings, compare mode,
lanes, limits, the state file, subscriptions and draining."""

from __future__ import annotations

import threading

import pytest

from streamdeq.errors import SettingsError
from streamdeq.serve import (
    ConflictError,
    LimitError,
    NotFoundError,
    ServiceError,
    SourceRejectedError,
    SubscriptionClosed,
)
from streamdeq.serve.lanes import Lane
from streamdeq.serve.sources import SourceReader

from ..data.clips import gradient_frame
from ..data.live import live_server, live_stream, mpegts_bytes
from .service_helpers import bundled_model, clip_file, image_folder, make_service, wait_for


@pytest.fixture
def served_model():
    return bundled_model()


@pytest.fixture
def service(served_model, tmp_path):
    service = make_service(served_model, tmp_path)
    service.start()
    yield service
    service.stop()


def test_results_arrive_for_a_file_a_folder_and_a_live_stream(service, tmp_path):
    payload = mpegts_bytes([gradient_frame(i, 64, 48) for i in range(10)], fps=25)
    with live_stream(payload) as url:
        service.add_stream(str(clip_file(tmp_path)), stream_id="file", loop=True)
        service.add_stream(str(image_folder(tmp_path / "frames")), stream_id="folder")
        service.add_stream(url, stream_id="live")
        for stream_id in ("file", "folder", "live"):
            result = wait_for(lambda s=stream_id: service.latest_result(s), f"{stream_id} result")
            assert result["stream"] == stream_id
            assert result["iters"] == 4  # the default M
            assert result["summary"]["classes"], "a segmentation summary names classes"
    kinds = {info["id"]: info["kind"] for info in service.streams()}
    assert kinds == {"file": "file", "folder": "folder", "live": "url"}
    assert service.stream("file")["size"] == [48, 64]
    jpeg = service.latest_overlay("file")
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"


def test_sources_read_on_threads_give_the_same_results(served_model, tmp_path):
    """``decoder_processes=0``: no process, no shared memory (a container short of it)."""
    service = make_service(served_model, tmp_path, decoder_processes=0)
    service.start()
    try:
        service.add_stream(str(clip_file(tmp_path)), stream_id="file", loop=True)
        result = wait_for(lambda: service.latest_result("file"), "a result")
        assert result["iters"] == 4 and service.stream("file")["size"] == [48, 64]
        assert isinstance(service._get("file").reader, SourceReader)
    finally:
        service.stop()


def test_a_slow_engine_drops_stale_frames_and_counts_them(service, tmp_path, monkeypatch):
    tick = Lane.tick

    def slow_tick(lane):  # the engine falls far behind the 25 fps clip
        threading.Event().wait(0.15)
        return tick(lane)

    monkeypatch.setattr(Lane, "tick", slow_tick)
    service.add_stream(str(clip_file(tmp_path, frames=16)), stream_id="cam")
    seen = []
    subscription = service.subscribe()

    def all_accounted() -> bool:
        seen.extend(r["frame_index"] for r in subscription.get(0.05))
        info = service.stream("cam")
        return info["state"] == "ended" and info["frames"] + info["drops"] == 16

    wait_for(all_accounted, "every frame processed or dropped")
    info = service.stream("cam")
    assert info["drops"] > 0
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert service.latest_result("cam")["frame_index"] == 15  # the newest frame is never lost


def test_failing_sources_do_not_stall_the_others(service, tmp_path):
    garbage = [b"\x47" + bytes(range(187)) * 40]  # MPEG-TS sync bytes and noise, then closed
    with live_server([garbage, garbage]) as closing_url:
        service.add_stream(str(tmp_path / "missing.mp4"), stream_id="missing")
        service.add_stream("tcp://127.0.0.1:9", stream_id="refused")
        service.add_stream(closing_url, stream_id="closing")
        service.add_stream(str(clip_file(tmp_path)), stream_id="good", loop=True)
        wait_for(lambda: service.stream("missing")["state"] == "failed", "missing failed")
        wait_for(lambda: service.stream("refused")["state"] == "reconnecting", "reconnecting")
        wait_for(lambda: service.stream("closing")["state"] == "reconnecting", "closing")
        wait_for(lambda: service.stream("good")["frames"] >= 15, "the good stream goes on")
    assert "not found" in service.stream("missing")["error"]
    assert service.stream("refused")["error"]
    assert service.health()["live"] == 1


def test_update_settings_changes_the_iterations_of_the_next_results(service, tmp_path):
    service.add_stream(str(clip_file(tmp_path)), stream_id="cam", loop=True, settings={"iters": 1})
    wait_for(lambda: service.latest_result("cam"), "a first result")
    assert service.latest_result("cam")["iters"] == 1
    settings = service.update_settings("cam", {"iters": 3})
    assert settings["iters"] == 3 and service.settings("cam")["iters"] == 3
    subscription = service.subscribe()
    wait_for(
        lambda: any(r["iters"] == 3 for r in subscription.get(0.05)), "a result with 3 iterations"
    )
    service.update_settings("cam", {"tol": 0.5})  # one iteration control clears the others
    assert service.settings("cam")["iters"] is None and service.stream("cam")["lane"] == "slow"


def test_bad_settings_are_refused_naming_the_field(service, tmp_path):
    service.add_stream(str(clip_file(tmp_path)), stream_id="cam")
    with pytest.raises(SettingsError, match="itters"):
        service.update_settings("cam", {"itters": 2})
    with pytest.raises(SettingsError, match="iters"):
        service.update_settings("cam", {"iters": 0})
    with pytest.raises(SettingsError, match="compare"):
        service.update_settings("cam", {"compare": "yes"})
    with pytest.raises(SettingsError, match="baseline"):
        service.update_settings("cam", {"mode": "baseline", "iters": 2})
    assert service.settings("cam")["iters"] == 4  # nothing applied: still the default M


def test_compare_mode_yields_both_sides_of_the_same_frame(service, tmp_path):
    service.add_stream(
        str(clip_file(tmp_path)),
        stream_id="cam",
        loop=True,
        settings={"iters": 1, "compare": {"iters": 2}},
    )
    result = wait_for(lambda: service.latest_result("cam"), "a result")
    assert result["iters"] == 1 and result["compare"]["iters"] == 2
    assert result["compare"]["summary"]["classes"]
    assert service.latest_overlay("cam", "compare")[:2] == b"\xff\xd8"
    service.update_settings("cam", {"compare": "baseline"})
    assert service.stream("cam")["lane"] == "slow"
    wait_for(
        lambda: (service.latest_result("cam")["compare"] or {}).get("iters") == 24,
        "a fully solved comparison (N = 24)",
    )


def test_a_blocked_slow_lane_does_not_hold_the_fast_streams(service, tmp_path):
    release = threading.Event()
    slow_batch = service._lanes["slow"].batch
    step = slow_batch.step

    def stuck(frames):
        release.wait(10)
        return step(frames)

    slow_batch.step = stuck
    try:
        clip = str(clip_file(tmp_path))
        service.add_stream(clip, stream_id="baseline", loop=True, settings={"mode": "baseline"})
        service.add_stream(clip, stream_id="fast", loop=True, settings={"iters": 2})
        assert service.stream("baseline")["lane"] == "slow"
        assert service.stream("fast")["lane"] == "main"
        wait_for(lambda: service.stream("fast")["frames"] >= 10, "fast results")
        assert service.stream("baseline")["frames"] == 0
    finally:
        release.set()
    wait_for(lambda: service.stream("baseline")["frames"] >= 1, "the slow lane goes on")


def test_limits_conflicts_and_unknown_ids(served_model, tmp_path):
    service = make_service(served_model, tmp_path, max_streams=2)
    clip = str(clip_file(tmp_path))
    service.add_stream(clip, stream_id="a")
    with pytest.raises(ConflictError):
        service.add_stream(clip, stream_id="a")
    info = service.add_stream(clip)
    assert info["id"] == "clip"  # made from the file name
    with pytest.raises(LimitError, match="at most 2 streams"):
        service.add_stream(clip, stream_id="c")
    service.remove_stream("a")
    with pytest.raises(NotFoundError):
        service.stream("a")
    with pytest.raises(SettingsError, match="stream id"):
        service.add_stream(clip, stream_id="../etc")
    with pytest.raises(SourceRejectedError, match="scheme"):
        service.add_stream("ftp://host/x.mp4", stream_id="ftp")


def test_api_streams_survive_a_restart_and_startup_ones_are_not_copied(served_model, tmp_path):
    clip = str(clip_file(tmp_path))
    first = make_service(served_model, tmp_path)
    first.add_stream(clip, stream_id="cli", persist=False)
    first.start()
    first.add_stream("rtsp://user:secret@cam.local/live", stream_id="api", settings={"iters": 2})
    first.update_settings("api", {"shot_policy": "reset"})
    assert first.stream("api")["source"] == "rtsp://cam.local/live"  # credentials not shown
    first.stop()

    second = make_service(served_model, tmp_path)
    second.start()
    try:
        assert [info["id"] for info in second.streams()] == ["api"]
        assert second.settings("api")["iters"] == 2
        assert second.settings("api")["shot_policy"] == "reset"
        second.remove_stream("api")
    finally:
        second.stop()
    third = make_service(served_model, tmp_path)
    assert third.streams() == [] and not third.notices


def test_the_state_file_is_replaced_atomically(served_model, tmp_path, monkeypatch):
    service = make_service(served_model, tmp_path)
    clip = str(clip_file(tmp_path))
    service.add_stream(clip, stream_id="a")
    before = (tmp_path / "streams.state.json").read_text()

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr("streamdeq.serve.config.os.replace", crash)
    with pytest.raises(OSError):
        service.add_stream(clip, stream_id="b")
    assert (tmp_path / "streams.state.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if "state" in p.name) == ["streams.state.json"]


def test_a_subscription_holds_only_the_latest_result_per_stream(service):
    subscription = service.subscribe()
    for index in range(1000):  # a client that does not read
        subscription.offer({"stream": f"cam{index % 2}", "frame_index": index})
    results = subscription.get(0)
    assert [(r["stream"], r["frame_index"]) for r in results] == [("cam0", 998), ("cam1", 999)]
    assert subscription.get(0.01) == []
    subscription.close()
    with pytest.raises(SubscriptionClosed):
        subscription.get(0)


def test_stop_drains_lanes_sources_and_subscribers(served_model, tmp_path):
    service = make_service(served_model, tmp_path)
    service.start()
    service.add_stream(str(clip_file(tmp_path)), stream_id="cam", loop=True)
    wait_for(lambda: service.latest_result("cam"), "a result")
    subscription = service.subscribe()
    woke = []

    def reader():
        try:
            while True:
                subscription.get(None)
        except SubscriptionClosed:
            woke.append(True)

    thread = threading.Thread(target=reader)
    thread.start()
    service.stop(timeout=5)
    thread.join(5)
    assert woke == [True]
    assert service.health()["status"] == "stopping"
    assert not any(lane._thread.is_alive() for lane in service._lanes.values())
    frames = service.stream("cam")["frames"]
    threading.Event().wait(0.2)
    assert service.stream("cam")["frames"] == frames  # nothing runs after the drain
    with pytest.raises(ServiceError, match="stopping"):
        service.add_stream(str(tmp_path / "clip.mp4"))


def test_a_stream_the_model_fails_on_is_failed_alone(service, tmp_path):
    batch = service._lanes["main"].batch
    step = batch.step

    def failing(frames):  # as a model that cannot take this stream's frames would
        if "bad" in frames:
            raise RuntimeError("shape mismatch")
        return step(frames)

    batch.step = failing
    clip = str(clip_file(tmp_path))
    service.add_stream(clip, stream_id="bad", loop=True)
    service.add_stream(clip, stream_id="good", loop=True)
    wait_for(lambda: service.stream("bad")["state"] == "failed", "the bad stream failed")
    assert "shape mismatch" in service.stream("bad")["error"]
    frames = service.stream("good")["frames"]
    wait_for(lambda: service.stream("good")["frames"] >= frames + 5, "the good stream goes on")
    assert service.latest_result("bad") is None
