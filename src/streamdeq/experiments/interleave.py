"""Side-by-side timing for the Table-1 experiments of every task: each scheme gets every frame
in turn (the order rotating from frame to frame), so the schemes share the machine's state
(other load, clock, caches) and their frames/s are comparable. Tasks differ only in how a
frame's output is scored, which they pass in as two callbacks.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SettingsError
from .schemes import Scheme

EVALUATE = ("last", "all")

#: (scheme index, latency ms, iterations) of one step.
Timing = tuple[int, float, int]


def table1_schemes(iters: Sequence[int], non_streaming: bool, evaluate: str) -> list[Scheme]:
    """The baseline first, then StreamDEQ at each M, then (optionally) M from zeros."""
    if evaluate not in EVALUATE:
        raise SettingsError(f"evaluate must be one of {', '.join(EVALUATE)}, got {evaluate!r}")
    schemes = [Scheme("baseline")] + [Scheme("stream", m) for m in iters]
    if non_streaming:
        schemes += [Scheme("baseline", m) for m in iters]
    return schemes


def run_interleaved(
    model: Any,
    frames: Sequence[Any],
    schemes: Sequence[Scheme],
    target_at: Callable[[int], Any | None],
    score: Callable[[int, Any, Any], None],
    options: Mapping[str, Any],
) -> list[Timing]:
    """Step one clip through a fresh stream per scheme, interleaved.

    ``target_at(t)`` is what frame t is scored against (None: not scored); ``score(j, output,
    target)`` records scheme j's output on it.
    """
    streams = [scheme.open(model, **options) for scheme in schemes]
    timings: list[Timing] = []
    for t, frame in enumerate(frames):
        target = target_at(t)
        for k in range(len(streams)):
            j = (k + t) % len(streams)  # rotate who goes first
            result = streams[j].step(frame)
            timings.append((j, result.info.latency_ms, result.info.iters))
            if target is not None:
                score(j, result.output, target)
    return timings


def speed_columns(schemes: Sequence[Scheme], timings: Sequence[Timing]) -> list[dict[str, Any]]:
    """Per scheme: mean iterations, median latency, frames/s and speed-up over the first."""
    medians, mean_iters = [], []
    for j in range(len(schemes)):
        mine = [(ms, it) for i, ms, it in timings if i == j]
        medians.append(statistics.median(ms for ms, _ in mine) if mine else float("nan"))
        mean_iters.append(statistics.fmean(it for _, it in mine) if mine else float("nan"))
    return [
        {
            "iters_per_frame": mean_iters[j],
            "ms_per_frame": ms,
            "fps": 1000.0 / ms if ms > 0 else float("inf"),
            "speedup": medians[0] / ms if ms > 0 else float("inf"),
        }
        for j, ms in enumerate(medians)
    ]
