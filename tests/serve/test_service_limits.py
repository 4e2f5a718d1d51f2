"""The service's limits and what its settings show: M capped at the model's N (also in a state
file), the default M shown as the setting it is, upper-case URL schemes, over-long ids, and
the resets counter across a file's loops."""

from __future__ import annotations

import json

import pytest

from streamdeq.errors import SettingsError
from streamdeq.serve import NotFoundError
from streamdeq.serve.config import load_state
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


def test_a_state_file_with_an_out_of_range_setting_skips_that_stream(tmp_path):
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
        notice, kept = service.notices
        assert "'huge' skipped" in notice and f"at most {N}" in notice
        assert kept.endswith(f"kept in {state}.bak")
    finally:
        service.stop()


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
