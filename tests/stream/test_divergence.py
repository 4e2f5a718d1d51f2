"""A diverging frame (NaN/Inf input, exploding residual) is reported, the stream resets and goes
on."""

from __future__ import annotations

import math

import pytest
import torch

from streamdeq.solvers import SolverStatus, solve
from streamdeq.stream import ResetReason, StreamDEQ

from .conftest import TinyDEQ, normalise, states_close


class ExplodingDEQ(TinyDEQ):
    """TinyDEQ whose f becomes an expansion (z -> 4 z + 1) while ``explode`` is set."""

    explode = False

    def f(self, z, injection):
        if self.explode:
            return [4.0 * t + 1.0 for t in z]
        return super().f(z, injection)


def _bad_frame(value: float) -> torch.Tensor:
    return torch.full((3, 16, 24), value)


@torch.no_grad()
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_frame_is_reported_and_the_stream_resets(model, clip, value):
    stream = StreamDEQ(model, iters=2)
    stream.step(clip[0])
    previous = stream.state
    bad = stream.step(_bad_frame(value))
    assert bad.info.diverged
    assert bad.info.status is SolverStatus.DIVERGED
    assert torch.isfinite(bad.output).all()  # the output falls back to the start point's
    torch.testing.assert_close(bad.output, model.head(previous)[0])
    assert stream.state is None

    after = stream.step(clip[1])
    assert after.info.reset is ResetReason.DIVERGENCE
    assert not after.info.diverged
    injection = model.inject(normalise(clip[1]))
    expected = solve(model.f, model.init_state(injection), (injection,), max_iter=2)
    states_close(stream.state, expected.z)
    for frame in clip[2:]:
        info = stream.step(frame).info
        assert not info.diverged and info.reset is None
        assert math.isfinite(info.residual_after)


@torch.no_grad()
def test_nan_on_the_first_frame_is_survived(model, clip):
    stream = StreamDEQ(model, iters=2)
    assert stream.step(_bad_frame(float("nan"))).info.diverged
    assert stream.step(clip[0]).info.reset is ResetReason.DIVERGENCE
    assert not stream.step(clip[1]).info.diverged


@torch.no_grad()
def test_exploding_residual_is_divergence(clip):
    model = ExplodingDEQ()
    stream = StreamDEQ(model, iters=12, solver="fixed_point")
    stream.step(clip[0])
    model.explode = True
    info = stream.step(clip[1]).info
    assert info.diverged and info.status is SolverStatus.DIVERGED
    model.explode = False
    assert stream.step(clip[2]).info.reset is ResetReason.DIVERGENCE
    assert not stream.step(clip[3]).info.diverged


@torch.no_grad()
def test_residual_above_diverge_residual_is_divergence(model, clip):
    stream = StreamDEQ(model, iters=1, diverge_residual=0.5)
    info = stream.step(clip[0]).info  # from zeros with M = 1: relative residual 1.0
    assert info.diverged and info.status is SolverStatus.MAX_ITER
    assert stream.step(clip[1]).info.reset is ResetReason.DIVERGENCE


@torch.no_grad()
def test_divergence_threshold_can_be_turned_off(model, clip):
    stream = StreamDEQ(model, iters=1, diverge_residual=math.inf)
    assert not stream.step(clip[0]).info.diverged


@torch.no_grad()
@pytest.mark.parametrize("mode", ["keyframe", "reference", "baseline"])
def test_every_mode_survives_a_nan_frame(model, clip, mode):
    stream = StreamDEQ(model, mode=mode, **({} if mode == "baseline" else {"iters": 2}))
    stream.step(clip[0])
    assert stream.step(_bad_frame(float("nan"))).info.diverged
    info = stream.step(clip[1]).info
    assert info.reset is ResetReason.DIVERGENCE and not info.diverged
    if mode == "keyframe":
        assert info.iters == model.config.f_thres
