"""Ground truth of one recorded stream for ``streamdeq score``: each annotated frame's index g in
the stream (the run's input index) and its annotation, from the layouts the project reads.

* **segmentation**, (H, W) train-ID label maps (255 = ignore):
  - a Cityscapes-layout root (``gtFine/`` + ``leftImg8bit_sequence/``, as ``streamdeq
    generate`` writes it): one sequence (``--sequence CITY_SEQ``, needed when there are
    several); g = the annotated frame's number minus the number of the sequence's first frame
    in ``leftImg8bit_sequence/`` (the first frame of a run over that folder); labelIds are
    mapped to train IDs;
  - a folder of label PNGs named by frame index (``5.png``, ``000005.png``), train IDs as is.
* **detection**, ``boxes`` (G, 4) x1 y1 x2 y2 pixels and ``labels`` (G,):
  - an Argoverse-HD-style manifest (``.json``, :mod:`streamdeq.streaming.manifest`): one
    sequence, g = its ``fid``;
  - ImageNet VID annotations: a snippet's folder of ``%06d.xml`` (g = the number), or the
    dataset root with ``--sequence SNIPPET`` (``Annotations/VID/<split>/<snippet>/``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingsError, StreamDEQError

_CITYSCAPES_LABEL = re.compile(r"^(?P<seq>.+)_(?P<frame>\d+)_gtFine_labelIds\.png$")
_CITYSCAPES_FRAME = re.compile(r"^(?P<seq>.+)_(?P<frame>\d+)_leftImg8bit\.png$")


class AnnotationsError(StreamDEQError, ValueError):
    """Annotations that cannot be read, or that do not say which frames of which stream."""


@dataclass(frozen=True)
class Annotations:
    """One stream's ground truth.

    Attributes:
        task: "segmentation" or "detection".
        kind: the layout read ("cityscapes", "label folder", "manifest", "imagenet-vid").
        sequence: the sequence chosen (None for a folder of one stream).
        frames: g -> annotation.
    """

    task: str
    kind: str
    sequence: str | None
    frames: Mapping[int, Any]


def load_annotations(
    path: Path, *, sequence: str | None = None, split: str | None = None
) -> Annotations:
    """Read ``path`` as one of the layouts of the module docstring (told apart by what it holds).

    Raises:
        AnnotationsError: a missing path, an unknown layout, an ambiguous or unknown sequence,
            a file that does not decode.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise AnnotationsError(f"--annotations {path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise AnnotationsError(
                f"--annotations {path}: a file must be an Argoverse-HD-style manifest (.json)"
            )
        return _manifest(path, sequence)
    if (path / "gtFine").is_dir():
        return _cityscapes(path, sequence, split)
    if (path / "Annotations" / "VID").is_dir():
        return _vid_root(path, sequence, split)
    if (path / "index.jsonl").is_file():
        raise AnnotationsError(
            f"--annotations {path} holds predictions (index.jsonl), not ground truth"
        )
    if any(path.glob("*.xml")):
        return Annotations("detection", "imagenet-vid", None, _vid_folder(path))
    if any(path.glob("*.png")):
        return Annotations("segmentation", "label folder", None, _label_folder(path))
    raise AnnotationsError(
        f"--annotations {path}: not a Cityscapes root (gtFine/), an ImageNet VID root or "
        "snippet folder (.xml), a folder of label PNGs, or a manifest (.json)"
    )


def _choose(names: list[str], sequence: str | None, where: Path) -> str:
    if sequence is not None:
        if sequence not in names:
            raise AnnotationsError(f"no sequence {sequence!r} in {where}; it has {_listing(names)}")
        return sequence
    if len(names) != 1:
        raise AnnotationsError(
            f"{where} holds {len(names)} sequences; say which one the run covers with "
            f"--sequence ({_listing(names)})"
        )
    return names[0]


