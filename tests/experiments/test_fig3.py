from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments import fig3

from .conftest import F_THRES, FRAMES


@pytest.fixture(scope="module")
def result(model, clips):
    return fig3(model, clips, iters=(1, F_THRES))


def test_one_row_per_scheme_m_and_frame_averaged_over_clips(result, clips):
    assert len(result.rows) == 2 * 2 * FRAMES
    assert {r["clips"] for r in result.rows} == {len(clips)}
    assert {(r["mode"], r["M"]) for r in result.rows} == {
        (mode, m) for mode in ("keyframe", "stream") for m in (1, F_THRES)
    }


def test_keyframe_first_frame_is_the_full_solve(result):
    first = [r["distance"] for r in result.rows if r["mode"] == "keyframe" and r["frame"] == 0]
    assert first == [0.0, 0.0]


def test_stream_with_m_equal_n_starts_exactly_at_the_baseline(result):
    # Eq. 5's first frame is N iterations from zeros when M = N: the baseline itself
    row = next(r for r in result.rows if r["mode"] == "stream" and r["M"] == F_THRES)
    assert row["frame"] == 0 and row["distance"] == 0.0


def test_stream_with_one_iteration_starts_away_from_the_reference(result):
    row = next(r for r in result.rows if r["mode"] == "stream" and r["M"] == 1)
    assert row["distance"] > 0.01


def test_iterations_must_be_positive_integers(model, clips):
    with pytest.raises(SettingsError, match="iterations per frame"):
        fig3(model, clips, iters=(0,))
