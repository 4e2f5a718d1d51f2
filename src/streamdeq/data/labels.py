"""Cityscapes label tables: the 19 training classes, their colours, and label ID -> train ID.

The values are those of the Cityscapes benchmark's label definitions (cityscapesScripts,
``cityscapesscripts/helpers/labels.py``, MIT licence, (c) Marius Cordts et al.), written out here
rather than imported so that no extra package is needed.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
"""Train ID of pixels that are not evaluated (void classes, and unlabeled pixels)."""

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
"""Names of the 19 evaluated classes, indexed by train ID."""

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),  # road
    (244, 35, 232),  # sidewalk
    (70, 70, 70),  # building
    (102, 102, 156),  # wall
    (190, 153, 153),  # fence
    (153, 153, 153),  # pole
    (250, 170, 30),  # traffic light
    (220, 220, 0),  # traffic sign
    (107, 142, 35),  # vegetation
    (152, 251, 152),  # terrain
    (70, 130, 180),  # sky
    (220, 20, 60),  # person
    (255, 0, 0),  # rider
    (0, 0, 142),  # car
    (0, 0, 70),  # truck
    (0, 60, 100),  # bus
    (0, 80, 100),  # train
    (0, 0, 230),  # motorcycle
    (119, 11, 32),  # bicycle
)
"""RGB colour of each train ID, as in the benchmark's visualisations."""

# Label IDs (as stored in *_gtFine_labelIds.png) 0..33 -> train ID; the rest are void (255).
# Checked against cityscapesScripts' labels.py (commit 4b83263): ids 0..33 agree; that version
# also lists lane-line ids 34..45 with a 20th train ID (19), outside the 19-class benchmark, so
# they are void here.
_TRAIN_ID_OF_LABEL_ID = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}


def label_id_to_train_id_lut() -> np.ndarray:
    """A (256,) uint8 lookup table: ``lut[label_ids]`` turns labelIds into trainIds (void -> 255)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in _TRAIN_ID_OF_LABEL_ID.items():
        lut[label_id] = train_id
    return lut


EGO_VEHICLE_LABEL_ID = 1
"""Label ID of the recording car's own bonnet ("ego vehicle", void in the benchmark)."""


def train_id_to_label_id_lut(ignore_label_id: int = 0) -> np.ndarray:
    """A (256,) uint8 lookup table: ``lut[train_ids]`` turns trainIds back into labelIds.

    Each train ID maps to its one official label ID; 255 and any other unused value map to
    ``ignore_label_id`` (0 = "unlabeled"; 1 = "ego vehicle" for a car's own bonnet), which the
    forward table sends back to 255, so the round trip is exact.
    """
    if label_id_to_train_id_lut()[ignore_label_id] != IGNORE_INDEX:
        raise ValueError(f"label ID {ignore_label_id} is not a void label ID")
    lut = np.full(256, ignore_label_id, dtype=np.uint8)
    for label_id, train_id in _TRAIN_ID_OF_LABEL_ID.items():
        lut[train_id] = label_id
    return lut
