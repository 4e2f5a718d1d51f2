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
from dataclasses import dataclass

import torch
from torch import Tensor

from ..validation import check_int
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
    carry: BroydenMemory | None = None,
) -> SolverResult:
    """Broyden's method from ``z0``.

    Args:
        parity: published semantics (M+1 evaluations, lowest-residual iterate); see module doc.
        memory: how many rank-one updates are kept (the official code keeps min(max_iter, 27)
            and overwrites the oldest beyond that).
        carry: opt-in, a step beyond the paper: a :class:`BroydenMemory` that the solve starts
            its inverse-Jacobian estimate from (instead of B_0 = -I) and leaves its final
            estimate in, so that consecutive solves (the frames of a stream) share it. Up to
            ``memory`` pairs are kept across solves, and each costs 4 D multiply-adds per
            iteration: use a small ``memory`` with it. Efficient mode, fixed budget only.
    """
    check_int("memory", memory, label="broyden: memory", error=SolverSettingsError)
    if carry is not None and (parity or tol is not None):
        raise SolverSettingsError(
            "broyden: carry works with a fixed budget in the efficient mode (no tol, no parity)"
        )
    if carry is not None and not isinstance(carry, BroydenMemory):
        raise SolverSettingsError("broyden: carry must be a BroydenMemory (or None)")
    progress = Progress(z0, max_iter, tol, stop_mode)
    if parity:
        return _published(f, z0, args, progress, max_iter, memory)
    return _efficient(f, z0, args, progress, max_iter, memory, carry)


@dataclass
class BroydenMemory:
    """The inverse-Jacobian estimate B = -I + U V^T one solve leaves for the next.

    Attributes:
        us, vts: (B, slots, D) the pairs (u_i, v_i); None before the first solve.
        stored: pairs made so far (beyond ``slots`` the oldest was replaced).
    """

    us: Tensor | None = None
    vts: Tensor | None = None
    stored: int = 0

    def __repr__(self) -> str:
        # one per stream: the id keeps two streams' memories from looking alike (the stream
        # engine batches solves whose options print the same)
        return f"BroydenMemory(stored={self.stored}, id={id(self):#x})"

    def reset(self) -> None:
        """Forget the estimate (after a shot change or a reset of the stream's state)."""
        self.us, self.vts, self.stored = None, None, 0

    def fits(self, bsz: int, slots: int, like: Tensor) -> bool:
        return (
            self.us is not None
            and self.us.shape == (bsz, slots, like.shape[1])
            and self.us.dtype == like.dtype
            and self.us.device == like.device
        )


def _published(
    f: FixedPointFn, z0: State, args: Sequence, progress: Progress, max_iter: int, memory: int
) -> SolverResult:
    """The official loop: M + 1 evaluations, lowest-residual iterate, NaN scrubbing."""
    like = z0
    x = flatten(z0)
    bsz, dim = x.shape
    slots = min(max_iter, memory)
    us = x.new_zeros(bsz, slots, dim)
    vts = x.new_zeros(bsz, slots, dim)
    stored = 0  # rank-one updates made so far (may exceed ``slots``: then the oldest is replaced)

    def residual(x_flat: Tensor) -> Tensor:
        fx = flatten(f(unflatten(x_flat, like), *progress.args_for(args)), like)
        gx = fx - x_flat
        abs_res = gx.norm(dim=1)
        progress.record(abs_res, abs_res / (fx.norm(dim=1) + REL_EPS))
        return gx

    gx = residual(x)
    # the lowest-residual iterate of each active row, and its residual for every row
    lowest_x, lowest_abs = x, progress.abs_cols[-1]
    update = gx  # B_0 = -I, so the first step is x_1 = x_0 + g(x_0) = f(x_0)

    for step in range(1, max_iter + 1):
        x_new = x + update
        progress.count_iteration()
        g_new = residual(x_new)
        lowest_x, lowest_abs = _keep_lowest(progress, x_new, lowest_x, lowest_abs)
        n_old = min(stored, slots)
        u, vt = _rank_one(us[:, :n_old], vts[:, :n_old], x_new - x, g_new - gx)
        us[:, stored % slots] = u
        vts[:, stored % slots] = vt
        stored += 1
        x, gx = x_new, g_new
        n = min(stored, slots)
        update = -_matvec(us[:, :n], vts[:, :n], gx)

        stop = progress.stop_mask(_stalled(progress, step))
        if stop is None:
            continue
        keep = progress.finish_rows(stop, unflatten(lowest_x, like))
        if progress.rows.numel() == 0:
            return progress.result(None)
        x, gx, update, us, vts = x[keep], gx[keep], update[keep], us[keep], vts[keep]
        like = [t[keep] for t in like]
        lowest_x = lowest_x[keep]

    return progress.result(unflatten(lowest_x, like), answer_abs=lowest_abs)


