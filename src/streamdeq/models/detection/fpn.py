"""Feature pyramid network (Lin et al. 2017) over the MDEQ equilibrium state.

The MDEQ state already is a pyramid: branch i at stride 2**(downsample_times + i). FPN turns it
into equally wide levels: a 1x1 lateral conv per branch (taking the branch's own width), a
top-down pathway adding each coarser level, nearest-upsampled, into the next finer one, a 3x3
output conv per level, and an extra coarsest level P6 by stride-2 subsampling (max-pool with
kernel 1) of the coarsest output, used by the RPN only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FeaturePyramid(nn.Module):
    """(B, C_i, H_i, W_i) per branch -> (B, fpn_channels, H_i, W_i) per branch, then P6."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )
        for conv in [*self.lateral, *self.output]:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, z: Sequence[Tensor]) -> list[Tensor]:
        top = self.lateral[-1](z[-1])
        levels = [self.output[-1](top)]
        for i in range(len(z) - 2, -1, -1):
            lateral = self.lateral[i](z[i])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode="nearest")
            levels.insert(0, self.output[i](top))
        levels.append(F.max_pool2d(levels[-1], kernel_size=1, stride=2))
        return levels
