"""ImageNet VID (ILSVRC2015) and the 30 VID classes of ImageNet DET, read from the official layout.

The layout under ``root`` (the ``ILSVRC2015`` folder of the official archive)::

    Data/VID/{train,val}/<snippet>/<%06d>.JPEG        frames of each snippet, from 000000
    Annotations/VID/{train,val}/<snippet>/<%06d>.xml  one Pascal-VOC style file per frame
    ImageSets/VID/train_<k>.txt                       "<snippet> <1|-1>", one list per class
    ImageSets/VID/val.txt                             "<snippet>/<%06d> <index>", every frame
    Data/DET/train/<image_id>.JPEG, Annotations/DET/train/<image_id>.xml
    ImageSets/DET/train_<k>.txt                       "<image_id> <1|0|-1>", per DET class

(train snippets sit one folder deeper, e.g. ``ILSVRC2015_VID_train_0000/ILSVRC2015_train_...``;
the lists name them with that folder.) Each frame's XML has ``size`` (width, height) and one
``object`` per box: ``trackid``, ``name`` (a WordNet id such as n02691156), ``bndbox``
(xmin, ymin, xmax, ymax), ``occluded`` and ``generated``.

As in the paper (and the Faster R-CNN recipes it follows), images are resized so the shorter
side is 600 pixels unless that makes the longer side exceed 1000; boxes are scaled with them.
Class index c is :data:`VID_CLASSES` [c] (0..29, alphabetical by name, the order the VID
devkit's meta_vid.mat uses); DET objects of the other 170 DET classes are dropped.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import SettingsError, StreamDEQError
from ..validation import check_int

#: The 30 VID classes: (WordNet id, name); class index = position.
VID_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02691156", "airplane"),
    ("n02419796", "antelope"),
    ("n02131653", "bear"),
    ("n02834778", "bicycle"),
    ("n01503061", "bird"),
    ("n02924116", "bus"),
    ("n02958343", "car"),
    ("n02402425", "cattle"),
    ("n02084071", "dog"),
    ("n02121808", "domestic_cat"),
    ("n02503517", "elephant"),
    ("n02118333", "fox"),
    ("n02510455", "giant_panda"),
    ("n02342885", "hamster"),
    ("n02374451", "horse"),
    ("n02129165", "lion"),
    ("n01674464", "lizard"),
    ("n02484322", "monkey"),
    ("n03790512", "motorcycle"),
    ("n02324045", "rabbit"),
    ("n02509815", "red_panda"),
    ("n02411705", "sheep"),
    ("n01726692", "snake"),
    ("n02355227", "squirrel"),
    ("n02129604", "tiger"),
    ("n04468005", "train"),
    ("n01662784", "turtle"),
    ("n04530566", "watercraft"),
    ("n02062744", "whale"),
    ("n02391049", "zebra"),
)

#: WordNet id -> class index.
VID_CLASS_INDEX: dict[str, int] = {wnid: i for i, (wnid, _) in enumerate(VID_CLASSES)}

#: Class names in index order (for drawing and reports).
VID_CLASS_NAMES: tuple[str, ...] = tuple(name for _, name in VID_CLASSES)

SPLITS = ("train", "val")


class ImageNetVIDError(StreamDEQError, ValueError):
    """The dataset folder is missing, incomplete, or holds a file that cannot be read."""


@dataclass(frozen=True)
class ResizeSettings:
    """The paper's input size: shorter side ``min_size`` (600) unless the longer side would
    exceed ``max_size`` (1000); then the longer side is ``max_size``."""

    min_size: int = 600
    max_size: int = 1000

    def __post_init__(self) -> None:
        check_int("min_size", self.min_size, label="resize min_size")
        check_int("max_size", self.max_size, label="resize max_size")
        if self.max_size < self.min_size:
            raise SettingsError(
                f"resize max_size ({self.max_size}) must be >= min_size ({self.min_size})"
            )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') of a ``height`` x ``width`` image after resizing."""
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class FrameAnnotation:
    """The boxes of one frame or image, in original pixels.

    Attributes:
        width, height: of the image, from the XML's ``size``.
        boxes: (N, 4) float32 x1, y1, x2, y2.
        classes: (N,) int64 VID class indices.
        track_ids: (N,) int64 (-1 for DET images, which have none).
        occluded, generated: (N,) bool flags of the VID annotation (False for DET).
    """

    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray
    track_ids: np.ndarray
    occluded: np.ndarray
    generated: np.ndarray


