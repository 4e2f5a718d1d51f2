"""Clips with boxes for the detection experiments: generated street scenes (the same clips as
:func:`streamdeq.experiments.generated_clips`, with the boxes of every frame) and ImageNet VID.

Labels are in the detector's numbering: Cityscapes train ids for the generated scenes (person 11,
rider 12, car 13, ...; the numbering of ``mdeq-det-tiny-synthetic``), the VID class indices
0..29 for ImageNet VID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import SettingsError
from .clips import Clip


@dataclass(frozen=True)
class DetectionClip(Clip):
    """A :class:`~streamdeq.experiments.clips.Clip` of the detection task: ``targets`` are the
    boxes of its annotated frames.

    Attributes:
        targets: frame index -> dict(boxes=(N, 4) float xyxy pixels, labels=(N,) int class ids
            in the detector's numbering); only annotated frames are keys.
    """

    task: str = "detection"

    target_word: ClassVar[str] = "boxes"

    def __post_init__(self) -> None:
        super().__post_init__()
        for index, target in self.targets.items():
            if "boxes" not in target or "labels" not in target:
                raise SettingsError(
                    f"clip {self.name!r}: frame {index}'s target needs boxes and labels"
                )


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


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
