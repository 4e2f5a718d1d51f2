"""The online runners: what is kept, what a skipped frame does to the state, batched ticks."""

from __future__ import annotations

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.experiments.schemes import Scheme
from streamdeq.stream import StreamDEQ
from streamdeq.streaming import LinearCost, SimulatedClock, run_online, run_online_batch
from tests.stream.conftest import TinyDEQ, panning_scene

SLOW = SimulatedClock(LinearCost(overhead_ms=625.0))  # 2.5 intervals at 4 fps


@pytest.fixture(scope="module")
def tiny():
    return TinyDEQ(f_thres=4)  # a short full solve keeps the baseline cheap


@pytest.fixture(scope="module")
def frames():
    return panning_scene(seed=1, frames=10)


def test_a_skipped_frame_leaves_the_state_to_the_next_processed_one(tiny, frames):
    out = run_online(tiny, frames, 4.0, Scheme("stream", 2), "latest", SLOW)
    processed = [o.input_index for o in out]
    assert processed == [0, 2, 5, 7, 9]
    # the same frames stepped in turn through one stream: the gap is just not seen
    stream = Scheme("stream", 2).open(tiny)
    for record, index in zip(out, processed, strict=True):
        assert torch.equal(record.output, stream.step(frames[index]).output)


def test_keep_outputs_by_index_keeps_only_those(tiny, frames):
    out = run_online(tiny, frames, 4.0, Scheme("stream", 2), "every", SLOW, keep_outputs={2, 5})
    assert [o.input_index for o in out if o.output is not None] == [2, 5]
    assert all(o.latency_ms == 625.0 for o in out)  # the timing of every step is kept


def test_keep_outputs_by_function_stores_what_it_returns(tiny, frames):
    def labels(index, output):
        return output.argmax(0) if index % 2 == 0 else None

    out = run_online(tiny, frames, 4.0, Scheme("stream", 1), "every", SLOW, keep_outputs=labels)
    assert [o.output.shape for o in out if o.output is not None] == [(8, 12)] * 5  # h/2, w/2
    none = run_online(tiny, frames, 4.0, Scheme("stream", 1), "every", SLOW, keep_outputs=False)
    assert all(o.output is None for o in none)


def test_records_name_their_stream_and_iterations(tiny, frames):
    out = run_online(tiny, frames[:3], 4.0, Scheme("baseline"), "every", SLOW, stream_id="cam")
    assert {(o.stream, o.iters) for o in out} == {("cam", 4)}


def test_timestamps_replace_the_frame_rate(tiny, frames):
    times = [0.0, 0.1, 0.2, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 4.0]
    out = run_online(tiny, frames, 4.0, Scheme("stream", 2), "latest", SLOW, timestamps=times)
    # free at 0.625 (frames 0-2 in), at 1.25 nothing new: idle until 2.0; free at 2.625
    # (up to frame 8 in), at 3.25 nothing new: idle until 4.0
    assert [(o.input_index, o.finish_s) for o in out] == [
        (0, 0.625),
        (2, 1.25),
        (3, 2.625),
        (8, 3.25),
        (9, 4.625),
    ]


@pytest.mark.parametrize(
    ("timestamps", "fps", "match"),
    [
        ([0.0, 0.2, 0.1], 4.0, "increasing"),
        ([0.0, 0.1], 4.0, "3 frames"),
        (None, 0.0, "fps"),
    ],
)
def test_bad_arrivals_are_one_line_errors(tiny, frames, timestamps, fps, match):
    with pytest.raises(SettingsError, match=match):
        run_online(tiny, frames[:3], fps, Scheme("stream", 2), clock=SLOW, timestamps=timestamps)


def test_bad_keep_outputs_is_refused(tiny, frames):
    with pytest.raises(SettingsError, match="keep_outputs"):
        run_online(tiny, frames[:2], 4.0, Scheme("stream", 2), clock=SLOW, keep_outputs=3)


def test_batched_ticks_take_each_streams_latest_frame_and_share_the_finish(tiny, frames):
    clock = SimulatedClock(LinearCost(overhead_ms=100.0, ms_per_eval=60.0))
    streams = {"a": frames, "b": frames[:5]}
    out = run_online_batch(tiny, streams, 4.0, Scheme("baseline"), clock=clock)
    ticks = {}
    for o in out:
        ticks.setdefault(o.finish_s, []).append((o.stream, o.input_index))
    # 100 + 60 x 4 = 340 ms a tick (baseline, N = 4); stream b has frames 0-4 only
    assert list(ticks.values()) == [
        [("a", 0), ("b", 0)],
        [("a", 1), ("b", 1)],
        [("a", 2), ("b", 2)],
        [("a", 4), ("b", 4)],
        [("a", 5)],
        [("a", 6)],
        [("a", 8)],
        [("a", 9)],
    ]
    assert list(ticks) == pytest.approx([0.34 * k for k in range(1, 9)])


def test_batched_outputs_equal_single_streams(tiny, frames):
    clock = SimulatedClock(LinearCost(overhead_ms=100.0))
    out = run_online_batch(
        tiny, {"a": frames[:4], "b": frames[4:8]}, 4.0, Scheme("stream", 2), clock
    )
    for sid, clip in (("a", frames[:4]), ("b", frames[4:8])):
        stream = StreamDEQ(tiny, **Scheme("stream", 2).settings())
        mine = [o for o in out if o.stream == sid]
        for record in mine:
            expected = stream.step(clip[record.input_index]).output
            torch.testing.assert_close(record.output, expected)


SCHEMES = {
    "baseline": (Scheme("baseline"), {}),
    "non-streaming M=2": (Scheme("baseline", 2), {}),
    "stream M=2": (Scheme("stream", 2), {}),
    "keyframe M=2": (Scheme("keyframe", 2), {}),
    "reference M=1": (Scheme("reference", 1), {}),
    "tolerance": (Scheme("stream"), {"tol": 1e-2, "max_iter_cap": 4}),
    "time budget": (Scheme("stream"), {"budget_ms": 300.0, "max_iter_cap": 4}),
}


@pytest.mark.parametrize("scheduler", ["every", "latest", "shrinking-tail"])
@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_scheme_runs_under_every_scheduler(tiny, frames, name, scheduler):
    scheme, options = SCHEMES[name]
    clock = SimulatedClock(LinearCost(overhead_ms=100.0, ms_per_eval=50.0))
    out = run_online(tiny, frames[:4], 4.0, scheme, scheduler, clock, stream_options=options)
    finishes = [o.finish_s for o in out]
    assert finishes == sorted(finishes) and len(set(finishes)) == len(finishes)
    assert all(o.finish_s > o.input_index / 4.0 for o in out)
    assert out[-1].input_index == 3  # the last frame is always processed
