"""Plain (optionally damped) fixed-point iteration: z_{k+1} = (1 - tau) z_k + tau f(z_k).

The cheapest solver per step: one evaluation of f and nothing else, working directly on the list
of per-resolution tensors (no flattening). M iterations cost exactly M evaluations of f.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..validation import check_real
from .base import FixedPointFn, SolverResult, SolverSettingsError, State, residual_norms
from .progress import Progress


def fixed_point(
    f: FixedPointFn,
    z0: State,
    args: Sequence = (),
    *,
    max_iter: int,
    tol: float | None = None,
    stop_mode: str = "rel",
    damping: float = 1.0,
) -> SolverResult:
    """Iterate f from ``z0``. ``damping`` is tau in (0, 1]; 1 is the undamped iteration.

    Each iteration evaluates f at the current iterate z_k (its residual goes to the trace) and
    moves to z_{k+1}; with a fixed budget the answer is z_M, whose own residual is not evaluated.
    """
    check_real(
        "damping",
        damping,
        exclusive_minimum=0,
        maximum=1,
        label="fixed_point: damping",
        error=SolverSettingsError,
    )
    progress = Progress(z0, max_iter, tol, stop_mode)
    z = list(z0)
    scratch = [torch.empty_like(t) for t in z]  # f(z) - z, reused every iteration
    for _ in range(max_iter):
        fz = f(z, *progress.args_for(args))
        if scratch[0].shape != z[0].shape:  # rows left the active set
            scratch = [torch.empty_like(t) for t in z]
        progress.record(*residual_norms(fz, z, scratch))
        z = fz if damping == 1.0 else [a + damping * (b - a) for a, b in zip(z, fz, strict=True)]
        progress.count_iteration()
        stop = progress.stop_mask()
        if stop is not None:
            keep = progress.finish_rows(stop, z)
            if progress.rows.numel() == 0:
                return progress.result(None)
            z = [t[keep] for t in z]
    return progress.result(z)
