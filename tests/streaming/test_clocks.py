"""Clocks: simulated time is deterministic and is what the time budget learns; real time is
ordered."""

from __future__ import annotations

import random

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.experiments.schemes import Scheme
from streamdeq.stream.budget import FrameTiming
from streamdeq.streaming import (
    LatencyProfile,
    LinearCost,
    RealClock,
    SimulatedClock,
    run_online,
)
from streamdeq.streaming.clocks import MeasuredCost, ProfileCost
from streamdeq.streaming.profiles import ProfileEntry
from tests.stream.conftest import TinyDEQ, panning_scene


@pytest.fixture(scope="module")
def tiny():
    return TinyDEQ(f_thres=4)  # a short full solve keeps the baseline cheap


@pytest.fixture(scope="module")
def frames():
    return panning_scene(seed=1, frames=10)


def noisy_profile() -> LatencyProfile:
    """Steps of 2 evaluations cost 80-160 ms; others follow 40 + 20 ms x evaluations."""
    return LatencyProfile(
        model="tiny",
        size=(16, 24),
        device="cpu",
        entries=(
            ProfileEntry("stream M=2", "stream", 2, 2, (80.0, 100.0, 160.0), (40.0, 50.0, 80.0)),
            ProfileEntry("stream M=4", "stream", 4, 4, (120.0,), (80.0,)),
        ),
    )


def run(tiny, frames, clock, scheme=None, **options):
    scheme = scheme or Scheme("stream", 2)
    return run_online(tiny, frames, 10.0, scheme, scheduler="latest", clock=clock, **options)


def test_same_seed_same_run_bit_for_bit(tiny, frames):
    first = run(tiny, frames, SimulatedClock(noisy_profile(), seed=3))
    again = run(tiny, frames, SimulatedClock(noisy_profile(), seed=3))
    assert [(o.input_index, o.finish_s, o.latency_ms) for o in first] == [
        (o.input_index, o.finish_s, o.latency_ms) for o in again
    ]
    assert all(torch.equal(a.output, b.output) for a, b in zip(first, again, strict=True))


def test_a_clock_reused_restarts_its_draws(tiny, frames):
    clock = SimulatedClock(noisy_profile(), seed=3)
    first = run(tiny, frames, clock)
    again = run(tiny, frames, clock)
    assert [o.finish_s for o in first] == [o.finish_s for o in again]


def test_another_seed_draws_other_costs(tiny, frames):
    runs = [
        [o.latency_ms for o in run(tiny, frames, SimulatedClock(noisy_profile(), seed=s))]
        for s in range(3)
    ]
    assert len({tuple(r) for r in runs}) > 1
    assert all(ms in (80.0, 100.0, 160.0) for r in runs for ms in r)


def test_perf_factor_divides_the_cost(tiny, frames):
    slow = run(tiny, frames, SimulatedClock(LinearCost(100.0)), scheme=Scheme("baseline"))
    fast = run(
        tiny, frames, SimulatedClock(LinearCost(100.0), perf_factor=2.0), scheme=Scheme("baseline")
    )
    assert [o.latency_ms for o in slow] == [100.0] * len(slow)
    assert [o.latency_ms for o in fast] == [50.0] * len(fast)
    assert len(fast) == len(frames)  # 50 ms < 100 ms between frames: nothing skipped


def test_time_budget_learns_the_simulated_cost_not_the_wall_time(tiny, frames):
    # the tiny model takes about a millisecond a step: learnt from wall time, a 50 ms budget
    # would buy the cap (N = 4 here, so it is raised to 12); learnt from the simulated
    # 10 + 10 ms x M, about 4
    clock = SimulatedClock(LinearCost(10.0, 10.0))
    options = {"budget_ms": 50.0, "max_iter_cap": 12}
    out = run(tiny, frames, clock, scheme=Scheme("stream"), stream_options=options)
    # the warm-up before the clock starts learnt the simulated costs: the first timed frame
    # is already planned from them
    assert all(3 <= o.iters <= 5 for o in out)
    mean_ms = sum(o.latency_ms for o in out) / len(out)
    assert mean_ms == pytest.approx(50.0, abs=8.0)
    cold = run(tiny, frames, clock, scheme=Scheme("stream"), stream_options=options, warmup=0)
    assert cold[0].iters == 1  # without a warm-up nothing is learnt before the first frame


def test_real_clock_finish_times_are_ordered_and_after_arrival(tiny, frames):
    out = run_online(tiny, frames[:6], 50.0, Scheme("stream", 2), "latest", RealClock(), warmup=1)
    finishes = [o.finish_s for o in out]
    assert finishes == sorted(finishes)
    assert all(o.finish_s >= o.input_index / 50.0 for o in out)
    assert [o.input_index for o in out] == sorted({o.input_index for o in out})


def test_real_clock_waits_by_sleeping():
    now = [10.0]
    clock = RealClock(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    clock.start()
    clock.wait_until(0.5)
    assert clock.now() == pytest.approx(0.5)
    clock.wait_until(0.2)  # passed: no wait
    assert clock.now() == pytest.approx(0.5)


def test_real_clock_refuses_reading_before_start():
    with pytest.raises(SettingsError, match="start"):
        RealClock().now()


def test_profile_cost_prices_a_batch_step_alike():
    timings = [FrameTiming(1.0, 0.5, 2, 2), FrameTiming(1.0, 0.5, 4, 4)]
    priced = ProfileCost(noisy_profile()).price(timings, random.Random(0))
    assert priced[0].latency_ms == priced[1].latency_ms
    # the most evaluations of the step (4) and no batch entries: 2 streams cost twice one
    assert priced[0].latency_ms == 2 * 120.0


def test_measured_cost_keeps_the_measurement():
    timings = [FrameTiming(7.0, 3.0, 2, 2)]
    assert MeasuredCost().price(timings, random.Random(0)) == timings


def test_simulated_clock_rejects_what_is_not_a_cost():
    with pytest.raises(SettingsError, match="profile"):
        SimulatedClock(profile="h200.json")
    with pytest.raises(SettingsError, match="perf_factor"):
        SimulatedClock(perf_factor=0)
