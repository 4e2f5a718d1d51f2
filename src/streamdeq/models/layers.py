"""Small building blocks of the MDEQ layer: a convolution whose weight-normalised weight is computed
once per forward pass, and variational dropout masks.

Why cache the normalised weight: f is applied tens of times per frame with the same parameters,
and w = g * v / ||v|| is the same every time. The official code recomputes it once per forward
pass for the same reason; here :meth:`WeightNormConv2d.refresh` does it (the model calls it from
``inject``), and every f call reuses the result, which also carries the graph to g and v when it
was computed with gradients enabled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormConv2d(nn.Module):
    """A bias-free 2-D convolution with an optionally weight-normalised weight.

    With ``wnorm`` the parameters are ``weight_g`` (C_out, 1, 1, 1) and ``weight_v``
    (C_out, C_in, k, k) and the weight is g * v / ||v|| (norm over everything but the output
    channel); without it there is a plain ``weight``. The parameter names are those of the
    official MDEQ checkpoints.

    The normalised weight is computed by :meth:`refresh` and reused by every call until the next
    refresh; it is dropped (and lazily recomputed) when the module is moved, cast or loaded.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        wnorm: bool = True,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = kernel_size // 2
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        if wnorm:
            # g before v: the order of the official state dicts
            self.weight_g = nn.Parameter(torch.empty(out_channels, 1, 1, 1))
            self.weight_v = nn.Parameter(torch.empty(shape))
        else:
            self.weight = nn.Parameter(torch.empty(shape))
        self._cached: Tensor | None = None
        self._cached_key: tuple[int, ...] | None = None  # what the cached weight was made from
        self.reset_parameters()

    @property
    def wnorm(self) -> bool:
        return "weight_v" in self._parameters

    def reset_parameters(self) -> None:
        """PyTorch's default conv init for v (or the weight), and g = ||v|| so that w = v."""
        target = self.weight_v if self.wnorm else self.weight
        nn.init.kaiming_uniform_(target, a=math.sqrt(5))
        if self.wnorm:
            with torch.no_grad():
                self.weight_g.copy_(_row_norm(self.weight_v))
        self._cached = None

    def compute_weight(self) -> Tensor:
        """The effective weight (C_out, C_in, k, k), computed now (differentiable)."""
        if not self.wnorm:
            return self.weight
        return self.weight_v * (self.weight_g / _row_norm(self.weight_v))

    def refresh(self) -> None:
        """Recompute the cached weight from the current parameters (once per forward pass).

        Without gradients (inference, streaming) a weight cached without a graph is kept as
        long as g and v are unchanged (same tensors, same in-place version counters): a stream
        calls this on every frame, and recomputing w costs a pass over all the block's weights
        (for MDEQ-XL about half the time of one f at 128 x 256 on a CPU). With gradients it is
        always recomputed, so every forward pass gets its own graph to g and v. (Writes through
        ``param.data`` bypass the version counters; after one, ``.to()`` or
        ``load_state_dict`` drops the cache.)
        """
        if not self.wnorm:
            self._cached = None
            return
        key = self._version_key()
        if (
            not torch.is_grad_enabled()
            and self._cached is not None
            and not self._cached.requires_grad
            and self._cached_key == key
        ):
            return
        self._cached = self.compute_weight()
        self._cached_key = None if self._cached.requires_grad else key

    def _version_key(self) -> tuple[int, ...]:
        g, v = self.weight_g, self.weight_v
        return (g._version, v._version, g.data_ptr(), v.data_ptr())

    def forward(self, x: Tensor) -> Tensor:
        weight = self._cached
        if weight is None:
            if self.wnorm:
                self.refresh()
                weight = self._cached
            else:
                weight = self.weight
        return F.conv2d(x, weight, None, self.stride, self.padding)

    def extra_repr(self) -> str:
        w = self.weight_v if self.wnorm else self.weight
        c_out, c_in, k, _ = w.shape
        return f"{c_in}, {c_out}, kernel_size={k}, stride={self.stride}, wnorm={self.wnorm}"

    def _apply(self, fn, recurse=True):  # .to(), .half(), .cuda(): the cache would be stale
        self._cached = None
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:
        # the cache may hold a graph (after a training forward), which deepcopy/pickle refuse
        state = super().__getstate__()
        return {**state, "_cached": None, "_cached_key": None}

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._cached = None
        super()._load_from_state_dict(*args, **kwargs)


def _row_norm(v: Tensor) -> Tensor:
    """(C_out, 1, 1, 1) L2 norm of each output channel's filter."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def refresh_weights(module: nn.Module) -> None:
    """Refresh the cached weight of every :class:`WeightNormConv2d` inside ``module``."""
    for sub in module.modules():
        if isinstance(sub, WeightNormConv2d):
            sub.refresh()


def variational_mask(
    batch_size: int, channels: int, rate: float, *, device=None, dtype=None
) -> Tensor:
    """A (B, C, 1, 1) dropout mask: each channel of each sample kept with probability 1 - rate
    and scaled by 1 / (1 - rate), the same at every pixel and at every solver iteration."""
    keep = 1.0 - rate
    mask = torch.empty(batch_size, channels, 1, 1, device=device, dtype=dtype).bernoulli_(keep)
    return mask.div_(keep)


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    """GroupNorm with learnable affine parameters, as used throughout the MDEQ layer."""
    return nn.GroupNorm(num_groups, channels, affine=True)
