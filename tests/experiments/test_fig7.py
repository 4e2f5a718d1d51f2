from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments import fig3, fig7

from .conftest import FRAMES


@pytest.fixture(scope="module")
def result(model, clips):
    return fig7(model, clips, iters=(2,))


def test_every_start_has_a_row_for_each_frame_after_the_first(result):
    assert {(r["start"], r["frame"]) for r in result.rows} == {
        (start, t) for start in ("other video", "same video", "zeros") for t in range(1, FRAMES)
    }
    assert all(r["miou"] is not None and 0.0 <= r["miou"] <= 1.0 for r in result.rows)


def test_same_video_start_is_the_keyframe_scheme(result, model, clips):
    keyframe = fig3(model, clips, iters=(2,))
    expected = {
        r["frame"]: r["distance"] for r in keyframe.rows if r["mode"] == "keyframe" and r["frame"]
    }
    same = {r["frame"]: r["distance"] for r in result.rows if r["start"] == "same video"}
    assert same == pytest.approx(expected, rel=1e-5)  # float noise only


def test_other_video_start_differs_from_same_video_start(result):
    first = {r["start"]: r["distance"] for r in result.rows if r["frame"] == 1}
    assert first["other video"] != first["same video"]


def test_needs_two_clips(model, clips):
    with pytest.raises(SettingsError, match="at least 2"):
        fig7(model, clips[:1], iters=(1,))
