"""Anderson acceleration (type II, Walker & Ni 2011) on the flattened state.

Each iteration evaluates f once at x_k, adds (f(x_k), g_k = f(x_k) - x_k) to a history of the
last ``memory`` pairs, and moves to the affine combination of the stored f-values whose residual
combination is smallest: x_{k+1} = sum_i a_i f(x_i) with sum_i a_i = 1.

Unlike TorchDEQ's Anderson, which returns the initial guess unchanged for max_iter <= 2, the first
iteration here already moves (to f(x_0)), so a warm-started stream at M = 1 or 2 still updates.
The Gram matrix of the residual history is kept up to date one row per iteration (O(m D) instead
of O(m^2 D)), and the small bordered least-squares system is solved on the device without a
host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..validation import check_int, check_real
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


def anderson(
    f: FixedPointFn,
    z0: State,
    args: Sequence = (),
    *,
    max_iter: int,
    tol: float | None = None,
    stop_mode: str = "rel",
    memory: int = 5,
    mixing: float = 1.0,
    lam: float = 1e-4,
) -> SolverResult:
    """Anderson acceleration from ``z0``.

    Args:
        memory: m, the number of past (x, f(x)) pairs mixed.
        mixing: beta in (0, 1]; x_{k+1} = beta * sum a_i f(x_i) + (1 - beta) * sum a_i x_i.
        lam: Tikhonov regularisation of the least-squares system, relative to the mean squared
            residual in the history (so it means the same near convergence as far from it).
    """
    check_int("memory", memory, label="anderson: memory", error=SolverSettingsError)
    check_real(
        "mixing",
        mixing,
        exclusive_minimum=0,
        maximum=1,
        label="anderson: mixing",
        error=SolverSettingsError,
    )
    check_real("lam", lam, minimum=0, label="anderson: lam", error=SolverSettingsError)
    like = z0
    progress = Progress(z0, max_iter, tol, stop_mode)
    x = flatten(z0)
    bsz, dim = x.shape
    # slots are written before they are read: no zero-filling of the (B, m, D) history
    hist_f = x.new_empty(bsz, memory, dim)
    hist_g = x.new_empty(bsz, memory, dim)
    gram = x.new_zeros(bsz, memory, memory)
    eye = torch.eye(memory, dtype=x.dtype, device=x.device)

    for k in range(max_iter):
        slot, n = k % memory, min(k + 1, memory)
        # f(x) and g = f(x) - x go straight into their history slots (no extra copies)
        fz = f(unflatten(x, like), *progress.args_for(args))
        fx = flatten(fz, like, out=hist_f[:, slot])
        g = torch.sub(fx, x, out=hist_g[:, slot])
        row = torch.bmm(hist_g[:, :n], g.unsqueeze(2)).squeeze(2)  # (B, n): <g_i, g_k>
        gram[:, slot, :n] = row
        gram[:, :n, slot] = row
        abs_res = row[:, slot].clamp_min(0).sqrt()  # ||g_k||, read off the Gram row
        progress.record(abs_res, abs_res / (fx.norm(dim=1) + REL_EPS))
        # x is dead once g is formed, so the next iterate overwrites it: no allocation
        x = _mix(gram[:, :n, :n], hist_f[:, :n], hist_g[:, :n], eye[:n, :n], lam, mixing, out=x)
        progress.count_iteration()

        stop = progress.stop_mask()
        if stop is not None:
            keep = progress.finish_rows(stop, unflatten(x, like))
            if progress.rows.numel() == 0:
                return progress.result(None)
            x, hist_f, hist_g, gram = x[keep], hist_f[keep], hist_g[keep], gram[keep]
            like = [t[keep] for t in like]
    return progress.result(unflatten(x, like))


def _mix(gram, hist_f, hist_g, eye, lam: float, mixing: float, out):
    """The next iterate from the history, written into ``out`` (B, D):
    a = argmin ||sum a_i g_i|| with sum a_i = 1, x = sum a_i f_i (- (1 - beta) sum a_i g_i)."""
    n = gram.shape[-1]
    if n == 1:
        out.copy_(hist_f[:, 0])
        return out if mixing == 1.0 else out.sub_(hist_g[:, 0], alpha=1.0 - mixing)
    scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-30)  # (B,)
    system = gram + (lam * scale)[:, None, None] * eye
    ones = torch.ones(gram.shape[0], n, 1, dtype=gram.dtype, device=gram.device)
    weights, _ = torch.linalg.solve_ex(system, ones)  # no error check: no host sync
    alpha = weights / weights.sum(dim=1, keepdim=True)  # (B, n, 1)
    alpha_t = alpha.transpose(1, 2)
    new = torch.bmm(alpha_t, hist_f, out=out.unsqueeze(1)).squeeze(1)
    if mixing != 1.0:
        new = new.sub_(torch.bmm(alpha_t, hist_g).squeeze(1), alpha=1.0 - mixing)
    return new
