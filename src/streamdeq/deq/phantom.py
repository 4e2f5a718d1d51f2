"""Phantom gradients (Geng et al., NeurIPS 2021): backprop through k damped steps from z*.

Starting at the (detached) fixed point, k steps z <- (1 - tau) z + tau f(z) are taken with a
graph and ordinary backprop runs through them. Their gradient is
g^T tau sum_{i<k} ((1 - tau) I + tau J)^i df/dtheta, a truncated Neumann series of the implicit
gradient g^T (I - J)^{-1} df/dtheta: k = 1, tau = 1 is "Jacobian-free" backprop through one
application of f; more steps and damping approach the implicit gradient when J is contractive.
Cheaper and more robust than the adjoint solve when the model is far from contractive, and the
memory is k applications of f, not the solver's iterations.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..solvers import FixedPointFn, State
from ..validation import check_int, check_real
from .reapply import reapply
from .settings import DEQSettingsError


def phantom_gradient(
    f: FixedPointFn,
    z_star: Sequence[Tensor],
    args: Sequence = (),
    *,
    steps: int = 1,
    damping: float = 1.0,
) -> State:
    """k = ``steps`` damped steps of f from ``z_star`` (detached), recorded for autograd.

    Args:
        f: f(z, *args) -> state, z a list of (B, ...) tensors.
        z_star: the fixed point (its own graph, if any, is not followed).
        steps: k >= 1.
        damping: tau in (0, 1].

    Returns the last iterate z_k, whose gradient reaches f's parameters and ``args``.
    """
    z_in, z_out = reapply(f, z_star, args)
    return continue_phantom(f, z_in, z_out, args, steps=steps, damping=damping)


def continue_phantom(
    f: FixedPointFn,
    z_in: Sequence[Tensor],
    z_out: Sequence[Tensor],
    args: Sequence,
    *,
    steps: int,
    damping: float,
) -> State:
    """:func:`phantom_gradient` from an application z_out = f(z_in) already recorded (the layer
    shares it with the Jacobian penalty)."""
    check_int("steps", steps, label="phantom steps", error=DEQSettingsError)
    check_real(
        "damping",
        damping,
        exclusive_minimum=0,
        maximum=1,
        label="phantom damping",
        error=DEQSettingsError,
    )
    z = _damped(z_in, z_out, damping)
    for _ in range(steps - 1):
        z = _damped(z, f(z, *args), damping)
    return z


def _damped(z: Sequence[Tensor], fz: Sequence[Tensor], damping: float) -> State:
    if damping == 1.0:
        return list(fz)
    return [a + damping * (b - a) for a, b in zip(z, fz, strict=True)]
