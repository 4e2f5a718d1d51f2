"""What every fixed-point solver shares: the result type, status codes, residual norms and the
name registry.

A solver looks for z* = f(z*, *args) where the state z is a list of batch-first tensors (one per
resolution for an MDEQ, but any list works) and ``args`` are batch-first tensors (or lists of
tensors, or None) that f needs besides z. The solver owns the batch dimension: it may call f on
a subset of the rows (samples that have converged stop costing), and then it slices ``args`` with
the same rows, so f itself never needs to know about stopping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import torch
from torch import Tensor

from ..errors import SettingsError

State = list[Tensor]
FixedPointFn = Callable[..., State]

#: Added to the norm of f(z) in the relative residual so that z = f(z) = 0 is not 0/0.
REL_EPS = 1e-8


class SolverStatus(IntEnum):
    """Why a sample stopped."""

    CONVERGED = 0  # the residual fell below the tolerance
    MAX_ITER = 1  # the iteration budget ran out (the normal end of a fixed-budget solve)
    DIVERGED = 2  # the residual became non-finite or exploded; the start point is returned

    def __str__(self) -> str:
        """The name as stats files write it ("max_iter"), not the bare code an IntEnum
        prints; ``int(status)`` still gives the code."""
        return self.name.lower()

    def __format__(self, spec: str) -> str:  # f"{status}" reads like str(); "{:d}" the code
        return str(self) if not spec else int(self).__format__(spec)


@dataclass
class SolverResult:
    """The outcome of one solve over a batch of B samples.

    Attributes:
        z: the solution, same shapes as the start point. Never contains NaN/Inf: a diverged
            sample gets its start point back (Broyden in parity mode: its lowest-residual
            iterate, as the official code does), with status DIVERGED.
        abs_trace: (B, K) float32, ||f(z_k) - z_k|| of each iterate z_k that was evaluated, k = 0
            being the start point. A sample that stopped early repeats its last value.
        rel_trace: (B, K) float32, the same divided by ||f(z_k)||.
        iters: (B,) int64, iterations each sample ran (an iteration produces a new iterate).
        status: (B,) int64 SolverStatus codes.
        nfev: number of calls of f (each on the whole batch or on its active rows).
    """

    z: State
    abs_trace: Tensor
    rel_trace: Tensor
    iters: Tensor
    status: Tensor
    nfev: int

    @property
    def abs_residual(self) -> Tensor:
        """(B,) the last known absolute residual of each sample."""
        return self._last(self.abs_trace)

    @property
    def rel_residual(self) -> Tensor:
        """(B,) the last known relative residual of each sample."""
        return self._last(self.rel_trace)

    def _last(self, trace: Tensor) -> Tensor:
        if trace.shape[1] == 0:
            return torch.full((trace.shape[0],), float("nan"), device=trace.device)
        return trace[:, -1]


class SolverSettingsError(SettingsError):
    """A solver was asked for with an unknown name or an unknown or invalid setting."""


# ----------------------------------------------------------------------------- state helpers


def batch_size(z: Sequence[Tensor]) -> int:
    return z[0].shape[0]


def channels_last(t: Tensor) -> bool:
    """Whether a 4-d tensor keeps its channels innermost (NHWC in memory), e.g. after
    ``.contiguous(memory_format=torch.channels_last)``; row slices of such a tensor count too."""
    return t.dim() == 4 and t.shape[1] > 1 and t.stride(1) == 1 and t.shape[2] * t.shape[3] > 1


def as_rows(t: Tensor, like: Tensor) -> Tensor:
    """``t`` as (B, D) in the element order of ``like``'s memory layout (a view where it can)."""
    if channels_last(like):
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1)


def flatten(
    z: Sequence[Tensor], like: Sequence[Tensor] | None = None, out: Tensor | None = None
) -> Tensor:
    """(B, D): the state as one row per sample, in the element order of ``like``'s layouts
    (default: ``z``'s own). Copies; solvers use it only where they must.

    Why the order follows the layout: a channels-last state (faster convolutions on CPUs)
    flattened in NCHW order would be copied element by element at every call, and f(z) must be
    flattened in the same order as z whatever layout f returns it in.
    """
    like = z if like is None else like
    return torch.cat([as_rows(t, ref) for t, ref in zip(z, like, strict=True)], dim=1, out=out)


def unflatten(flat: Tensor, like: Sequence[Tensor]) -> State:
    """Views of ``flat`` (B, D) shaped like ``like``, in its memory layouts (without copying)."""
    out, start = [], 0
    bsz = flat.shape[0]
    for t in like:
        n = t[0].numel()
        chunk = flat[:, start : start + n]
        if channels_last(t):
            _, c, h, w = t.shape
            out.append(chunk.view(bsz, h, w, c).permute(0, 3, 1, 2))
        else:
            out.append(chunk.view(bsz, *t.shape[1:]))
        start += n
    return out


def sq_norm(z: Sequence[Tensor]) -> Tensor:
    """(B,) float32 squared L2 norm of each sample across all tensors of the state (one read
    of each tensor, no temporaries of its size)."""
    total = None
    for t in z:
        s = torch.linalg.vector_norm(as_rows(t, t), dim=1).float().square()
        total = s if total is None else total + s
    return total


def residual_norms(
    fz: Sequence[Tensor], z: Sequence[Tensor], scratch: list[Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """(B,) absolute ||f(z) - z|| and relative ||f(z) - z|| / ||f(z)|| per sample.

    ``scratch``: tensors shaped like ``z`` to hold the differences (a solver passes the same
    ones every iteration instead of allocating them anew); their contents are overwritten."""
    if scratch is None:
        diff = [a - b for a, b in zip(fz, z, strict=True)]
    else:
        diff = [torch.sub(a, b, out=d) for a, b, d in zip(fz, z, scratch, strict=True)]
    abs_res = sq_norm(diff).sqrt()
    rel_res = abs_res / (sq_norm(fz).sqrt() + REL_EPS)
    return abs_res, rel_res


def select_rows(obj: Any, rows: Tensor | None) -> Any:
    """``obj`` (a tensor, a list/tuple of them, or None) restricted to batch ``rows``."""
    if rows is None or obj is None:
        return obj
    if isinstance(obj, Tensor):
        return obj.index_select(0, rows)
    if isinstance(obj, (list, tuple)):
        return type(obj)(select_rows(o, rows) for o in obj)
    return obj


def zeros_like_state(like: Sequence[Tensor]) -> State:
    return [torch.zeros_like(t) for t in like]
