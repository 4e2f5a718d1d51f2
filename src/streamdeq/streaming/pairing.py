"""The streaming evaluation rule: which output answers for an annotated frame.

Streaming perception (Li, Wang and Ramanan, "Towards Streaming Perception", ECCV 2020; reference
implementation ``mtli/sAP``, ``det/streaming_eval.py``) scores a system by what it can say about
the world *when* the world is as the frame shows it, not by what it eventually says about the
frame. For annotated frame g of a stream whose frames arrive at tau_0, tau_1, ... (i/fps, or the
container's timestamps), the query time is

    q_g = tau_g - eta / fps        (eta in frames; 0 by default, -1 allows one frame of latency)

and the frame is answered by the **latest output that had finished by then**, f_j <= q_g, ties
counting as available as in the reference code. "Latest" means the latest finish time; of two
outputs finishing at the same moment the one computed from the newer input wins. When no output
has finished the frame is a miss: it is scored against an empty prediction.

Two points where this module is stricter than the reference code:

* annotated frames are identified by their **index in the stream**, g, not by their rank among
  annotated frames. Argoverse-HD annotates every frame, so the reference code can use the rank;
  Cityscapes sequences annotate one frame in 30, where the rank would pair frame 19 of a clip
  with the output available at 0 s.
* finish times are compared with a tolerance of :data:`TIME_EPSILON_S` (1 ns): an output
  counts as available at q_g when f_j <= q_g + 1 ns. Finish times are floats produced by clocks
  and schedulers (k/fps, k * (1/fps), sums of step latencies) that can land one ulp either side
  of the frame's arrival time computed here; without the tolerance a zero-latency run
  (f_j = tau_{k_j}) could miss its own frame. One nanosecond is six orders of magnitude below a
  frame period and below any latency a clock can measure, so it changes no real pairing.

Pairing is per stream: outputs of another stream never answer a frame, and outputs may be given
in any order (across streams and within one).
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import SettingsError
from .records import TimedOutput

#: Slack (seconds) within which an output finishing after the query time still counts as
#: available; see the module docstring for why it exists and why it is harmless.
TIME_EPSILON_S = 1e-9


@dataclass(frozen=True)
class Pair:
    """What answered one annotated frame.

    Attributes:
        frame: g, the annotated frame's index in the stream.
        output: the paired output, or None for a miss (nothing had finished by q_g).
    """

    frame: int
    output: TimedOutput | None

    @property
    def missed(self) -> bool:
        return self.output is None

    @property
    def input_index(self) -> int | None:
        """k, the frame the paired output was computed from (None for a miss)."""
        return None if self.output is None else self.output.input_index

    @property
    def lag(self) -> int | None:
        """g - k in frames: how stale the answer is (0 = the frame's own input; negative only
        when eta < 0 lets a later frame's output answer)."""
        return None if self.output is None else self.frame - self.output.input_index


def pair_stream(
    outputs: Iterable[TimedOutput],
    annotated: Iterable[int],
    *,
    fps: float = 30.0,
    arrivals: Sequence[float] | None = None,
    eta: float = 0.0,
) -> list[Pair]:
    """Pair one stream's annotated frames with the outputs available at their query times.

    Args:
        outputs: the stream's outputs, in any order (all must belong to one stream).
        annotated: indices g in the stream of the annotated frames (any order, no repeats).
        fps: frames per second; sets tau_i = i / fps when ``arrivals`` is None, and the unit
            of ``eta``.
        arrivals: tau_i for every frame of the stream (e.g. the container's timestamps, from
            the stream's start), instead of i / fps.
        eta: how many frames early (positive) or late (negative, >= -1 in the paper) the
            query is; q_g = tau_g - eta / fps.

    Returns:
        One :class:`Pair` per annotated frame, in increasing g.

    Raises:
        SettingsError: bad fps, eta, arrival times or frame indices; outputs of several
            streams; an output that finished before its input arrived.
    """
    frames = _annotated_frames(annotated, arrivals)
    _check_timing(fps, eta, arrivals)
    timeline = _Timeline(outputs, fps, arrivals)
    pairs = []
    for g in frames:
        query = _arrival(g, fps, arrivals) - eta / fps
        pairs.append(Pair(g, timeline.latest_by(query)))
    return pairs


def pair_streams(
    outputs: Iterable[TimedOutput],
    annotated: Mapping[Hashable, Iterable[int]],
    *,
    fps: float = 30.0,
    arrivals: Mapping[Hashable, Sequence[float]] | None = None,
    eta: float = 0.0,
) -> dict[Hashable, list[Pair]]:
    """:func:`pair_stream` for many streams at once: outputs of all streams mixed in any
    order, ``annotated`` and ``arrivals`` keyed by stream. Outputs of streams without
    annotations are ignored; an annotated stream with no outputs misses every frame."""
    by_stream: dict[Hashable, list[TimedOutput]] = defaultdict(list)
    for output in outputs:
        by_stream[output.stream].append(output)
    pairs = {}
    for stream, frames in annotated.items():
        stream_arrivals = None
        if arrivals is not None:
            if stream not in arrivals:
                raise SettingsError(f"no arrival times for stream {stream!r}")
            stream_arrivals = arrivals[stream]
        pairs[stream] = pair_stream(
            by_stream.get(stream, []), frames, fps=fps, arrivals=stream_arrivals, eta=eta
        )
    return pairs


class _Timeline:
    """One stream's outputs sorted by (finish time, input index), so that the last one at or
    before a query time is the latest finished and, among equal finishes, the newest input."""

    def __init__(
        self, outputs: Iterable[TimedOutput], fps: float, arrivals: Sequence[float] | None
    ) -> None:
        ordered = sorted(outputs, key=lambda o: (o.finish_s, o.input_index))
        streams = {o.stream for o in ordered}
        if len(streams) > 1:
            raise SettingsError(
                f"outputs of {len(streams)} streams given to pair_stream; use pair_streams"
            )
        for output in ordered:
            _check_output(output, fps, arrivals)
        self.outputs = ordered
        self.finishes = [o.finish_s for o in ordered]

    def latest_by(self, query_s: float) -> TimedOutput | None:
        available = bisect.bisect_right(self.finishes, query_s + TIME_EPSILON_S)
        return self.outputs[available - 1] if available else None


def _arrival(index: int, fps: float, arrivals: Sequence[float] | None) -> float:
    # index / fps, the same expression as records.arrival_times, so both agree to the bit
    return index / fps if arrivals is None else float(arrivals[index])


def _annotated_frames(annotated: Iterable[int], arrivals: Sequence[float] | None) -> list[int]:
    frames = []
    for g in annotated:
        if isinstance(g, bool) or not isinstance(g, numbers.Integral):
            raise SettingsError(f"annotated frame indices must be integers, got {g!r}")
        g = int(g)
        if g < 0:
            raise SettingsError(f"annotated frame index {g} is negative")
        if arrivals is not None and g >= len(arrivals):
            raise SettingsError(
                f"annotated frame {g} is past the stream's {len(arrivals)} arrival times"
            )
        frames.append(g)
    if len(set(frames)) != len(frames):
        raise SettingsError("annotated frame indices repeat; give each frame once")
    return sorted(frames)


def _check_timing(fps: float, eta: float, arrivals: Sequence[float] | None) -> None:
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise SettingsError(f"fps must be a finite number > 0, got {fps!r}", field="fps")
    if not (isinstance(eta, numbers.Real) and math.isfinite(eta)):
        raise SettingsError(f"eta must be a finite number of frames, got {eta!r}", field="eta")
    if arrivals is None:
        return
    previous = -math.inf
    for i, tau in enumerate(arrivals):
        if not math.isfinite(tau) or tau < previous:
            raise SettingsError(
                f"arrival time {i} ({tau!r}) is not finite or earlier than frame {i - 1}'s; "
                "arrival times must be non-decreasing seconds"
            )
        previous = tau


def _check_output(output: TimedOutput, fps: float, arrivals: Sequence[float] | None) -> None:
    k = output.input_index
    if not math.isfinite(output.finish_s):
        raise SettingsError(f"output of frame {k} has finish time {output.finish_s!r}")
    if k < 0 or (arrivals is not None and k >= len(arrivals)):
        raise SettingsError(f"output computed from frame {k}, which the stream does not have")
    arrived = _arrival(k, fps, arrivals)
    if output.finish_s < arrived - TIME_EPSILON_S:
        raise SettingsError(
            f"output of frame {k} finished at {output.finish_s:.6f} s, before the frame "
            f"arrived at {arrived:.6f} s; the clocks of outputs and frames disagree"
        )


__all__ = ["TIME_EPSILON_S", "Pair", "pair_stream", "pair_streams"]
