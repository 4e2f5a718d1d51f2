from __future__ import annotations

import pytest
import torch

from streamdeq.ops import batched_nms, box_iou, nms

from .conftest import random_boxes


def _greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """The textbook loop: take the best remaining box, drop its overlaps, repeat."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        if all(box_iou(boxes[i : i + 1], boxes[j : j + 1]).item() <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_greedy_reference_on_random_boxes(seed, threshold):
    gen = torch.Generator().manual_seed(seed)
    boxes = random_boxes(60, gen, extent=60.0)
    scores = torch.rand(60, generator=gen)
    assert nms(boxes, scores, threshold).tolist() == _greedy_reference(boxes, scores, threshold)


def test_nms_breaks_score_ties_by_index():
    gen = torch.Generator().manual_seed(7)
    boxes = random_boxes(40, gen, extent=40.0)
    scores = torch.randint(0, 3, (40,), generator=gen).float()
    assert nms(boxes, scores, 0.4).tolist() == _greedy_reference(boxes, scores, 0.4)


def test_nms_resolves_a_long_suppression_chain():
    # each box overlaps only its neighbours: keep, drop, keep, drop, ... down the chain
    xs = torch.arange(30, dtype=torch.float32) * 2.0
    boxes = torch.stack([xs, torch.zeros(30), xs + 6.0, torch.ones(30) * 6.0], dim=1)
    scores = torch.linspace(1.0, 0.1, 30)
    assert nms(boxes, scores, 0.5).tolist() == _greedy_reference(boxes, scores, 0.5)


def test_nms_of_no_boxes_is_empty():
    kept = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.shape == (0,) and kept.dtype == torch.long


def test_nms_keeps_a_single_box():
    assert nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def _batched_reference(boxes, scores, groups, threshold):
    kept = []
    for g in groups.unique().tolist():
        members = torch.nonzero(groups == g).flatten()
        kept += [
            int(members[i]) for i in _greedy_reference(boxes[members], scores[members], threshold)
        ]
    return sorted(kept, key=lambda i: (-float(scores[i]), i))


@pytest.mark.parametrize("num_groups", [1, 3, 20])
def test_batched_nms_suppresses_within_groups_only(num_groups):
    gen = torch.Generator().manual_seed(num_groups)
    boxes = random_boxes(80, gen, extent=50.0)
    scores = torch.rand(80, generator=gen)
    groups = torch.randint(0, num_groups, (80,), generator=gen)
    expected = _batched_reference(boxes, scores, groups, 0.5)
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == expected


def test_batched_nms_never_suppresses_identical_boxes_of_different_groups():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    kept = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]


def test_batched_nms_of_no_boxes_is_empty():
    assert (
        batched_nms(
            torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5
        ).numel()
        == 0
    )
