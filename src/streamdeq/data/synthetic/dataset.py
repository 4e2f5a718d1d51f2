"""Torch datasets over generated clips: single annotated frames for training, whole clips for
streaming evaluation. The annotated frame of a clip is its last, as in Cityscapes sequences."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import SettingsError
from .clip import generate_clip, render_last_frame
from .settings import SceneSettings

SPLITS = ("train", "val")


def clip_seed(split: str, seed: int, index: int) -> int:
    """Seed of clip ``index`` of a split: even for "train", odd for "val", so the two never share
    a scene whatever ``seed`` and ``index`` are."""
    if split not in SPLITS:
        raise SettingsError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if not 0 <= seed < 2**31:
        raise SettingsError(f"seed must lie in 0..2**31 - 1, got {seed}")
    return ((seed << 32) + index) * 2 + SPLITS.index(split)


class _SplitClips(Dataset):
    """Clip i of a split, drawn from :func:`clip_seed`: what both datasets share."""

    def __init__(
        self, num_clips: int, seed: int, settings: SceneSettings, split: str, frames_per_clip: int
    ) -> None:
        if num_clips < 1:
            raise SettingsError(f"num_clips must be at least 1, got {num_clips}")
        if frames_per_clip < 1:
            raise SettingsError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
        clip_seed(split, seed, 0)  # validates split and seed now, not at the first item
        self.num_clips, self.seed, self.settings = num_clips, seed, settings
        self.split, self.frames_per_clip = split, frames_per_clip

    def __len__(self) -> int:
        return self.num_clips

    def _seed_of(self, index: int) -> int:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return clip_seed(self.split, self.seed, index)


class SyntheticSegmentation(_SplitClips):
    """Single annotated frames: item i is the last frame of clip i of the split.

    Only that frame is drawn (frames are pure functions of scene and index), so an item costs
    one frame. Items are identical every time they are read, in any worker.

    Item: dict with
        image: (3, H, W) torch.uint8 RGB,
        label: (H, W) torch.int64 train IDs (255 = ignore),
        boxes: (N, 4) torch.float32 xyxy, classes: (N,) torch.int64, track_ids: (N,) int64.
    Boxes differ in N per item: batch with :func:`collate_frames`.
    """

    def __init__(
        self,
        num_clips: int,
        seed: int = 0,
        settings: SceneSettings = SceneSettings(),  # noqa: B008 - frozen
        split: str = "train",
        frames_per_clip: int = 20,
    ) -> None:
        super().__init__(num_clips, seed, settings, split, frames_per_clip)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame = render_last_frame(self._seed_of(index), self.frames_per_clip, self.settings)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(frame.image.transpose(2, 0, 1))),
            "label": torch.from_numpy(frame.label.astype(np.int64)),
            "boxes": torch.from_numpy(frame.boxes),
            "classes": torch.from_numpy(frame.box_classes),
            "track_ids": torch.from_numpy(frame.track_ids),
        }


class SyntheticClips(_SplitClips):
    """Whole clips for streaming evaluation: T frames ending at the annotated one.

    Clip i of a split ends at exactly the frame that item i of :class:`SyntheticSegmentation`
    with the same arguments returns (without cuts).

    Item: dict with
        frames: (T, H, W, 3) torch.uint8 RGB,
        label: (H, W) torch.int64 train IDs of the last frame,
        labels: (T, H, W) torch.int64 train IDs of every frame (for offset sweeps),
        boxes, classes, track_ids: those of the last frame,
        cuts: (K,) torch.int64 frame indices of hard shot changes,
        name: str, e.g. "synthetic_val_000003".
    """

    def __init__(
        self,
        num_clips: int,
        seed: int = 0,
        settings: SceneSettings = SceneSettings(),  # noqa: B008 - frozen
        split: str = "val",
        frames_per_clip: int = 20,
        cuts: tuple[int, ...] = (),
    ) -> None:
        super().__init__(num_clips, seed, settings, split, frames_per_clip)
        if any(not 0 < cut < frames_per_clip for cut in cuts):
            raise SettingsError(f"cuts must lie in 1..{frames_per_clip - 1}, got {list(cuts)}")
        self.cuts = tuple(cuts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = generate_clip(self._seed_of(index), self.frames_per_clip, self.settings, self.cuts)
        return {
            "frames": torch.from_numpy(clip.frames),
            "label": torch.from_numpy(clip.labels[-1].astype(np.int64)),
            "labels": torch.from_numpy(clip.labels.astype(np.int64)),
            "boxes": torch.from_numpy(clip.boxes[-1]),
            "classes": torch.from_numpy(clip.box_classes[-1]),
            "track_ids": torch.from_numpy(clip.track_ids[-1]),
            "cuts": torch.tensor(clip.cuts, dtype=torch.int64),
            "name": f"synthetic_{self.split}_{index:06d}",
        }


def collate_frames(items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Batch items of :class:`SyntheticSegmentation`: images (B, 3, H, W) and labels (B, H, W)
    stacked; boxes, classes and track_ids kept as lists (their N differs per frame)."""
    batch: dict[str, Any] = {
        "image": torch.stack([item["image"] for item in items]),
        "label": torch.stack([item["label"] for item in items]),
    }
    for key in ("boxes", "classes", "track_ids"):
        batch[key] = [item[key] for item in items]
    return batch
