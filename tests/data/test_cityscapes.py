"""The Cityscapes sequence loader on a fixture written here in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamdeq.data.cityscapes import (
    CityscapesLayoutError,
    CityscapesReadError,
    CityscapesSequence,
    MissingFramesError,
)
from streamdeq.data.labels import label_id_to_train_id_lut, train_id_to_label_id_lut
from streamdeq.errors import SettingsError

H, W = 6, 8
ANNOTATED = 19  # the 20th frame of a snippet, as in the official release
# label ID -> train ID from cityscapesScripts' helpers/labels.py (MIT), written out independently
OFFICIAL = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
            24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
# one row of label IDs: road, car, unlabeled, ego vehicle, caravan (void), bicycle, polegroup, sky
LABEL_ROW = [7, 26, 0, 1, 29, 33, 18, 23]


def write_snippet(root: Path, split: str, city: str, seq: int, frames: range) -> None:
    """Frames whose pixels all equal their frame number, and labels on frame ANNOTATED."""
    image_dir = root / "leftImg8bit_sequence" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for n in frames:
        pixels = np.full((H, W, 3), n, np.uint8)
        Image.fromarray(pixels).save(image_dir / f"{city}_{seq:06d}_{n:06d}_leftImg8bit.png")
    label_ids = np.tile(np.array(LABEL_ROW, np.uint8), (H, 1))
    Image.fromarray(label_ids, "L").save(
        label_dir / f"{city}_{seq:06d}_{ANNOTATED:06d}_gtFine_labelIds.png"
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_snippet(tmp_path, "val", "frankfurt", 0, range(10, 25))
    write_snippet(tmp_path, "val", "lindau", 3, range(10, 25))
    return tmp_path


def test_clip_is_the_frames_ending_at_the_annotated_one_in_order(root):
    item = CityscapesSequence(root, "val", frames_per_clip=5)[0]
    assert item["frames"].shape == (5, H, W, 3) and item["frames"].dtype == torch.uint8
    assert item["frames"][:, 0, 0, 0].tolist() == [15, 16, 17, 18, 19]
    assert item["name"] == "frankfurt_000000_000019"


def test_clips_are_listed_by_city_and_sequence(root):
    dataset = CityscapesSequence(root, "val", frames_per_clip=2)
    assert len(dataset) == 2 and dataset[1]["name"] == "lindau_000003_000019"


def test_labels_are_train_ids_with_void_classes_ignored(root):
    label = CityscapesSequence(root, "val", frames_per_clip=1)[0]["label"]
    assert label.dtype == torch.int64 and label.shape == (H, W)
    assert label[0].tolist() == [0, 13, 255, 255, 255, 18, 255, 10]


def test_label_table_matches_the_official_one():
    lut = label_id_to_train_id_lut()
    for label_id in range(256):
        assert lut[label_id] == OFFICIAL.get(label_id, 255)


def test_train_ids_map_back_to_label_ids_and_round_trip():
    back = train_id_to_label_id_lut(ignore_label_id=1)
    train_ids = np.array([*range(19), 255], np.uint8)
    assert back[255] == 1 and back[13] == 26
    assert np.array_equal(label_id_to_train_id_lut()[back[train_ids]], train_ids)


def test_cities_filter_and_unknown_city(root):
    assert len(CityscapesSequence(root, "val", frames_per_clip=2, cities=["lindau"])) == 1
    with pytest.raises(CityscapesLayoutError, match="munich"):
        CityscapesSequence(root, "val", cities=["munich"])


def test_size_resizes_frames_and_labels(root):
    item = CityscapesSequence(root, "val", frames_per_clip=2, size=(3, 4))[0]
    assert item["frames"].shape == (2, 3, 4, 3) and item["label"].shape == (3, 4)
    assert set(item["label"].unique().tolist()) <= {0, 13, 255, 18, 10}


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(CityscapesLayoutError, match="does not exist"):
        CityscapesSequence(tmp_path / "nowhere")


def test_missing_split_names_the_splits_present(root):
    with pytest.raises(CityscapesLayoutError, match="has val"):
        CityscapesSequence(root, "train")


def test_missing_folder_is_a_clear_error(root, tmp_path):
    (tmp_path / "other" / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(CityscapesLayoutError, match="leftImg8bit_sequence"):
        CityscapesSequence(tmp_path / "other", "val")


def test_no_annotations_is_a_clear_error(tmp_path):
    (tmp_path / "gtFine" / "val" / "x").mkdir(parents=True)
    (tmp_path / "leftImg8bit_sequence" / "val").mkdir(parents=True)
    with pytest.raises(CityscapesLayoutError, match="gtFine_labelIds"):
        CityscapesSequence(tmp_path, "val")


def test_clip_longer_than_the_frames_on_disk_names_a_missing_file(root):
    with pytest.raises(MissingFramesError, match="000009_leftImg8bit.png"):
        CityscapesSequence(root, "val", frames_per_clip=11)


def test_missing_frame_inside_a_clip_is_reported(root):
    (root / "leftImg8bit_sequence/val/lindau/lindau_000003_000017_leftImg8bit.png").unlink()
    with pytest.raises(MissingFramesError, match="1 of 2 clips"):
        CityscapesSequence(root, "val", frames_per_clip=4)


def test_undecodable_frame_is_a_read_error(root):
    (root / "leftImg8bit_sequence/val/lindau/lindau_000003_000019_leftImg8bit.png").write_text("x")
    dataset = CityscapesSequence(root, "val", frames_per_clip=2)
    with pytest.raises(CityscapesReadError, match="lindau_000003_000019"):
        dataset[1]


@pytest.mark.parametrize("kwargs", [{"frames_per_clip": 0}, {"size": (0, 4)}])
def test_bad_settings_are_rejected(root, kwargs):
    with pytest.raises(SettingsError):
        CityscapesSequence(root, "val", **kwargs)
