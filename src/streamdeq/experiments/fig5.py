"""Fig. 5: accuracy against the number of frames the stream has run, on a model of any task
with a metric (Fig. 8 is this protocol on a detector).

The paper's protocol: the model is evaluated on the annotated last frame of each clip, and the
stream starts ``offset`` frames before it (offset 1: the stream starts at the evaluated frame).
StreamDEQ (Eq. 5) and the keyframe scheme (Eq. 4), each with M iterations a frame, against two
references that do not depend on the offset: the non-streaming model with M iterations from
zeros, and the fully solved baseline (N iterations). With offset 1 StreamDEQ *is* the
non-streaming model and the keyframe scheme *is* the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from ..errors import SettingsError
from ..validation import check_int
from .clips import Clip, frame_offsets
from .distributed import shard
from .result import ExperimentResult, integer_ticks, iter_color, new_figure, series
from .schemes import PAPER_ITERS, Run, Scheme, check_iters, run_last_frames
from .scoring import combine, f_thres, fresh_metrics, scoring_task

STREAMING_MODES = ("stream", "keyframe")

#: Batching of the sweep's streams: at most this many, and about this many input pixels.
MAX_STREAMS = 32
BATCH_PIXELS = 1 << 22


def fig5(
    model: Any,
    clips: Sequence[Clip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    offsets: Sequence[int] | None = None,
    modes: Sequence[str] = STREAMING_MODES,
    max_streams: int | None = None,
    **stream_options: Any,
) -> ExperimentResult:
    """Accuracy on each clip's last frame against the frame offset the stream started at.

    Args:
        model: a streamable model in eval mode whose task has a metric (``config.task``).
        clips: clips annotated for the model's task on their last frame (the paper: 20 frames
            ending at it).
        iters: the M to compare.
        offsets: stream lengths k (1 .. clip length); default every k from 1 to the shortest
            clip's length. Each costs a run of k frames per clip, scheme and M.
        modes: the streaming schemes to sweep ("stream", "keyframe").
        max_streams: streams stepped together (default: as many as fit a pixel budget).
        stream_options: StreamDEQ settings (solver, f_thres, ...).

    Returns:
        rows (scheme, mode, M, offset, the metric's columns: segmentation's miou,
        pixel_accuracy, detection's map50, map, voc_map50, num_images); the two references
        have an empty offset, and the baseline an empty M (it runs N = ``meta["f_thres"]``).
    """
    task = scoring_task(model, clips)
    iters = check_iters(iters)
    offsets = _check_offsets(clips, offsets, task.target_key)
    modes = _check_modes(modes)
    max_streams = _check_max_streams(clips, max_streams)
    keys = [(mode, m, k) for mode in modes for m in iters for k in offsets]
    keys += [("non-streaming", m, None) for m in iters] + [("baseline", None, None)]
    metrics = fresh_metrics(task, model, keys)
    for _, clip in shard(clips):
        target = clip.target_at(clip.last)
        runs = [Run(key, *_scheme_and_frames(key, clip)) for key in keys]
        last_outputs = run_last_frames(model, runs, max_streams, **stream_options)
        for key in keys:
            metrics[key].update(last_outputs[key], target)
    scores = combine(metrics)
    rows = [
        {
            "scheme": Scheme("baseline" if mode == "non-streaming" else mode, m).label,
            "mode": mode,
            "M": m,
            "offset": k,
            **scores[(mode, m, k)],
        }
        for mode, m, k in keys
    ]
    meta = {
        "clips": len(clips),
        "iters": iters,
        "offsets": offsets,
        "f_thres": f_thres(model, stream_options),
        "headline": task.headline,
    }
    plot = partial(plot_fig5, metric=task.headline, label=task.headline_label)
    return ExperimentResult("fig5", rows, plot, meta)


def _scheme_and_frames(key: tuple, clip: Clip) -> tuple[Scheme, Any]:
    """The scheme of a key and the frames its stream sees (the last ``offset`` of the clip)."""
    mode, m, k = key
    if mode in STREAMING_MODES:
        return Scheme(mode, m), clip.frames[clip.num_frames - k :]
    return Scheme("baseline", m), clip.frames[clip.last :]


def _check_offsets(
    clips: Sequence[Clip], offsets: Sequence[int] | None, target_key: str
) -> list[int]:
    shortest = min(clip.num_frames for clip in clips)
    for clip in clips:
        if clip.target_at(clip.last) is None:
            raise SettingsError(
                f"this experiment scores the last frame, but clip {clip.name!r} has no "
                f"{target_key} for it"
            )
    return frame_offsets(shortest, offsets)


def _check_modes(modes: Sequence[str]) -> list[str]:
    """The swept schemes, in :data:`STREAMING_MODES` order."""
    unknown = sorted(set(modes) - set(STREAMING_MODES))
    if unknown or not modes:
        raise SettingsError(f"fig5 modes must be among {', '.join(STREAMING_MODES)}, got {modes}")
    return [mode for mode in STREAMING_MODES if mode in modes]


def _check_max_streams(clips: Sequence[Clip], max_streams: int | None) -> int:
    if max_streams is None:
        pixels = max(clip.frames.shape[1] * clip.frames.shape[2] for clip in clips)
        return max(1, min(MAX_STREAMS, BATCH_PIXELS // pixels))
    return check_int("max_streams", max_streams)


def plot_fig5(
    rows: Sequence[dict[str, Any]],
    *,
    metric: str = "miou",
    label: str = "mIoU",
    title: str | None = None,
):
    """``metric`` on the last frame against the offset: one panel per streaming scheme, a line
    per M, the non-streaming model at M dotted and the baseline dashed."""
    modes = [mode for mode in STREAMING_MODES if any(r["mode"] == mode for r in rows)]
    figure, axes = new_figure(ncols=len(modes))
    baseline = next((r[metric] for r in rows if r["mode"] == "baseline"), None)
    for ax, mode in zip(axes[0], modes, strict=True):
        for m in sorted({r["M"] for r in rows if r["mode"] == mode}):
            xs, ys = series(rows, "offset", metric, mode=mode, M=m)
            ax.plot(xs, ys, "o-", ms=3, color=iter_color(m), label=f"M = {m}")
            flat = [r[metric] for r in rows if r["mode"] == "non-streaming" and r["M"] == m]
            if flat:
                ax.axhline(flat[0], color=iter_color(m), ls=":", lw=1)
        if baseline is not None:
            ax.axhline(baseline, color="black", ls="--", lw=1, label="baseline (N)")
        ax.set_title(f"{Scheme(mode).label} (dotted: non-streaming at M)")
        integer_ticks(ax)
        ax.set_xlabel("frames since the stream started (offset)")
        ax.set_ylabel(f"{label} on the last frame")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title or f"Fig. 5: {label} against frame offset")
    return figure


def frames_to_baseline(
    result: ExperimentResult, mode: str = "stream", tolerance: float = 0.01
) -> dict[int, int | None]:
    """For each M: the fewest frames (offset) from which the scheme's accuracy (the task's
    headline, e.g. mIoU) stays within ``tolerance`` (absolute, 0.01 = one point) of the fully
    solved baseline at every longer offset swept; None if it never does. The paper's claim in
    one number per M."""
    metric = result.meta.get("headline", "miou")
    base = next(r[metric] for r in result.rows if r["mode"] == "baseline")
    reached: dict[int, int | None] = {}
    for m in result.meta["iters"]:
        curve = sorted(
            (r["offset"], r[metric]) for r in result.rows if r["mode"] == mode and r["M"] == m
        )
        first = None
        for offset, value in curve:
            close = value >= base - tolerance
            first = (first or offset) if close else None
        reached[m] = first
    return reached