def parse_annotation(path: str | os.PathLike[str]) -> FrameAnnotation:
    """Read one Pascal-VOC style XML; objects outside the 30 VID classes are dropped."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ImageNetVIDError(f"annotation file not found: {path}") from None
    except ET.ParseError as error:
        raise ImageNetVIDError(f"malformed annotation XML {path}: {error}") from None
    width = _int_field(root, "size/width", path)
    height = _int_field(root, "size/height", path)
    rows = []
    for obj in root.iterfind("object"):
        wnid = (obj.findtext("name") or "").strip()
        if wnid not in VID_CLASS_INDEX:
            continue
        box = [_float_field(obj, f"bndbox/{k}", path) for k in ("xmin", "ymin", "xmax", "ymax")]
        if box[2] < box[0] or box[3] < box[1]:
            raise ImageNetVIDError(f"inverted box {box} (xmax < xmin or ymax < ymin) in {path}")
        has_track = obj.find("trackid") is not None
        rows.append(
            (
                box,
                VID_CLASS_INDEX[wnid],
                _int_field(obj, "trackid", path) if has_track else -1,
                _flag(obj, "occluded"),
                _flag(obj, "generated"),
            )
        )
    boxes, classes, tracks, occluded, generated = zip(*rows, strict=True) if rows else ([],) * 5
    return FrameAnnotation(
        width=width,
        height=height,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        classes=np.asarray(classes, dtype=np.int64),
        track_ids=np.asarray(tracks, dtype=np.int64),
        occluded=np.asarray(occluded, dtype=bool),
        generated=np.asarray(generated, dtype=bool),
    )


def load_image(
    path: str | os.PathLike[str], resize: ResizeSettings | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 RGB of a JPEG, resized per ``resize`` (None: original size), and the
    original (H0, W0): boxes are scaled by the image's own size, not the XML's claim."""
    try:
        with Image.open(path) as image:
            original = (image.height, image.width)
            image = image.convert("RGB")
            if resize is not None:
                height, width = resize.output_size(*original)
                if (height, width) != original:
                    image = image.resize((width, height), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8), original
    except FileNotFoundError:
        raise ImageNetVIDError(f"image not found: {path}") from None
    except OSError as error:
        raise ImageNetVIDError(f"cannot read image {path}: {error}") from None


def scale_boxes(boxes: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) xyxy boxes of a ``from_hw`` image, in the pixels of the resized ``to_hw`` one."""
    scale_y = to_hw[0] / from_hw[0]
    scale_x = to_hw[1] / from_hw[1]
    factors = np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
    return (boxes * factors).astype(np.float32)


@dataclass(frozen=True)
class _Frame:
    """Where one annotated image lives: ``kind`` is "VID" or "DET"; ``stem`` relative to
    Data/<kind>/<split>/ without extension."""

    kind: str
    split: str
    stem: str


class ImageNetVID(torch.utils.data.Dataset):
    """Single annotated images of ImageNet VID (and optionally DET), for training or testing.

    Args:
        root: the ILSVRC2015 folder (holding Data/, Annotations/, ImageSets/).
        split: "train" (snippets of ImageSets/VID/train_*.txt) or "val" (ImageSets/VID/val.txt).
        frames_per_snippet: for "train", take this many frames per snippet, evenly spaced (the
            common VID recipe takes 15); None: every frame.
        include_det: add the DET training images that ImageSets/DET/train_*.txt lists as
            positive (1) and whose XML has an object of a VID class (the paper trains on VID
            + DET). Finding them reads each listed XML once, when the dataset is created.
        det_lists: which DET lists (k of train_k.txt) to read; None: all of them.
        resize: the paper's 600/1000 resizing; None keeps the original size.

    Item: dict(image=uint8 (3, H, W), boxes=float32 (N, 4) xyxy in the resized image,
    classes=int64 (N,), track_ids=int64 (N,), occluded=bool (N,), generated=bool (N,),
    name=str ("VID/val/<snippet>/<frame>"), orig_size=(H0, W0)). ``classes`` is the key
    :mod:`streamdeq.data.synthetic` uses, so a detection trainer reads both alike.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        frames_per_snippet: int | None = None,
        include_det: bool = False,
        det_lists: Sequence[int] | None = None,
        resize: ResizeSettings | None = ResizeSettings(),
    ) -> None:
        self.root = check_root(root)
        self.split = _check_split(split)
        check_int("frames_per_snippet", frames_per_snippet, optional=True)
        self.resize = _check_resize(resize)
        self.frames: list[_Frame] = []
        for snippet, count in snippet_lengths(self.root, split).items():
            indices = _spread(count, frames_per_snippet) if split == "train" else range(count)
            self.frames.extend(_Frame("VID", split, f"{snippet}/{i:06d}") for i in indices)
        if include_det:
            self.frames.extend(
                _Frame("DET", "train", stem) for stem in det_images(self.root, det_lists)
            )

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        frame = self.frames[index]
        return _load_item(self.root, frame, self.resize)


