"""Broyden's ("good") quasi-Newton method with a low-rank inverse-Jacobian estimate, as in the
official MDEQ solver, per sample.

The root of g(x) = f(x) - x is sought with x_{k+1} = x_k - B_k g(x_k), where the inverse-Jacobian
estimate B_k = -I + sum_i u_i v_i^T is updated from each step dx, dg (Sherman-Morrison form of the
"good" Broyden update). Starting from B_0 = -I, the first step is a plain fixed-point step.

Two modes, same iterates:

* ``parity=True`` — the published semantics of the official MDEQ code (and TorchDEQ): M iterations
  evaluate f M+1 times (at x_0 ... x_M) and the lowest-residual iterate is returned; the
  protective break (residual > 1e6 x the initial one) and the stagnation break are kept, and NaN
  entries of the update vectors are zeroed every step, as there.
* ``parity=False`` (default, "efficient") — M iterations evaluate f M times (at x_0 ... x_{M-1})
  and return x_M, the Broyden step computed from the last evaluation. The published mode spends
  its last evaluation f(x_M) only to score x_M; here that work is not done at all, so M
  iterations cost M evaluations. No best-iterate copies, no per-step NaN scrubbing (a zero
  denominator is guarded on the (B,)-sized scalar instead); non-finite answers are caught once
  at the end.

Per-sample differences from the official code, which treats the batch as one vector: the
residual norms, the tolerance test, the protective break and the lowest-iterate choice are per
sample. For batch size 1 the two agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import (
    REL_EPS,
    FixedPointFn,
    SolverResult,
    SolverSettingsError,
    State,
    flatten,
    unflatten,
)
from .progress import Progress

#: The official stagnation rule: after more than this many steps, stop a sample whose residual
#: is within 3 x tol and has moved by less than STALL_RATIO over the last STALL_WINDOW steps.
STALL_WINDOW = 30
STALL_RATIO = 1.3


def broyden(
    f: FixedPointFn,
    z0: State,
    args: Sequence = (),
    *,
    max_iter: int,
    tol: float | None = None,
    stop_mode: str = "rel",
    parity: bool = False,
    memory: int = 27,
) -> SolverResult:
    """Broyden's method from ``z0``.

    Args:
        parity: published semantics (M+1 evaluations, lowest-residual iterate); see module doc.
        memory: how many rank-one updates are kept (the official code keeps min(max_iter, 27)
            and overwrites the oldest beyond that).
    """
    if memory < 1:
        raise SolverSettingsError(f"broyden: memory must be >= 1, got {memory}")
    like = z0
    progress = Progress(z0, max_iter, tol, stop_mode)
    x = flatten(z0)
    bsz, dim = x.shape
    slots = min(max_iter, memory)
    us = x.new_zeros(bsz, slots, dim)
    vts = x.new_zeros(bsz, slots, dim)
    stored = 0  # rank-one updates made so far (may exceed ``slots``: then the oldest is replaced)

    def residual(x_flat: Tensor) -> Tensor:
        fx = flatten(f(unflatten(x_flat, like), *progress.args_for(args)))
        gx = fx - x_flat
        abs_res = gx.norm(dim=1)
        progress.record(abs_res, abs_res / (fx.norm(dim=1) + REL_EPS))
        return gx

    gx = residual(x)
    # parity: the lowest-residual iterate of each active row, and its residual for every row
    lowest_x, lowest_abs = (x, progress.abs_cols[-1]) if parity else (None, None)
    update = gx  # B_0 = -I, so the first step is x_1 = x_0 + g(x_0) = f(x_0)

    for step in range(1, max_iter + 1):
        x_new = x + update
        progress.count_iteration()
        if not parity and step == max_iter:
            x = x_new  # efficient mode: the last step is taken without scoring it
            break
        g_new = residual(x_new)
        if parity:
            lowest_x, lowest_abs = _keep_lowest(progress, x_new, lowest_x, lowest_abs)
        n_old = min(stored, slots)
        u, vt = _rank_one(us[:, :n_old], vts[:, :n_old], x_new - x, g_new - gx, parity)
        us[:, stored % slots] = u
        vts[:, stored % slots] = vt
        stored += 1
        x, gx = x_new, g_new
        n = min(stored, slots)
        update = -_matvec(us[:, :n], vts[:, :n], gx)

        stop = progress.stop_mask(_stalled(progress, step) if parity else None)
        if stop is None:
            continue
        if parity:
            answer = lowest_x
        else:  # the step from the last evaluation is free: take it, as with a fixed budget
            answer = x + update
            progress.count_iteration(among=stop)
        keep = progress.finish_rows(stop, unflatten(answer, like))
        if progress.rows.numel() == 0:
            return progress.result(None)
        x, gx, update, us, vts = x[keep], gx[keep], update[keep], us[keep], vts[keep]
        like = [t[keep] for t in like]
        if parity:
            lowest_x = lowest_x[keep]

    if parity:
        return progress.result(unflatten(lowest_x, like), answer_abs=lowest_abs)
    return progress.result(unflatten(x, like))


def _keep_lowest(progress: Progress, x_new: Tensor, lowest_x: Tensor, lowest_abs: Tensor):
    """Update the best iterate of the active rows and the best residual of all rows (B,)."""
    new_abs = progress.abs_cols[-1]
    better = new_abs < lowest_abs
    if progress.rows is not None:
        better &= torch.zeros_like(better).index_fill_(0, progress.rows, True)
    lowest_abs = torch.where(better, new_abs, lowest_abs)
    if progress.rows is not None:
        better = better[progress.rows]
    return torch.where(better[:, None], x_new, lowest_x), lowest_abs


def _stalled(progress: Progress, step: int) -> Tensor | None:
    """The official "hardly any progress in the last 30 steps" rule, per sample."""
    if progress.tol is None or step <= STALL_WINDOW:
        return None
    window = torch.stack(progress.abs_cols[-STALL_WINDOW:], dim=1)
    if progress.rows is not None:
        window = window[progress.rows]
    near = window[:, -1] < 3 * progress.tol
    return near & (window.max(dim=1).values / window.min(dim=1).values < STALL_RATIO)


def _rank_one(us: Tensor, vts: Tensor, dx: Tensor, dg: Tensor, parity: bool):
    """The good-Broyden update of B = -I + U V^T: v^T = dx^T B, u = (dx - B dg) / (v^T dg)."""
    vt = _rmatvec(us, vts, dx)
    numerator = dx - _matvec(us, vts, dg)
    denom = (vt * dg).sum(dim=1, keepdim=True)
    if parity:
        u = numerator / denom
        return torch.nan_to_num(u, nan=0.0, posinf=float("inf"), neginf=float("-inf")), (
            torch.nan_to_num(vt, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        )
    safe = torch.where(denom != 0, denom.reciprocal(), torch.zeros_like(denom))
    return numerator * safe, vt


def _matvec(us: Tensor, vts: Tensor, v: Tensor) -> Tensor:
    """(-I + U V^T) v for every sample; us, vts: (B, n, D), v: (B, D)."""
    if us.shape[1] == 0:
        return -v
    coeff = torch.bmm(vts, v.unsqueeze(2))  # (B, n, 1)
    return torch.baddbmm(v.unsqueeze(1), coeff.transpose(1, 2), us, beta=-1).squeeze(1)


def _rmatvec(us: Tensor, vts: Tensor, v: Tensor) -> Tensor:
    """v^T (-I + U V^T) for every sample."""
    if us.shape[1] == 0:
        return -v
    coeff = torch.bmm(us, v.unsqueeze(2))  # (B, n, 1)
    return torch.baddbmm(v.unsqueeze(1), coeff.transpose(1, 2), vts, beta=-1).squeeze(1)
