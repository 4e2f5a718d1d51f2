from __future__ import annotations

import pytest
import torch

from streamdeq.ops import BoxCoder, box_area, box_iou, clip_boxes, remove_small_boxes

from .conftest import random_boxes


def _iou_by_hand(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_box_iou_matches_pairwise_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = random_boxes(7, gen), random_boxes(5, gen)
    iou = box_iou(a, b)
    expected = torch.tensor([[_iou_by_hand(x, y) for y in b.tolist()] for x in a.tolist()])
    torch.testing.assert_close(iou, expected)


def test_box_iou_of_degenerate_boxes_is_zero_not_nan():
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    iou = box_iou(point, point)
    assert iou.item() == 0.0


def test_box_iou_handles_empty_sets():
    assert box_iou(torch.zeros(0, 4), torch.ones(3, 4)).shape == (0, 3)


def test_box_area_counts_inverted_boxes_as_zero():
    assert box_area(torch.tensor([[4.0, 4.0, 2.0, 8.0], [0.0, 0.0, 2.0, 3.0]])).tolist() == [0, 6]


def test_clip_boxes_keeps_boxes_inside_the_image():
    boxes = torch.tensor([[-5.0, -2.0, 30.0, 12.0]])
    assert clip_boxes(boxes, (10, 20)).tolist() == [[0.0, 0.0, 20.0, 10.0]]


def test_remove_small_boxes_drops_boxes_thinner_than_min_size():
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 0.5, 5.0], [0.0, 0.0, 5.0, 1.0]])
    assert remove_small_boxes(boxes, 1.0).tolist() == [0, 2]


def test_box_coding_round_trips():
    gen = torch.Generator().manual_seed(1)
    boxes, references = random_boxes(50, gen), random_boxes(50, gen)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    decoded = coder.decode(coder.encode(boxes, references), references)
    torch.testing.assert_close(decoded, boxes, rtol=1e-5, atol=1e-4)


def test_box_decoding_clamps_log_scale_changes():
    coder = BoxCoder()
    reference = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    boxes = coder.decode(torch.tensor([[0.0, 0.0, 50.0, 50.0]]), reference)
    assert torch.isfinite(boxes).all()
    assert (boxes[0, 2] - boxes[0, 0]).item() == pytest.approx(1000.0, rel=1e-5)


def test_box_decoding_of_several_boxes_per_reference_decodes_each():
    gen = torch.Generator().manual_seed(2)
    references = random_boxes(4, gen)
    deltas = torch.randn(4, 12, generator=gen) * 0.2
    coder = BoxCoder()
    together = coder.decode(deltas, references)
    for k in range(3):
        alone = coder.decode(deltas[:, 4 * k : 4 * k + 4], references)
        torch.testing.assert_close(together[:, 4 * k : 4 * k + 4], alone)
