"""Axis-aligned boxes as (N, 4) ``x1, y1, x2, y2`` tensors in pixels: areas, pairwise IoU,
clipping to an image, and dropping degenerate boxes.

Coordinates are continuous (a box from 0 to W covers a W-pixel-wide image), the convention of
RoIAlign with ``aligned=True`` and of the COCO evaluation; no "+1" anywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """(N,) areas of (N, 4) boxes; inverted boxes count as 0, not as negative."""
    widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=0)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    return widths * heights


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(N, M) intersection over union of every pair of (N, 4) and (M, 4) boxes.

    A pair whose union is empty (two zero-area boxes) has IoU 0, not NaN, so degenerate boxes
    never suppress or match anything.
    """
    area_a = box_area(boxes_a)
    area_b = box_area(boxes_b)
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, 4) boxes clipped to an image of ``size`` = (height, width); a new tensor."""
    height, width = size
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """(K,) indices of the boxes whose width and height are both at least ``min_size``."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((widths >= min_size) & (heights >= min_size)).flatten()
