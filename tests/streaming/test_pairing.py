"""The pairing rule of streaming perception, checked on schedules computed by hand."""

from __future__ import annotations

import random

import pytest

from streamdeq.errors import SettingsError
from streamdeq.streaming.pairing import Pair, pair_stream, pair_streams
from streamdeq.streaming.records import TimedOutput, arrival_times


def out(k: int, finish: float, stream: str = "a") -> TimedOutput:
    return TimedOutput(stream=stream, input_index=k, finish_s=finish, output=f"{stream}{k}")


def ks(pairs: list[Pair]) -> list[int | None]:
    return [p.input_index for p in pairs]


def test_an_output_finishing_exactly_at_the_query_time_counts():
    # fps 10: frame 1 arrives at 0.1 s; frame 0's output finishes exactly then
    pairs = pair_stream([out(0, 0.1)], [1], fps=10)
    assert ks(pairs) == [0]
    assert pairs[0].lag == 1


def test_an_output_finishing_after_the_query_time_does_not_count():
    pairs = pair_stream([out(0, 0.1001)], [1], fps=10)
    assert pairs[0].missed and pairs[0].output is None
    assert pairs[0].input_index is None and pairs[0].lag is None


def test_a_frame_before_any_output_is_a_miss_and_later_frames_are_answered():
    outputs = [out(0, 0.25)]  # fps 10: available from frame 3 (0.3 s) on
    pairs = pair_stream(outputs, [0, 1, 2, 3, 4], fps=10)
    assert ks(pairs) == [None, None, None, 0, 0]
    assert [p.lag for p in pairs] == [None, None, None, 3, 4]


def test_the_latest_finish_wins_whatever_the_input_or_list_order():
    # frame 2's output finishes at 0.35, frame 1's (slow) at 0.38: at 0.4 s (frame 4) the latest
    # finished is frame 1's, although frame 2 is the newer input; at 0.36 s it is frame 2's.
    # The list order is deliberately scrambled.
    outputs = [out(1, 0.38), out(0, 0.05), out(2, 0.35)]
    assert ks(pair_stream(outputs, [3, 4], fps=10)) == [0, 1]
    late_frame_3 = [0.0, 0.1, 0.2, 0.36]
    assert ks(pair_stream(outputs, [3], fps=10, arrivals=late_frame_3)) == [2]


def test_of_two_outputs_finishing_together_the_newer_input_wins():
    outputs = [out(2, 0.3), out(1, 0.3)]
    assert ks(pair_stream(outputs, [3], fps=10)) == [2]
    assert ks(pair_stream(list(reversed(outputs)), [3], fps=10)) == [2]


def test_outputs_of_another_stream_never_answer():
    outputs = [out(0, 0.0, "b"), out(1, 0.15, "a"), out(0, 0.05, "b"), out(2, 0.2, "b")]
    pairs = pair_streams(outputs, {"a": [0, 1, 2], "b": [0, 1, 2]}, fps=10)
    assert ks(pairs["a"]) == [None, None, 1]
    assert ks(pairs["b"]) == [0, 0, 2]


def test_pair_streams_misses_every_frame_of_a_stream_without_outputs():
    pairs = pair_streams([out(0, 0.0, "a")], {"c": [0, 5]}, fps=10)
    assert ks(pairs["c"]) == [None, None]


def test_pair_stream_refuses_outputs_of_two_streams():
    with pytest.raises(SettingsError, match="pair_streams"):
        pair_stream([out(0, 0.0, "a"), out(0, 0.0, "b")], [0], fps=10)


def test_eta_minus_one_allows_one_frame_of_latency():
    # each output finishes half a frame after its input arrives
    outputs = [out(k, (k + 0.5) / 10) for k in range(5)]
    assert ks(pair_stream(outputs, [1, 2, 3], fps=10, eta=0)) == [0, 1, 2]
    assert ks(pair_stream(outputs, [1, 2, 3], fps=10, eta=-1)) == [1, 2, 3]


def test_eta_minus_one_lets_the_next_frame_answer_with_a_negative_lag():
    # zero latency: by tau_g + 1/fps frame g + 1's own output is out
    outputs = [out(k, k / 10) for k in range(4)]
    pairs = pair_stream(outputs, [0, 1, 2], fps=10, eta=-1)
    assert ks(pairs) == [1, 2, 3]
    assert [p.lag for p in pairs] == [-1, -1, -1]


def test_positive_eta_queries_earlier():
    outputs = [out(k, k / 10) for k in range(4)]
    assert ks(pair_stream(outputs, [0, 2, 3], fps=10, eta=1)) == [None, 1, 2]


