"""The multi-stream runner: the same results as each stream alone, in shared calls."""

from __future__ import annotations

import math

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.stream import (
    BudgetSettings,
    ResetReason,
    StreamBatch,
    StreamDEQ,
    UnknownStreamError,
)

from .conftest import panning_scene

TOL = {"atol": 1e-5, "rtol": 1e-5}


def _alone(model, frames, **settings):
    stream = StreamDEQ(model, **settings)
    return [stream.step(frame) for frame in frames]


def _same(batched, single):
    torch.testing.assert_close(batched.output, single.output, **TOL)
    a, b = batched.info, single.info
    assert (a.index, a.iters, a.nfev, a.reset, a.diverged, a.shot_change, a.status) == (
        b.index,
        b.iters,
        b.nfev,
        b.reset,
        b.diverged,
        b.shot_change,
        b.status,
    )
    for x, y in [(a.residual_before, b.residual_before), (a.residual_after, b.residual_after)]:
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-4, abs=1e-6)


@torch.no_grad()
def test_batch_equals_streams_run_alone(model):
    clips = {name: panning_scene(seed, 6) for seed, name in enumerate("abc", start=1)}
    batch = StreamBatch(model, iters=2)
    for name in clips:
        batch.add_stream(name)
    results = [batch.step({n: clip[t] for n, clip in clips.items()}) for t in range(6)]
    for name, clip in clips.items():
        for t, single in enumerate(_alone(model, clip, iters=2)):
            _same(results[t][name], single)


@torch.no_grad()
def test_streams_share_solver_calls(model):
    batch = StreamBatch(model, iters=3)
    clips = [panning_scene(seed, 2) for seed in range(4)]
    for i in range(4):
        batch.add_stream(i)
    before = model.f_calls
    batch.step({i: clips[i][0] for i in range(4)})
    assert model.f_calls - before == 3


SETTINGS = {
    "m1": {"iters": 1},
    "m4": {"iters": 4},
    "key": {"iters": 2, "mode": "keyframe"},
    "ref": {"iters": 2, "mode": "reference"},
    "base": {"mode": "baseline"},
    "tol": {"tol": 0.05, "max_iter_cap": 8},
    "anderson": {"iters": 2, "solver": "anderson"},
    "boost": {"iters": 2, "shot_policy": "boost"},
}


@torch.no_grad()
def test_streams_with_different_settings_in_one_batch(model):
    clips = {name: panning_scene(seed, 5) for seed, name in enumerate(SETTINGS, start=1)}
    batch = StreamBatch(model)
    for name, settings in SETTINGS.items():
        batch.add_stream(name, **settings)
    results = [batch.step({n: clip[t] for n, clip in clips.items()}) for t in range(5)]
    for name, clip in clips.items():
        for t, single in enumerate(_alone(model, clip, **SETTINGS[name])):
            _same(results[t][name], single)


@torch.no_grad()
def test_streams_join_leave_idle_and_change_size(model):
    small = panning_scene(1, 12)
    other = panning_scene(2, 12)
    tall = panning_scene(3, 12, height=20, width=12)
    batch = StreamBatch(model, iters=2)
    schedule = {  # step -> {stream: frame}
        0: {"a": small[0]},
        1: {"a": small[1]},
        2: {"a": small[2], "b": other[0]},
        3: {"b": other[1], "c": tall[0]},  # a idles this step
        4: {"a": small[3], "b": other[2], "c": tall[1]},
        5: {"b": other[3], "c": tall[2]},  # a has left
        6: {"b": tall[3], "c": tall[3]},  # b changes frame size
    }
    got: dict[str, list] = {"a": [], "b": [], "c": []}
    for step, frames in schedule.items():
        for name in frames:
            if name not in batch:
                batch.add_stream(name)
        got_step = batch.step(frames)
        assert set(got_step) == set(frames)
        for name, result in got_step.items():
            got[name].append(result)
        if step == 4:
            batch.remove_stream("a")
    fed = {name: [f[name] for f in schedule.values() if name in f] for name in got}
    for name, frames in fed.items():
        for batched, single in zip(got[name], _alone(model, frames, iters=2)):
            _same(batched, single)
    assert got["b"][-1].info.reset is ResetReason.SIZE_CHANGE
    assert batch.stream_ids == ["b", "c"]


