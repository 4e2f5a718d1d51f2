"""Fig. 8 and the detection column of Table 1: mAP@50 of a streamed detector.

Fig. 8 follows the protocol of Fig. 5 (see :mod:`streamdeq.experiments.fig5`): the detector is
scored on the last frame of each clip, with the stream started ``offset`` frames before it
(offset 1: the stream starts at the scored frame, so StreamDEQ then *is* the non-streaming
model). StreamDEQ (Eq. 5) with M in {1, 2, 4, 8} is compared with the non-streaming detector at
M iterations from zeros and with the fully solved baseline (N iterations), which do not depend
on the offset.

Table 1 (detection column): mAP@50 and frames/s of each scheme, every frame of every clip run
through all schemes in turn (interleaved, the order rotating each frame) so the speeds share the
machine's state; a scheme's speed is the median of its per-frame latencies.

The detector is any streamable model whose ``head`` returns one dict per image with ``boxes``
(N, 4) x1 y1 x2 y2 in frame pixels, ``scores`` and ``labels`` (see
:class:`streamdeq.models.detection.MDEQDetector`); clips are generated street scenes
(:func:`generated_detection_clips`; the segmentation experiments' generated clips are accepted
and drawn again with their boxes, see :func:`with_boxes`) or ImageNet VID clips
(:func:`vid_detection_clips`). mAP is
:class:`streamdeq.eval.detection.DetectionAccumulator`'s: COCO AP@50 as the reported number,
the VOC-style all-point AP@50 beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingsError
from ..eval.detection import DetectionAccumulator
from .clips import Clip, frame_offsets
from .distributed import gather, shard
from .interleave import run_interleaved, speed_columns, table1_schemes
from .result import ExperimentResult, iter_color, new_figure, series
from .streams import PAPER_ITERS, Scheme, check_iters
from .table1 import plot_accuracy_vs_speed


@dataclass(frozen=True)
class DetectionClip(Clip):
    """A :class:`~streamdeq.experiments.clips.Clip` with the boxes of its annotated frames.

    Attributes:
        targets: frame index -> dict(boxes=(N, 4) float xyxy pixels, labels=(N,) int class ids
            in the detector's numbering); only annotated frames are keys. (``labels``, the
            segmentation maps of :class:`Clip`, usually stays empty.)
    """

    targets: Mapping[int, Mapping[str, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for index, target in self.targets.items():
            if not 0 <= index < len(self.frames):
                raise SettingsError(
                    f"clip {self.name!r}: boxes for frame {index}, but it has "
                    f"{len(self.frames)} frames"
                )
            if "boxes" not in target or "labels" not in target:
                raise SettingsError(
                    f"clip {self.name!r}: frame {index}'s target needs boxes and labels"
                )

    def target_at(self, index: int) -> Mapping[str, np.ndarray] | None:
        """The boxes of frame ``index``, or None where it is not annotated."""
        return self.targets.get(index)


def generated_detection_clips(
    num_clips: int,
    num_frames: int,
    *,
    split: str = "val",
    settings: Any = None,
    seed: int = 0,
) -> list[DetectionClip]:
    """Street-scene clips of :mod:`streamdeq.data.synthetic` with the boxes of every frame.

    The clips are those of :class:`streamdeq.data.synthetic.SyntheticClips` (and so of
    :func:`streamdeq.experiments.generated_clips`) with the same arguments; labels are
    Cityscapes train ids (person 11, rider 12, car 13, ...), the numbering of
    ``mdeq-det-tiny-synthetic``.
    """
    from ..data.synthetic import SceneSettings, clip_seed, generate_clip

    if num_clips < 1 or num_frames < 1:
        raise SettingsError(
            f"need at least one clip of one frame, got {num_clips} clips of {num_frames}"
        )
    settings = settings if settings is not None else SceneSettings()
    return [
        _synthetic_clip(generate_clip(clip_seed(split, seed, i), num_frames, settings), split, i)
        for i in range(num_clips)
    ]


def _synthetic_clip(clip: Any, split: str, index: int) -> DetectionClip:
    targets = {
        t: {
            "boxes": np.asarray(clip.boxes[t], dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(clip.box_classes[t], dtype=np.int64),
        }
        for t in range(len(clip.frames))
    }
    return DetectionClip(f"synthetic_{split}_{index:06d}", np.asarray(clip.frames), targets=targets)


def with_boxes(clips: Sequence[Any], seed: int = 0) -> list[DetectionClip]:
    """``clips`` as :class:`DetectionClip`: those already are pass; generated street clips
    (:func:`streamdeq.experiments.generated_clips`, named ``synthetic_<split>_<index>``, which
    carry segmentation labels only) are drawn again with their boxes, and must come out
    identical, frame for frame. Anything else (e.g. Cityscapes clips: no boxes) is an error."""
    converted = []
    for clip in clips:
        if isinstance(clip, DetectionClip):
            converted.append(clip)
            continue
        match = _SYNTHETIC_NAME.fullmatch(str(getattr(clip, "name", "")))
        frames = getattr(clip, "frames", None)
        if match is None or frames is None:
            raise SettingsError(
                f"detection experiments need clips with boxes (DetectionClip, generated street "
                f"clips or ImageNet VID clips); got {type(clip).__name__} "
                f"{getattr(clip, 'name', '')!r}"
            )
        split, index = match.group(1), int(match.group(2))
        from ..data.synthetic import SceneSettings, clip_seed, generate_clip

        drawn = generate_clip(clip_seed(split, seed, index), len(frames), SceneSettings())
        if drawn.frames.shape != frames.shape or not np.array_equal(drawn.frames, frames):
            raise SettingsError(
                f"clip {clip.name!r} is not the default generated clip of that name (other "
                "scene settings or seed): build the clips with generated_detection_clips"
            )
        converted.append(_synthetic_clip(drawn, split, index))
    return converted


_SYNTHETIC_NAME = re.compile(r"synthetic_(train|val)_(\d+)")


def vid_detection_clips(
    root: str | Path,
    split: str = "val",
    frames_per_clip: int = 20,
    max_clips: int | None = None,
    **options: Any,
) -> list[DetectionClip]:
    """ImageNet VID clips (:class:`streamdeq.data.imagenet_vid.ImageNetVIDClips`; ``options``:
    clip_stride, resize), every frame with its boxes, labels the VID class indices 0..29."""
    from ..data.imagenet_vid import ImageNetVIDClips

    dataset = ImageNetVIDClips(
        root, split, frames_per_clip=frames_per_clip, max_clips=max_clips, **options
    )
    return [detection_clip_from_item(dataset[i]) for i in range(len(dataset))]


def detection_clip_from_item(item: Mapping[str, Any]) -> DetectionClip:
    """A :class:`DetectionClip` of an ImageNetVIDClips item (frames, per-frame targets, name)."""
    targets = {
        t: {
            "boxes": _numpy(target["boxes"]).astype(np.float32).reshape(-1, 4),
            "labels": _numpy(target.get("labels", target.get("classes"))).astype(np.int64),
        }
        for t, target in enumerate(item["targets"])
    }
    return DetectionClip(str(item.get("name", "clip")), _numpy(item["frames"]), targets=targets)


def fig8(
    model: Any,
    clips: Sequence[DetectionClip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    offsets: Sequence[int] | None = None,
    **stream_options: Any,
) -> ExperimentResult:
    """mAP@50 on each clip's last frame against the number of frames the stream has run.

    Args:
        model: a streamable detector in eval mode.
        clips: clips whose last frame has boxes (the paper: 20 frames ending at it).
        iters: the M to compare.
        offsets: stream lengths k (1 .. the shortest clip); default every k. Each costs a run
            of k frames per clip and M.
        stream_options: StreamDEQ settings (solver, full_iters, ...).

    Returns:
        rows (scheme, mode, M, offset, map50, map, voc_map50, num_images); the two references
        have an empty offset, and the baseline an empty M (it runs N = ``meta["full_iters"]``).
    """
    clips = _check_clips(clips)
    iters = check_iters(iters)
    offsets = _check_offsets(clips, offsets)
    keys = [("stream", m, k) for m in iters for k in offsets]
    keys += [("non-streaming", m, None) for m in iters] + [("baseline", None, None)]
    accumulators = {key: DetectionAccumulator() for key in keys}
    for _, clip in shard(clips):
        target = clip.target_at(clip.last)
        for mode, m, k in keys:
            if mode == "stream":
                scheme, start = Scheme("stream", m), clip.num_frames - k
            else:
                scheme, start = Scheme("baseline", m), clip.last
            detections = _last_output(model, scheme, clip.frames[start:], stream_options)
            accumulators[(mode, m, k)].update([detections], [target])
    rows = []
    for mode, m, k in keys:
        accumulator = accumulators[(mode, m, k)]
        accumulator.all_gather()
        scheme = Scheme("stream" if mode == "stream" else "baseline", m)
        rows.append(
            {"scheme": scheme.label, "mode": mode, "M": m, "offset": k, **_scores(accumulator)}
        )
    meta = {
        "clips": len(clips),
        "iters": iters,
        "offsets": offsets,
        "full_iters": _full_iters(model, stream_options),
    }
    return ExperimentResult("fig8", rows, plot_fig8, meta)


def table1_detect(
    model: Any,
    clips: Sequence[DetectionClip],
    *,
    iters: Sequence[int] = PAPER_ITERS,
    non_streaming: bool = True,
    evaluate: str = "last",
    **stream_options: Any,
) -> ExperimentResult:
    """mAP@50, frames/s and speed-up of StreamDEQ at each M against the fully solved baseline.

    Args:
        model: a streamable detector in eval mode.
        clips: clips with boxes on their last frame ("last") or on the frames to score.
        iters: the M of StreamDEQ (Eq. 5).
        non_streaming: also run the detector with M iterations from zeros on every frame.
        evaluate: "last" (the paper: each clip's last frame) or "all" annotated frames.

    Returns:
        rows (scheme, mode, M, iters_per_frame, map50, map, voc_map50, num_images,
        ms_per_frame, fps, speedup); the baseline first, its speed-up 1.
    """
    clips = _check_clips(clips)
    iters = check_iters(iters)
    schemes = table1_schemes(iters, non_streaming, evaluate)
    accumulators = [DetectionAccumulator() for _ in schemes]

    def target_at(clip: DetectionClip, t: int):
        target = clip.target_at(t)
        return target if target is not None and (evaluate == "all" or t == clip.last) else None

    def score(j: int, output, target) -> None:
        accumulators[j].update([output], [target])

    timings = []
    for _, clip in shard(clips):
        timings += run_interleaved(
            model, clip.frames, schemes, lambda t, c=clip: target_at(c, t), score, stream_options
        )
    timings = gather(timings)
    rows = []
    for i, (scheme, speed) in enumerate(zip(schemes, speed_columns(schemes, timings), strict=True)):
        accumulators[i].all_gather()
        rows.append(
            {
                "scheme": scheme.label,
                "mode": scheme.mode,
                "M": scheme.iters,
                "iters_per_frame": speed["iters_per_frame"],
                **_scores(accumulators[i]),
                **{k: v for k, v in speed.items() if k != "iters_per_frame"},
            }
        )
    meta = {
        "clips": len(clips),
        "frames": sum(clip.num_frames for clip in clips),
        "iters": iters,
        "full_iters": _full_iters(model, stream_options),
        "evaluate": evaluate,
    }
    return ExperimentResult("table1_detect", rows, plot_table1_detect, meta)


def _last_output(model: Any, scheme: Scheme, frames: np.ndarray, options: Mapping[str, Any]):
    """The detections of the last of ``frames``, run in order through a fresh stream."""
    stream = scheme.open(model, **options)
    for frame in frames:
        output = stream.step(frame).output
    return output


def _scores(accumulator: DetectionAccumulator) -> dict[str, float | int]:
    metrics = accumulator.compute()
    return {
        "map50": metrics.map50,
        "map": metrics.map,
        "voc_map50": metrics.voc_map50,
        "num_images": metrics.num_images,
    }


def _check_clips(clips: Sequence[Any]) -> list[DetectionClip]:
    if not clips:
        raise SettingsError("this experiment needs at least one clip, got none")
    return with_boxes(clips)


def _check_offsets(clips: Sequence[DetectionClip], offsets: Sequence[int] | None) -> list[int]:
    for clip in clips:
        if clip.target_at(clip.last) is None:
            raise SettingsError(
                f"fig8 scores the last frame, but clip {clip.name!r} has no boxes for it"
            )
    shortest = min(clip.num_frames for clip in clips)
    return frame_offsets(shortest, offsets)


def _full_iters(model: Any, options: Mapping[str, Any]) -> int | None:
    return options.get("full_iters") or getattr(getattr(model, "config", None), "f_thres", None)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def plot_fig8(rows: Sequence[Mapping[str, Any]]):
    """mAP@50 against offset: StreamDEQ per M (solid), non-streaming at M (dotted), baseline."""
    figure, axes = new_figure()
    ax = axes[0, 0]
    for m in sorted({r["M"] for r in rows if r["mode"] == "stream"}):
        xs, ys = series(rows, "offset", "map50", mode="stream", M=m)
        ax.plot(xs, ys, "o-", ms=3, color=iter_color(m), label=f"StreamDEQ M = {m}")
        flat = [r["map50"] for r in rows if r["mode"] == "non-streaming" and r["M"] == m]
        if flat:
            ax.axhline(flat[0], color=iter_color(m), ls=":", lw=1)
    baseline = next((r["map50"] for r in rows if r["mode"] == "baseline"), None)
    if baseline is not None:
        ax.axhline(baseline, color="black", ls="--", lw=1, label="baseline (N)")
    ax.set_xlabel("frames since the stream started")
    ax.set_ylabel("mAP@50 on the last frame")
    ax.set_title("Fig. 8: detection (dotted: non-streaming at M)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def plot_table1_detect(rows: Sequence[Mapping[str, Any]]):
    """mAP@50 against frames/s: StreamDEQ and non-streaming as lines over M, the baseline."""
    return plot_accuracy_vs_speed(
        rows, "map50", "mAP@50", "Table 1 (detection): accuracy against speed"
    )
