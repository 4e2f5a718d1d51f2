"""The DEQ layer: find z* = f(z*, *args) without a graph, then attach the chosen gradient.

"Find the fixed point" and "how gradients flow" are separate steps (the split TorchDEQ makes):
the forward solve is any solver from :mod:`streamdeq.solvers`, run under ``no_grad`` so none of
its iterations is stored; the gradient is one of :data:`~.settings.BACKWARD_MODES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._deprecated import renamed_keyword
from ..solvers import FixedPointFn, SolverResult, State, solve
from ..validation import check_int
from .implicit import implicit_backward
from .jacobian import hutchinson
from .phantom import continue_phantom
from .reapply import reapply
from .settings import BackwardSettings, DEQSettingsError


def equilibrium(
    f: FixedPointFn,
    z0: Sequence[Tensor] | None,
    args: Sequence = (),
    *,
    forward_solver: str = "broyden",
    f_thres: int | None = None,
    forward_tol: float | None = None,
    forward_options: Mapping[str, Any] | None = None,
    backward: BackwardSettings | None = None,
    jac_samples: int = 0,
    like: Sequence[Tensor] | None = None,
    forward_max_iter: int | None = None,
) -> tuple[State, SolverResult, Tensor | None]:
    """The equilibrium of f and its gradient.

    Args:
        f: f(z, *args) -> state; z a list of (B, ...) tensors (one per resolution for an MDEQ).
            It must treat batch rows independently and be deterministic within a call
            (e.g. dropout masks fixed per forward), since it is evaluated many times.
        z0: warm start (no gradient flows into it), or None for zeros shaped like ``like``.
        args: f's other batch-first arguments (e.g. the injection); gradients reach them.
        forward_solver, f_thres, forward_tol: the forward solve; ``f_thres`` is N, its
            iteration budget (required; the official F_THRES).
        forward_options: extra settings of :func:`streamdeq.solvers.solve` (``stop_mode``,
            method-specific options); unknown ones are rejected by the solver.
        backward: how the gradient flows (default: implicit, Broyden, 30 iterations).
        jac_samples: Hutchinson probes for the Jacobian penalty at z* (0: none).
        like: shapes for zeros when ``z0`` is None.
        forward_max_iter: the deprecated name of ``f_thres``.

    Returns:
        (z, result, jac_loss): z, a list of (B, ...) tensors equal to the fixed point (implicit:
        f applied once more at z*, as the official code does; phantom: the last damped step;
        none, or grad mode off: z* itself, detached); result, the forward ``SolverResult``;
        jac_loss, a scalar ||J_f(z*)||_F^2 / numel estimate if ``jac_samples`` > 0, else None
        (under ``no_grad`` it is computed without a graph, for monitoring).
    """
    f_thres = renamed_keyword(
        "forward_max_iter", "f_thres", forward_max_iter, f_thres, error=DEQSettingsError
    )
    if f_thres is None:
        raise DEQSettingsError("equilibrium needs f_thres (N, the forward solve's iterations)")
    backward = BackwardSettings() if backward is None else backward
    if not isinstance(backward, BackwardSettings):
        raise DEQSettingsError(
            f"backward must be a BackwardSettings, got {type(backward).__name__}; "
            "build one from a mapping with BackwardSettings.from_dict"
        )
    check_int("jac_samples", jac_samples, minimum=0, error=DEQSettingsError)
    args = tuple(args)
    with torch.no_grad():
        result = solve(
            f,
            None if z0 is None else list(z0),
            args,
            method=forward_solver,
            max_iter=f_thres,
            tol=forward_tol,
            like=like,
            **dict(forward_options or {}),
        )
    z_star = result.z

    wants_grad = torch.is_grad_enabled() and backward.mode != "none"
    if not wants_grad and jac_samples == 0:
        return [t.detach() for t in z_star], result, None
    z_in, z_out = reapply(f, z_star, args)
    jac_loss = hutchinson(z_in, z_out, jac_samples) if jac_samples > 0 else None
    if not wants_grad:
        z = [t.detach() for t in z_star]
    elif backward.mode == "implicit":
        z = implicit_backward(z_in, z_out, backward)
    else:
        z = continue_phantom(
            f,
            z_in,
            z_out,
            args,
            steps=backward.phantom_steps,
            damping=backward.phantom_damping,
        )
    return z, result, jac_loss