class ImageNetVIDClips(torch.utils.data.Dataset):
    """Clips of consecutive VID frames ending at chosen frames, for streaming evaluation.

    Each clip is ``frames_per_clip`` consecutive frames of one snippet; its last frame is the
    one the paper's protocol evaluates, but every frame comes with its boxes so accuracy can be
    read at any point of the stream. Snippets shorter than a clip are skipped.

    Args:
        root, split, resize: as :class:`ImageNetVID`.
        frames_per_clip: T, the clip length (the paper: 20).
        clip_stride: clips end at frames T-1, T-1 + stride, ... of each snippet; None: one clip
            per snippet, ending at its last frame.
        max_clips: keep only the first clips (in snippet order).

    Item: dict(frames=uint8 (T, H, W, 3), targets=list of T dicts (boxes float32 (N, 4),
    classes int64 (N,), track_ids, occluded, generated), name=str "<snippet>/<last frame>").
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "val",
        *,
        frames_per_clip: int = 20,
        clip_stride: int | None = None,
        max_clips: int | None = None,
        resize: ResizeSettings | None = ResizeSettings(),
    ) -> None:
        check_int("frames_per_clip", frames_per_clip)
        check_int("clip_stride", clip_stride, optional=True)
        check_int("max_clips", max_clips, optional=True)
        self.root = check_root(root)
        self.split = _check_split(split)
        self.resize = _check_resize(resize)
        self.frames_per_clip = frames_per_clip
        self.clips: list[tuple[str, int]] = []  # (snippet, last frame index)
        self.skipped: list[str] = []  # snippets shorter than a clip
        for snippet, count in snippet_lengths(self.root, split).items():
            if count < frames_per_clip:
                self.skipped.append(snippet)
                continue
            last = frames_per_clip - 1
            ends = [count - 1] if clip_stride is None else range(last, count, clip_stride)
            self.clips.extend((snippet, end) for end in ends)
        if max_clips is not None:
            self.clips = self.clips[:max_clips]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        snippet, end = self.clips[index]
        items = [
            _load_item(self.root, _Frame("VID", self.split, f"{snippet}/{i:06d}"), self.resize)
            for i in range(end - self.frames_per_clip + 1, end + 1)
        ]
        sizes = {tuple(item["image"].shape) for item in items}
        if len(sizes) > 1:
            raise ImageNetVIDError(f"snippet {snippet} has frames of different sizes: {sizes}")
        keys = ("boxes", "classes", "track_ids", "occluded", "generated")
        return {
            "frames": np.stack([item["image"].permute(1, 2, 0).numpy() for item in items]),
            "targets": [{key: item[key] for key in keys} for item in items],
            "name": f"{snippet}/{end:06d}",
        }


def training_dataset(
    split: str,
    root: str,
    *,
    frames_per_snippet: int | None = 15,
    include_det: bool = True,
    det_lists: Sequence[int] | None = None,
    min_size: int = 600,
    max_size: int = 1000,
) -> ImageNetVID:
    """The dataset factory a training recipe names (``data.dataset:
    streamdeq.data.imagenet_vid:training_dataset``, options under ``data.train`` / ``data.val``).

    Training ("train") takes ``frames_per_snippet`` frames of each VID snippet plus, with
    ``include_det``, the DET images of the 30 VID classes; validation ("val") every val frame.
    """
    resize = ResizeSettings(min_size=min_size, max_size=max_size)
    if split == "train":
        return ImageNetVID(
            root,
            "train",
            frames_per_snippet=frames_per_snippet,
            include_det=include_det,
            det_lists=det_lists,
            resize=resize,
        )
    return ImageNetVID(root, split, resize=resize)


def check_root(root: str | os.PathLike[str]) -> Path:
    """``root`` as a Path, if it looks like the ILSVRC2015 folder; a clear error otherwise."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ImageNetVIDError(
            f"ImageNet VID root {path} does not exist; pass the ILSVRC2015 folder of the "
            "official archive (the one holding Data/, Annotations/ and ImageSets/)"
        )
    missing = [name for name in ("Data", "Annotations", "ImageSets") if not (path / name).is_dir()]
    if missing:
        raise ImageNetVIDError(
            f"{path} is not an ILSVRC2015 folder: it has no {', '.join(missing)} "
            "(expected Data/, Annotations/ and ImageSets/)"
        )
    return path


