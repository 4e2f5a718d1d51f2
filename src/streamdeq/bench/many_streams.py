"""Many streams (benchmark 4): N streams stepped together by :class:`StreamBatch` (one batched
solver call) against the same N streams stepped one by one, at StreamDEQ M = 2.

Each round gives every stream its next frame both ways (the two orders alternating); the figure
is the wall time of the round divided by N, median over rounds after the warm-up.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from ..stream import StreamBatch, StreamDEQ
from .common import BenchReport, BenchSettings, environment, make_sync
from .setup import QUICK_SIZE, SMALL, ModelSpec, panning_clip, scale_size

DEFAULT_SIZE = (128, 256)
ITERS = 2


def stream_counts(settings: BenchSettings) -> tuple[int, ...]:
    return (1, 2) if settings.quick else (1, 4, 16)


def run_streams(settings: BenchSettings) -> BenchReport:
    label = f"{SMALL} (quick)" if settings.quick else SMALL
    spec = ModelSpec(
        SMALL, False, settings.size or (QUICK_SIZE if settings.quick else DEFAULT_SIZE), 1, label
    )
    model = spec.build(settings.device)
    size = scale_size(spec.size, model.input_multiple)
    sync = make_sync(settings.device)
    report = BenchReport("streams", f"N streams batched vs one by one (StreamDEQ M={ITERS})")
    report.conditions = {**environment(settings), "model": label, "size": list(size)}
    rounds = settings.warmup + (settings.frames or settings.repeats)
    for n in stream_counts(settings):
        clips = [panning_clip(size, rounds + 1, seed=s) for s in range(n)]
        batched, single = _run_pair(model, n, clips, rounds, settings.device, sync)
        cut = settings.warmup
        b_ms = statistics.median(batched[cut:]) * 1e3 / n
        s_ms = statistics.median(single[cut:]) * 1e3 / n
        report.rows.append(
            {
                "streams": n,
                "batched_ms_per_frame": b_ms,
                "single_ms_per_frame": s_ms,
                "batched_fps": 1000.0 / b_ms,
                "single_fps": 1000.0 / s_ms,
                "batching_speedup": s_ms / b_ms,
            }
        )
    report.notes.append("ms per frame = wall time of one round (every stream one frame) / N")
    return report


def _run_pair(model: Any, n: int, clips: list[np.ndarray], rounds: int, device: str, sync):
    batch = StreamBatch(model, iters=ITERS, device=device)
    for i in range(n):
        batch.add_stream(i)
    alone = [StreamDEQ(model, iters=ITERS, device=device) for _ in range(n)]
    batched: list[float] = []
    single: list[float] = []
    with torch.no_grad():
        for t in range(rounds):
            frames = {i: clips[i][t] for i in range(n)}
            order = [("batched", batched), ("single", single)]
            for kind, out in order if t % 2 == 0 else order[::-1]:
                sync()
                start = time.perf_counter()
                if kind == "batched":
                    batch.step(frames)
                else:
                    for i, stream in enumerate(alone):
                        stream.step(frames[i])
                sync()
                out.append(time.perf_counter() - start)
    return batched, single
