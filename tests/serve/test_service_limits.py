"""The service's limits and what its settings show: M capped at the model's N (also in a state
file), state-file streams skipped but kept, checked against today's source policy, one service
per state file, the default M shown as the setting it is, upper-case URL schemes, over-long
ids, and the resets counter across a file's loops."""

from __future__ import annotations

import json
import os

import pytest

from streamdeq.errors import SettingsError
from streamdeq.serve import NotFoundError
from streamdeq.serve.config import load_state
from streamdeq.serve.security import SourcePolicy
from streamdeq.serve.settings import DEFAULT_SETTINGS as DEFAULTS
from streamdeq.serve.settings import MAX_BUDGET_MS, merge_settings
from streamdeq.stream import DEFAULT_ITERS

from .service_helpers import bundled_model, clip_file, make_service, wait_for

N = 24  # the bundled model's full solve (its config.f_thres)


@pytest.fixture
def idle(tmp_path):
    """A service that is never started: settings and ids are checked without a running engine."""
    return make_service(bundled_model(), tmp_path)


def test_settings_show_the_default_m_and_drop_it_for_the_baseline():
    assert merge_settings(DEFAULTS, {})["iters"] == DEFAULT_ITERS
    baseline = merge_settings(DEFAULTS, {"mode": "baseline"})
    assert baseline["iters"] is None
    assert merge_settings(baseline, {"mode": "keyframe"})["iters"] == DEFAULT_ITERS
    assert merge_settings(DEFAULTS, {"tol": 0.1})["iters"] is None


def test_a_stream_added_without_iters_shows_the_m_it_runs(idle, tmp_path):
    info = idle.add_stream(str(clip_file(tmp_path)), stream_id="cam")
    assert info["settings"]["iters"] == DEFAULT_ITERS


def test_iters_are_capped_at_the_models_full_solve(idle, tmp_path):
    assert idle.max_iters == N
    idle.add_stream(str(clip_file(tmp_path)), stream_id="cam")
    assert idle.update_settings("cam", {"iters": N})["iters"] == N
    with pytest.raises(SettingsError, match=f"iters must be at most {N}") as error:
        idle.update_settings("cam", {"iters": 2000})
    assert error.value.field == "iters"
    with pytest.raises(SettingsError, match=f"compare iters must be at most {N}"):
        idle.update_settings("cam", {"compare": {"iters": N + 1}})
    with pytest.raises(SettingsError, match="budget_ms"):
        idle.update_settings("cam", {"budget_ms": MAX_BUDGET_MS * 2})
    assert idle.settings("cam")["iters"] == N  # nothing applied
    with pytest.raises(SettingsError, match="at most"):
        idle.add_stream(str(clip_file(tmp_path)), stream_id="big", settings={"iters": N + 1})


def test_a_state_file_with_an_out_of_range_setting_skips_that_stream_but_keeps_it(tmp_path):
    """Skipped, not lost: the same file under another model (a larger N) starts it again."""
    clip = str(clip_file(tmp_path))
    entries = [
        {"id": "huge", "source": clip, "loop": False, "settings": {"iters": 2000}},
        {"id": "fine", "source": clip, "loop": False, "settings": {"iters": 2}},
    ]
    state = tmp_path / "streams.state.json"
    state.write_text(json.dumps({"version": 1, "streams": entries}))
    service = make_service(bundled_model(), tmp_path)
    service.start()
    try:
        assert [info["id"] for info in service.streams()] == ["fine"]
        (notice,) = service.notices
        assert "'huge' skipped, kept in the file" in notice and f"at most {N}" in notice
        service.add_stream(clip, stream_id="new", persist=True)  # the file is rewritten
        saved = json.loads(state.read_text())["streams"]
        assert [entry["id"] for entry in saved] == ["fine", "new", "huge"]
        assert saved[2] == entries[0]
    finally:
        service.stop()
    assert not state.with_name(state.name + ".bak").exists()  # nothing was dropped


def test_streams_over_a_lowered_limit_come_back_when_it_is_raised(tmp_path):
    clip = str(clip_file(tmp_path))
    state = tmp_path / "streams.state.json"
    entries = [{"id": f"cam{n}", "source": clip, "loop": False, "settings": {}} for n in range(3)]
    state.write_text(json.dumps({"version": 1, "streams": entries}))
    small = make_service(bundled_model(), tmp_path, max_streams=1)
    small.start()
    try:
        assert [info["id"] for info in small.streams()] == ["cam0"]
        small.remove_stream("cam0")  # a change: the file is rewritten without cam0 only
    finally:
        small.stop()
    assert [e["id"] for e in json.loads(state.read_text())["streams"]] == ["cam1", "cam2"]
    large = make_service(bundled_model(), tmp_path, max_streams=4)
    large.start()
    try:
        assert sorted(info["id"] for info in large.streams()) == ["cam1", "cam2"]
        assert not large.notices
    finally:
        large.stop()


