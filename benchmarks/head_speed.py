"""The segmentation head's fused eval-mode path against its original path, and what that does
to a stream's frame.

Part 1 times one bare f, inject, the original head (upsample every branch, concatenate, 1x1
conv + BN + ReLU + 1x1 conv) and the fused head (see ``streamdeq.models.fused_head``) on the
same partly solved state, interleaved in the same rounds (the order rotating), and reports
medians and each one's ratio to f measured in the same run. Part 2 runs StreamDEQ at M = 1 and
2 on one smoothly panning clip, the head switched between the two paths (``use_fused``) frame by
frame, and reports the median per-frame latency the engine measures. Random weights (speed does
not depend on them); the glibc allocator tuned as the ``streamdeq`` command does.

    .venv/bin/python benchmarks/head_speed.py --threads 2 --out head_speed.json
    .venv/bin/python benchmarks/head_speed.py --quick     # seconds: checks the machinery
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from streamdeq.bench.common import (
    BenchReport,
    BenchSettings,
    environment,
    interleaved,
    median_ms,
    parse_size,
    print_report,
    spread_pct,
    write_json,
)
from streamdeq.bench.setup import (
    PAPER_SIZE,
    QUICK_SIZE,
    SMALL,
    XL,
    ModelSpec,
    panning_clip,
    partly_solved_state,
    random_input,
    scale_size,
)
from streamdeq.cpu_allocator import tune_cpu_allocator
from streamdeq.errors import SettingsError
from streamdeq.stream import StreamDEQ

MODELS = {"small": SMALL, "xl": XL}
NOTES = {
    "head_costs": "ms: median over interleaved rounds; x_f: ratio to f in the same rounds",
    "head_frames": "ms_per_frame: median of the engine's per-frame latency",
}


def head_costs(model: Any, spec: ModelSpec, settings: BenchSettings) -> list[dict[str, Any]]:
    """Rows of f, inject and both heads, medians over interleaved rounds, ratios to f."""
    x = random_input(model, spec.size, settings.device)
    state = partly_solved_state(model, x, iters=2)
    head = model.task_head
    with torch.no_grad():
        injection = model.inject(x)
        variants = {
            "f": lambda: model.f(state, injection),
            "inject": lambda: model.inject(x),
            "head original": lambda: head.reference_forward(state),
            "head fused": lambda: head(state),
        }
        samples = interleaved(variants, settings.repeats, settings.warmup)
    t_f = statistics.median(samples["f"])
    t_old = statistics.median(samples["head original"])
    rows = []
    for name, values in samples.items():
        rows.append(
            {
                "model": spec.label,
                "size": "x".join(map(str, x.shape[-2:])),
                "variant": name,
                "ms": median_ms(values),
                "x_f": statistics.median(values) / t_f,
                "x_original_head": statistics.median(values) / t_old if "head" in name else None,
                "spread_pct": spread_pct(values),
            }
        )
    return rows


def frame_times(model: Any, spec: ModelSpec, settings: BenchSettings) -> list[dict[str, Any]]:
    """StreamDEQ frames at M = 1, 2 with each head path, interleaved frame by frame."""
    size = scale_size(spec.size, model.input_multiple)
    warmup = max(settings.warmup, 1)  # the first frame of a stream starts from zeros
    clip = panning_clip(size, warmup + spec.frames)
    head = model.task_head
    schemes = {}
    for m in (1, 2):
        for path in ("original", "fused"):
            stream = StreamDEQ(model, iters=m, mode="stream", device=settings.device)
            schemes[(m, path)] = stream
    latency: dict[tuple[int, str], list[float]] = {key: [] for key in schemes}
    keys = list(schemes)
    try:
        with torch.no_grad():
            for t, frame in enumerate(clip):
                shift = t % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    head.use_fused = key[1] == "fused"
                    info = schemes[key].step(frame).info
                    if t >= warmup:
                        latency[key].append(info.latency_ms)
    finally:
        head.use_fused = True
    rows = []
    for m in (1, 2):
        before = statistics.median(latency[(m, "original")])
        after = statistics.median(latency[(m, "fused")])
        rows.append(
            {
                "model": spec.label,
                "size": f"{size[0]}x{size[1]}",
                "M": m,
                "ms_per_frame original": before,
                "ms_per_frame fused": after,
                "speedup": before / after,
                "frames": len(latency[(m, "fused")]),
            }
        )
    return rows


def specs(choices: list[str], settings: BenchSettings) -> list[ModelSpec]:
    if settings.quick:
        return [ModelSpec(SMALL, False, QUICK_SIZE, 2, f"{SMALL} (quick)")]
    frames = settings.frames or 4
    size = settings.size or PAPER_SIZE
    return [ModelSpec(MODELS[c], False, size, frames, MODELS[c]) for c in choices]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="small,xl", help="small,xl (comma-separated)")
    parser.add_argument("--size", default=None, help="HxW of the input (default 512x1024)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds of part 1")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="timed frames of part 2")
    parser.add_argument("--no-frames", action="store_true", help="skip part 2")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="write both tables as JSON here")
    args = parser.parse_args()
    choices = [c.strip() for c in args.models.split(",") if c.strip()]
    unknown = sorted(set(choices) - set(MODELS))
    if unknown or not choices:
        parser.error(f"unknown model(s) {', '.join(unknown) or 'none'}; use small, xl")
    try:
        size = parse_size(args.size) if args.size else None
    except SettingsError as error:
        parser.error(str(error))
    settings = BenchSettings(
        quick=args.quick,
        size=size,
        repeats=1 if args.quick else args.repeats,
        warmup=min(args.warmup, 1) if args.quick else args.warmup,
        threads=args.threads,
        frames=args.frames,
    )
    tune_cpu_allocator()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(0)
    reports = []
    for spec in specs(choices, settings):
        model = spec.build(settings.device)
        parts = [("head_costs", "original vs fused head, against f", head_costs)]
        if not args.no_frames:
            parts.append(("head_frames", "StreamDEQ frames, both heads", frame_times))
        for name, title, measure in parts:
            report = BenchReport(name, f"{spec.label}: {title}", measure(model, spec, settings))
            report.conditions = environment(settings)
            report.notes.append(NOTES[name])
            reports.append(report)
            print_report(report)
        if args.out:  # rewritten after each model, so an interrupted run keeps the finished ones
            write_json(reports, args.out)


if __name__ == "__main__":
    main()
