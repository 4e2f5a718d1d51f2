"""One application of f at a given point, recorded for autograd: the shared first step of every
gradient the DEQ layer offers.

The fixed point z* is found without a graph (the solver's iterations must not be stored: that is
the memory growth of unrolled backprop). Gradients then start from z_out = f(z_in, *args) with
z_in a fresh leaf holding z*'s values: the graph from z_out reaches f's parameters and ``args``
(the injection, hence the input stem) and stops at z_in, where the Jacobian J_f(z*) = dz_out/dz_in
can be read by vector products.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import StreamDEQError
from ..solvers import FixedPointFn, State


class InferenceModeError(StreamDEQError, RuntimeError):
    """Autograd was needed (a Jacobian product) inside ``torch.inference_mode``."""


def reapply(f: FixedPointFn, z_star: Sequence[Tensor], args: Sequence) -> tuple[State, State]:
    """(z_in, z_out): leaves detached from ``z_star`` that require grad, and f(z_in, *args)
    computed with grad enabled (even inside ``torch.no_grad``).

    Raises InferenceModeError inside ``torch.inference_mode``, where no graph can be recorded
    (Jacobian products would silently come out as zero)."""
    if torch.is_inference_mode_enabled():
        raise InferenceModeError(
            "Jacobian products (the Jacobian penalty, implicit or phantom gradients) need "
            "autograd, which torch.inference_mode disables; use torch.no_grad() instead"
        )
    z_in = [t.detach().requires_grad_() for t in z_star]
    with torch.enable_grad():
        z_out = list(f(z_in, *args))
    if len(z_out) != len(z_in):
        raise ValueError(f"f returned {len(z_out)} tensors for a state of {len(z_in)}")
    return z_in, z_out


def vjp(
    z_out: Sequence[Tensor],
    z_in: Sequence[Tensor],
    vectors: Sequence[Tensor],
    *,
    create_graph: bool = False,
) -> State:
    """v^T J for J = dz_out/dz_in, one tensor per state tensor (zeros where z_out does not
    depend on a part of z_in). Keeps the graph, so it can be called again."""
    pairs = [(out, v) for out, v in zip(z_out, vectors, strict=True) if out.requires_grad]
    if not pairs:
        return [torch.zeros_like(t) for t in z_in]
    grads = torch.autograd.grad(
        [out for out, _ in pairs],
        list(z_in),
        [v for _, v in pairs],
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
    )
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, z_in, strict=True)]
