"""Fig. 3: how far the streamed representation stays from the fully solved one, frame by frame.

Two schemes with M iterations a frame, each frame starting from the previous frame's state:
Eq. 4 ("keyframe": the first frame solved fully, N iterations) and Eq. 5 ("stream", StreamDEQ:
the first frame from zeros). The distance ||z_t - z*_t|| / ||z*_t|| to the frame's own full
solve z*_t (N iterations from zeros) is averaged over clips at each frame index. The paper's
finding: Eq. 5 starts far off but both converge towards z*_t within a few frames, the faster the
larger M.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .clips import Clip, check_clips
from .distributed import gather, shard
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

MODES = ("keyframe", "stream")


def fig3(
    model: Any,
    clips: Sequence[Clip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    **stream_options: Any,
) -> ExperimentResult:
    """Distance to z*_t over frames for Eq. 4 and Eq. 5 with each M in ``iters``.

    Returns:
        rows (scheme, mode, M, frame, distance, distance_std, clips): the mean over the clips
        that have the frame; per-clip values are in ``meta["per_clip"]``.
    """
    check_clips(clips)
    iters = check_iters(iters)
    tap = StateTap(model)
    per_clip: list[dict[str, Any]] = []
    for _, clip in shard(clips):
        reference = [out.state for out in reference_states(tap, clip, **stream_options)]
        for mode in MODES:
            for m in iters:
                for out in run_clip(tap, Scheme(mode, m), clip.frames, **stream_options):
                    distance = relative_distance(out.state, reference[out.index])
                    per_clip.append(
                        {
                            "clip": clip.name,
                            "mode": mode,
                            "M": m,
                            "frame": out.index,
                            "distance": distance,
                        }
                    )
    per_clip = gather(per_clip)
    rows = []
    for mode in MODES:
        for m in iters:
            frames = sorted({r["frame"] for r in per_clip if r["mode"] == mode and r["M"] == m})
            for t in frames:
                values = [
                    r["distance"]
                    for r in per_clip
                    if r["mode"] == mode and r["M"] == m and r["frame"] == t
                ]
                rows.append(
                    {
                        "scheme": Scheme(mode, m).label,
                        "mode": mode,
                        "M": m,
                        "frame": t,
                        "distance": statistics.fmean(values),
                        "distance_std": statistics.pstdev(values),
                        "clips": len(values),
                    }
                )
    meta = {"clips": len(clips), "iters": iters, "per_clip": per_clip}
    return ExperimentResult("fig3", rows, plot_fig3, meta)


def plot_fig3(rows: Sequence[dict[str, Any]]):
    figure, axes = new_figure(ncols=2)
    for ax, mode in zip(axes[0], MODES, strict=True):
        for m in sorted({r["M"] for r in rows if r["mode"] == mode}):
            xs, ys = series(rows, "frame", "distance", mode=mode, M=m)
            # a keyframe's distance is 0 (it is the full solve): no point on a log axis
            kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0]
            xs, ys = [x for x, _ in kept], [y for _, y in kept]
            ax.plot(xs, ys, "o-", ms=3, color=iter_color(m), label=f"M = {m}")
        ax.set_title(Scheme(mode).label)
        integer_ticks(ax)
        ax.set_xlabel("frame")
        ax.set_ylabel(r"$\|z_t - z^*_t\| / \|z^*_t\|$")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("Fig. 3: distance to the fully solved representation over frames")
    return figure
