"""Fig. 5: accuracy against the number of frames the stream has run.

The paper's protocol: the model is evaluated on the annotated last frame of each clip, and the
stream starts ``offset`` frames before it (offset 1: the stream starts at the evaluated frame).
StreamDEQ (Eq. 5) and the keyframe scheme (Eq. 4), each with M iterations a frame, against two
references that do not depend on the offset: the non-streaming model with M iterations from
zeros, and the fully solved baseline (N iterations). With offset 1 StreamDEQ *is* the
non-streaming model and the keyframe scheme *is* the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import SettingsError
from .clips import Clip, check_clips, frame_offsets
from .distributed import confusion_matrices, reduce_confusions, shard
from .result import ExperimentResult, integer_ticks, iter_color, new_figure, series
from .streams import (
    PAPER_ITERS,
    Run,
    Scheme,
    as_label_tensor,
    check_iters,
    predict_labels,
    run_last_frames,
)

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
    num_classes: int = 19,
    **stream_options: Any,
) -> ExperimentResult:
    """mIoU on each clip's last frame against the frame offset the stream started at.

    Args:
        model: a segmentation model in eval mode.
        clips: clips whose last frame is annotated (the paper: 20 frames ending at it).
        iters: the M to compare.
        offsets: stream lengths k (1 .. clip length); default every k from 1 to the shortest
            clip's length. Each costs a run of k frames per clip, scheme and M.

    Returns:
        rows (scheme, mode, M, offset, miou, pixel_accuracy); the two references have an
        empty offset, and the baseline an empty M (it runs N = ``meta["full_iters"]``).
    """
    check_clips(clips)
    iters = check_iters(iters)
    offsets = _check_offsets(clips, offsets)
    unknown = sorted(set(modes) - set(STREAMING_MODES))
    if unknown or not modes:
        raise SettingsError(f"fig5 modes must be among {', '.join(STREAMING_MODES)}, got {modes}")
    if max_streams is None:
        pixels = max(clip.frames.shape[1] * clip.frames.shape[2] for clip in clips)
        max_streams = max(1, min(MAX_STREAMS, BATCH_PIXELS // pixels))
    if isinstance(max_streams, bool) or not isinstance(max_streams, int) or max_streams < 1:
        raise SettingsError(f"max_streams must be an integer >= 1, got {max_streams!r}")
    keys = [
        (mode, m, k) for mode in STREAMING_MODES if mode in modes for m in iters for k in offsets
    ]
    keys += [("non-streaming", m, None) for m in iters] + [("baseline", None, None)]
    matrices = confusion_matrices(keys, num_classes)
    for _, clip in shard(clips):
        label = as_label_tensor(clip.label_at(clip.last))
        runs = [Run(key, *_scheme_and_frames(key, clip)) for key in keys]
        last_logits = run_last_frames(model, runs, max_streams, **stream_options)
        for key in keys:
            matrices[key].update(predict_labels(last_logits[key], tuple(label.shape)), label)
    reduce_confusions(matrices)
    rows = [
        {
            "scheme": Scheme("baseline" if mode == "non-streaming" else mode, m).label,
            "mode": mode,
            "M": m,
            "offset": k,
            "miou": float(matrices[(mode, m, k)].miou()),
            "pixel_accuracy": float(matrices[(mode, m, k)].pixel_accuracy()),
        }
        for mode, m, k in keys
    ]
    meta = {
        "clips": len(clips),
        "iters": iters,
        "offsets": offsets,
        "full_iters": _full_iters(model, stream_options),
    }
    return ExperimentResult("fig5", rows, plot_fig5, meta)


def _scheme_and_frames(key: tuple, clip: Clip) -> tuple[Scheme, Any]:
    """The scheme of a key and the frames its stream sees (the last ``offset`` of the clip)."""
    mode, m, k = key
    if mode in STREAMING_MODES:
        return Scheme(mode, m), clip.frames[clip.num_frames - k :]
    return Scheme("baseline", m), clip.frames[clip.last :]


def _check_offsets(clips: Sequence[Clip], offsets: Sequence[int] | None) -> list[int]:
    shortest = min(clip.num_frames for clip in clips)
    for clip in clips:
        if clip.label_at(clip.last) is None:
            raise SettingsError(
                f"fig5 evaluates the last frame, but clip {clip.name!r} has no label for it"
            )
    return frame_offsets(shortest, offsets)


def _full_iters(model: Any, options: dict) -> int | None:
    return options.get("full_iters") or getattr(getattr(model, "config", None), "f_thres", None)


def plot_fig5(rows: Sequence[dict[str, Any]]):
    modes = [mode for mode in STREAMING_MODES if any(r["mode"] == mode for r in rows)]
    figure, axes = new_figure(ncols=len(modes))
    baseline = next((r["miou"] for r in rows if r["mode"] == "baseline"), None)
    for ax, mode in zip(axes[0], modes, strict=True):
        for m in sorted({r["M"] for r in rows if r["mode"] == mode}):
            xs, ys = series(rows, "offset", "miou", mode=mode, M=m)
            ax.plot(xs, ys, "o-", ms=3, color=iter_color(m), label=f"M = {m}")
            flat = [r["miou"] for r in rows if r["mode"] == "non-streaming" and r["M"] == m]
            if flat:
                ax.axhline(flat[0], color=iter_color(m), ls=":", lw=1)
        if baseline is not None:
            ax.axhline(baseline, color="black", ls="--", lw=1, label="baseline (N)")
        ax.set_title(f"{Scheme(mode).label} (dotted: non-streaming at M)")
        integer_ticks(ax)
        ax.set_xlabel("frames since the stream started (offset)")
        ax.set_ylabel("mIoU on the last frame")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("Fig. 5: mIoU against frame offset")
    return figure


def frames_to_baseline(
    result: ExperimentResult, mode: str = "stream", tolerance: float = 0.01
) -> dict[int, int | None]:
    """For each M: the fewest frames (offset) from which the scheme's mIoU stays within
    ``tolerance`` (absolute, 0.01 = one point) of the fully solved baseline at every longer
    offset swept; None if it never does. The paper's claim in one number per M."""
    base = next(r["miou"] for r in result.rows if r["mode"] == "baseline")
    reached: dict[int, int | None] = {}
    for m in result.meta["iters"]:
        curve = sorted(
            (r["offset"], r["miou"]) for r in result.rows if r["mode"] == mode and r["M"] == m
        )
        first = None
        for offset, miou in curve:
            close = miou >= base - tolerance
            first = (first or offset) if close else None
        reached[m] = first
    return reached
