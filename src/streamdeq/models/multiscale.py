"""One application of the MDEQ layer f: a residual block per resolution, then multiscale fusion.

    z_i  --block_i(+ injection_i)-->  x_i          (every branch, in parallel)
    y_i  = sum_j  x_j resampled to branch i       (j < i: stride-2 convs, j > i: 1x1 conv + nearest)
    f(z)_i = GroupNorm(conv1x1(relu(y_i)))         (post-fuse)

Submodule and parameter names follow the official checkpoints (``branches.i.blocks.k.conv1``,
``fuse_layers.i.j.net...``, ``post_fuse_layers.i``), so that loading one is a matter of dropping
its redundant copies, not of translating names.

f runs tens of times per frame, so it allocates nothing beyond what its convolutions and norms
produce: additions and ReLUs write into tensors f itself just created (autograd's version checks
would catch one it still needed), branches without an injection skip the addition, and the
weight-normalised weights come from a cache refreshed once per frame.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import WeightNormConv2d, group_norm, variational_mask

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import MDEQConfig

#: Dropout masks: one (B, C_i, 1, 1) tensor per block, grouped by branch.
DropoutMasks = list[list[Tensor]]


class ResidualBlock(nn.Module):
    """conv3x3 (C -> E*C), GN, ReLU, conv3x3 (E*C -> C), dropout, + injection, GN, + z, ReLU, GN."""

    def __init__(self, channels: int, expansion: int, num_groups: int, wnorm: bool) -> None:
        super().__init__()
        hidden = expansion * channels
        self.conv1 = WeightNormConv2d(channels, hidden, 3, wnorm=wnorm)
        self.gn1 = group_norm(hidden, num_groups)
        self.conv2 = WeightNormConv2d(hidden, channels, 3, wnorm=wnorm)
        self.gn2 = group_norm(channels, num_groups)
        self.gn3 = group_norm(channels, num_groups)

    def forward(self, z: Tensor, injection: Tensor | None, mask: Tensor | None) -> Tensor:
        h = F.relu(self.gn1(self.conv1(z)), inplace=True)
        h = self.conv2(h)
        if mask is not None:
            h = h.mul_(mask)
        if injection is not None:
            h = h.add_(injection)
        h = self.gn2(h).add_(z)
        return self.gn3(F.relu(h, inplace=True))


class Branch(nn.Module):
    """The residual blocks of one resolution; only the first receives the injection."""

    def __init__(self, channels: int, num_blocks: int, config: MDEQConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualBlock(channels, config.expansion, config.num_groups, config.wnorm)
            for _ in range(num_blocks)
        )

    def forward(
        self, z: Tensor, injection: Tensor | None, masks: Sequence[Tensor] | None
    ) -> Tensor:
        for k, block in enumerate(self.blocks):
            z = block(z, injection if k == 0 else None, None if masks is None else masks[k])
        return z


class DownsampleFuse(nn.Module):
    """Branch j -> branch i > j: (i - j) stride-2 conv3x3 + GN, with ReLU between them; the
    intermediate convs keep branch j's channels, the last one maps to branch i's."""

    def __init__(self, in_channels: int, out_channels: int, levels: int, num_groups: int) -> None:
        super().__init__()
        steps = []
        for k in range(levels):
            last = k == levels - 1
            width = out_channels if last else in_channels
            parts = OrderedDict(
                conv=nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                gnorm=group_norm(width, num_groups),
            )
            if not last:
                parts["relu"] = nn.ReLU(inplace=True)
            steps.append(nn.Sequential(parts))
        self.net = nn.Sequential(*steps)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class UpsampleFuse(nn.Module):
    """Branch j -> branch i < j: 1x1 conv + GN at branch j's resolution, then nearest-neighbour
    upsampling by 2**(j - i)."""

    def __init__(self, in_channels: int, out_channels: int, levels: int, num_groups: int) -> None:
        super().__init__()
        self.scale = float(2**levels)
        self.net = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                gnorm=group_norm(out_channels, num_groups),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.net(x), scale_factor=self.scale, mode="nearest")

    def add_to(self, fused: Tensor, x: Tensor, inplace: bool) -> Tensor:
        """``fused`` + forward(x), without materialising the upsampled tensor: nearest
        upsampling by an integer factor s is a broadcast over a (B, C, h, s, w, s) view of
        ``fused``, so the sum reads the small map directly (same values, one pass fewer)."""
        low = self.net(x)
        scale = int(self.scale)
        bsz, channels, height, width = low.shape
        if not fused.is_contiguous() or fused.shape[-2:] != (height * scale, width * scale):
            up = F.interpolate(low, scale_factor=self.scale, mode="nearest")
            return fused.add_(up) if inplace else fused + up
        grid = fused.view(bsz, channels, height, scale, width, scale)
        spread = low[:, :, :, None, :, None]
        total = grid.add_(spread) if inplace else grid + spread
        return total.view(bsz, channels, height * scale, width * scale)


class PostFuse(nn.Module):
    """ReLU, 1x1 conv (weight-normalised with ``wnorm``), GroupNorm with half the groups."""

    def __init__(self, channels: int, num_groups: int, wnorm: bool) -> None:
        super().__init__()
        self.conv = WeightNormConv2d(channels, channels, 1, wnorm=wnorm)
        self.gnorm = group_norm(channels, num_groups // 2)

    def forward(self, y: Tensor) -> Tensor:
        """``y`` is overwritten (it is the fused sum, which nothing else reads)."""
        return self.gnorm(self.conv(F.relu(y, inplace=True)))


class MultiscaleBlock(nn.Module):
    """f itself: z (one (B, C_i, H_i, W_i) tensor per branch) -> a state of the same shapes."""

    def __init__(self, config: MDEQConfig) -> None:
        super().__init__()
        self.num_branches = config.num_branches
        self.dropout = config.dropout
        self.num_channels = config.num_channels
        self.num_blocks = config.num_blocks
        self.branches = nn.ModuleList(
            Branch(c, n, config)
            for c, n in zip(config.num_channels, config.num_blocks, strict=True)
        )
        # a single branch has nothing to fuse; the official layer then also skips post-fuse
        # (its parameters still exist, and are kept here for checkpoint compatibility)
        self.fuse_layers = _fuse_layers(config) if config.num_branches > 1 else None
        self.post_fuse_layers = nn.ModuleList(
            PostFuse(c, config.num_groups, config.wnorm) for c in config.num_channels
        )

    def new_dropout_masks(self, like: Tensor) -> DropoutMasks:
        """Fresh masks for a batch of ``like.shape[0]`` samples, on ``like``'s device/dtype."""
        bsz = like.shape[0]
        return [
            [
                variational_mask(bsz, c, self.dropout, device=like.device, dtype=like.dtype)
                for _ in range(n)
            ]
            for c, n in zip(self.num_channels, self.num_blocks, strict=True)
        ]

    def forward(
        self,
        z: Sequence[Tensor],
        injection: Sequence[Tensor | None],
        masks: DropoutMasks | None = None,
    ) -> list[Tensor]:
        blocks_out = [
            branch(z[i], injection[i], None if masks is None else masks[i])
            for i, branch in enumerate(self.branches)
        ]
        if self.fuse_layers is None:
            return blocks_out
        return [self._fuse_into(i, blocks_out) for i in range(self.num_branches)]

    def _fuse_into(self, i: int, blocks_out: list[Tensor]) -> Tensor:
        fused = None
        for j, x_j in enumerate(blocks_out):
            # never write into a block output: other branches read it
            inplace = fused is not None and fused is not blocks_out[i]
            if j > i:  # upsampled terms are added without building the upsampled map
                fused = self.fuse_layers[i][j].add_to(fused, x_j, inplace)
                continue
            term = x_j if j == i else self.fuse_layers[i][j](x_j)
            if fused is None:
                fused = term
            elif inplace:
                fused = fused.add_(term)
            else:
                fused = fused + term
        return self.post_fuse_layers[i](fused)


def _fuse_layers(config: MDEQConfig) -> nn.ModuleList:
    """fuse_layers[i][j] resamples branch j to branch i (None on the diagonal)."""
    channels, groups = config.num_channels, config.num_groups
    rows = []
    for i in range(config.num_branches):
        row: list[nn.Module | None] = []
        for j in range(config.num_branches):
            if i == j:
                row.append(None)
            elif j > i:
                row.append(UpsampleFuse(channels[j], channels[i], j - i, groups))
            else:
                row.append(DownsampleFuse(channels[j], channels[i], i - j, groups))
        rows.append(nn.ModuleList(row))
    return nn.ModuleList(rows)
