"""Run a model online: frames arrive on a clock, a scheduler picks what runs, every output is
stamped with the moment it was finished.

>>> outputs = run_online(model, clip.frames, fps=17, scheme=Scheme("stream", 2),
...                      scheduler="latest", clock=SimulatedClock(profile, seed=0),
...                      keep_outputs=set(clip.targets))
>>> [(o.input_index, o.finish_s) for o in outputs]

One stream (:func:`run_online`) or many through one :class:`~streamdeq.stream.StreamBatch`
(:func:`run_online_batch`). The model always really runs, in the order the clock and the
scheduler dictate, because a StreamDEQ's output depends on which frames it saw; with a
:class:`~streamdeq.streaming.clocks.SimulatedClock` only the time is simulated.

Outputs can be large (logits); ``keep_outputs`` says which to keep (:data:`KeepOutputs`), the
others are recorded with ``output=None`` (their timing still counts).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

from ..errors import SettingsError
from ..stream import StreamBatch, StreamDEQ
from ..validation import check_int, check_real
from .clocks import OnlineClock, SimulatedClock
from .records import TimedOutput, arrival_times
from .schedulers import Latest, Pick, Scheduler, SchemeLike, latest_arrived, make_scheduler

#: Which outputs a run keeps: True (all), False (none), a collection of input indices (e.g. the
#: annotated frames), or a function (input_index, output) -> what to store (e.g. the argmax
#: labels instead of the logits; None drops it).
KeepOutputs = bool | Collection[int] | Callable[[int, Any], Any]

#: Frames run through a throwaway stream before the clock starts, when costs are measured.
DEFAULT_WARMUP = 2


def run_online(
    model: Any,
    frames: Sequence[Any],
    fps: float,
    scheme: SchemeLike,
    scheduler: str | Scheduler = "latest",
    clock: OnlineClock | None = None,
    timestamps: Sequence[float] | None = None,
    keep_outputs: KeepOutputs = True,
    stream_options: Mapping[str, Any] | None = None,
    warmup: int | None = None,
    stream_id: Hashable = 0,
) -> list[TimedOutput]:
    """Run one stream online; returns one record per processed frame, in processing order.

    Args:
        model: a streamable model in eval mode.
        frames: the clip's frames, in memory (decoded ahead, so decoding costs no stream time).
        fps: the frame rate: frame i arrives at i / fps, unless ``timestamps`` says otherwise.
        scheme: a :class:`streamdeq.experiments.schemes.Scheme` (mode + M).
        scheduler: a name in :data:`~streamdeq.streaming.schedulers.SCHEDULERS` or a scheduler.
        clock: default ``SimulatedClock()`` (the steps' measured cost, virtual time).
        timestamps: arrival time of each frame, seconds from the stream's start, increasing.
        keep_outputs: which outputs to keep (:data:`KeepOutputs`).
        stream_options: more StreamDEQ settings (``tol``, ``budget_ms``, ``solver``, ...).
        warmup: frames stepped through a throwaway stream before the clock starts (allocations,
            kernels); default 2 when costs are measured, 0 when they are priced.
        stream_id: the ``stream`` field of the records.
    """
    clock = clock if clock is not None else SimulatedClock()
    scheduler = make_scheduler(scheduler)
    frames = _in_memory(frames)
    arrivals = _arrivals(len(frames), fps, timestamps)
    settings = scheduler.stream_settings(scheme, dict(stream_options or {}), 1.0 / fps)

    def open_stream() -> StreamDEQ:
        opened = StreamDEQ(model, pricing=clock.pricing(), **settings)
        scheduler.attach(opened)
        return opened

    warm = _warm_up(open_stream, frames, _warmup_count(warmup, clock, settings))
    stream = open_stream()
    if warm is not None:
        prime_cost_estimates(stream.controller, warm.controller)
    scheduler.reset()
    keep = _keeper(keep_outputs)
    records: list[TimedOutput] = []
    last = -1
    clock.start()
    while (pick := scheduler.pick(clock.now(), last, arrivals)) is not None:
        clock.wait_until(pick.start_s)
        start = clock.now()
        scheduler.before_step(stream, Pick(pick.index, start), arrivals)
        result = stream.step(frames[pick.index])
        finish = clock.finish(result.info.latency_ms)
        scheduler.observe(start, finish)
        records.append(_record(stream_id, pick.index, finish, result, keep))
        last = pick.index
    return records


def run_online_batch(
    model: Any,
    streams: Mapping[Hashable, Sequence[Any]],
    fps: float,
    scheme: SchemeLike,
    clock: OnlineClock | None = None,
    timestamps: Mapping[Hashable, Sequence[float]] | None = None,
    keep_outputs: KeepOutputs = True,
    stream_options: Mapping[str, Any] | None = None,
    warmup: int | None = None,
) -> list[TimedOutput]:
    """Run several streams online through one :class:`~streamdeq.stream.StreamBatch`.

    Ticks: when the batch is free, each stream with a frame it has not processed yet
    contributes its latest arrived frame (the others sit the tick out; frames in between are
    skipped, as under the "latest" scheduler); if no stream has one, the batch idles until the
    next arrival. Within a tick the engine runs the streams' solves in groups (equal frame
    shapes and iteration plans share a call), one group after another, but hands all outputs
    back together after the last group and a device synchronisation: **every output of a tick
    gets the tick's finish time**, the moment the whole step returned.

    Args:
        streams: stream id -> its frames, in memory.
        fps, scheme, clock, keep_outputs, stream_options, warmup: as for :func:`run_online`
            (one scheme for all streams; ``keep_outputs`` per input index, in every stream).
        timestamps: stream id -> arrival times (default i / fps for every stream).

    Returns:
        the records of all streams, in processing order (ticks in order, streams in the
        order of ``streams`` within a tick).
    """
    clock = clock if clock is not None else SimulatedClock()
    if not streams:
        raise SettingsError("run_online_batch needs at least one stream")
    timestamps = timestamps or {}
    streams = {sid: _in_memory(frames) for sid, frames in streams.items()}
    arrivals = {
        sid: _arrivals(len(frames), fps, timestamps.get(sid)) for sid, frames in streams.items()
    }
    settings = Latest().stream_settings(scheme, dict(stream_options or {}), 1.0 / fps)
    first = next(iter(streams.values()))
    _warm_up(
        lambda: StreamDEQ(model, pricing=clock.pricing(), **settings),
        first,
        _warmup_count(warmup, clock, settings),
    )
    batch = StreamBatch(model, pricing=clock.pricing())
    for sid in streams:
        batch.add_stream(sid, **settings)
    keep = _keeper(keep_outputs)
    last = dict.fromkeys(streams, -1)
    records: list[TimedOutput] = []
    clock.start()
    while True:
        now = clock.now()
        due = {sid: latest_arrived(arrivals[sid], now) for sid in streams}
        due = {sid: index for sid, index in due.items() if index > last[sid]}
        if not due:
            waiting = [arrivals[s][last[s] + 1] for s in streams if last[s] + 1 < len(arrivals[s])]
            if not waiting:
                return records
            clock.wait_until(min(waiting))
            continue
        results = batch.step({sid: streams[sid][index] for sid, index in due.items()})
        finish = clock.finish(max(r.info.latency_ms for r in results.values()))
        for sid, index in due.items():
            records.append(_record(sid, index, finish, results[sid], keep))
            last[sid] = index


def _record(stream_id: Hashable, index: int, finish: float, result, keep) -> TimedOutput:
    return TimedOutput(
        stream=stream_id,
        input_index=index,
        finish_s=finish,
        output=keep(index, result.output),
        iters=result.info.iters,
        latency_ms=result.info.latency_ms,
    )


def _in_memory(frames: Any) -> Sequence[Any]:
    """Frames indexable in memory: an iterator (a video source) is decoded ahead, so decoding
    never takes stream time."""
    if hasattr(frames, "__len__") and hasattr(frames, "__getitem__"):
        return frames
    return list(frames)


def _arrivals(count: int, fps: float, timestamps: Sequence[float] | None) -> list[float]:
    check_real("fps", fps, exclusive_minimum=0)
    if count == 0:
        raise SettingsError("an online run needs at least one frame")
    if timestamps is None:
        return arrival_times(count, fps)
    times = [float(t) for t in timestamps]
    if len(times) != count:
        raise SettingsError(f"{len(times)} timestamps for {count} frames")
    if any(b <= a for a, b in itertools.pairwise(times)) or times[0] < 0:
        raise SettingsError("timestamps must be >= 0 and strictly increasing")
    return times


def _warmup_count(warmup: int | None, clock: OnlineClock, settings: Mapping[str, Any]) -> int:
    """Frames to warm up on: ``warmup`` if given; else DEFAULT_WARMUP when costs are measured
    (first-call allocations) or a time budget has costs to learn, 0 otherwise."""
    if warmup is None:
        learns = settings.get("budget_ms") is not None
        return DEFAULT_WARMUP if learns or getattr(clock, "measures", True) else 0
    return check_int("warmup", warmup, minimum=0)


def _warm_up(
    open_stream: Callable[[], StreamDEQ], frames: Sequence[Any], count: int
) -> StreamDEQ | None:
    """Step ``count`` frames through a throwaway stream before the clock starts: first-call
    allocations and kernel selection happen there, not in the first timed step, and a time
    budget learns what a step costs (charged as the clock charges, so a simulated run stays
    deterministic: the clock's draws restart at ``start``). Returns the stream, None if none."""
    if count == 0:
        return None
    stream = open_stream()
    for index in range(min(count, len(frames))):
        stream.step(frames[index])
    return stream


def prime_cost_estimates(controller: Any, learned: Any) -> None:
    """Start a time-budget controller from the cost estimates another one learned in warm-up.

    Why: a budget controller that knows nothing plans its first frame at ``min_iters`` from
    zeros, which under a latency-aware metric costs the start of every clip; a deployment
    learns the costs before the stream starts, and so does an online run. Controllers without
    estimates (fixed M, tolerance) are left as they are.
    """
    names = ("ms_per_eval", "overhead_ms", "extra_evals")
    if all(hasattr(controller, n) and getattr(learned, n, None) is not None for n in names):
        for name in names:
            setattr(controller, name, getattr(learned, name))


def _keeper(keep_outputs: KeepOutputs) -> Callable[[int, Any], Any]:
    if keep_outputs is True:
        return lambda index, output: output
    if keep_outputs is False:
        return lambda index, output: None
    if callable(keep_outputs):
        return keep_outputs
    if isinstance(keep_outputs, Collection):
        wanted = frozenset(keep_outputs)
        return lambda index, output: output if index in wanted else None
    raise SettingsError(
        "keep_outputs must be True, False, a collection of frame indices or a function "
        f"(index, output) -> value, got {type(keep_outputs).__name__}"
    )


__all__ = [
    "DEFAULT_WARMUP",
    "KeepOutputs",
    "prime_cost_estimates",
    "run_online",
    "run_online_batch",
]