def snippet_lengths(root: Path, split: str) -> dict[str, int]:
    """Snippet (relative to Data/VID/<split>) -> number of frames, in list order.

    "val" reads ImageSets/VID/val.txt (one line per frame); "train" the union of the
    ImageSets/VID/train_*.txt snippet lists, counting each snippet's annotation files.
    """
    lists = root / "ImageSets" / "VID"
    if split == "val":
        counts: dict[str, int] = {}
        for stem in _read_list(lists / "val.txt"):
            snippet, _, frame = stem.rpartition("/")
            if not snippet or not frame.isdigit():
                raise ImageNetVIDError(
                    f"{lists / 'val.txt'}: expected '<snippet>/<frame> <index>' lines, got {stem!r}"
                )
            counts[snippet] = max(counts.get(snippet, 0), int(frame) + 1)
        return counts
    files = sorted(lists.glob("train_*.txt"), key=lambda p: _list_number(p))
    if not files:
        raise ImageNetVIDError(f"no training lists {lists}/train_*.txt")
    snippets = list(
        dict.fromkeys(stem for f in files for stem, label in _read_labelled(f) if label == 1)
    )
    annotations = root / "Annotations" / "VID" / "train"
    lengths = {}
    for snippet in snippets:
        folder = annotations / snippet
        if not folder.is_dir():
            raise ImageNetVIDError(f"listed snippet {snippet} has no annotation folder {folder}")
        lengths[snippet] = sum(1 for p in folder.iterdir() if p.suffix == ".xml")
    return lengths


def det_images(root: Path, lists: Sequence[int] | None = None) -> list[str]:
    """DET training image ids listed positive (1) whose annotation has a VID-class object."""
    folder = root / "ImageSets" / "DET"
    if lists is None:
        files = sorted(folder.glob("train_*.txt"), key=_list_number)
    else:
        files = [folder / f"train_{k}.txt" for k in lists]
    if not files:
        raise ImageNetVIDError(f"no DET training lists {folder}/train_*.txt")
    stems = dict.fromkeys(stem for f in files for stem, label in _read_labelled(f) if label == 1)
    annotations = root / "Annotations" / "DET" / "train"
    return [
        stem for stem in stems if len(parse_annotation(annotations / f"{stem}.xml").classes) > 0
    ]


def _load_item(root: Path, frame: _Frame, resize: ResizeSettings | None) -> dict[str, Any]:
    annotation = parse_annotation(
        root / "Annotations" / frame.kind / frame.split / f"{frame.stem}.xml"
    )
    image, original = load_image(
        root / "Data" / frame.kind / frame.split / f"{frame.stem}.JPEG", resize
    )
    boxes = scale_boxes(annotation.boxes, original, image.shape[:2])
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "boxes": torch.from_numpy(boxes),
        "classes": torch.from_numpy(annotation.classes),
        "track_ids": torch.from_numpy(annotation.track_ids),
        "occluded": torch.from_numpy(annotation.occluded),
        "generated": torch.from_numpy(annotation.generated),
        "name": f"{frame.kind}/{frame.split}/{frame.stem}",
        "orig_size": original,
    }


def _read_list(path: Path) -> list[str]:
    """The first field of each non-empty line of an ImageSets list."""
    return [stem for stem, _ in _read_labelled(path, labelled=False)]


def _read_labelled(path: Path, labelled: bool = True) -> list[tuple[str, int]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ImageNetVIDError(f"list file not found: {path}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not _is_int(fields[1]):
            raise ImageNetVIDError(
                f"{path}:{number}: expected '<id> <number>', got {line.strip()!r}"
            )
        entries.append((fields[0], int(fields[1]) if labelled else 0))
    return entries


def _spread(count: int, wanted: int | None) -> list[int]:
    """``wanted`` frame indices spread evenly over ``count`` frames (all if fewer)."""
    if wanted is None or wanted >= count:
        return list(range(count))
    if wanted == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _list_number(path: Path) -> int:
    suffix = path.stem.rpartition("_")[2]
    return int(suffix) if suffix.isdigit() else math.inf  # type: ignore[return-value]


def _check_resize(resize: object) -> ResizeSettings | None:
    if resize is not None and not isinstance(resize, ResizeSettings):
        raise SettingsError(f"resize must be a ResizeSettings or None, got {type(resize).__name__}")
    return resize


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise SettingsError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _int_field(element: ET.Element, path: str, source: Path) -> int:
    return int(_float_field(element, path, source))


def _float_field(element: ET.Element, path: str, source: Path) -> float:
    text = element.findtext(path)
    if text is None:
        raise ImageNetVIDError(f"malformed annotation {source}: no <{path}>")
    try:
        return float(text)
    except ValueError:
        raise ImageNetVIDError(
            f"malformed annotation {source}: <{path}> is {text.strip()!r}, not a number"
        ) from None


def _flag(element: ET.Element, name: str) -> bool:
    text = (element.findtext(name) or "0").strip()
    return text not in ("0", "", "false", "False")


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()
