from __future__ import annotations

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.experiments import fig2, relative_distance
from streamdeq.solvers import solve
from streamdeq.stream.frames import PreprocessSettings, prepare_frame

from .conftest import F_THRES, FRAMES


def full_solve(model, frame) -> list[torch.Tensor]:
    """z* of one frame computed here without the stream engine: N Broyden steps from zeros."""
    x = prepare_frame(
        frame, PreprocessSettings(), model.input_multiple, torch.device("cpu"), torch.float32
    ).x
    with torch.no_grad():
        injection = model.inject(x)
        z0 = model.init_state(injection)
        return solve(model.f, z0, (injection,), method="broyden", max_iter=F_THRES).z


@pytest.fixture(scope="module")
def result(model, clips):
    return fig2(model, clips, steps=(1, 2))


def test_rows_cover_both_starts_at_every_step_over_all_frames(result, clips):
    assert [(r["start"], r["step"]) for r in result.rows] == [
        (start, k) for start in ("previous reference", "zeros") for k in (0, 1, 2)
    ]
    assert {r["samples"] for r in result.rows} == {len(clips) * (FRAMES - 1)}


def test_step_zero_from_the_previous_reference_is_the_distance_between_full_solves(
    result, model, clips
):
    clip = clips[0]
    for row in result.meta["per_frame"]:
        if row["clip"] != clip.name or row["step"] != 0 or row["start"] != "previous reference":
            continue
        t = row["frame"]
        z_prev, z_now = full_solve(model, clip.frames[t - 1]), full_solve(model, clip.frames[t])
        assert row["distance"] == pytest.approx(relative_distance(z_prev, z_now), rel=1e-4)


def test_step_zero_from_zeros_is_distance_one(result):
    assert [r["distance"] for r in result.rows if r["step"] == 0 and r["start"] == "zeros"] == [1.0]


def test_steps_must_be_positive(model, clips):
    with pytest.raises(SettingsError, match="steps"):
        fig2(model, clips, steps=(0, 1))