@torch.no_grad()
def test_a_diverging_stream_does_not_touch_the_others(model):
    clips = {name: panning_scene(seed, 5) for seed, name in enumerate("abc", start=1)}
    poisoned = list(clips["b"])
    poisoned[2] = torch.full((3, 16, 24), float("nan"))
    batch = StreamBatch(model, iters=2)
    for name in clips:
        batch.add_stream(name)
    feeds = {**clips, "b": poisoned}
    results = [batch.step({n: clip[t] for n, clip in feeds.items()}) for t in range(5)]
    for name in "ac":
        for t, single in enumerate(_alone(model, clips[name], iters=2)):
            _same(results[t][name], single)
            assert not results[t][name].info.diverged
    assert results[2]["b"].info.diverged
    assert results[3]["b"].info.reset is ResetReason.DIVERGENCE
    for t, single in enumerate(_alone(model, poisoned, iters=2)):
        _same(results[t]["b"], single)


@torch.no_grad()
def test_reset_of_one_stream(model):
    batch = StreamBatch(model, iters=2)
    clip = panning_scene(1, 3)
    batch.add_stream("a")
    batch.add_stream("b")
    batch.step({"a": clip[0], "b": clip[0]})
    batch.reset("a")
    out = batch.step({"a": clip[1], "b": clip[1]})
    assert out["a"].info.reset is ResetReason.MANUAL
    assert out["b"].info.reset is None
    assert batch.state_of("b") is not None


def test_empty_step_returns_nothing(model):
    assert StreamBatch(model).step({}) == {}


def test_stream_settings_come_from_the_batch_defaults(model):
    batch = StreamBatch(model, iters=3, shot_policy="reset")
    assert batch.add_stream("a").iters == 3
    assert batch.add_stream("b", iters=1).shots.policy == "reset"
    assert batch.settings_of("b").iters == 1
    assert len(batch) == 2 and "a" in batch


def test_batch_usage_errors(model):
    batch = StreamBatch(model)
    batch.add_stream("a")
    with pytest.raises(SettingsError, match="already in the batch"):
        batch.add_stream("a")
    with pytest.raises(UnknownStreamError, match="add it with add_stream"):
        batch.step({"b": panning_scene(1, 1)[0]})
    with pytest.raises(UnknownStreamError, match="no stream 'b'"):
        batch.remove_stream("b")
    with pytest.raises(SettingsError, match="mapping"):
        batch.step([panning_scene(1, 1)[0]])
    with pytest.raises(SettingsError, match="did you mean 'iters'"):
        batch.add_stream("c", iter=2)
    with pytest.raises(SettingsError, match="unknown stream setting"):
        StreamBatch(model, frobnicate=1)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tol": 1e-2}, {"iters": None, "tol": 1e-2}),
        ({"budget_ms": 20.0}, {"iters": None, "budget_ms": 20.0}),
        ({"mode": "baseline"}, {"iters": None, "mode": "baseline"}),
    ],
)
def test_a_streams_own_iteration_control_replaces_the_batch_iters(model, options, expected):
    settings = StreamBatch(model, iters=2).add_stream("b", **options)
    assert {name: getattr(settings, name) for name in expected} == expected


def test_a_streams_own_iters_replaces_the_batch_tol_and_its_cap(model):
    batch = StreamBatch(model, tol=1e-2, max_iter_cap=6)
    settings = batch.add_stream("b", iters=3)
    assert (settings.iters, settings.tol, settings.max_iter_cap) == (3, None, None)


def test_a_streams_own_iters_replaces_the_batch_budget_and_its_tuning(model):
    batch = StreamBatch(model, budget_ms=20.0, budget=BudgetSettings())
    settings = batch.add_stream("b", iters=3)
    assert (settings.iters, settings.budget_ms, settings.budget) == (3, None, None)


def test_a_streams_tol_keeps_the_batch_cap(model):
    settings = StreamBatch(model, budget_ms=20.0, max_iter_cap=6).add_stream("b", tol=1e-2)
    assert (settings.tol, settings.budget_ms, settings.max_iter_cap) == (1e-2, None, 6)


def test_iteration_controls_given_together_for_one_stream_still_conflict(model):
    with pytest.raises(SettingsError, match="iters and tol conflict"):
        StreamBatch(model, iters=2).add_stream("b", iters=3, tol=1e-2)
