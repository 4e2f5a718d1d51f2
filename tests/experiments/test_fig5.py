from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments import Clip, fig5
from streamdeq.experiments.fig5 import frames_to_baseline

from .conftest import FRAMES


@pytest.fixture(scope="module")
def result(model, clips):
    return fig5(model, clips, iters=(1, 2))


def miou(result, mode, m=None, offset=None):
    return next(
        r["miou"]
        for r in result.rows
        if r["mode"] == mode and r["M"] == m and r["offset"] == offset
    )


def test_rows_for_every_scheme_m_and_offset_plus_the_references(result):
    streamed = [r for r in result.rows if r["mode"] in ("stream", "keyframe")]
    assert len(streamed) == 2 * 2 * FRAMES
    assert {r["offset"] for r in streamed} == set(range(1, FRAMES + 1))
    assert [r["M"] for r in result.rows if r["mode"] == "non-streaming"] == [1, 2]
    assert all(0.0 <= r["miou"] <= 1.0 for r in result.rows)


@pytest.mark.parametrize("m", [1, 2])
def test_offset_one_stream_is_the_non_streaming_model(result, m):
    assert miou(result, "stream", m, 1) == miou(result, "non-streaming", m)


@pytest.mark.parametrize("m", [1, 2])
def test_offset_one_keyframe_is_the_baseline(result, m):
    assert miou(result, "keyframe", m, 1) == miou(result, "baseline")


def test_offsets_beyond_the_clip_are_rejected(model, clips):
    with pytest.raises(SettingsError, match="offsets"):
        fig5(model, clips, iters=(1,), offsets=(FRAMES + 1,))


def test_a_clip_without_a_label_on_its_last_frame_is_rejected(model, clips):
    unlabelled = Clip("no-label", clips[0].frames, {0: clips[0].labels[0]})
    with pytest.raises(SettingsError, match="no label"):
        fig5(model, [unlabelled], iters=(1,))


def test_modes_pick_the_swept_schemes(model, clips):
    result = fig5(model, clips, iters=(1,), offsets=(1, 2), modes=("stream",))
    assert {r["mode"] for r in result.rows} == {"stream", "non-streaming", "baseline"}


@pytest.mark.parametrize("tolerance", [0.0, 0.002, 1.0])
def test_frames_to_baseline_is_where_the_curve_stays_close(result, tolerance):
    base = miou(result, "baseline")
    for m, first in frames_to_baseline(result, "stream", tolerance).items():
        close = {k: miou(result, "stream", m, k) >= base - tolerance for k in range(1, FRAMES + 1)}
        if first is None:
            assert not close[FRAMES]
        else:
            assert all(close[k] for k in range(first, FRAMES + 1))
            assert first == 1 or not close[first - 1]
