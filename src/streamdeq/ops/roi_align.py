"""RoIAlign (He et al., Mask R-CNN): a fixed-size feature crop per box by bilinear sampling,
vectorised over boxes, bins and sample points.

Each box is split into (PH, PW) bins; each bin averages a grid of (g_h, g_w) bilinear samples at
the grid cells' centres. ``sampling_ratio`` fixes g; with ``sampling_ratio <= 0`` it adapts per
box to ceil(box size / bins). Boxes are sorted by grid size and pooled in chunks of bounded
memory; within a chunk the grid is as large as its largest box needs and the samples a smaller
box does not use get weight 0 (one huge box thus costs one chunk, not every box's memory).

Sampling follows the standard kernel exactly: a point more than one pixel outside the feature
map reads 0; otherwise coordinates below 0 are moved to 0 and the last row/column is repeated
beyond the map. With ``aligned=True`` box corners are shifted by -0.5 pixel so that a box's
continuous coordinates line up with pixel centres; ``aligned=False`` keeps the original Mask
R-CNN convention (no shift, box sizes at least 1 pixel).

Gradients w.r.t. the features flow through ``index_select`` (its backward scatters into the
map), so the op is differentiable without a hand-written backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: Samples (boxes x bins x grid points x channels) gathered at once: bounds the memory.
_CHUNK_ELEMENTS = 1 << 23


def roi_align(
    features: Tensor,
    boxes: Tensor | Sequence[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Crop and resample a feature map to a fixed size per box.

    Args:
        features: (B, C, H, W).
        boxes: (K, 5) rows ``batch_index, x1, y1, x2, y2``, or a list of B (K_b, 4) tensors, in
            input-image coordinates.
        output_size: (PH, PW) bins (or one int for both).
        spatial_scale: feature pixels per image pixel (1 / stride).
        sampling_ratio: samples per bin along each axis; <= 0 adapts per box.
        aligned: shift by half a pixel (see the module docstring).

    Returns:
        (K, C, PH, PW) features, in the order of the boxes.
    """
    pooled_h, pooled_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    rois = _as_rois(boxes, features)
    channels = features.shape[1]
    if rois.shape[0] == 0:
        return features.new_zeros(0, channels, pooled_h, pooled_w)
    rois = rois.to(features.dtype)
    batch_index = rois[:, 0].long()
    offset = 0.5 if aligned else 0.0
    start_x = rois[:, 1] * spatial_scale - offset
    start_y = rois[:, 2] * spatial_scale - offset
    width = rois[:, 3] * spatial_scale - offset - start_x
    height = rois[:, 4] * spatial_scale - offset - start_y
    if not aligned:
        width = width.clamp(min=1.0)
        height = height.clamp(min=1.0)
    bin_h = height / pooled_h
    bin_w = width / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(bin_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(bin_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h = torch.ceil(height / pooled_h).long()
        grid_w = torch.ceil(width / pooled_w).long()
    geometry = (batch_index, start_y, start_x, bin_h, bin_w, grid_h, grid_w)
    # boxes sorted by their grid size are pooled in chunks of bounded memory, each sized by
    # its own largest grid, so one huge box does not inflate every other box's samples
    cost = grid_h.clamp(min=1) * grid_w.clamp(min=1)
    order = torch.sort(cost, stable=True).indices
    sorted_cost = cost[order]
    per_sample = pooled_h * pooled_w * channels
    pieces, start, count = [], 0, order.shape[0]
    while start < count:
        # the chunk's cost (boxes x the last, largest grid) grows with its end: find the last
        # end within the budget (at least one box)
        span = torch.arange(1, count - start + 1, device=cost.device)
        fits = (span * sorted_cost[start:] * per_sample) <= _CHUNK_ELEMENTS
        end = start + max(int(fits.sum()), 1)
        rows = order[start:end]
        pieces.append(_pool(features, [g[rows] for g in geometry], (pooled_h, pooled_w)))
        start = end
    pooled = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    if len(pieces) > 1 or not torch.equal(order, torch.arange(count, device=order.device)):
        pooled = pooled[torch.argsort(order)]
    return pooled


def _pool(features: Tensor, geometry: list[Tensor], pooled_size: tuple[int, int]) -> Tensor:
    """(K, C, PH, PW) pooled features of K boxes given their sampling geometry."""
    batch_index, start_y, start_x, bin_h, bin_w, grid_h, grid_w = geometry
    pooled_h, pooled_w = pooled_size
    channels = features.shape[1]
    # one Python int sync per chunk, not per box: its largest grid sizes the shared tensor
    max_grid_h = max(int(grid_h.max()), 1)
    max_grid_w = max(int(grid_w.max()), 1)
    ys, y_used = _sample_coords(start_y, bin_h, grid_h, pooled_h, max_grid_h)
    xs, x_used = _sample_coords(start_x, bin_w, grid_w, pooled_w, max_grid_w)
    # (K, PH*gh, PW*gw) samples: rows from ys, columns from xs
    values = _bilinear(features, batch_index, ys, xs)  # (K, Sy, Sx, C)
    weight = (y_used[:, :, None] & x_used[:, None, :]).to(values.dtype)
    count = (grid_h * grid_w).clamp(min=1).to(values.dtype)
    values = values * weight[..., None]
    k = values.shape[0]
    values = values.view(k, pooled_h, max_grid_h, pooled_w, max_grid_w, channels)
    pooled = values.sum(dim=(2, 4)) / count.view(k, 1, 1, 1)
    return pooled.permute(0, 3, 1, 2).contiguous()


def _as_rois(boxes: Tensor | Sequence[Tensor], features: Tensor) -> Tensor:
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"rois must be (K, 5) rows of batch_index, x1, y1, x2, y2; got {tuple(boxes.shape)}"
            )
        return boxes
    if len(boxes) != features.shape[0]:
        raise ValueError(
            f"got box lists for {len(boxes)} images but features for {features.shape[0]}"
        )
    parts = [
        torch.cat([b.new_full((b.shape[0], 1), float(i)), b.reshape(-1, 4)], dim=1)
        for i, b in enumerate(boxes)
    ]
    if not parts:
        return features.new_zeros(0, 5)
    return torch.cat(parts, dim=0)


def _sample_coords(
    start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, max_grid: int
) -> tuple[Tensor, Tensor]:
    """(K, bins * max_grid) sample coordinates along one axis and whether each is used."""
    bin_index = torch.arange(bins, device=start.device, dtype=start.dtype)
    sub_index = torch.arange(max_grid, device=start.device, dtype=start.dtype)
    grid_f = grid.clamp(min=1).to(start.dtype)
    coords = (
        start[:, None, None]
        + bin_index[None, :, None] * bin_size[:, None, None]
        + (sub_index[None, None, :] + 0.5) * (bin_size / grid_f)[:, None, None]
    )
    used = sub_index[None, None, :] < grid[:, None, None]
    used = used.expand(-1, bins, -1)
    return coords.flatten(1), used.flatten(1)


def _bilinear(features: Tensor, batch_index: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """(K, Sy, Sx, C) bilinear samples of features[batch_index[k]] at the grid ys[k] x xs[k]."""
    _, channels, height, width = features.shape
    y_low, y_high, y_frac, y_inside = _axis_neighbours(ys, height)
    x_low, x_high, x_frac, x_inside = _axis_neighbours(xs, width)
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels)
    base = (batch_index * (height * width))[:, None, None]
    k, sy = ys.shape
    sx = xs.shape[1]

    def gather(rows: Tensor, cols: Tensor) -> Tensor:
        index = base + rows[:, :, None] * width + cols[:, None, :]
        return flat.index_select(0, index.reshape(-1)).view(k, sy, sx, channels)

    wy = y_frac[:, :, None, None]
    wx = x_frac[:, None, :, None]
    top = gather(y_low, x_low) * (1 - wx) + gather(y_low, x_high) * wx
    bottom = gather(y_high, x_low) * (1 - wx) + gather(y_high, x_high) * wx
    inside = (y_inside[:, :, None] & x_inside[:, None, :]).to(features.dtype)
    return (top * (1 - wy) + bottom * wy) * inside[..., None]


def _axis_neighbours(coords: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lower and upper neighbour indices, the fraction towards the upper one, and validity."""
    inside = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0)
    low = coords.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(coords), coords - low.to(coords.dtype))
    return low, high, frac, inside
