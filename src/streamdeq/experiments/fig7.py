"""Fig. 7: a shot change. What if the state the stream carries belongs to another video?

Each clip (the target) is streamed from its frame 1 on, with M iterations a frame, from three
start points:

* "other video": the fully solved representation of a frame of another clip (the next one in
  the set, its last frame), as after a hard cut;
* "same video": the fully solved representation of the target's own frame 0 (no cut);
* "zeros": StreamDEQ's first frame (Eq. 5).

The first two are the keyframe scheme (Eq. 4) fed the start frame first, so the engine itself
carries the state over the cut. Per frame: the distance to the target's full solve z*_t and, on
annotated frames, mIoU. The paper's finding: the foreign start is no worse than zeros after a
few frames, so a stream needs no cut detection to recover.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tasks.segmentation.metric import as_label_tensor, predict_labels
from .clips import Clip, check_clips
from .distributed import confusion_matrices, gather, reduce_confusions, shard
from .result import ExperimentResult, integer_ticks, iter_color, new_figure, series
from .schemes import (
    PAPER_ITERS,
    Scheme,
    StateTap,
    check_iters,
    reference_states,
    relative_distance,
    run_clip,
)

STARTS = ("other video", "same video", "zeros")


def fig7(
    model: Any,
    clips: Sequence[Clip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    num_classes: int = 19,
    **stream_options: Any,
) -> ExperimentResult:
    """Distance and mIoU over the frames after a start from another video, the same video,
    or zeros.

    Args:
        clips: at least 2 clips (the other video of clip i is clip i + 1, cyclically), of at
            least 2 frames; frame indices below are the target's (from 1).

    Returns:
        rows (start, M, frame, distance, distance_std, miou): means over the targets; miou is
        empty on frames no target annotates.
    """
    check_clips(clips, need=2)
    iters = check_iters(iters)
    from ..errors import SettingsError

    if any(clip.num_frames < 2 for clip in clips):
        raise SettingsError("fig7 needs clips of at least 2 frames")
    tap = StateTap(model)
    length = max(clip.num_frames for clip in clips)
    keys = [(start, m, t) for start in STARTS for m in iters for t in range(1, length)]
    matrices = confusion_matrices(keys, num_classes)
    annotated: set[int] = set()
    distances: list[dict[str, Any]] = []
    for i, clip in shard(clips):
        other = clips[(i + 1) % len(clips)]
        reference = [out.state for out in reference_states(tap, clip, **stream_options)]
        for start in STARTS:
            for m in iters:
                for out in _run_from(tap, start, m, clip, other, stream_options):
                    distances.append(
                        {
                            "start": start,
                            "M": m,
                            "frame": out.index,
                            "distance": relative_distance(out.state, reference[out.index]),
                        }
                    )
                    label = clip.label_at(out.index)
                    if label is not None:
                        annotated.add(out.index)
                        target = as_label_tensor(label)
                        pred = predict_labels(out.logits, tuple(target.shape))
                        matrices[(start, m, out.index)].update(pred, target)
    distances = gather(distances)
    annotated = set(gather(sorted(annotated)))
    reduce_confusions(matrices)
    rows = []
    for start, m, t in keys:
        values = [
            d["distance"]
            for d in distances
            if d["start"] == start and d["M"] == m and d["frame"] == t
        ]
        if not values:
            continue
        rows.append(
            {
                "start": start,
                "M": m,
                "frame": t,
                "distance": statistics.fmean(values),
                "distance_std": statistics.pstdev(values),
                "miou": float(matrices[(start, m, t)].miou()) if t in annotated else None,
            }
        )
    return ExperimentResult("fig7", rows, plot_fig7, {"clips": len(clips), "iters": iters})


def _run_from(tap: StateTap, start: str, m: int, clip: Clip, other: Clip, options: dict):
    """The target's frames 1.. streamed from ``start``; yields their outputs."""
    if start == "zeros":
        yield from run_clip(tap, Scheme("stream", m), clip.frames, start=1, **options)
        return
    first = other.frames[-1] if start == "other video" else clip.frames[0]
    if first.shape != clip.frames[0].shape:
        # a different frame size would reset the stream: bring the other frame to this size
        first = _resize(first, clip.frames.shape[1:3])
    frames = np.concatenate([first[None], clip.frames[1:]])
    # keyframe (Eq. 4): the start frame is solved fully, then M iterations a frame
    for out in run_clip(tap, Scheme("keyframe", m), frames, start=0, **options):
        if out.index >= 1:
            yield out


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def plot_fig7(rows: Sequence[dict[str, Any]]):
    iters = sorted({r["M"] for r in rows})
    has_miou = any(r["miou"] is not None for r in rows)
    figure, axes = new_figure(ncols=len(iters), nrows=2 if has_miou else 1, width=4.0)
    styles = {"other video": "o-", "same video": "s--", "zeros": "^:"}
    for col, m in enumerate(iters):
        ax = axes[0, col]
        for start in STARTS:
            xs, ys = series(rows, "frame", "distance", start=start, M=m)
            ax.plot(
                xs,
                ys,
                styles[start],
                ms=3,
                color=iter_color(m),
                label=start,
                alpha=0.55 if start == "same video" else 1.0,
            )
        ax.set_title(f"M = {m}")
        integer_ticks(ax)
        ax.set_xlabel("frame")
        ax.set_ylabel(r"$\|z_t - z^*_t\| / \|z^*_t\|$")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        if has_miou:
            ax = axes[1, col]
            for start in STARTS:
                picked = [
                    r for r in rows if r["start"] == start and r["M"] == m and r["miou"] is not None
                ]
                ax.plot(
                    [r["frame"] for r in picked],
                    [r["miou"] for r in picked],
                    styles[start],
                    ms=3,
                    color=iter_color(m),
                    label=start,
                )
            integer_ticks(ax)
            ax.set_xlabel("frame")
            ax.set_ylabel("mIoU")
            ax.grid(alpha=0.3)
    figure.suptitle("Fig. 7: starting from another video's representation (shot change)")
    return figure
