"""Task heads that turn an equilibrium state (one tensor per resolution) into logits.

Submodule names follow the official checkpoints (``last_layer``, ``incre_modules``,
``downsamp_modules``, ``final_layer``, ``classifier``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fused_head import FoldedHead, fold_head, fold_key, fused_head

if TYPE_CHECKING:  # the config builds the model (config.build), not the reverse
    from .config import MDEQConfig


class SegmentationHead(nn.Module):
    """Every branch bilinearly upsampled to branch 0's size (align_corners=True), concatenated,
    then 1x1 conv + BN + ReLU + a final conv to class logits (B, classes, H_0, W_0).

    In eval mode the same function is computed in a faster, exact form: each branch convolved
    at its own resolution with BatchNorm folded in, then upsampled and summed in cache-sized
    bands (:mod:`.fused_head` says why that is exact; timings in benchmarks/README.md). Training
    mode (BN uses the batch's statistics there), a 3x3 final conv, or ``use_fused = False`` run
    the original path, :meth:`reference_forward`.

    Without autograd the folded weights are cached, and refolded whenever a parameter or BN
    buffer of the head changes (optimiser step, load_state_dict, ``.to()``, a training-mode
    forward); with autograd they are folded on every call, so gradients reach the parameters.
    An edit through ``.data`` bypasses the version counters the cache checks: call
    :meth:`clear_fold_cache` after one.
    """

    def __init__(self, config: MDEQConfig) -> None:
        super().__init__()
        width = sum(config.num_channels)
        k = config.final_conv_kernel
        self.num_channels = tuple(config.num_channels)
        self.last_layer = nn.Sequential(
            nn.Conv2d(width, width, 1),
            nn.BatchNorm2d(width, momentum=config.bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, config.num_classes, k, padding=k // 2),
        )
        #: False forces the original path everywhere (to compare or time the two)
        self.use_fused = True
        self._folded: FoldedHead | None = None
        self._fold_key: tuple | None = None

    def forward(self, z: Sequence[Tensor]) -> Tensor:
        if not self.uses_fused_path():
            return self.reference_forward(z)
        params_need_grad = any(p.requires_grad for p in self.last_layer.parameters())
        if torch.is_grad_enabled() and params_need_grad:
            return fused_head(z, fold_head(self.last_layer, self.num_channels))
        return fused_head(z, self.folded())

    def uses_fused_path(self) -> bool:
        """Whether :meth:`forward` takes the fast exact path now (see the class docstring)."""
        return self.use_fused and not self.training and self.last_layer[3].kernel_size == (1, 1)

    def folded(self) -> FoldedHead:
        """The BN-folded weights (no autograd), refolded when the head's parameters or buffers
        changed."""
        key = fold_key(self.last_layer)
        if self._folded is None or key != self._fold_key:
            with torch.no_grad():
                self._folded = fold_head(self.last_layer, self.num_channels)
            self._fold_key = key
        return self._folded

    def clear_fold_cache(self) -> None:
        """Drop the folded weights (after editing parameters through ``.data``)."""
        self._folded = self._fold_key = None

    def reference_forward(self, z: Sequence[Tensor]) -> Tensor:
        """The original head, differentiable, with BN batch statistics in training mode."""
        if z[0].device.type == "cpu":
            # oneDNN's 1x1 convolutions over the wide concatenation run faster channels-last
            # (SMALL at 512x1024: the head 104 -> 91 ms, XL 626 -> 509 ms, 2 threads), and
            # upsampling and cat keep the format, so only the small branch states are copied
            z = [t.contiguous(memory_format=torch.channels_last) for t in z]
        size = z[0].shape[-2:]
        parts = [z[0]]
        parts += [F.interpolate(t, size=size, mode="bilinear", align_corners=True) for t in z[1:]]
        return self.last_layer(torch.cat(parts, dim=1)).contiguous()


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1 with 4x expansion). Its BatchNorms have no affine
    parameters, as in the official classification head; the projection shortcut's BN does."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, bn_momentum: float) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=bn_momentum, affine=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=bn_momentum, affine=False)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, momentum=bn_momentum, affine=False)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels, momentum=bn_momentum),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out.add_(shortcut), inplace=True)


class ClassificationHead(nn.Module):
    """Widen every branch with a bottleneck, walk from the finest to the coarsest branch adding
    each (stride-2 conv downsampled) running sum to the next, then 1x1 conv + BN + ReLU, global
    average pooling and a linear classifier: (B, classes)."""

    def __init__(self, config: MDEQConfig) -> None:
        super().__init__()
        momentum = config.bn_momentum
        widths = [c * Bottleneck.expansion for c in config.head_channels]
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(c, h, momentum))
            for c, h in zip(config.num_channels, config.head_channels, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(w_in, w_out, 3, stride=2, padding=1, bias=True),
                nn.BatchNorm2d(w_out, momentum=momentum),
                nn.ReLU(inplace=True),
            )
            for w_in, w_out in pairwise(widths)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(widths[-1], config.final_chansize, 1),
            nn.BatchNorm2d(config.final_chansize, momentum=momentum),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(config.final_chansize, config.num_classes)

    def forward(self, z: Sequence[Tensor]) -> Tensor:
        y = self.incre_modules[0](z[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](z[i + 1]) + down(y)
        y = self.final_layer(y)
        return self.classifier(y.mean(dim=(2, 3)))


def build_head(config: MDEQConfig) -> nn.Module:
    return SegmentationHead(config) if config.task == "segmentation" else ClassificationHead(config)
