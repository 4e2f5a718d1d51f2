"""Weight-tied unrolling: the "pretraining" phase of the official MDEQ, in which f is applied a
fixed number of times from the start point and trained by ordinary backprop. It warms the weights
up before the equilibrium solve takes over (MDEQ's PRETRAIN_STEPS with NUM_LAYERS applications).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..solvers import FixedPointFn, State
from ..validation import check_int
from .settings import DEQSettingsError


def unrolled_forward(
    f: FixedPointFn,
    z0: Sequence[Tensor] | None,
    args: Sequence = (),
    num_layers: int = 1,
    *,
    like: Sequence[Tensor] | None = None,
) -> State:
    """f applied ``num_layers`` times from ``z0`` (or from zeros shaped like ``like``, as the
    official pretraining does), with the full graph for backprop.

    Memory grows with ``num_layers`` (every application is stored); that is the point of
    pretraining shallow, and why the equilibrium phase uses implicit gradients instead.
    """
    check_int("num_layers", num_layers, error=DEQSettingsError)
    if z0 is None:
        if like is None:
            raise DEQSettingsError("z0=None needs like= (tensors giving the state's shapes)")
        z0 = [torch.zeros_like(t) for t in like]
    z = list(z0)
    for _ in range(num_layers):
        z = list(f(z, *args))
    return z