def test_a_stream_added_since_under_a_kept_id_replaces_the_kept_one(tmp_path):
    clip = str(clip_file(tmp_path))
    state = tmp_path / "streams.state.json"
    kept = {"id": "gate", "source": clip, "loop": False, "settings": {"iters": 2000}}
    state.write_text(json.dumps({"version": 1, "streams": [kept]}))
    service = make_service(bundled_model(), tmp_path)
    service.start()
    try:
        service.add_stream(clip, stream_id="gate", loop=True, persist=True)
    finally:
        service.stop()
    (saved,) = json.loads(state.read_text())["streams"]
    assert saved["id"] == "gate" and saved["loop"] is True


def test_state_file_sources_pass_the_apis_policy_of_today(tmp_path):
    """They were added through the API: an operator who has since dropped --media-root, or
    narrowed it, does not get them back behind the policy's back."""
    root, elsewhere = tmp_path / "media", tmp_path / "other"
    root.mkdir()
    elsewhere.mkdir()
    inside, outside = clip_file(root), clip_file(elsewhere)
    entries = [
        {"id": "inside", "source": str(inside), "loop": False, "settings": {}},
        {"id": "outside", "source": str(outside), "loop": False, "settings": {}},
    ]
    state = tmp_path / "streams.state.json"
    state.write_text(json.dumps({"version": 1, "streams": entries}))
    service = make_service(bundled_model(), tmp_path)
    service.start(check_source=SourcePolicy(media_root=root).check)
    try:
        assert [info["id"] for info in service.streams()] == ["inside"]
        (notice,) = service.notices
        assert (
            "'outside' skipped, kept in the file" in notice and "outside the media root" in notice
        )
    finally:
        service.stop()


def test_one_state_file_serves_one_service_at_a_time(tmp_path):
    """Two would each rewrite it with only their own streams: the later writer's file would
    lose the other's streams."""
    first = make_service(bundled_model(), tmp_path)
    second = make_service(bundled_model(), tmp_path)
    first.start()
    try:
        with pytest.raises(
            SettingsError, match=f"in use by another streamdeq serve .pid {os.getpid()}"
        ):
            second.start()
    finally:
        first.stop()
    second.start()  # free once the first has stopped
    second.stop()


def test_a_structurally_broken_state_file_entry_skips_that_entry_only(tmp_path):
    clip = str(clip_file(tmp_path))
    entries = [
        {"id": "nosource", "loop": False},
        {"id": "typo", "source": clip, "lop": True},
        ["not", "an", "entry"],
        {"id": "fine", "source": clip, "loop": False, "settings": {"iters": 2}},
    ]
    state = tmp_path / "streams.state.json"
    state.write_text(json.dumps({"version": 1, "streams": entries}))
    with pytest.raises(SettingsError, match="stream 1"):  # strict without a list to skip into
        load_state(state)
    service = make_service(bundled_model(), tmp_path)
    service.start()
    try:
        assert [info["id"] for info in service.streams()] == ["fine"]
        assert len(service.notices) == 4
        assert all(n.startswith(f"state file {state}: stream ") for n in service.notices[:3])
        assert service.notices[3].endswith(f"kept in {state}.bak")
        assert "stream 2" in service.notices[1] and "lop" in service.notices[1]
    finally:
        service.stop()
    # the file now holds the stream that started; the mistyped entries are kept beside it
    assert [entry["id"] for entry in json.loads(state.read_text())["streams"]] == ["fine"]
    backup = state.with_name(state.name + ".bak")
    assert json.loads(backup.read_text())["streams"] == entries


def test_an_upper_case_url_scheme_is_opened_in_lower_case(idle):
    info = idle.add_stream("HTTP://127.0.0.1:9/x.mp4", stream_id="upper")
    assert info["source"] == "http://127.0.0.1:9/x.mp4" and info["kind"] == "url"
    assert idle._streams["upper"].reader.source == "http://127.0.0.1:9/x.mp4"


def test_an_over_long_id_is_not_echoed_in_full(idle, tmp_path):
    with pytest.raises(SettingsError, match="stream id") as error:
        idle.add_stream(str(clip_file(tmp_path)), stream_id="a" * 5000)
    assert len(str(error.value)) < 200 and "5000 characters" in str(error.value)
    with pytest.raises(NotFoundError) as missing:
        idle.stream("b" * 5000)
    assert len(str(missing.value)) < 200


def test_a_files_loop_back_to_its_start_is_not_counted_as_a_reset(tmp_path):
    service = make_service(bundled_model(), tmp_path)
    service.start()
    try:
        service.add_stream(
            str(clip_file(tmp_path, frames=6)), stream_id="cam", loop=True, settings={"iters": 1}
        )
        wait_for(
            lambda: (service.latest_result("cam") or {}).get("frame_index", 0) >= 8,
            "a result from the second pass",
        )
        assert service.stream("cam")["resets"] == 0
        assert service.metrics()["streams"]["cam"]["resets"] == 0
    finally:
        service.stop()
