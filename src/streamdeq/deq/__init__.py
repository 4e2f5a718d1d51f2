"""Gradients through a fixed point: the DEQ layer and its building blocks.

>>> z, result, jac_loss = equilibrium(f, None, (injection,), f_thres=18, like=shapes,
...                                   backward=BackwardSettings(mode="implicit"), jac_samples=1)

- :func:`equilibrium`: solve without a graph, then attach the chosen gradient;
- :func:`implicit_backward` / :func:`solve_adjoint`: implicit differentiation via the adjoint
  fixed point y = J^T y + g;
- :func:`phantom_gradient`: backprop through a few damped steps from z*;
- :func:`jacobian_penalty`: Hutchinson estimate of ||J_f(z*)||_F^2 / numel, differentiable;
- :func:`unrolled_forward`: weight-tied unrolling for pretraining.
"""

from __future__ import annotations

from .implicit import SecondOrderError, implicit_backward, solve_adjoint
from .jacobian import hutchinson, jacobian_penalty
from .layer import equilibrium
from .phantom import phantom_gradient
from .reapply import InferenceModeError, reapply, vjp
from .settings import BACKWARD_MODES, BackwardSettings, DEQSettingsError
from .unrolled import unrolled_forward

__all__ = [
    "BACKWARD_MODES",
    "BackwardSettings",
    "DEQSettingsError",
    "InferenceModeError",
    "SecondOrderError",
    "equilibrium",
    "hutchinson",
    "implicit_backward",
    "jacobian_penalty",
    "phantom_gradient",
    "reapply",
    "solve_adjoint",
    "unrolled_forward",
    "vjp",
]