def _efficient(
    f: FixedPointFn,
    z0: State,
    args: Sequence,
    progress: Progress,
    max_iter: int,
    memory: int,
    carry: BroydenMemory | None = None,
) -> SolverResult:
    """M evaluations for M iterations, and about two thirds of the published low-rank work.

    With B_k the estimate before the k-th update, the step taken was dx = -B_k g_k, so
    B_k dg = B_k g_{k+1} + dx and the published numerator dx - B_k dg is just -B_k g_{k+1}.
    One product with B_k (``Bg`` = B_k g_{k+1}) therefore serves both the update vector u and
    the next step: B_{k+1} g_{k+1} = Bg + u (v^T g_{k+1}) (minus the replaced pair's share
    when the memory is full). Per iteration: 4 n D multiply-adds for n stored pairs, against
    6 n D in the published form; the iterates are the same up to rounding.
    """
    like = z0
    x = flatten(z0)
    bsz, dim = x.shape
    # M iterations make M - 1 rank-one updates; a carried estimate keeps up to ``memory``
    slots = memory if carry is not None else min(max_iter - 1, memory)
    if carry is not None and carry.fits(bsz, slots, x):
        us, vts, stored = carry.us, carry.vts, carry.stored
    else:  # never read before written (only ``stored`` slots are used): no zero-filling
        us = x.new_empty(bsz, max(slots, 1), dim)
        vts = x.new_empty(bsz, max(slots, 1), dim)
        stored = 0

    # every (B, D) vector of the loop lives in one of these buffers, allocated once: the loop
    # itself allocates nothing of the state's size (fresh large allocations cost page faults)
    spare_x, spare_g, spare_u = (torch.empty_like(x) for _ in range(3))

    def residual(x_flat: Tensor, out: Tensor) -> Tensor:
        fz = f(unflatten(x_flat, like), *progress.args_for(args))
        gx = flatten(fz, like, out=out)
        f_norm = gx.norm(dim=1)
        gx = gx.sub_(x_flat)  # g = f(x) - x, in the buffer that held f(x)
        abs_res = gx.norm(dim=1)
        progress.record(abs_res, abs_res / (f_norm + REL_EPS))
        return gx

    gx = residual(x, spare_g)
    spare_g = torch.empty_like(x)
    # B_0 = -I, so the first step is x_1 = x_0 + g(x_0) = f(x_0); a carried B_0 makes it a
    # quasi-Newton step already
    update = torch.empty_like(x)
    if stored > 0:
        n = min(stored, slots)
        _combine(us[:, :n], _dot_rows(vts[:, :n], gx), gx, out=update).neg_()
    else:
        update.copy_(gx)

    for step in range(1, max_iter + 1):
        x_new = torch.add(x, update, out=spare_x)
        spare_x = x
        progress.count_iteration()
        if step == max_iter:
            x = x_new  # the last step is taken without scoring it
            break
        g_new = residual(x_new, spare_g)
        n = min(stored, slots)
        slot = stored % slots
        full = stored >= slots  # the new pair replaces the oldest, which B still holds
        coeff = _dot_rows(vts[:, :n], g_new)  # (B, n): v_i^T g_{k+1}
        b_g = _combine(us[:, :n], coeff, g_new, out=spare_u)  # B_k g_{k+1}
        vt_out = torch.empty_like(x) if full else vts[:, slot]
        vt = _combine(vts[:, :n], _dot_rows(us[:, :n], update), update, out=vt_out)  # dx^T B_k
        vt_g = _dot(vt, g_new)
        denom = vt_g - _dot(vt, gx)  # v^T dg
        scale = torch.where(denom != 0, -denom.reciprocal(), torch.zeros_like(denom))
        u = torch.mul(b_g, scale, out=torch.empty_like(x) if full else us[:, slot])
        if full:  # take the oldest pair's share out of B g_{k+1}, then replace it
            b_g.addcmul_(us[:, slot], coeff[:, slot : slot + 1], value=-1.0)
            us[:, slot] = u
            vts[:, slot] = vt
        b_g.addcmul_(u, vt_g)
        stored += 1
        spare_g, spare_u = gx, update
        x, gx, update = x_new, g_new, b_g.neg_()

        stop = progress.stop_mask()
        if stop is None:
            continue
        # the step from the last evaluation is free: take it, as with a fixed budget
        progress.count_iteration(among=stop)
        keep = progress.finish_rows(stop, unflatten(x + update, like))
        if progress.rows.numel() == 0:
            return progress.result(None)
        x, gx, update, us, vts = x[keep], gx[keep], update[keep], us[keep], vts[keep]
        like = [t[keep] for t in like]
        spare_x, spare_g, spare_u = (torch.empty_like(x) for _ in range(3))

    if carry is not None:
        carry.us, carry.vts, carry.stored = us, vts, stored
    return progress.result(unflatten(x, like))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """(B, 1) row-wise a . b for (B, D) tensors, without a (B, D) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).squeeze(2)


def _dot_rows(mat: Tensor, v: Tensor) -> Tensor:
    """(B, n) products of each of the n rows of ``mat`` (B, n, D) with ``v`` (B, D)."""
    return torch.bmm(mat, v.unsqueeze(2)).squeeze(2)


def _combine(mat: Tensor, coeff: Tensor, v: Tensor, out: Tensor) -> Tensor:
    """-v + sum_i coeff_i mat_i into ``out`` (B, D), i.e. (-I + U V^T) v given coeff = V^T v."""
    if mat.shape[1] == 0:
        return torch.neg(v, out=out)
    out.copy_(v)
    return out.unsqueeze(1).baddbmm_(coeff.unsqueeze(1), mat, beta=-1).squeeze(1)


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


def _rank_one(us: Tensor, vts: Tensor, dx: Tensor, dg: Tensor):
    """The published good-Broyden update of B = -I + U V^T: v^T = dx^T B,
    u = (dx - B dg) / (v^T dg), with NaN entries zeroed as in the official code."""
    vt = _rmatvec(us, vts, dx)
    numerator = dx - _matvec(us, vts, dg)
    denom = (vt * dg).sum(dim=1, keepdim=True)
    u = numerator / denom
    return torch.nan_to_num(u, nan=0.0, posinf=float("inf"), neginf=float("-inf")), (
        torch.nan_to_num(vt, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    )


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
