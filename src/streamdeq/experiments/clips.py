"""Clip sets the experiments run on: generated street scenes, Cityscapes sequences, or any
task's annotated videos.

Why one small type: the paper's analyses need only frames in order and the annotations of some
of them (Cityscapes labels one frame per 20-frame clip, the generator every frame), so every
source becomes a list of :class:`Clip` and every experiment takes such a list. What an
annotation is belongs to the task (a label map, a dict of boxes, ...); the experiments only
hand ``clip.target_at(t)`` to the task's metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import SettingsError


@dataclass(frozen=True)
class Clip:
    """Consecutive frames of one video and the annotations of the annotated ones.

    Attributes:
        name: identifies the clip in results (e.g. "val-3" or a Cityscapes frame name).
        frames: (T, H, W, 3) uint8 RGB.
        targets: frame index -> that frame's annotation, in the form the ``task``'s metric
            scores (segmentation: (H, W) int64 Cityscapes train ids, 255 = ignore); only the
            annotated frames are keys (Cityscapes: the last one; generated clips: all).
        task: the task the annotations are for (a model of another task cannot be scored on
            them).
    """

    name: str
    frames: np.ndarray
    targets: Mapping[int, Any] = field(default_factory=dict)
    task: str = "segmentation"

    #: what an annotation is called in messages
    target_word: ClassVar[str] = "label"

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise SettingsError(
                f"clip {self.name!r}: frames must be (T, H, W, 3) uint8, got "
                f"{self.frames.shape} {self.frames.dtype}"
            )
        for index in self.targets:
            if not 0 <= index < len(self.frames):
                raise SettingsError(
                    f"clip {self.name!r}: {self.target_word} for frame {index}, but it has "
                    f"{len(self.frames)} frames"
                )

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def last(self) -> int:
        """Index of the last frame (the annotated one in the paper's protocol)."""
        return len(self.frames) - 1

    @property
    def labels(self) -> Mapping[int, Any]:
        """The annotations under their segmentation name (frame index -> label map)."""
        return self.targets

    def target_at(self, index: int) -> Any | None:
        """The annotation of frame ``index``, or None where it is not annotated."""
        return self.targets.get(index)

    def label_at(self, index: int) -> np.ndarray | None:
        """(H, W) train ids of frame ``index`` of a segmentation clip (see :meth:`target_at`)."""
        return self.target_at(index)


def generated_clips(
    num_clips: int,
    num_frames: int,
    *,
    split: str = "val",
    settings: Any = None,
    seed: int = 0,
) -> list[Clip]:
    """Street-scene clips of :class:`streamdeq.data.synthetic.SyntheticClips`, every frame
    labelled.

    ``split="val"`` draws the generator's held-out seeds (never seen in training), so a clip set
    is reproducible by (split, seed, num_clips, num_frames, settings).
    """
    from ..data.synthetic import SceneSettings, SyntheticClips

    dataset = SyntheticClips(
        num_clips,
        seed=seed,
        settings=settings if settings is not None else SceneSettings(),
        split=split,
        frames_per_clip=num_frames,
    )
    return [clip_from_item(dataset[i]) for i in range(len(dataset))]


def cityscapes_clips(
    root: str | Path,
    split: str = "val",
    frames_per_clip: int = 20,
    max_clips: int | None = None,
) -> list[Clip]:
    """Cityscapes sequence clips (:class:`streamdeq.data.cityscapes.CityscapesSequence`): the
    ``frames_per_clip`` frames ending at each annotated frame, labelled on the last one."""
    from ..data.cityscapes import CityscapesSequence

    dataset = CityscapesSequence(root, split=split, frames_per_clip=frames_per_clip)
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    return [clip_from_item(dataset[i]) for i in range(count)]


def clip_from_item(item: Mapping[str, Any]) -> Clip:
    """A :class:`Clip` of a clip dataset's item: ``frames`` (T, H, W, 3), and ``labels``
    (T, H, W) of every frame or ``label`` (H, W) of the last one; ``name``."""
    frames = _numpy(item["frames"]).astype(np.uint8, copy=False)
    if "labels" in item:
        every = _numpy(item["labels"]).astype(np.int64, copy=False)
        labels = {t: every[t] for t in range(len(every))}
    else:
        labels = {len(frames) - 1: _numpy(item["label"]).astype(np.int64, copy=False)}
    return Clip(str(item.get("name", "clip")), frames, labels)


def check_clips(clips: Sequence[Clip], need: int = 1) -> None:
    """Raise :class:`SettingsError` unless there are ``need`` clips, all of them Clips."""
    if len(clips) < need:
        wanted = "one clip" if need == 1 else f"{need} clips"
        raise SettingsError(f"this experiment needs at least {wanted}, got {len(clips)}")
    for clip in clips:
        if not isinstance(clip, Clip):
            raise SettingsError(f"expected Clip objects, got {type(clip).__name__}")


def check_clip_task(clips: Sequence[Clip], task: str, target_key: str) -> None:
    """Raise :class:`SettingsError` unless every clip is annotated for ``task`` (a metric
    cannot score one task's outputs against another's annotations)."""
    for clip in clips:
        if clip.task != task:
            raise SettingsError(
                f"clip {clip.name!r} is annotated for {clip.task}, but the model is a {task} "
                f"model: give clips with {target_key}"
            )


def frame_offsets(shortest: int, offsets: Sequence[int] | None) -> list[int]:
    """The sorted offsets (frames streamed before the scored last frame) to evaluate: all of
    1..``shortest`` by default; others raise :class:`SettingsError`."""
    if offsets is None:
        return list(range(1, shortest + 1))
    values = sorted(set(offsets))
    if not values or values[0] < 1 or values[-1] > shortest:
        raise SettingsError(
            f"offsets must be between 1 and the shortest clip's length {shortest}, got {values}"
        )
    return values


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
