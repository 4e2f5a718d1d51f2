"""Carrying Broyden's inverse-Jacobian estimate across frames (issue 3's optional step beyond
the paper): does it lower the residual a frame ends with at M iterations?

Each variant is a StreamDEQ on the same model and the same clip of consecutive frames; the
carrying ones pass a per-stream :class:`~streamdeq.solvers.BroydenMemory` in
``solver_options`` (with a small ``memory``: every kept pair costs 4 D multiply-adds an
iteration). ``measure_after`` evaluates f once more at each frame's answer, so the residual
compared is that of the state the frame really ends with. The clip is a generated street drive
(:mod:`streamdeq.data.synthetic`) where available, else a smoothly panning texture.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch

from ..solvers import BroydenMemory
from ..stream import StreamDEQ
from .common import BenchReport, BenchSettings, environment
from .setup import (
    BUNDLED,
    QUICK_SIZE,
    SMALL,
    ModelSpec,
    bundled_available,
    panning_clip,
    scale_size,
)

DEFAULT_SIZE = (128, 256)
CARRY_MEMORY = (4, 8)


def run_carry(settings: BenchSettings) -> BenchReport:
    report = BenchReport("carry", "Broyden memory carried across frames vs restarted")
    report.conditions = environment(settings)
    if settings.quick:
        spec = ModelSpec(SMALL, False, settings.size or QUICK_SIZE, 4, f"{SMALL} (quick)")
    elif bundled_available()[0]:
        spec = ModelSpec(BUNDLED, True, settings.size or DEFAULT_SIZE, 24, BUNDLED)
    else:
        spec = ModelSpec(SMALL, False, settings.size or DEFAULT_SIZE, 24, SMALL)
    model = spec.build(settings.device)
    size = scale_size(spec.size, model.input_multiple)
    frames = settings.frames or spec.frames
    clip, source = _clip(size, frames)
    report.conditions.update(model=spec.label, size=list(size), clip=source, frames=frames)
    iters = (1, 2) if settings.quick else (1, 2, 4)
    memories = (4,) if settings.quick else CARRY_MEMORY
    variants: dict[tuple[int, int | None], StreamDEQ] = {}
    for m in iters:
        variants[(m, None)] = StreamDEQ(model, iters=m, measure_after=True, device=settings.device)
        for k in memories:
            options = {"carry": BroydenMemory(), "memory": k}
            variants[(m, k)] = StreamDEQ(
                model, iters=m, measure_after=True, solver_options=options, device=settings.device
            )
    residual: dict[Any, list[float]] = {key: [] for key in variants}
    latency: dict[Any, list[float]] = {key: [] for key in variants}
    skip = min(2, frames - 1)  # the first frames start from zeros: not what carrying is for
    with torch.no_grad():
        for t, frame in enumerate(clip):
            for key, stream in variants.items():
                info = stream.step(frame).info
                if t >= skip:
                    residual[key].append(info.residual_after)
                    latency[key].append(info.latency_ms)
    for (m, k), values in residual.items():
        base = residual[(m, None)]
        report.rows.append(
            {
                "M": m,
                "carry_memory": k,
                "median_rel_residual": statistics.median(values),
                "mean_rel_residual": statistics.fmean(values),
                "vs_restart": statistics.median(values) / statistics.median(base),
                "frames_better_pct": 100.0 * float(np.mean(np.array(values) < np.array(base))),
                "ms_per_frame": statistics.median(latency[(m, k)]),
            }
        )
    report.notes.append(
        "residual = ||f(z) - z|| / ||f(z)|| of each frame's final state (measure_after); "
        "vs_restart < 1 means carrying helps; carry_memory '-' = restart every frame (default)"
    )
    return report


def _clip(size: tuple[int, int], frames: int) -> tuple[np.ndarray, str]:
    try:
        from ..data.synthetic import SceneSettings, generate_clip
    except ImportError:
        return panning_clip(size, frames), "panning texture"
    clip = generate_clip(0, frames, SceneSettings(height=size[0], width=size[1]))
    return clip.frames, "generated street drive (seed 0)"
