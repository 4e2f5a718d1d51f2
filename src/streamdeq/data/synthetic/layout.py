"""Writing generated clips in the Cityscapes sequence layout, so the Cityscapes loader reads them.

    root/leftImg8bit_sequence/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png

Frames are numbered 0..T-1 and only the last one is annotated, as each Cityscapes snippet has its
annotation on one frame. Label PNGs hold official label IDs (not train IDs); the ego bonnet is
written as "ego vehicle" (1), which reads back as ignore (255).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ...errors import SettingsError
from ..errors import OutputError
from ..labels import EGO_VEHICLE_LABEL_ID, train_id_to_label_id_lut
from .clip import SyntheticClip, generate_clip
from .dataset import clip_seed
from .settings import SceneSettings


def write_cityscapes_layout(
    root: str | os.PathLike[str],
    clips: Iterable[SyntheticClip],
    split: str = "val",
    city: str = "synthetic",
    first_sequence: int = 0,
) -> list[Path]:
    """Write ``clips`` as sequences ``first_sequence, first_sequence + 1, ...`` of one city.

    Each file is written under a temporary name and renamed, so a crash never leaves a
    half-written PNG under a real name. Returns the label files written, one per clip.

    Raises:
        SettingsError: a city or split name with a path separator or an underscore (the loader
            splits names on underscores).
        OutputError: the root cannot be created or written.
    """
    from PIL import Image

    for name, value in (("split", split), ("city", city)):
        if not value or "/" in value or "\\" in value or "_" in value or value in (".", ".."):
            raise SettingsError(f"{name} {value!r} must be a plain folder name without '_' or '/'")
    root = Path(root)
    image_dir = root / "leftImg8bit_sequence" / split / city
    label_dir = root / "gtFine" / split / city
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"cannot create {image_dir}: {error.strerror}; choose a writable root"
        ) from error
    to_label_id = train_id_to_label_id_lut(EGO_VEHICLE_LABEL_ID)
    written = []
    for offset, clip in enumerate(clips):
        seq = first_sequence + offset
        for frame_number, frame in enumerate(clip.frames):
            stem = f"{city}_{seq:06d}_{frame_number:06d}"
            _save_png(Image.fromarray(frame, "RGB"), image_dir / f"{stem}_leftImg8bit.png")
        stem = f"{city}_{seq:06d}_{len(clip.frames) - 1:06d}"
        label_path = label_dir / f"{stem}_gtFine_labelIds.png"
        _save_png(Image.fromarray(to_label_id[clip.labels[-1]], "L"), label_path)
        written.append(label_path)
    return written


def _save_png(image: object, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    try:
        image.save(temporary, format="PNG")  # type: ignore[attr-defined]
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {path}: {error.strerror or error}; check the folder"
        ) from error


def write_synthetic_split(
    root: str | os.PathLike[str],
    num_clips: int,
    frames_per_clip: int = 20,
    split: str = "val",
    seed: int = 0,
    settings: SceneSettings = SceneSettings(),  # noqa: B008 - frozen
    city: str = "synthetic",
    cuts: tuple[int, ...] = (),
) -> list[Path]:
    """Generate and write the clips of :class:`SyntheticClips` with these arguments, one at a time
    (so memory holds one clip), as sequences 0..num_clips-1 of ``city``. Returns the label files.
    """
    if num_clips < 1 or frames_per_clip < 1:
        raise SettingsError(
            f"need at least one clip of one frame, got {num_clips} clips of {frames_per_clip}"
        )
    written = []
    for index in range(num_clips):
        clip = generate_clip(clip_seed(split, seed, index), frames_per_clip, settings, cuts)
        written += write_cityscapes_layout(root, [clip], split, city, first_sequence=index)
    return written
