"""The segmentation head's eval-mode form: the same function as upsample-concat-conv, with a
fraction of the work.

Why it is exact. The head computes ``final(relu(bn(conv1(cat(z_0, U_1 z_1, ..., U_k z_k)))))``
where ``U_i`` is bilinear upsampling (align_corners=True) to branch 0's size. Everything before
the ReLU is affine in the branch states:

* a 1x1 conv on a concatenation is the sum of 1x1 convs with the column blocks of its weight,
  one per branch: ``conv1(cat(...)) = b + sum_i W_i (U_i z_i)``;
* ``U_i`` mixes pixels and ``W_i`` mixes channels, so they commute: ``W_i U_i z_i = U_i W_i z_i``,
  and each branch can be convolved at its own, coarser resolution;
* bilinear weights sum to one, so a constant passes through ``U_i`` unchanged and the bias is
  added once, at branch 0, not per branch;
* BatchNorm with running statistics is a per-channel scale and shift, folded into ``W_i`` and
  ``b`` (:func:`fold_head`).

Only rounding differs (the sums run in another order). Upsampling is separable: along the width
by ``F.interpolate`` at the coarse height, then along the height as a small matrix product
that *accumulates* into the output (``baddbmm_``), so no full-size upsampled map is ever
written. The full-resolution work (branch 0's conv, the accumulation, ReLU and the final 1x1
conv) runs in bands of rows sized to stay in cache: the wide pre-ReLU map (SMALL at
512x1024: 63 MB, XL: 173 MB) never exists whole.

It needs BatchNorm's running statistics (eval mode) and a 1x1 final conv (every official
configuration has one); otherwise the head runs its original path. It is differentiable, so an
eval-mode head gives the same logits with and without autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Bytes per torch thread of the (B, rows, W_0, C) band of the wide map processed at a time on
#: CPU, up to CPU_BAND_BYTES_MAX: small enough that a band stays in cache between the ops that
#: read and write it, large enough that each op's share per thread outweighs its start-up cost
#: (SMALL at 512x1024 on a 2-core EPYC: best near 2 MiB a thread; one band for the whole map
#: took 1.8x as long on one thread).
CPU_BAND_BYTES_PER_THREAD = 2 * 1024 * 1024
CPU_BAND_BYTES_MAX = 8 * 1024 * 1024


@dataclass(frozen=True)
class FoldedHead:
    """The head's eval-mode weights, ready for matrix products.

    Attributes:
        branch_weights: per branch i, (C_i, C) = (bn_scale * W_1[:, block i]).T, contiguous.
        bias: (C,) the folded bias b = bn_scale * (b_1 - running_mean) + beta.
        final_weight: (classes, C) the final 1x1 conv's weight.
        final_bias: (classes,) its bias.
    """

    branch_weights: tuple[Tensor, ...]
    bias: Tensor
    final_weight: Tensor
    final_bias: Tensor


def fold_head(last_layer: nn.Sequential, num_channels: Sequence[int]) -> FoldedHead:
    """Fold ``last_layer`` = (1x1 conv, BatchNorm, ReLU, 1x1 conv) with BN's running
    statistics into per-branch weights. Computed in float64, stored in the weights' dtype, so
    folding adds no more than one rounding; differentiable in the parameters."""
    conv, bn, _, final = last_layer
    dtype = conv.weight.dtype
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double()[:, :, 0, 0] * scale[:, None]
    conv_bias = conv.bias.double() if conv.bias is not None else 0.0
    bias = (conv_bias - bn.running_mean.double()) * scale + bn.bias.double()
    blocks = torch.split(weight, list(num_channels), dim=1)
    final_bias = final.bias if final.bias is not None else final.weight.new_zeros(1)
    return FoldedHead(
        branch_weights=tuple(block.t().to(dtype).contiguous() for block in blocks),
        bias=bias.to(dtype),
        final_weight=final.weight[:, :, 0, 0],
        final_bias=final_bias.expand(final.out_channels),
    )


def fold_key(last_layer: nn.Sequential) -> tuple:
    """What a folded copy depends on: every parameter and buffer's identity, in-place version,
    dtype and device. An optimiser step, ``load_state_dict``, ``.to()`` or a BN statistics
    update in training mode all change it."""
    tensors = [*last_layer.parameters(), *last_layer.buffers()]
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


@dataclass(frozen=True)
class _Band:
    """Output rows [start, stop) and, per coarse branch, the source rows [lo, hi) they read
    with their (stop - start, hi - lo) interpolation weights."""

    start: int
    stop: int
    sources: tuple[tuple[int, int, Tensor], ...]


def height_weights(out_size: int, in_size: int) -> Tensor:
    """(out_size, in_size) float64 matrix of bilinear, align_corners=True interpolation along
    one axis: row i holds the two weights output i gives input rows floor(s) and floor(s) + 1,
    s = i * (in_size - 1) / (out_size - 1)."""
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = torch.arange(out_size, dtype=torch.float64) * scale
    low = src.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = src - low
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    matrix.index_put_((rows, low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix


@lru_cache(maxsize=16)
def _bands(
    height: int, coarse_heights: tuple[int, ...], rows: int, dtype: torch.dtype, device: str
) -> tuple[_Band, ...]:
    with torch.inference_mode(False):  # cached, so usable later in a graph for gradients
        return _plan_bands(height, coarse_heights, rows, dtype, device)


def _plan_bands(
    height: int, coarse_heights: tuple[int, ...], rows: int, dtype: torch.dtype, device: str
) -> tuple[_Band, ...]:
    matrices = [height_weights(height, h) for h in coarse_heights]
    bands = []
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        sources = []
        for matrix in matrices:
            used = matrix[start:stop].abs().sum(dim=0).nonzero()
            lo, hi = int(used.min()), int(used.max()) + 1
            weights = matrix[start:stop, lo:hi].to(device=device, dtype=dtype).contiguous()
            sources.append((lo, hi, weights))
        bands.append(_Band(start, stop, tuple(sources)))
    return tuple(bands)


def band_rows(
    batch: int, width: int, channels: int, element_size: int, device: torch.device
) -> int | None:
    """Rows per band: on CPU as many as fit the band budget (see
    :data:`CPU_BAND_BYTES_PER_THREAD`); elsewhere (CUDA) None, the whole height at once, where
    kernel launches cost more than memory traffic."""
    if device.type != "cpu":
        return None
    budget = min(CPU_BAND_BYTES_PER_THREAD * torch.get_num_threads(), CPU_BAND_BYTES_MAX)
    return max(1, budget // (batch * width * channels * element_size))


def fused_head(z: Sequence[Tensor], folded: FoldedHead) -> Tensor:
    """Logits (B, classes, H_0, W_0) of branch states ``z`` [(B, C_i, H_i, W_i), ...] with
    folded weights: the original head's function (see the module docstring)."""
    batch, _, height, width = z[0].shape
    channels = folded.bias.numel()
    coarse = [
        _width_upsampled(zi, w, width)
        for zi, w in zip(z[1:], folded.branch_weights[1:], strict=True)
    ]
    rows = band_rows(batch, width, channels, z[0].element_size(), z[0].device) or height
    bands = _bands(height, tuple(t.shape[1] for t in coarse), rows, z[0].dtype, str(z[0].device))
    fine = z[0].permute(0, 2, 3, 1).contiguous()  # (B, H, W, C_0): rows of pixels
    fine_weight = folded.branch_weights[0].expand(batch, -1, -1)
    final_weight = folded.final_weight.expand(batch, -1, -1)
    final_bias = folded.final_bias[:, None]
    logits = []
    for band in bands:
        pixels = fine[:, band.start : band.stop].flatten(1, 2)  # (B, n*W, C_0)
        wide = torch.baddbmm(folded.bias, pixels, fine_weight)  # (B, n*W, C)
        rows_view = wide.view(batch, band.stop - band.start, width * channels)
        for (lo, hi, weights), source in zip(band.sources, coarse, strict=True):
            rows_view.baddbmm_(weights.expand(batch, -1, -1), source[:, lo:hi])
        wide = wide.relu_()
        logits.append(torch.baddbmm(final_bias, final_weight, wide.transpose(1, 2)))
    return torch.cat(logits, dim=2).view(batch, -1, height, width)


def _width_upsampled(state: Tensor, weight: Tensor, width: int) -> Tensor:
    """A coarse branch's 1x1 conv at its own resolution, then upsampled along the width only:
    (B, C_i, h, w) -> (B, h, width * C) rows (channels last), ready for the height product."""
    batch, _, h, w = state.shape
    # a plain 2-D product: matmul would pick its batching by whether autograd is on, and the
    # logits should not depend on that in their last bit
    pixels = state.permute(0, 2, 3, 1).reshape(batch * h * w, -1)
    mixed = torch.mm(pixels, weight).view(batch, h, w, -1)  # (B, h, w, C)
    upsampled = F.interpolate(
        mixed.permute(0, 3, 1, 2), size=(h, width), mode="bilinear", align_corners=True
    )
    return upsampled.permute(0, 2, 3, 1).reshape(batch, h, -1)
