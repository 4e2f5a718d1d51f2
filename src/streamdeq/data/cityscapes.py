"""Cityscapes video clips: the frames leading up to each annotated frame, with its labels.

The official release puts 30-frame snippets in ``leftImg8bit_sequence/{split}/{city}/`` and one
fine annotation per snippet, on its 20th frame, in ``gtFine/{split}/{city}/``:

    {city}_{seq:06d}_{frame:06d}_leftImg8bit.png        (frame numbers consecutive in a snippet)
    {city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png    (official label IDs, 8-bit)

A clip here is the ``frames_per_clip`` frames ending at the annotated one, so a stream that starts
at the first frame reaches its evaluated frame last, as in the paper. Labels are mapped to the 19
train IDs with every void class as 255.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SettingsError, StreamDEQError
from .labels import label_id_to_train_id_lut

_LABEL_NAME = re.compile(r"^(?P<city>[^_]+)_(?P<seq>\d+)_(?P<frame>\d+)_gtFine_labelIds\.png$")


class CityscapesLayoutError(StreamDEQError, FileNotFoundError):
    """A Cityscapes root that lacks a folder or file of the official layout."""

    def __str__(self) -> str:  # FileNotFoundError would format (errno, strerror) tuples
        return str(self.args[0]) if self.args else ""


class MissingFramesError(CityscapesLayoutError):
    """Sequence frames that a clip needs are not on disk."""


class CityscapesReadError(StreamDEQError, ValueError):
    """An image or label file of the layout that cannot be decoded."""


@dataclass(frozen=True)
class _Clip:
    name: str  # "{city}_{seq}_{frame}" of the annotated frame
    frames: tuple[Path, ...]
    label: Path


class CityscapesSequence(Dataset):
    """Clips of the official Cityscapes sequence release, each ending at an annotated frame.

    Args:
        root: folder holding ``leftImg8bit_sequence/`` and ``gtFine/``.
        split: "train", "val" or "test" (any folder name present under both).
        frames_per_clip: T, the frames of each clip including the annotated one (at most 20 in
            the official release, where the annotation is the 20th of 30 frames).
        cities: only these cities (default: all in the split).
        size: optional (H, W) to resize to: images bilinearly, labels by nearest neighbour.

    Item: dict with ``frames`` (T, H, W, 3) torch.uint8 RGB, oldest first; ``label`` (H, W)
    torch.int64 train IDs of the last frame (255 = ignore); ``name`` of the annotated frame
    (``frankfurt_000000_000294``).

    Raises:
        SettingsError: frames_per_clip < 1 or a bad size.
        CityscapesLayoutError: no root, no split, no annotations.
        MissingFramesError: an annotated frame whose preceding frames are not all there (the
            message names the first missing file and how many clips are affected).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "val",
        frames_per_clip: int = 20,
        cities: list[str] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        if frames_per_clip < 1:
            raise SettingsError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SettingsError(f"size must be (height, width) with positive values, got {size}")
        self.root, self.split = Path(root), split
        self.frames_per_clip, self.size = frames_per_clip, size
        self._lut = label_id_to_train_id_lut()
        self.clips = self._index(cities)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        try:
            frames = np.stack([self._read_image(path) for path in clip.frames])
            label = self._read_label(clip.label)
        except OSError as error:  # PIL's UnidentifiedImageError is an OSError too
            raise CityscapesReadError(
                f"cannot read clip {clip.name}: {error}; re-extract that file from the archive"
            ) from error
        return {
            "frames": torch.from_numpy(frames),
            "label": torch.from_numpy(label),
            "name": clip.name,
        }

    def _index(self, cities: list[str] | None) -> list[_Clip]:
        image_root = self._split_dir("leftImg8bit_sequence")
        label_root = self._split_dir("gtFine")
        city_dirs = sorted(d for d in label_root.iterdir() if d.is_dir())
        if cities is not None:
            unknown = sorted(set(cities) - {d.name for d in city_dirs})
            if unknown:
                raise CityscapesLayoutError(
                    f"no city {', '.join(unknown)} in {label_root}; "
                    f"it has {', '.join(d.name for d in city_dirs) or 'none'}"
                )
            city_dirs = [d for d in city_dirs if d.name in cities]
        clips, missing = [], []
        for city_dir in city_dirs:
            for label_path in sorted(city_dir.glob("*_gtFine_labelIds.png")):
                match = _LABEL_NAME.match(label_path.name)
                if match is None:
                    continue
                clip = self._clip(image_root, match, label_path)
                absent = [path for path in clip.frames if not path.is_file()]
                if absent:
                    missing.append(absent[0])
                clips.append(clip)
        if not clips:
            raise CityscapesLayoutError(
                f"no *_gtFine_labelIds.png files under {label_root}; download gtFine_trainvaltest "
                "and unpack it into the root"
            )
        if missing:
            raise MissingFramesError(
                f"{len(missing)} of {len(clips)} clips lack sequence frames (first: {missing[0]}); "
                f"unpack leftImg8bit_sequence for split {self.split!r} or use fewer frames_per_clip"
            )
        return clips

    def _split_dir(self, folder: str) -> Path:
        if not self.root.is_dir():
            raise CityscapesLayoutError(
                f"Cityscapes root {self.root} does not exist or is not a folder"
            )
        base = self.root / folder
        if not base.is_dir():
            raise CityscapesLayoutError(
                f"{self.root} has no {folder}/ folder; point root at the folder holding "
                "leftImg8bit_sequence/ and gtFine/"
            )
        split_dir = base / self.split
        if not split_dir.is_dir():
            present = sorted(d.name for d in base.iterdir() if d.is_dir())
            raise CityscapesLayoutError(
                f"no split {self.split!r} in {base}; it has {', '.join(present) or 'none'}"
            )
        return split_dir

    def _clip(self, image_root: Path, match: re.Match[str], label_path: Path) -> _Clip:
        city, seq, last = match["city"], match["seq"], int(match["frame"])
        width = len(match["frame"])
        numbers = range(last - self.frames_per_clip + 1, last + 1)
        frames = tuple(
            image_root / city / f"{city}_{seq}_{n:0{width}d}_leftImg8bit.png" for n in numbers
        )
        return _Clip(f"{city}_{seq}_{match['frame']}", frames, label_path)

    def _read_image(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if self.size is not None:
                rgb = rgb.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)

    def _read_label(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            if self.size is not None:
                image = image.resize((self.size[1], self.size[0]), Image.Resampling.NEAREST)
            label_ids = np.asarray(image)
        if label_ids.ndim != 2 or label_ids.max(initial=0) > 255:
            raise CityscapesReadError(
                f"{path} is not an 8-bit label-ID image; use the *_gtFine_labelIds.png files"
            )
        return self._lut[label_ids.astype(np.intp)].astype(np.int64)
