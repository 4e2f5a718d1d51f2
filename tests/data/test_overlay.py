"""Segmentation colours, blending, boxes with captions, the legend, and the label tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdeq.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_INDEX,
    colorize_segmentation,
    draw_boxes,
    draw_legend,
    label_id_to_train_id_lut,
    overlay,
    overlay_segmentation,
)

GREY = 128


def grey_frame(height: int = 60, width: int = 80) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose colour differs."""
    return np.any(before != after, axis=-1)


def test_cityscapes_tables_have_19_classes() -> None:
    assert len(CITYSCAPES_CLASSES) == len(CITYSCAPES_PALETTE) == 19
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_PALETTE[0] == (128, 64, 128)
    assert CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_PALETTE[13] == (0, 0, 142)
    assert CITYSCAPES_CLASSES[18] == "bicycle" and CITYSCAPES_PALETTE[18] == (119, 11, 32)
    assert len(set(CITYSCAPES_PALETTE)) == 19


def test_label_ids_map_to_train_ids() -> None:
    lut = label_id_to_train_id_lut()
    assert lut.shape == (256,)
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18  # road, car, bicycle
    assert lut[0] == lut[9] == lut[255] == IGNORE_INDEX  # unlabeled, parking (void)
    assert sorted(set(lut.tolist()) - {IGNORE_INDEX}) == list(range(19))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_colorize_uses_the_palette_and_blacks_out_the_rest(dtype: type) -> None:
    labels = np.array([[0, 13, 255], [18, 19, 200]], dtype=dtype)
    colors = colorize_segmentation(labels)
    assert colors.shape == (2, 3, 3) and colors.dtype == np.uint8
    assert colors[0, 0].tolist() == [128, 64, 128]  # road
    assert colors[0, 1].tolist() == [0, 0, 142]  # car
    assert colors[1, 0].tolist() == [119, 11, 32]  # bicycle
    assert colors[0, 2].tolist() == colors[1, 1].tolist() == colors[1, 2].tolist() == [0, 0, 0]


def test_colorize_blacks_out_negative_labels() -> None:
    assert colorize_segmentation(np.array([[-1, 0]])).tolist() == [[[0, 0, 0], [128, 64, 128]]]


def test_colorize_accepts_tensors() -> None:
    labels = torch.tensor([[10, 11]])
    np.testing.assert_array_equal(
        colorize_segmentation(labels), np.array([[CITYSCAPES_PALETTE[10], CITYSCAPES_PALETTE[11]]])
    )


def test_colorize_rejects_logits() -> None:
    with pytest.raises(ValueError, match="integer label map"):
        colorize_segmentation(np.zeros((19, 4, 4), dtype=np.float32))


def test_overlay_alpha_weights_the_colours() -> None:
    frame, colors = grey_frame(), np.zeros((60, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(overlay(frame, colors, alpha=0.0), frame)
    np.testing.assert_array_equal(overlay(frame, colors, alpha=1.0), colors)
    assert overlay(frame, colors, alpha=0.5)[0, 0].tolist() == [GREY // 2] * 3


def test_overlay_segmentation_leaves_ignored_pixels_alone() -> None:
    frame = grey_frame()
    labels = np.zeros((60, 80), dtype=np.int64)
    labels[:, 40:] = IGNORE_INDEX
    out = overlay_segmentation(frame, labels, alpha=1.0)
    assert (out[:, :40] == CITYSCAPES_PALETTE[0]).all()
    np.testing.assert_array_equal(out[:, 40:], frame[:, 40:])


def test_overlay_segmentation_checks_sizes() -> None:
    with pytest.raises(ValueError, match="do not match"):
        overlay_segmentation(grey_frame(), np.zeros((30, 40), dtype=np.int64))


def test_box_outline_changes_only_the_edges_inside_the_box() -> None:
    frame = grey_frame()
    out = draw_boxes(frame, np.array([[10.0, 20.0, 50.0, 45.0]]), thickness=2)
    expected = np.zeros((60, 80), dtype=bool)
    expected[20:45, 10:50] = True  # the box, x1 and y1 exclusive
    expected[22:43, 12:48] = False  # its interior, inside the 2-pixel outline
    np.testing.assert_array_equal(changed(frame, out), expected)


def test_caption_sits_just_above_the_box() -> None:
    frame = grey_frame(100, 120)
    box = np.array([[20, 40, 100, 90]])
    red = (255, 0, 0)
    out = draw_boxes(frame, box, [13], [0.87], CITYSCAPES_CLASSES, color=red)
    rows, cols = np.nonzero(changed(frame, out))
    outside = rows < 40
    assert outside.any(), "no caption drawn"
    assert rows[outside].min() >= 40 - 20 and cols[outside].min() >= 20  # small, left-aligned
    with_outline_only = draw_boxes(frame, box, color=red)
    np.testing.assert_array_equal(out[40:], with_outline_only[40:])


def test_caption_moves_inside_a_box_at_the_top_edge() -> None:
    frame = grey_frame()
    out = draw_boxes(frame, [[5, 0, 70, 50]], labels=[0], class_names=CITYSCAPES_CLASSES)
    rows, cols = np.nonzero(changed(frame, out))
    assert rows.max() < 50 and cols.min() >= 5 and cols.max() < 70


def test_captions_name_unknown_classes_by_id() -> None:
    frame = grey_frame()
    named = draw_boxes(frame, [[5, 30, 70, 50]], labels=[42], class_names=CITYSCAPES_CLASSES)
    assert changed(frame, named)[:30].any()


def test_draw_boxes_leaves_its_input_alone() -> None:
    frame = grey_frame()
    draw_boxes(frame, [[0, 0, 10, 10]], scores=[0.5])
    assert (frame == GREY).all()


def test_boxes_are_clipped_to_the_frame_and_degenerate_ones_skipped() -> None:
    frame = grey_frame()
    out = draw_boxes(frame, [[-10, -10, 200, 200], [30, 30, 30, 40], [np.nan, 0, 5, 5]])
    mask = changed(frame, out)
    assert mask[0].all() and mask[-1].all() and mask[:, 0].all() and mask[:, -1].all()
    assert not mask[5:-5, 5:-5].any()


def test_no_boxes_is_a_copy() -> None:
    frame = grey_frame()
    np.testing.assert_array_equal(draw_boxes(frame, np.zeros((0, 4))), frame)


def test_legend_draws_in_the_top_left_corner() -> None:
    frame = grey_frame(200, 200)
    out = draw_legend(frame, class_ids=[0, 13])
    rows, cols = np.nonzero(changed(frame, out))
    assert rows.max() < 60 and cols.max() < 120
    assert (out == CITYSCAPES_PALETTE[0]).all(axis=-1).any()  # road's swatch
