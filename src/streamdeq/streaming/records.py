"""What an online run leaves behind for latency-aware scoring: each output with the input frame
it was computed from and the moment it became available.

Clocks and schedulers (:mod:`streamdeq.streaming.clocks`, :mod:`streamdeq.streaming.schedulers`)
produce these records; the pairing rule and the streaming metrics
(:mod:`streamdeq.streaming.pairing`, :mod:`streamdeq.streaming.metrics`) consume them. All times
are seconds on one clock whose zero is the stream's start, the same clock as the frames' arrival
times.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimedOutput:
    """One output of an online run.

    Attributes:
        stream: the stream it belongs to (one clip, one camera).
        input_index: k, the index *in the stream* of the frame the output was computed from.
        finish_s: f, when the output became available (after the device finished), seconds
            from the stream's start.
        output: the output as the stream returns it (logits, detections); None when a run
            keeps only the timing.
        iters: solver iterations spent on it.
        latency_ms: the step's cost (measured, or drawn from a latency profile).
    """

    stream: Hashable
    input_index: int
    finish_s: float
    output: Any = None
    iters: int = 0
    latency_ms: float = math.nan


def arrival_times(count: int, fps: float) -> list[float]:
    """tau_i = i / fps for ``count`` frames: when frame i arrives, from the stream's start."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return [i / fps for i in range(count)]


__all__ = ["TimedOutput", "arrival_times"]
