"""Table 1: accuracy and speed of StreamDEQ with M iterations a frame against the fully solved
baseline, measured side by side in one run, on a model of any task with a metric.

Every scheme gets every frame in turn (interleaved, the order rotating from frame to frame), so
they share the machine's state (other load, clock, caches) and the frames/s are comparable;
each scheme's speed is the median of its per-frame latencies (frame in, output out, as the
stream engine reports them). Accuracy is the model's task's metric (segmentation: mIoU, the
paper's column; detection: mAP@50) on the annotated last frame of each clip as in the paper
(``evaluate="all"``: on every annotated frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from .clips import Clip
from .distributed import gather, shard
from .interleave import run_interleaved, speed_columns, table1_schemes
from .result import ExperimentResult, new_figure
from .schemes import PAPER_ITERS, check_iters
from .scoring import combine, f_thres, fresh_metrics, scoring_task

TITLE = "Table 1: accuracy against speed"


def table1(
    model: Any,
    clips: Sequence[Clip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    non_streaming: bool = True,
    evaluate: str = "last",
    **stream_options: Any,
) -> ExperimentResult:
    """Accuracy, frames/s and speed-up of each scheme.

    Args:
        model: a streamable model in eval mode whose task has a metric (``config.task``).
        clips: clips annotated for the model's task (the paper: 20 frames ending at the
            annotated one).
        iters: the M of StreamDEQ (Eq. 5).
        non_streaming: also run the model with M iterations from zeros on every frame (what
            StreamDEQ's warm start is worth at equal cost).
        evaluate: "last" (the paper) or "all" annotated frames.
        stream_options: StreamDEQ settings (solver, f_thres, ...).

    Returns:
        rows (scheme, mode, M, iters_per_frame, the metric's columns, ms_per_frame, fps,
        speedup); segmentation's columns are miou, pixel_accuracy, detection's map50, map,
        voc_map50, num_images. The baseline comes first and its speed-up is 1.
    """
    task = scoring_task(model, clips)
    iters = check_iters(iters)
    schemes = table1_schemes(iters, non_streaming, evaluate)
    metrics = fresh_metrics(task, model, range(len(schemes)))

    def target_at(clip: Clip, t: int) -> Any | None:
        scored = evaluate == "all" or t == clip.last
        return clip.target_at(t) if scored else None

    def score(j: int, output: Any, target: Any) -> None:
        metrics[j].update(output, target)

    timings = []
    for _, clip in shard(clips):
        timings += run_interleaved(
            model, clip.frames, schemes, partial(target_at, clip), score, stream_options
        )
    timings = gather(timings)
    scores = combine(metrics)
    rows = [
        {
            "scheme": scheme.label,
            "mode": scheme.mode,
            "M": scheme.iters,
            "iters_per_frame": speed["iters_per_frame"],
            **scores[j],
            **{k: v for k, v in speed.items() if k != "iters_per_frame"},
        }
        for j, (scheme, speed) in enumerate(
            zip(schemes, speed_columns(schemes, timings), strict=True)
        )
    ]
    meta = {
        "clips": len(clips),
        "frames": sum(clip.num_frames for clip in clips),
        "iters": iters,
        "f_thres": f_thres(model, stream_options),
        "evaluate": evaluate,
        "headline": task.headline,
    }
    plot = partial(
        plot_accuracy_vs_speed, metric=task.headline, ylabel=task.headline_label, title=TITLE
    )
    return ExperimentResult("table1", rows, plot, meta)


def plot_accuracy_vs_speed(rows: Sequence[Mapping[str, Any]], metric: str, ylabel: str, title: str):
    """``metric`` against frames/s for any task: StreamDEQ and non-streaming as lines over M,
    the fully solved baseline as a star."""
    figure, axes = new_figure()
    ax = axes[0, 0]
    for mode, style, name in (("stream", "o-", "StreamDEQ"), ("baseline", "s--", "non-streaming")):
        picked = sorted(
            (r for r in rows if r["mode"] == mode and r["M"] is not None), key=lambda r: r["M"]
        )
        if not picked:
            continue
        ax.plot([r["fps"] for r in picked], [r[metric] for r in picked], style, label=name)
        for r in picked:
            ax.annotate(
                f"M={r['M']}",
                (r["fps"], r[metric]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="small",
            )
    base = next((r for r in rows if r["mode"] == "baseline" and r["M"] is None), None)
    if base is not None:
        ax.plot([base["fps"]], [base[metric]], "k*", ms=12, label="baseline (N)")
    ax.set_xlabel("frames / s")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure
