"""Segmentation predictions of a run: a folder of class-id PNGs at each frame's size, named by
the frame's input index (``000042.png``), Cityscapes-style (one 8-bit channel; 16-bit when the
model has more than 255 classes), plus ``index.jsonl`` (header, then ``{index, timestamp,
file}`` per frame). PNG label maps are what every segmentation toolkit reads, and at frame size
they are the model's answer exactly as ``streamdeq run`` draws it (logits upsampled
bilinearly, then the argmax), so scoring them equals scoring the logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..predictions import (
    IncompleteFolder,
    JsonLines,
    PredictionsError,
    RecordedPredictions,
    read_json_lines,
)
from .render import segmentation_labels

#: The index file inside a predictions folder (also what marks a folder as predictions).
INDEX_NAME = "index.jsonl"

#: Names that say "a file": a folder of label maps given one is a mistake, not a folder name.
FILE_SUFFIXES = frozenset(
    {".jsonl", ".ndjson", ".json", ".csv", ".txt", ".png", ".npz", ".npy", ".pkl"}
)

#: More classes than this are written as 16-bit PNGs (255 is the usual "ignore" value).
MAX_8BIT_CLASSES = 255

#: zlib level of the PNGs: label maps compress well even at the fastest level.
PNG_COMPRESSION = 1


class LabelMapWriter:
    """Writes each frame's label map, then its index line (so a killed run's index names only
    whole files). See the module docstring for the layout."""

    def __init__(self, model: Any, path: Path, header: Mapping[str, Any]) -> None:
        num_classes = int(model.config.num_classes)
        self.dtype = np.uint8 if num_classes <= MAX_8BIT_CLASSES else np.uint16
        self.folder = IncompleteFolder(path, INDEX_NAME)
        self.path, self.incomplete_path = self.folder.path, self.folder.incomplete_path
        self.replaced_incomplete = self.folder.replaced_incomplete
        self._unsynced: list[Path] = []
        try:
            self.index = JsonLines(self.incomplete_path / INDEX_NAME, header)
        except BaseException:
            self.folder.abort()
            raise
        self._closed = False

    def write(self, index: int, timestamp: float, size: tuple[int, int], output: Any) -> None:
        from PIL import Image

        from ...data.errors import OutputError

        labels = segmentation_labels(output, size).astype(self.dtype)
        name = f"{index:06d}.png"
        target = self.incomplete_path / name
        try:
            Image.fromarray(labels).save(target, compress_level=PNG_COMPRESSION)
        except OSError as error:
            raise OutputError(f"writing predictions {target} failed: {error}") from error
        self._unsynced.append(target)
        self.index.append(
            {"index": int(index), "timestamp": round(float(timestamp), 6), "file": name},
            before_sync=self._sync_images,
        )

    def finish(self) -> Path | None:
        if self._closed:
            return self.path
        self._closed = True
        self._sync_images()
        self.index.close()
        return self.folder.finish()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.index.close_quietly()
        self.folder.abort()

    def _sync_images(self) -> None:
        import os

        for image in self._unsynced:
            descriptor = os.open(image, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        self._unsynced.clear()


class LabelMapPredictions:
    """The segmentation task's :class:`~streamdeq.tasks.predictions.PredictionsFormat`."""

    target = "a folder"

    def writer(self, model: Any, path: Path, header: Mapping[str, Any]) -> LabelMapWriter:
        if Path(path).suffix.lower() in FILE_SUFFIXES:
            raise PredictionsError(
                f"--predictions {path}: segmentation predictions are a folder of PNG label "
                f"maps; give a folder name, not a {Path(path).suffix} file"
            )
        return LabelMapWriter(model, path, header)

    def read(self, path: Path) -> RecordedPredictions:
        """A predictions folder (finished, or the ``.incomplete`` one of a killed run); each
        output loads as an (H, W) int64 label map."""
        path = Path(path)
        if not path.is_dir():
            raise PredictionsError(
                f"{path}: segmentation predictions are a folder with {INDEX_NAME} "
                "(streamdeq run --predictions FOLDER)"
            )
        header, frames = read_json_lines(path / INDEX_NAME, "segmentation")
        return RecordedPredictions(path, header, frames, lambda record: _load(path, record))


def _load(folder: Path, record: Mapping[str, Any]) -> np.ndarray:
    from PIL import Image

    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name:
        raise PredictionsError(f"{folder}: frame {record['index']} names no file in the folder")
    try:
        with Image.open(folder / name) as image:
            labels = np.asarray(image)
    except OSError as error:
        raise PredictionsError(f"{folder / name}: cannot read the label map ({error})") from None
    if labels.ndim != 2:
        raise PredictionsError(f"{folder / name}: a label map has one channel, not {labels.shape}")
    return labels.astype(np.int64)


__all__ = ["INDEX_NAME", "LabelMapPredictions", "LabelMapWriter"]
