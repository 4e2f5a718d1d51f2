"""Implicit differentiation of a fixed point: the gradient of z* = f(z*, x; theta) without
storing the solver's iterations.

The math. Differentiating z* = f(z*, x; theta) gives dz* = J dz* + (df/dtheta) dtheta, with
J = J_f(z*) = df/dz at z*, so dz*/dtheta = (I - J)^{-1} df/dtheta (implicit function theorem;
the same for x). A loss L(z*) with incoming gradient g = dL/dz* therefore has

    dL/dtheta = g^T (I - J)^{-1} df/dtheta = y^T df/dtheta,   where   y = J^T y + g,

i.e. y = (I - J^T)^{-1} g is itself the fixed point of the linear map y -> J^T y + g (the
"adjoint" equation). Each evaluation of that map is one vector-Jacobian product, so any of the
fixed-point solvers can find y. Given y, backpropagating y through one application
z_out = f(z_in, x; theta) at z_in = z* (the graph :func:`reapply` builds) yields y^T df/dtheta
and y^T df/dx: exactly the gradients above.

How it is wired. :func:`implicit_backward` returns tensors equal to z_out whose backward replaces
the incoming g by the solution y, then lets autograd continue into z_out's graph. It is a custom
autograd Function rather than a tensor hook (what the official MDEQ code uses) because a state is
several tensors whose adjoint must be solved jointly, and because the Function keeps z_in/z_out in
autograd's saved tensors: they are freed with the graph (no reference cycle through a hook, no
memory kept across training steps), and a second backward without ``retain_graph=True`` fails
with autograd's usual error instead of silently reusing stale buffers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from ..errors import StreamDEQError
from ..solvers import SolverResult, SolverStatus, State, solve
from .reapply import vjp
from .settings import BackwardSettings

logger = logging.getLogger(__name__)


class SecondOrderError(StreamDEQError, RuntimeError):
    """A second-order gradient (``create_graph=True``) was asked through an implicit backward."""


def implicit_backward(
    z_in: Sequence[Tensor], z_out: Sequence[Tensor], settings: BackwardSettings
) -> State:
    """Tensors equal to ``z_out`` whose gradient is the implicit (adjoint) gradient.

    Args:
        z_in: the leaves holding z*, as returned by :func:`reapply`.
        z_out: f(z_in, *args) with its graph, (B, ...) each.
        settings: the adjoint solver (``solver``, ``max_iter``, ``tol``, ``stop_mode``,
            ``solver_options``) and the ``on_adjoint`` monitor.
    """
    z_in, z_out = list(z_in), list(z_out)
    outputs = _AdjointFixedPoint.apply(settings, len(z_in), *z_in, *z_out)
    return list(outputs)


def solve_adjoint(
    z_in: Sequence[Tensor],
    z_out: Sequence[Tensor],
    grad: Sequence[Tensor],
    settings: BackwardSettings,
) -> SolverResult:
    """y = J^T y + grad, J = dz_out/dz_in, solved from y = 0 with ``settings.solver``.

    The solver may evaluate the map on a subset of batch rows (samples whose adjoint has
    converged stop costing). The graph of z_out covers the whole batch, so the rows being solved
    are scattered into a full-batch zero vector first; since f treats samples independently
    (the solvers' contract), J is block-diagonal over the batch and the zero rows contribute
    nothing.
    """
    bsz = grad[0].shape[0]
    all_rows = torch.arange(bsz, device=grad[0].device)

    def adjoint_map(y: State, g: State, rows: Tensor) -> State:
        if rows.shape[0] == bsz:
            return [a + b for a, b in zip(vjp(z_out, z_in, y), g, strict=True)]
        full = [t.new_zeros(bsz, *t.shape[1:]).index_copy_(0, rows, t) for t in y]
        products = [p.index_select(0, rows) for p in vjp(z_out, z_in, full)]
        return [a + b for a, b in zip(products, g, strict=True)]

    return solve(
        adjoint_map,
        None,
        (list(grad), all_rows),
        method=settings.solver,
        max_iter=settings.max_iter,
        tol=settings.tol,
        stop_mode=settings.stop_mode,
        like=list(grad),
        **dict(settings.solver_options),
    )


class _AdjointFixedPoint(torch.autograd.Function):
    """Identity on z_out in the forward; in the backward, g -> y = (I - J^T)^{-1} g."""

    @staticmethod
    def forward(ctx: FunctionCtx, settings: BackwardSettings, n: int, *tensors: Tensor):
        ctx.settings = settings
        ctx.n = n
        ctx.save_for_backward(*tensors)
        return tuple(t.view_as(t) for t in tensors[n:])

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Tensor):
        if torch.is_grad_enabled():
            # y would enter the graph as a constant, silently dropping dy/dtheta from any
            # second-order gradient; refuse instead.
            raise SecondOrderError(
                "second-order gradients (create_graph=True) through an implicit DEQ backward "
                "are not supported; use BackwardSettings(mode='phantom') for them"
            )
        saved = ctx.saved_tensors  # raises autograd's error on a second backward without retain
        z_in, z_out = saved[: ctx.n], saved[ctx.n :]
        result = solve_adjoint(z_in, z_out, grads, ctx.settings)
        _report(result, ctx.settings)
        return (None, None, *([None] * ctx.n), *result.z)


def _report(result: SolverResult, settings: BackwardSettings) -> None:
    """Hand the adjoint solve to the monitor, and warn when a sample's adjoint blew up: the solver
    then returns its start (zero), so that sample contributes no gradient rather than NaN."""
    if settings.on_adjoint is not None:
        settings.on_adjoint(result)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "adjoint solve: %s, %d evaluations, max residual %.3e",
            settings.solver,
            result.nfev,
            float(result.abs_residual.max()),
        )
    diverged = int((result.status == int(SolverStatus.DIVERGED)).sum())
    if diverged:
        logger.warning(
            "implicit backward: the adjoint solve diverged for %d of %d samples; their gradient "
            "is zero. Consider phantom gradients, Jacobian regularisation or a smaller step.",
            diverged,
            result.status.shape[0],
        )