def test_annotated_frames_are_identified_by_stream_index_not_rank():
    # one frame in 30 annotated (Cityscapes); outputs of every frame, one and a half frames late
    fps = 30.0
    outputs = [out(k, (k + 1.5) / fps) for k in range(90)]
    pairs = pair_stream(outputs, [60, 0, 30], fps=fps)
    assert [p.frame for p in pairs] == [0, 30, 60]
    # frame g is answered by frame g - 2's output (finished at g - 0.5 frames); had the rank been
    # used, annotated frames 1 and 2 would have been queried at 1/30 s and 2/30 s instead
    assert ks(pairs) == [None, 28, 58]


def test_container_timestamps_replace_i_over_fps():
    # a variable-rate stream: frame 2 arrives late (0.3 s instead of 0.2 s)
    arrivals = [0.0, 0.1, 0.3, 0.4]
    outputs = [out(0, 0.05), out(1, 0.25), out(2, 0.32)]
    pairs = pair_stream(outputs, [1, 2, 3], fps=10, arrivals=arrivals)
    assert ks(pairs) == [0, 1, 2]
    # with i / fps, frame 2 (0.2 s) would still see only frame 0's output
    assert ks(pair_stream(outputs[:2], [2], fps=10)) == [0]


def test_a_frame_past_the_given_arrival_times_is_refused():
    with pytest.raises(SettingsError, match="past the stream's 2 arrival times"):
        pair_stream([], [2], fps=10, arrivals=[0.0, 0.1])


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0, 7.0, 60000 / 1001])
def test_a_zero_latency_run_pairs_every_frame_with_its_own_output(fps):
    count = 400
    # finish times as different clocks would compute the arrival: k / fps, k * (1 / fps), sums
    step = 1.0 / fps
    summed, total = [], 0.0
    for _ in range(count):
        summed.append(total)
        total += step
    for finishes in ([k / fps for k in range(count)], [k * step for k in range(count)], summed):
        outputs = [out(k, f) for k, f in enumerate(finishes)]
        pairs = pair_stream(outputs, range(count), fps=fps)
        assert [p.lag for p in pairs] == [0] * count
    arrivals = arrival_times(count, fps)
    pairs = pair_stream([out(k, arrivals[k]) for k in range(count)], range(count), fps=fps)
    assert [p.lag for p in pairs] == [0] * count


def _reference_rule(finishes: list[float], inputs: list[int], frames: int, fps: float, eta: float):
    """The toolkit's rule for a fully annotated sequence, written independently: walk the
    finish times (sorted) with one pointer; frame i takes the last output with f <= (i - eta)/fps."""
    paired, pointer = [], 0
    for i in range(frames):
        query = (i - eta) / fps
        while pointer < len(finishes) and finishes[pointer] <= query:
            pointer += 1
        paired.append(inputs[pointer - 1] if pointer else None)
    return paired


@pytest.mark.parametrize("eta", [0.0, -1.0])
def test_on_every_frame_annotated_the_rule_equals_the_reference_toolkits(eta):
    rng = random.Random(3)
    fps, frames = 30.0, 120
    # a serial detector: it takes the newest frame when free, runs 20-80 ms
    finishes, inputs, now = [], [], 0.0
    while True:
        k = int(now * fps)
        if k >= frames:
            break
        now = max(now, k / fps) + rng.uniform(0.02, 0.08)
        finishes.append(now)
        inputs.append(k)
    outputs = [out(k, f) for k, f in zip(inputs, finishes)]
    rng.shuffle(outputs)
    pairs = pair_stream(outputs, range(frames), fps=fps, eta=eta)
    assert ks(pairs) == _reference_rule(finishes, inputs, frames, fps, eta)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": [out(3, 0.1)], "annotated": [4]}, "before the frame arrived"),
        ({"outputs": [out(-1, 0.1)], "annotated": [4]}, "does not have"),
        ({"outputs": [out(0, float("nan"))], "annotated": [4]}, "finish time"),
        ({"outputs": [], "annotated": [-1]}, "negative"),
        ({"outputs": [], "annotated": [1, 1]}, "repeat"),
        ({"outputs": [], "annotated": [1.5]}, "integers"),
        ({"outputs": [], "annotated": [1], "fps": 0}, "fps"),
        ({"outputs": [], "annotated": [1], "eta": float("inf")}, "eta"),
        ({"outputs": [], "annotated": [1], "arrivals": [0.0, 0.2, 0.1]}, "non-decreasing"),
    ],
)
def test_bad_input_raises_one_line_naming_the_problem(kwargs, message):
    kwargs = {"fps": 10, **kwargs}
    with pytest.raises(SettingsError, match=message) as error:
        pair_stream(kwargs.pop("outputs"), kwargs.pop("annotated"), **kwargs)
    assert "\n" not in str(error.value)
