"""Per-frame latency and frames/s of StreamDEQ at M iterations against the fully solved baseline
(benchmark 1: the speed column of the paper's Table 1), with mIoU where a labelled benchmark
exists (the bundled model, through :func:`streamdeq.experiments.table1.table1`).

Every scheme is a :class:`~streamdeq.stream.StreamDEQ` on the same model and gets every frame
of one smoothly panning clip in turn (the order rotating from frame to frame); a scheme's
figure is the median of the engine's own per-frame latencies after the warm-up frames. On
Unix each row also counts the process's minor page faults per frame: on the CPU they show
whether large buffers are being mapped afresh every frame (see :mod:`streamdeq.cpu_allocator`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from ..stream import StreamDEQ
from .common import BenchReport, BenchSettings, environment
from .setup import (
    BUNDLED,
    PAPER_SIZE,
    QUICK_SIZE,
    SMALL,
    XL,
    ModelSpec,
    bundled_available,
    panning_clip,
    scale_size,
)

#: frames timed per scheme (after the warm-up) at the paper's size: XL's baseline frame costs
#: 26 full evaluations of a 4-branch XL block, minutes on a small CPU
DEFAULT_FRAMES = {BUNDLED: 12, SMALL: 4, XL: 2}


def iteration_counts(settings: BenchSettings) -> tuple[int, ...]:
    return (1, 2) if settings.quick else (1, 2, 4, 8)


def model_specs(settings: BenchSettings, notes: list[str]) -> list[ModelSpec]:
    """The bundled model (if installed) and SMALL and XL with random weights."""
    if settings.quick:
        return [ModelSpec(SMALL, False, settings.size or QUICK_SIZE, 2, f"{SMALL} (quick)")]
    wanted = settings.models or ("bundled", "small", "xl")
    specs = []
    if "bundled" in wanted:
        ok, why = bundled_available()
        if ok:
            frames = settings.frames or DEFAULT_FRAMES[BUNDLED]
            specs.append(ModelSpec(BUNDLED, True, settings.size or (128, 256), frames, BUNDLED))
        else:
            notes.append(why)
    for choice, name in (("small", SMALL), ("xl", XL)):
        if choice in wanted:
            frames = settings.frames or DEFAULT_FRAMES[name]
            specs.append(ModelSpec(name, False, settings.size or PAPER_SIZE, frames, name))
    return specs


def run_latency(settings: BenchSettings) -> BenchReport:
    report = BenchReport("latency", "StreamDEQ at M iterations vs the fully solved baseline")
    report.conditions = environment(settings)
    for spec in model_specs(settings, report.notes):
        model = spec.build(settings.device)
        rows = _measure(model, spec, settings)
        if spec.pretrained:
            _add_accuracy(model, rows, settings, report.notes)
        report.rows += rows
    report.notes.append(
        "ms/frame: median of the engine's per-frame latency (frame in, logits out); "
        "speedup = baseline ms / scheme ms, measured on the same frames in the same run"
    )
    return report


def minor_faults() -> Callable[[], int] | None:
    """A counter of the process's minor page faults so far, or None where there is none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _measure(model: Any, spec: ModelSpec, settings: BenchSettings) -> list[dict[str, Any]]:
    size = scale_size(spec.size, model.input_multiple)
    warmup = max(settings.warmup, 1)  # the first frame of a stream starts from zeros
    clip = panning_clip(size, warmup + spec.frames)
    n_full = model.config.f_thres
    schemes: dict[str, tuple[str, int, StreamDEQ]] = {
        "baseline": ("baseline", n_full, StreamDEQ(model, mode="baseline", device=settings.device))
    }
    for m in iteration_counts(settings):
        stream = StreamDEQ(model, iters=m, mode="stream", device=settings.device)
        schemes[f"stream M={m}"] = ("stream", m, stream)
    latency: dict[str, list[float]] = {key: [] for key in schemes}
    iters: dict[str, list[int]] = {key: [] for key in schemes}
    faults: dict[str, list[int]] = {key: [] for key in schemes}
    fault_counter = minor_faults()
    count_faults = fault_counter or (lambda: 0)
    names = list(schemes)
    with torch.no_grad():
        for t, frame in enumerate(clip):
            shift = t % len(names)
            for key in names[shift:] + names[:shift]:
                before = count_faults()
                info = schemes[key][2].step(frame).info
                if t >= warmup:
                    faults[key].append(count_faults() - before)
                    latency[key].append(info.latency_ms)
                    iters[key].append(info.iters)
    base_ms = statistics.median(latency["baseline"])
    rows = []
    for key, (mode, m, _) in schemes.items():
        ms = statistics.median(latency[key])
        row = {
            "model": spec.label,
            "size": f"{size[0]}x{size[1]}",
            "scheme": key if mode == "stream" else f"baseline N={n_full}",
            "M": m if mode == "stream" else None,
            "iters_per_frame": statistics.median(iters[key]),
            "ms_per_frame": ms,
            "fps": 1000.0 / ms,
            "speedup": base_ms / ms,
            "frames": len(latency[key]),
        }
        if fault_counter is not None:
            row["faults_per_frame"] = statistics.median(faults[key])
        rows.append(row)
    return rows


def _add_accuracy(model: Any, rows: list[dict], settings: BenchSettings, notes: list[str]):
    """mIoU of each scheme on generated labelled street clips, from the experiments module."""
    try:
        from ..experiments.clips import generated_clips
        from ..experiments.table1 import table1
    except ImportError:
        notes.append("streamdeq.experiments is not available: no accuracy column")
        return
    clips = generated_clips(4, 10, seed=0)
    result = table1(model, clips, iters=iteration_counts(settings), non_streaming=False)
    by_scheme = {}
    for row in result.rows:
        key = "baseline" if row["mode"] == "baseline" else f"stream M={row['M']}"
        by_scheme[key] = row["miou"]
    for row in rows:
        key = "baseline" if row["M"] is None else f"stream M={row['M']}"
        row["miou"] = by_scheme.get(key)
    notes.append(
        f"{BUNDLED} mIoU: streamdeq.experiments.table1 on 4 generated val clips of 10 frames "
        "(last frame annotated), 128x256"
    )
