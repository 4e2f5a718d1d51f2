"""Schedulers on a toy device whose every step costs the same: which frames run, and when.

Frames arrive every 0.25 s (4 fps, exact in binary floating point); times computed by hand.
"""

from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments.schemes import Scheme
from streamdeq.streaming import LinearCost, SimulatedClock, run_online
from streamdeq.streaming.schedulers import (
    Pick,
    ShrinkingTail,
    latest_arrived,
    make_scheduler,
)
from tests.stream.conftest import TinyDEQ, panning_scene

FPS = 4.0
ARRIVALS = [i / FPS for i in range(10)]
#: 2.5 frame intervals per step, whatever the step does
SLOW = LinearCost(overhead_ms=625.0)


@pytest.fixture(scope="module")
def tiny():
    return TinyDEQ(f_thres=4)  # a short full solve keeps the baseline cheap


@pytest.fixture(scope="module")
def frames():
    return panning_scene(seed=1, frames=10)


def run(tiny, frames, scheduler, cost=SLOW, scheme=None):
    scheme = scheme or Scheme("stream", 2)
    return run_online(
        tiny, frames, FPS, scheme, scheduler=scheduler, clock=SimulatedClock(cost), warmup=0
    )


def test_every_frame_processes_all_in_order_and_the_lag_grows(tiny, frames):
    out = run(tiny, frames, "every")
    assert [o.input_index for o in out] == list(range(10))
    assert [o.finish_s for o in out] == [0.625 * (k + 1) for k in range(10)]
    lags = [o.finish_s - ARRIVALS[o.input_index] for o in out]
    assert lags == [0.625 + 0.375 * k for k in range(10)]  # a queue builds up
    assert out[-1].finish_s > ARRIVALS[-1]  # the queue is finished after the last arrival


def test_latest_skips_stale_frames(tiny, frames):
    out = run(tiny, frames, "latest")
    # free at 0.625 (frames 0-2 arrived), 1.25 (0-5), 1.875 (0-7), 2.5 (all)
    assert [o.input_index for o in out] == [0, 2, 5, 7, 9]
    assert [o.finish_s for o in out] == [0.625, 1.25, 1.875, 2.5, 3.125]


def test_shrinking_tail_idles_for_the_next_frame(tiny, frames):
    out = run(tiny, frames, "shrinking-tail")
    # free half-way into an interval, a step of 2.5 intervals would end at its start:
    # tail(t + r) = 0 < tail(t) = 0.5, so it waits for the next frame each time
    assert [o.input_index for o in out] == [0, 3, 6, 9]
    assert [o.finish_s for o in out] == [0.625, 1.375, 2.125, 2.875]


def test_shrinking_tail_runs_at_once_when_the_tail_grows():
    scheduler = ShrinkingTail()
    scheduler.observe(0.0, 0.3)  # 1.2 intervals a step
    # free at 0.3: tail 0.2 now, 0.4 at the finish -> no idling, the latest frame now
    assert scheduler.pick(0.3, 0, ARRIVALS) == Pick(1, 0.3)
    scheduler.reset()
    scheduler.observe(0.0, 0.625)
    assert scheduler.pick(0.625, 0, ARRIVALS) == Pick(3, 0.75)


def test_shrinking_tail_does_not_wait_past_the_last_frame():
    scheduler = ShrinkingTail()
    scheduler.observe(0.0, 0.625)
    assert scheduler.pick(2.375, 5, ARRIVALS) == Pick(9, 2.375)


def test_fit_chooses_m_that_finishes_before_the_next_frame(tiny, frames):
    cost = LinearCost(overhead_ms=50.0, ms_per_eval=45.0)
    out = run(tiny, frames, make_scheduler("fit"), cost=cost, scheme=Scheme("stream", 8))
    assert [o.input_index for o in out] == list(range(10))
    for o in out:
        assert o.finish_s < ARRIVALS[o.input_index] + 0.25
    # first frame: nothing learned, min_iters; then floor((0.9 * 250 - 50) / 45) = 3
    assert [o.iters for o in out] == [1] + [3] * 9
    assert out[1].finish_s == pytest.approx(0.25 + 0.185)


def test_fit_uses_the_whole_interval_with_full_headroom(tiny, frames):
    from streamdeq.streaming import FitInterval

    cost = LinearCost(overhead_ms=50.0, ms_per_eval=45.0)
    out = run(tiny, frames, FitInterval(headroom=1.0), cost=cost, scheme=Scheme("stream", 8))
    assert [o.iters for o in out[1:]] == [4] * 9  # floor(200 / 45); 5 would end at 275 ms
    assert all(o.finish_s < ARRIVALS[o.input_index] + 0.25 for o in out)


def test_fit_caps_m_at_the_schemes_iters(tiny, frames):
    cost = LinearCost(overhead_ms=10.0, ms_per_eval=1.0)
    out = run(tiny, frames, "fit", cost=cost, scheme=Scheme("stream", 3))
    assert max(o.iters for o in out) == 3


def test_fit_refuses_schemes_without_m(tiny, frames):
    with pytest.raises(SettingsError, match="fit scheduler"):
        run(tiny, frames, "fit", scheme=Scheme("baseline"))


def test_unknown_scheduler_names_the_known_ones():
    with pytest.raises(SettingsError, match="shrinking-tail"):
        make_scheduler("lastest")


def test_latest_arrived_counts_a_frame_arriving_now():
    assert latest_arrived(ARRIVALS, -0.1) == -1
    assert latest_arrived(ARRIVALS, 0.5) == 2
    assert latest_arrived(ARRIVALS, 0.74) == 2
    assert latest_arrived(ARRIVALS, 100.0) == 9


def test_fit_plans_the_first_frame_from_the_costs_learnt_in_warm_up(tiny, frames):
    """The warm-up before the clock starts teaches the budget what a step costs (priced as the
    clock prices it), so the first timed frame is not spent at min_iters from zeros."""
    cost = LinearCost(overhead_ms=50.0, ms_per_eval=45.0)
    clock = SimulatedClock(cost)
    out = run_online(tiny, frames, FPS, Scheme("stream", 8), scheduler="fit", clock=clock)
    assert [o.iters for o in out] == [3] * 10  # floor((0.9 * 250 - 50) / 45) from the start
    again = run_online(tiny, frames, FPS, Scheme("stream", 8), scheduler="fit", clock=clock)
    assert [o.finish_s for o in again] == [o.finish_s for o in out]
