"""Iteration controllers, the time budget above all: it must hold the mean latency at the
budget when the machine slows down or speeds up (simulated with a fake clock)."""

from __future__ import annotations

import statistics

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.stream import (
    BudgetSettings,
    FixedIterations,
    FrameTiming,
    IterationPlan,
    StreamBatch,
    StreamDEQ,
    TimeBudget,
    ToleranceIterations,
)

from .conftest import FakeClock, TinyDEQ, panning_scene


def _timing(per_eval_ms: float, overhead_ms: float, iters: int, extra_evals: int = 0):
    evals = iters + extra_evals
    solve_ms = per_eval_ms * evals
    return FrameTiming(overhead_ms + solve_ms, solve_ms, evals, iters)


def test_fixed_and_tolerance_controllers_plan_what_they_are_given():
    assert FixedIterations(3).plan() == IterationPlan(3)
    assert ToleranceIterations(1e-3, 20).plan() == IterationPlan(20, 1e-3)


def test_time_budget_starts_at_min_iters():
    assert TimeBudget(10.0, 30, BudgetSettings(min_iters=2)).plan().max_iter == 2


def test_time_budget_plans_what_fits_the_budget():
    budget = TimeBudget(10.0, 30, BudgetSettings(payback=0.0))
    budget.observe(_timing(per_eval_ms=1.0, overhead_ms=2.0, iters=1))
    assert budget.plan().max_iter == 8


def test_time_budget_dithers_a_fractional_M_so_the_mean_meets_the_budget():
    budget = TimeBudget(10.0, 30, BudgetSettings(payback=0.0))
    budget.observe(_timing(per_eval_ms=4.0, overhead_ms=0.0, iters=2))
    plans = [budget.plan().max_iter for _ in range(8)]
    assert set(plans) == {2, 3}
    assert statistics.mean(plans) == pytest.approx(2.5)


def test_time_budget_counts_evaluations_beyond_the_iterations():
    budget = TimeBudget(10.0, 30, BudgetSettings(payback=0.0))
    budget.observe(_timing(per_eval_ms=1.0, overhead_ms=2.0, iters=4, extra_evals=1))
    assert budget.plan().max_iter == 7  # 2 + 1 * (7 + 1) = 10


def test_time_budget_stays_within_min_and_cap():
    budget = TimeBudget(10.0, 5, BudgetSettings(payback=0.0, min_iters=2))
    budget.observe(_timing(per_eval_ms=0.01, overhead_ms=1.0, iters=3))
    assert budget.plan().max_iter == 5
    budget = TimeBudget(10.0, 5, BudgetSettings(smoothing=1.0, payback=0.0, min_iters=2))
    budget.observe(_timing(per_eval_ms=50.0, overhead_ms=1.0, iters=3))
    assert budget.plan().max_iter == 2


def test_time_budget_pays_back_overspending():
    budget = TimeBudget(10.0, 30, BudgetSettings(payback=0.5, smoothing=1.0))
    budget.observe(FrameTiming(latency_ms=14.0, solve_ms=12.0, evals=12, iters=12))
    assert budget.target_ms() == pytest.approx(8.0)  # 10 + 0.5 * (10 - 14)
    assert budget.plan().max_iter == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"payback": 1.0}, "payback"),
        ({"payback": -0.1}, "payback"),
        ({"min_iters": 0}, "min_iters"),
        ({"min_iters": 1.5}, "min_iters"),
    ],
)
def test_budget_settings_are_checked(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        BudgetSettings(**kwargs)


def test_time_budget_rejects_bad_budgets_and_caps():
    with pytest.raises(SettingsError, match="budget_ms"):
        TimeBudget(0.0, 10)
    with pytest.raises(SettingsError, match="min_iters"):
        TimeBudget(10.0, 2, BudgetSettings(min_iters=3))


def _timed(f_thres: int = 12):
    """A TinyDEQ on a fake clock: 2 ms per frame for inject + head, ``eval_ms`` per f call."""
    clock = FakeClock()
    model = TinyDEQ(clock=clock, f_thres=f_thres)
    model.overhead_ms = 2.0
    return clock, model


def _run(step, model, frames, eval_ms):
    model.eval_ms = eval_ms
    return [step(frame) for frame in frames]


def _mean_latency(infos) -> float:
    return statistics.mean(i.latency_ms for i in infos)


@torch.no_grad()
def test_engine_holds_the_mean_latency_through_a_slowdown_and_a_speedup():
    clock, model = _timed()
    stream = StreamDEQ(model, budget_ms=10.0, max_iter_cap=30, clock=clock)
    frames = panning_scene(1, 90)
    for eval_ms, expected_iters in [(1.0, 8.0), (2.5, 3.2), (0.5, 16.0)]:
        settled = _run(lambda f: stream.step(f).info, model, frames, eval_ms)[30:]
        assert _mean_latency(settled) == pytest.approx(10.0, rel=0.03)
        assert statistics.mean(i.iters for i in settled) == pytest.approx(expected_iters, rel=0.05)
        assert max(i.latency_ms for i in settled) <= 10.0 + eval_ms + 1e-6  # dithering


@torch.no_grad()
def test_engine_recovers_within_a_few_frames_of_a_slowdown():
    clock, model = _timed()
    stream = StreamDEQ(model, budget_ms=10.0, max_iter_cap=30, clock=clock)
    frames = panning_scene(1, 40)
    _run(lambda f: stream.step(f).info, model, frames, 1.0)
    after = _run(lambda f: stream.step(f).info, model, frames, 2.0)
    assert after[0].latency_ms > 15.0  # the first slow frame overshoots ...
    assert _mean_latency(after[10:]) == pytest.approx(10.0, rel=0.05)  # ... then it adapts


@torch.no_grad()
def test_keyframe_overspend_is_paid_back():
    clock, model = _timed(f_thres=20)
    stream = StreamDEQ(model, mode="keyframe", budget_ms=10.0, max_iter_cap=30, clock=clock)
    infos = _run(lambda f: stream.step(f).info, model, panning_scene(1, 60), 1.0)
    assert infos[0].latency_ms == pytest.approx(22.0)  # N = 20 iterations
    assert _mean_latency(infos) <= 10.0 * 1.02


@torch.no_grad()
def test_budgeted_streams_in_a_batch_hold_the_shared_latency():
    clock, model = _timed()
    batch = StreamBatch(model, budget_ms=10.0, max_iter_cap=30, clock=clock)
    batch.add_stream("a")
    batch.add_stream("b")
    frames = panning_scene(1, 60)
    for eval_ms in (1.0, 2.0):
        steps = _run(lambda f: batch.step({"a": f, "b": f}), model, frames, eval_ms)
        assert _mean_latency([s["a"].info for s in steps[30:]]) == pytest.approx(10.0, rel=0.05)


@torch.no_grad()
def test_latency_and_solve_time_come_from_the_clock():
    clock = FakeClock()
    model = TinyDEQ(clock=clock)
    info = StreamDEQ(model, iters=3, clock=clock).step(panning_scene(1, 1)[0]).info
    assert info.solve_ms == pytest.approx(3.0)
    assert info.latency_ms == pytest.approx(4.0)
