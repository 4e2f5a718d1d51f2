"""Non-maximum suppression without a Python loop over boxes.

Greedy NMS keeps the best-scoring box, drops every box overlapping it by more than the
threshold, and repeats. Written as a fixed point over the score-sorted boxes: with
``S[j, i]`` = "box j ranks above box i and IoU(j, i) > threshold", box i is kept iff no kept box
j has ``S[j, i]``. That equation has exactly one solution (decide the boxes in rank order), and
iterating ``keep <- not any_j(keep[j] and S[j, :])`` from "keep everything" reaches it after at
most d + 1 steps, d being the longest chain of suppressions; each step is one matrix-vector
product with the (N, N) 0/1 matrix S (float, so BLAS does it; 4 N^2 bytes, 16 MB at N = 2000). On detector outputs d is small (a handful), so NMS of 2000 boxes costs a few mask
passes instead of 2000 Python iterations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_area

#: Rows of the IoU matrix computed at once: bounds the temporaries (and keeps them in cache).
_IOU_ROWS = 256


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) x1 y1 x2 y2.
        scores: (N,); ties rank the box with the lower index first.
        iou_threshold: boxes overlapping a kept, better box by IoU > this are dropped.

    Returns:
        (K,) int64 indices of the kept boxes, by decreasing score.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    suppresses = _suppression_matrix(boxes[order], iou_threshold)
    # keep @ S counts the kept boxes suppressing each box: one matrix-vector product per step
    keep = torch.ones(order.shape[0], dtype=suppresses.dtype, device=boxes.device)
    while True:
        new_keep = (keep @ suppresses == 0).to(keep.dtype)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep.bool()]


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (e.g. class or pyramid level) independently.

    Boxes of different groups are moved apart by a per-group offset larger than the extent of
    all boxes, so they can never overlap, and one NMS covers every group.

    Args:
        boxes: (N, 4); scores: (N,); groups: (N,) integer group ids.

    Returns:
        (K,) int64 indices of the kept boxes, by decreasing score.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    low = boxes.min()
    extent = boxes.max() - low + 1
    offsets = groups.to(boxes.dtype) * extent
    return nms(boxes - low + offsets[:, None], scores, iou_threshold)


def _suppression_matrix(sorted_boxes: Tensor, iou_threshold: float) -> Tensor:
    """(N, N) float 0/1: [j, i] = 1 if j ranks above i (j < i) and IoU(j, i) > threshold.

    IoU > t is tested as inter * (1 + t) > t * (area_j + area_i), without the division."""
    count = sorted_boxes.shape[0]
    areas = box_area(sorted_boxes)
    matrix = sorted_boxes.new_zeros(count, count)
    # only the upper triangle matters: rows start..stop against columns start..N
    for start in range(0, count, _IOU_ROWS):
        stop = min(start + _IOU_ROWS, count)
        rows, cols = sorted_boxes[start:stop, None], sorted_boxes[None, start:]
        width = torch.minimum(rows[..., 2], cols[..., 2])
        width = width.sub_(torch.maximum(rows[..., 0], cols[..., 0])).clamp_(min=0)
        height = torch.minimum(rows[..., 3], cols[..., 3])
        height = height.sub_(torch.maximum(rows[..., 1], cols[..., 1])).clamp_(min=0)
        inter = width.mul_(height).mul_(1 + iou_threshold)
        area_sum = areas[start:stop, None] + areas[None, start:]
        matrix[start:stop, start:] = inter > area_sum.mul_(iou_threshold)
    return matrix.triu_(diagonal=1)
