"""Frames resized to fit a size (aspect kept) before the model, and outputs that come back in
the frame's own pixels: dense ones at model resolution, boxes scaled by the model's hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.models.detection import MDEQDetector
from streamdeq.stream import PreprocessSettings, StreamDEQ
from streamdeq.stream.frames import fitted_size

from .conftest import TinyDEQ

SOURCE = (60, 107)  # (H, W): an odd width, like 427-wide video


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((240, 427), (128, 256), (128, 227)),  # the height limits
        ((240, 427), (256, 128), (71, 128)),  # the width limits
        ((100, 100), (50, 80), (50, 50)),
        ((30, 40), (60, 120), (60, 80)),  # scaled up to fit as well
    ],
)
def test_a_frame_is_scaled_to_fit_inside_the_box_with_its_aspect_kept(size, box, expected):
    fitted = fitted_size(size, box)
    assert fitted == expected
    assert fitted[0] <= box[0] and fitted[1] <= box[1]
    assert fitted[0] == box[0] or fitted[1] == box[1]  # as large as fits


def test_one_number_is_the_short_side():
    assert fitted_size((240, 427), 120) == (120, 213)
    assert fitted_size((427, 240), 120) == (213, 120)


@pytest.mark.parametrize("resize", [0, (0, 10), (10,), (10, 10, 10), True, 1.5, "128x256"])
def test_a_resize_that_is_not_a_size_is_a_settings_error_naming_the_field(resize):
    with pytest.raises(SettingsError, match="resize must be") as caught:
        PreprocessSettings(resize=resize)
    assert caught.value.field == "resize"


@torch.no_grad()
def test_a_dense_output_stays_at_the_resolution_of_the_resized_frame(model):
    frame = np.random.default_rng(0).integers(0, 256, (*SOURCE, 3), dtype=np.uint8)
    result = StreamDEQ(model, iters=2, preprocess=PreprocessSettings(resize=(32, 64))).step(frame)
    # (60, 107) fits (32, 64) as (32, 57); TinyDEQ's output is at 1/2: ceil(32/2) x ceil(57/2)
    assert tuple(result.output.shape) == (5, 16, 29)


class BoxDEQ(TinyDEQ):
    """TinyDEQ with a detector's output: one box over the whole (padded) input, and the real
    detector's crop and rescale hooks."""

    crop_output = MDEQDetector.crop_output
    rescale_output = MDEQDetector.rescale_output

    def head(self, z):
        height, width = z[0].shape[-2] * 2, z[0].shape[-1] * 2  # branch 0 is at 1/2
        box = torch.tensor([[0.0, 0.0, float(width), float(height)]])
        return [
            {"boxes": box, "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.long)}
            for _ in range(z[0].shape[0])
        ]


@torch.no_grad()
def test_boxes_on_a_resized_frame_come_back_in_the_frames_pixels():
    frame = np.zeros((*SOURCE, 3), dtype=np.uint8)
    stream = StreamDEQ(BoxDEQ(), iters=1, preprocess=PreprocessSettings(resize=(32, 64)))
    boxes = stream.step(frame).output["boxes"]
    # the box over the padded 32x60 input is clipped to the 32x57 frame, then scaled back
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 107.0, 60.0]]))


@torch.no_grad()
def test_boxes_without_a_resize_are_only_clipped():
    frame = np.zeros((*SOURCE, 3), dtype=np.uint8)
    boxes = StreamDEQ(BoxDEQ(), iters=1).step(frame).output["boxes"]
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 107.0, 60.0]]))
