from __future__ import annotations

import torch

from streamdeq.models.detection.fpn import FeaturePyramid
from streamdeq.models.detection.matching import BACKGROUND, IGNORED, match_boxes, sample_balanced
from streamdeq.models.detection.roi_heads import assign_levels


def test_fpn_keeps_each_branch_size_and_adds_a_half_size_level():
    fpn = FeaturePyramid((4, 8, 16), 6)
    z = [torch.randn(2, 4, 16, 32), torch.randn(2, 8, 8, 16), torch.randn(2, 16, 4, 8)]
    levels = fpn(z)
    assert [tuple(t.shape) for t in levels] == [
        (2, 6, 16, 32),
        (2, 6, 8, 16),
        (2, 6, 4, 8),
        (2, 6, 2, 4),
    ]


def test_fpn_top_down_pathway_carries_coarse_information_to_fine_levels():
    fpn = FeaturePyramid((4, 8), 6)
    z = [torch.zeros(1, 4, 8, 8), torch.zeros(1, 8, 4, 4)]
    coarse_changed = [z[0], torch.randn(1, 8, 4, 4)]
    assert not torch.allclose(fpn(z)[0], fpn(coarse_changed)[0])


def test_match_boxes_applies_thresholds_and_keeps_each_boxs_best_candidate():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    candidates = torch.tensor(
        [
            [0.0, 0.0, 10.0, 9.0],
            [0.0, 0.0, 10.0, 5.0],
            [50.0, 50.0, 60.0, 60.0],
            [0.0, 0.0, 10.0, 2.0],
        ]
    )  # IoU 0.9, 0.5, 0, 0.2
    assert match_boxes(gt, candidates, 0.7, 0.3, keep_best=False).tolist() == [
        0,
        IGNORED,
        BACKGROUND,
        BACKGROUND,
    ]
    lonely = torch.tensor([[0.0, 0.0, 10.0, 5.0], [50.0, 50.0, 60.0, 60.0]])
    assert match_boxes(gt, lonely, 0.7, 0.3, keep_best=True).tolist() == [0, BACKGROUND]


def test_match_boxes_without_ground_truth_is_all_background():
    assert (
        match_boxes(torch.zeros(0, 4), torch.ones(3, 4), 0.7, 0.3, True).tolist()
        == [BACKGROUND] * 3
    )


def test_sample_balanced_caps_positives_and_fills_with_negatives():
    torch.manual_seed(0)
    assigned = torch.tensor([0, 1] * 5 + [BACKGROUND] * 100 + [IGNORED] * 5)
    positive, negative = sample_balanced(assigned, 16, 0.25)
    assert positive.numel() == 4 and negative.numel() == 12
    assert (assigned[positive] >= 0).all() and (assigned[negative] == BACKGROUND).all()
    assert positive.unique().numel() == 4 and negative.unique().numel() == 12


def test_assign_levels_follows_fpn_equation_one():
    sides = torch.tensor([10.0, 112.0, 224.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros(5), torch.zeros(5), sides, sides], dim=1)
    # k = floor(4 + log2(side / 224)) clamped to [2, 5]; index 0 = level 2
    assert assign_levels(boxes, 2, 5, 224.0, 4).tolist() == [0, 1, 2, 3, 3]
