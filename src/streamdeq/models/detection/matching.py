"""Assigning candidate boxes (anchors, proposals) to ground-truth boxes, and sampling a balanced
subset of them for the losses. Shared by the RPN and the box head."""

from __future__ import annotations

import torch
from torch import Tensor

from ...ops import box_iou

#: Matched index of a candidate below the background threshold.
BACKGROUND = -1
#: Matched index of a candidate between the thresholds (no loss).
IGNORED = -2


def match_boxes(
    gt_boxes: Tensor, candidates: Tensor, fg_iou: float, bg_iou: float, keep_best: bool
) -> Tensor:
    """(K,) index of the ground-truth box each of the (K, 4) candidates is assigned to, or
    BACKGROUND / IGNORED.

    With ``keep_best`` every ground-truth box also claims the candidates it overlaps most (ties
    included) even below fg_iou, so that no object is left without a positive anchor.
    """
    count = candidates.shape[0]
    if gt_boxes.shape[0] == 0:
        return torch.full((count,), BACKGROUND, dtype=torch.long, device=candidates.device)
    iou = box_iou(gt_boxes, candidates)  # (G, K)
    best_iou, matched = iou.max(dim=0)
    assigned = matched.clone()
    assigned[best_iou < fg_iou] = IGNORED
    assigned[best_iou < bg_iou] = BACKGROUND
    if keep_best:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        is_best = (iou == best_per_gt) & (best_per_gt > 0)
        claimed = is_best.any(dim=0)
        assigned[claimed] = matched[claimed]
    return assigned


def sample_balanced(
    assigned: Tensor, batch: int, positive_fraction: float
) -> tuple[Tensor, Tensor]:
    """Random positive (matched) and negative (BACKGROUND) candidates for the loss.

    Args:
        assigned: (K,) output of :func:`match_boxes`; IGNORED candidates are never sampled.

    Returns:
        (positive, negative) index tensors: at most ``batch * positive_fraction`` positives and
        the rest of ``batch`` filled with negatives.
    """
    positive = torch.nonzero(assigned >= 0).flatten()
    negative = torch.nonzero(assigned == BACKGROUND).flatten()
    num_pos = min(positive.numel(), int(batch * positive_fraction))
    num_neg = min(negative.numel(), batch - num_pos)
    positive = positive[torch.randperm(positive.numel(), device=assigned.device)[:num_pos]]
    negative = negative[torch.randperm(negative.numel(), device=assigned.device)[:num_neg]]
    return positive, negative
