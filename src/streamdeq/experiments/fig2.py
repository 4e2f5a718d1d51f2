"""Fig. 2: how far a warm start is from the answer, and how fast the solver closes the gap.

For every frame t >= 1 of every clip: the relative distance ||z - z*_t|| / ||z*_t|| of the
solver's state after k steps to the frame's fully solved representation z*_t, when the solve
starts from the previous frame's fully solved representation z*_{t-1} (Eq. 3, the "reference"
mode) and when it starts from zeros (the non-streaming model with k iterations). Step 0 is the
start point itself: ||z*_{t-1} - z*_t|| / ||z*_t|| and 1.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ..errors import SettingsError
from .clips import Clip, check_clips
from .distributed import gather, shard
from .result import ExperimentResult, integer_ticks, new_figure, series
from .schemes import Scheme, StateTap, reference_states, relative_distance, run_clip, zero_distance

#: Solver steps k the curves are sampled at (besides k = 0).
DEFAULT_STEPS = (1, 2, 4, 8, 16)

STARTS = ("previous reference", "zeros")


def fig2(
    model: Any,
    clips: Sequence[Clip],
    *,
    steps: Sequence[int] = DEFAULT_STEPS,
    **stream_options: Any,
) -> ExperimentResult:
    """Distance to z*_t against solver steps from z*_{t-1} and from zeros.

    Args:
        model: a streamable model in eval mode (N = ``model.config.f_thres``).
        clips: at least one clip of at least 2 frames.
        steps: the k >= 1 to measure (each costs a run of every clip per start).
        stream_options: StreamDEQ settings (e.g. ``solver="anderson"``).

    Returns:
        rows (start, step, distance, distance_std, samples): the mean over all frames t >= 1
        of all clips; the per-frame values are in ``meta["per_frame"]``.
    """
    check_clips(clips)
    steps = sorted(set(int(k) for k in steps))
    if not steps or steps[0] < 1:
        raise SettingsError(f"steps must be integers >= 1, got {steps}")
    if any(clip.num_frames < 2 for clip in clips):
        raise SettingsError("fig2 needs clips of at least 2 frames (t >= 1 has a previous frame)")
    tap = StateTap(model)
    per_frame: list[dict[str, Any]] = []
    for _, clip in shard(clips):
        per_frame += _clip_distances(tap, clip, steps, stream_options)
    per_frame = gather(per_frame)
    rows = _mean_rows(per_frame, [0, *steps])
    meta = {"clips": len(clips), "steps": steps, "per_frame": per_frame}
    return ExperimentResult("fig2", rows, plot_fig2, meta)


def _clip_distances(
    tap: StateTap, clip: Clip, steps: Sequence[int], options: dict
) -> list[dict[str, Any]]:
    reference = [out.state for out in reference_states(tap, clip, **options)]
    rows = []
    for t in range(1, clip.num_frames):
        rows.append(_row(clip, t, "previous reference", 0, reference[t - 1], reference[t]))
        rows.append(_row(clip, t, "zeros", 0, None, reference[t]))
    for k in steps:
        # Eq. 3: frame t starts from z*_{t-1} (the mode's own full solve of frame t-1)
        for out in run_clip(tap, Scheme("reference", k), clip.frames, **options):
            if out.index >= 1:
                rows.append(
                    _row(clip, out.index, "previous reference", k, out.state, reference[out.index])
                )
        for out in run_clip(tap, Scheme("baseline", k), clip.frames, start=1, **options):
            rows.append(_row(clip, out.index, "zeros", k, out.state, reference[out.index]))
    return rows


def _row(clip: Clip, t: int, start: str, step: int, z, z_ref) -> dict[str, Any]:
    distance = zero_distance(z_ref) if z is None else relative_distance(z, z_ref)
    return {"clip": clip.name, "frame": t, "start": start, "step": step, "distance": distance}


def _mean_rows(per_frame: list[dict[str, Any]], steps: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for start in STARTS:
        for k in steps:
            values = [r["distance"] for r in per_frame if r["start"] == start and r["step"] == k]
            if not values:
                continue
            rows.append(
                {
                    "start": start,
                    "step": k,
                    "distance": statistics.fmean(values),
                    "distance_std": statistics.pstdev(values),
                    "samples": len(values),
                }
            )
    return rows


def plot_fig2(rows: Sequence[dict[str, Any]]):
    figure, axes = new_figure()
    ax = axes[0, 0]
    for start, style in zip(STARTS, ("o-", "s--"), strict=True):
        xs, ys = series(rows, "step", "distance", start=start)
        ax.plot(xs, ys, style, label=f"start from {start}")
    integer_ticks(ax)
    ax.set_xlabel("solver steps")
    ax.set_ylabel(r"$\|z - z^*_t\| / \|z^*_t\|$")
    ax.set_yscale("log")
    ax.set_title("Fig. 2: distance to the fully solved representation")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure
