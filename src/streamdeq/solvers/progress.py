"""Per-sample bookkeeping shared by the solvers: residual traces, iteration counts, status, and the
set of rows still being solved.

Why a separate object: every solver needs the same rules for when a sample stops (tolerance,
divergence) and how the finished rows are put back into a full-batch answer. Keeping them here
means the solvers only describe their update step, and the rules are tested once.

Two regimes, chosen by whether a tolerance is given:

* fixed budget (``tol is None``): no sample stops early, nothing is read back to the host during
  the solve (no device->host synchronisation per iteration), and divergence is checked once at
  the end, on the device;
* tolerance: after each evaluation the residuals are read (one synchronisation per iteration, the
  price of deciding), and samples that converged or diverged leave the active set, so the next
  calls of f only see the rows still working.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import SolverResult, SolverStatus, State, as_rows, select_rows

#: A residual this many times larger than the start's means the iteration is blowing up; the
#: official MDEQ Broyden uses the same "protective break" factor.
DIVERGENCE_FACTOR = 1e6


class Progress:
    """Tracks B samples through one solve.

    ``rows`` is None while every sample is active (the fast path: no indexing at all), else the
    LongTensor of original batch rows the solver's compact tensors correspond to.
    """

    def __init__(
        self, z0: Sequence[Tensor], max_iter: int, tol: float | None, stop_mode: str
    ) -> None:
        self.z0 = list(z0)
        self.bsz = z0[0].shape[0]
        self.device = z0[0].device
        self.max_iter = max_iter
        self.tol = tol
        self.use_rel = stop_mode == "rel"
        self.rows: Tensor | None = None
        self.abs_cols: list[Tensor] = []
        self.rel_cols: list[Tensor] = []
        self.init_abs: Tensor | None = None
        self.iters = torch.zeros(self.bsz, dtype=torch.long, device=self.device)
        self.status = torch.full(
            (self.bsz,), int(SolverStatus.MAX_ITER), dtype=torch.long, device=self.device
        )
        self.done_z: State | None = None  # full-batch answer, filled as rows finish
        self.nfev = 0

    # ------------------------------------------------------------------ recording

    @property
    def active(self) -> bool:
        return self.rows is None or self.rows.numel() > 0

    def args_for(self, args: Sequence) -> Sequence:
        """The extra arguments of f restricted to the active rows."""
        return select_rows(tuple(args), self.rows)

    def record(self, abs_res: Tensor, rel_res: Tensor) -> None:
        """Store the residuals (one per active row) of the iterate just evaluated."""
        self.nfev += 1
        abs_res = abs_res.detach().float()
        rel_res = rel_res.detach().float()
        if self.rows is not None:
            abs_res = self.abs_cols[-1].index_copy(0, self.rows, abs_res)
            rel_res = self.rel_cols[-1].index_copy(0, self.rows, rel_res)
        if self.init_abs is None:
            self.init_abs = abs_res
        self.abs_cols.append(abs_res)
        self.rel_cols.append(rel_res)

    def count_iteration(self, among: Tensor | None = None) -> None:
        """One more iteration for every active row, or only for ``among`` (mask over them)."""
        rows = self.rows
        if among is not None:
            rows = (rows if rows is not None else torch.arange(self.bsz, device=self.device))[among]
        if rows is None:
            self.iters += 1
        else:
            self.iters.index_add_(0, rows, torch.ones_like(rows))

    # ------------------------------------------------------------------ stopping

    def stop_mask(self, stalled: Tensor | None = None) -> Tensor | None:
        """With a tolerance: a bool mask over the active rows of those that must stop now, or None
        if all go on. Converged rows are marked CONVERGED, blown-up rows DIVERGED; ``stalled``
        (optional, over the active rows) stops rows that make no progress, status MAX_ITER.
        Synchronises."""
        if self.tol is None:
            return None
        local = self.rows if self.rows is not None else slice(None)
        abs_res = self.abs_cols[-1][local]
        crit = (self.rel_cols[-1] if self.use_rel else self.abs_cols[-1])[local]
        diverged = ~torch.isfinite(abs_res) | (abs_res > DIVERGENCE_FACTOR * self.init_abs[local])
        converged = (crit < self.tol) & ~diverged
        stop = converged | diverged
        if stalled is not None:
            stop = stop | stalled
        if not bool(stop.any()):
            return None
        if self.rows is None:
            self.status[converged] = int(SolverStatus.CONVERGED)
            self.status[diverged] = int(SolverStatus.DIVERGED)
        else:
            self.status[self.rows[converged]] = int(SolverStatus.CONVERGED)
            self.status[self.rows[diverged]] = int(SolverStatus.DIVERGED)
        return stop

    def finish_rows(self, stop: Tensor, z_active: Sequence[Tensor]) -> Tensor:
        """Store the answer of the stopping rows (``z_active`` holds all active rows) and shrink
        the active set. Returns the bool mask of rows that stay, for the solver to compact its own
        tensors with."""
        rows = (
            self.rows
            if self.rows is not None
            else torch.arange(self.bsz, device=self.device, dtype=torch.long)
        )
        self._store(rows[stop], [t[stop] for t in z_active])
        keep = ~stop
        self.rows = rows[keep]
        return keep

    def _store(self, rows: Tensor, values: Sequence[Tensor]) -> None:
        if self.done_z is None:
            self.done_z = [t.detach().clone() for t in self.z0]
        for out, val in zip(self.done_z, values, strict=True):
            out.index_copy_(0, rows, val.detach().to(out.dtype))

    # ------------------------------------------------------------------ the answer

    def result(
        self, z_active: Sequence[Tensor] | None, answer_abs: Tensor | None = None
    ) -> SolverResult:
        """Assemble the full-batch result. ``z_active``: the final state of the rows still active
        (None if none are). ``answer_abs``: (B,) residual of the returned state where the solver
        knows it (default: the last recorded one). Rows whose answer is non-finite or blew up get
        their start point back; for a fixed budget this check happens here, on the device,
        without synchronising."""
        if self.rows is None and self.done_z is None:
            z = [t.detach() for t in z_active]
        else:
            if z_active is not None and self.rows is not None and self.rows.numel() > 0:
                self._store(self.rows, z_active)
            z = self.done_z
        abs_trace = torch.stack(self.abs_cols, dim=1) if self.abs_cols else self._empty()
        rel_trace = torch.stack(self.rel_cols, dim=1) if self.rel_cols else self._empty()
        status = self.status
        if self.abs_cols:
            last = self.abs_cols[-1] if answer_abs is None else answer_abs
            # a sum is non-finite when any entry is (or when the state is ~1e38, which has
            # blown up as well): one read of the state, no (B, D) boolean temporaries
            total = sum(as_rows(t, t).sum(dim=1) for t in z)
            bad = ~torch.isfinite(total) | ~torch.isfinite(last)
            bad |= last > DIVERGENCE_FACTOR * self.init_abs
            bad &= status != int(SolverStatus.CONVERGED)
            status = torch.where(bad, torch.full_like(status, int(SolverStatus.DIVERGED)), status)
            z = [  # no host read of ``bad``: the rows are chosen on the device
                torch.where(bad.view(-1, *([1] * (t.dim() - 1))), start, t)
                for t, start in zip(z, self.z0, strict=True)
            ]
        return SolverResult(
            z=z,
            abs_trace=abs_trace,
            rel_trace=rel_trace,
            iters=self.iters,
            status=status,
            nfev=self.nfev,
        )

    def _empty(self) -> Tensor:
        return torch.zeros(self.bsz, 0, device=self.device)
