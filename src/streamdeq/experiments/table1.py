"""Table 1: accuracy and speed of StreamDEQ with M iterations a frame against the fully solved
baseline, measured side by side in one run.

Every scheme gets every frame in turn (interleaved, the order rotating from frame to frame), so
they share the machine's state (other load, clock, caches) and the frames/s are comparable;
each scheme's speed is the median of its per-frame latencies (frame in, logits out, as the
stream engine reports them). mIoU is computed on the annotated last frame of each clip as in
the paper (``evaluate="all"``: on every annotated frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .clips import Clip, check_clips
from .distributed import confusion_matrices, gather, reduce_confusions, shard
from .interleave import run_interleaved, speed_columns, table1_schemes
from .result import ExperimentResult, new_figure
from .streams import PAPER_ITERS, as_label_tensor, check_iters, predict_labels


def table1(
    model: Any,
    clips: Sequence[Clip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    non_streaming: bool = True,
    evaluate: str = "last",
    num_classes: int = 19,
    **stream_options: Any,
) -> ExperimentResult:
    """mIoU, frames/s and speed-up of each scheme.

    Args:
        model: a segmentation model in eval mode.
        clips: annotated clips (the paper: 20 frames ending at the annotated one).
        iters: the M of StreamDEQ (Eq. 5).
        non_streaming: also run the model with M iterations from zeros on every frame (what
            StreamDEQ's warm start is worth at equal cost).
        evaluate: "last" (the paper) or "all" annotated frames.

    Returns:
        rows (scheme, mode, M, iters_per_frame, miou, pixel_accuracy, ms_per_frame, fps,
        speedup); the baseline comes first and its speed-up is 1.
    """
    check_clips(clips)
    iters = check_iters(iters)
    schemes = table1_schemes(iters, non_streaming, evaluate)
    matrices = confusion_matrices(schemes, num_classes)

    def label_at(clip: Clip, t: int):
        label = clip.label_at(t)
        scored = label is not None and (evaluate == "all" or t == clip.last)
        return as_label_tensor(label) if scored else None

    def score(j: int, output, target) -> None:
        matrices[schemes[j]].update(predict_labels(output, tuple(target.shape)), target)

    timings = []
    for _, clip in shard(clips):
        timings += run_interleaved(
            model, clip.frames, schemes, lambda t, c=clip: label_at(c, t), score, stream_options
        )
    timings = gather(timings)
    reduce_confusions(matrices)
    rows = [
        {
            "scheme": scheme.label,
            "mode": scheme.mode,
            "M": scheme.iters,
            "iters_per_frame": speed["iters_per_frame"],
            "miou": float(matrices[scheme].miou()),
            "pixel_accuracy": float(matrices[scheme].pixel_accuracy()),
            **{k: v for k, v in speed.items() if k != "iters_per_frame"},
        }
        for scheme, speed in zip(schemes, speed_columns(schemes, timings), strict=True)
    ]
    meta = {
        "clips": len(clips),
        "frames": sum(clip.num_frames for clip in clips),
        "iters": iters,
        "full_iters": stream_options.get("full_iters") or model.config.f_thres,
        "evaluate": evaluate,
    }
    return ExperimentResult("table1", rows, plot_table1, meta)


def plot_table1(rows: Sequence[dict[str, Any]]):
    """mIoU against frames/s: one point per scheme, StreamDEQ and non-streaming as lines over M."""
    return plot_accuracy_vs_speed(rows, "miou", "mIoU", "Table 1: accuracy against speed")


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
