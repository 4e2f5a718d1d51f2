"""Anchor boxes: for each pyramid level a set of base shapes (sizes x aspect ratios) centred at
the origin, repeated at every feature pixel (shifted by the level's stride)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def base_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], dtype=torch.float32, device=None
) -> Tensor:
    """(len(sizes) * len(aspect_ratios), 4) boxes centred at 0 with area size**2 and
    height / width = aspect ratio; ordered ratio-major (all sizes of the first ratio first)."""
    shapes = []
    for ratio in aspect_ratios:
        for size in sizes:
            half_w = 0.5 * size / math.sqrt(ratio)
            half_h = 0.5 * size * math.sqrt(ratio)
            shapes.append([-half_w, -half_h, half_w, half_h])
    return torch.tensor(shapes, dtype=dtype, device=device)


def grid_anchors(
    base: Tensor, feature_size: tuple[int, int], stride: tuple[float, float]
) -> Tensor:
    """(H * W * A, 4) anchors of a (H, W) feature map: base (A, 4) anchors centred on the
    top-left corner of each feature pixel's stride cell; pixel-major (all A anchors of pixel 0
    first), the order of a (H, W, A) reshape of the RPN's outputs."""
    height, width = feature_size
    stride_y, stride_x = stride
    ys = torch.arange(height, dtype=base.dtype, device=base.device) * stride_y
    xs = torch.arange(width, dtype=base.dtype, device=base.device) * stride_x
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=-1).reshape(-1, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)