def _listing(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _split_dir(root: Path, split: str | None) -> Path:
    splits = sorted(d.name for d in root.iterdir() if d.is_dir())
    if split is None:
        split = splits[0] if len(splits) == 1 else "val"
    if split not in splits:
        raise AnnotationsError(f"no split {split!r} in {root}; it has {_listing(splits)} (--split)")
    return root / split


# ----------------------------------------------------------------------------- segmentation


def _cityscapes(root: Path, sequence: str | None, split: str | None) -> Annotations:
    from ..data.labels import label_id_to_train_id_lut

    labels_root = _split_dir(root / "gtFine", split)
    labels: dict[str, dict[int, Path]] = {}
    for path in sorted(labels_root.glob("*/*_gtFine_labelIds.png")):
        match = _CITYSCAPES_LABEL.match(path.name)
        if match is not None:
            labels.setdefault(match["seq"], {})[int(match["frame"])] = path
    if not labels:
        raise AnnotationsError(f"no *_gtFine_labelIds.png under {labels_root}")
    chosen = _choose(sorted(labels), sequence, labels_root)
    city = next(iter(labels[chosen].values())).parent.name
    frames_dir = root / "leftImg8bit_sequence" / labels_root.name / city
    numbers = [
        int(match["frame"])
        for match in map(_CITYSCAPES_FRAME.match, (p.name for p in frames_dir.glob("*.png")))
        if match is not None and match["seq"] == chosen
    ]
    if not numbers:
        raise AnnotationsError(
            f"no frames of {chosen} in {frames_dir}: the sequence's first frame sets where the "
            "run started (frame 0)"
        )
    first = min(numbers)
    lut = label_id_to_train_id_lut()
    frames = {
        number - first: lut[_read_png(path).astype(np.intp)].astype(np.int64)
        for number, path in labels[chosen].items()
        if number >= first
    }
    return Annotations("segmentation", "cityscapes", chosen, frames)


def _label_folder(folder: Path) -> dict[int, np.ndarray]:
    frames = {}
    for path in sorted(folder.glob("*.png")):
        if not path.stem.isdigit():
            raise AnnotationsError(
                f"{path}: label PNGs in a folder are named by frame index (5.png, 000005.png)"
            )
        index = int(path.stem)
        if index in frames:
            raise AnnotationsError(f"{folder}: frame {index} has two label files")
        frames[index] = _read_png(path).astype(np.int64)
    return frames


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            labels = np.asarray(image)
    except OSError as error:
        raise AnnotationsError(f"{path}: cannot read the label map ({error})") from None
    if labels.ndim != 2:
        raise AnnotationsError(f"{path}: a label map has one channel, not shape {labels.shape}")
    return labels


# ----------------------------------------------------------------------------- detection


def _manifest(path: Path, sequence: str | None) -> Annotations:
    from ..streaming.manifest import read_manifest

    manifest = read_manifest(path)
    chosen = _choose(list(manifest.sequences), sequence, path)
    return Annotations("detection", "manifest", chosen, manifest.targets()[chosen])


def _vid_root(root: Path, sequence: str | None, split: str | None) -> Annotations:
    split_dir = _split_dir(root / "Annotations" / "VID", split)
    if sequence is None:
        raise AnnotationsError(
            f"{root} is an ImageNet VID root: say which snippet the run covers with --sequence "
            f"(a folder under {split_dir})"
        )
    folder = split_dir / sequence
    if not folder.is_dir():
        raise AnnotationsError(f"no snippet {sequence!r} under {split_dir}")
    return Annotations("detection", "imagenet-vid", sequence, _vid_folder(folder))


def _vid_folder(folder: Path) -> dict[int, dict[str, np.ndarray]]:
    from ..data.imagenet_vid import parse_annotation

    frames = {}
    for path in sorted(folder.glob("*.xml")):
        if not path.stem.isdigit():
            raise AnnotationsError(f"{path}: VID annotations are named by frame (000005.xml)")
        annotation = parse_annotation(path)
        frames[int(path.stem)] = {
            "boxes": annotation.boxes.astype(np.float64),
            "labels": annotation.classes,
        }
    return frames


def check_task(annotations: Annotations, task: str, path: Path) -> None:
    """The annotations must be of the predictions' task."""
    if annotations.task != task:
        raise SettingsError(
            f"--annotations {path} holds {annotations.task} ground truth ({annotations.kind}), "
            f"but the predictions are {task} outputs"
        )


__all__ = ["Annotations", "AnnotationsError", "check_task", "load_annotations"]
