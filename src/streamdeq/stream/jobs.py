"""Solve jobs: one stream's solve of one frame, batched with the others that can share a call.

Streams do not call the solver themselves: each describes what it needs for the frame (a start
point, an injection, an iteration plan) as a :class:`SolveJob`, and :func:`run_jobs` puts the
jobs that agree on everything but the data (solver, options, plan, shapes) into one batched
solver call. The solvers treat batch rows independently (per-sample residuals, stopping and
divergence), so a job's answer does not depend on its neighbours, and a diverging stream never
touches the others. One stream alone is the batch of one, without copies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import StreamDEQError
from ..solvers import residual_norms, solve
from .budget import IterationPlan
from .protocol import StreamableModel


@dataclass
class JobResult:
    """A job's share of a batched solve; the scalars are 0-dim tensors left on the device until
    the stream reads them back (once per frame).

    Attributes:
        z: the answer, (1, ...) tensors.
        rel_before, rel_after: relative residual of the start point and of the last evaluated
            iterate (or of ``z`` itself with ``measure_after``).
        iters, status, evals: iterations, SolverStatus code, f evaluations of this row.
        solve_ms: wall time of the batched call the job was part of.
        group: identifies that call (jobs of one stream in one call share its time).
    """

    z: list[Tensor]
    rel_before: Tensor
    rel_after: Tensor
    iters: Tensor
    status: Tensor
    evals: Tensor
    solve_ms: float
    group: int


@dataclass
class SolveJob:
    """Solve z = f(z, injection) from ``z0`` with ``plan``; all tensors (1, ...)."""

    z0: list[Tensor]
    injection: list[Tensor | None]
    plan: IterationPlan
    solver: str
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    measure_after: bool = False
    result: JobResult | None = None

    def batch_key(self) -> tuple:
        """Jobs with equal keys can share one solver call."""
        options = tuple(sorted((k, repr(v)) for k, v in self.solver_options.items()))
        shapes = tuple(_signature(t) for t in (*self.z0, *self.injection))
        return (self.solver, options, self.plan, self.measure_after, shapes)


_group_ids = itertools.count()


def run_jobs(
    model: StreamableModel,
    jobs: Sequence[SolveJob],
    clock: Callable[[], float],
    sync: Callable[[], None],
) -> None:
    """Run every job, batching those with equal keys; fills ``job.result``."""
    groups: dict[tuple, list[SolveJob]] = {}
    for job in jobs:
        groups.setdefault(job.batch_key(), []).append(job)
    for members in groups.values():
        _run_group(model, members, clock, sync)


def _run_group(model, members: list[SolveJob], clock, sync) -> None:
    group = next(_group_ids)
    first = members[0]
    start = clock()
    z0 = stack_rows([job.z0 for job in members])
    injection = stack_rows([job.injection for job in members])
    bsz = z0[0].shape[0]
    evals = torch.zeros(bsz, dtype=torch.long, device=z0[0].device)
    rows = torch.arange(bsz, device=z0[0].device)

    def counted_f(z, injection_rows, row_ids):
        # the solver hands f the active rows' arguments, so row_ids says whose evaluation it is
        evals.index_add_(0, row_ids, torch.ones_like(row_ids))
        return model.f(z, injection_rows)

    res = solve(
        counted_f,
        z0,
        (injection, rows),
        method=first.solver,
        max_iter=first.plan.max_iter,
        tol=first.plan.tol,
        stop_mode="rel",
        **first.solver_options,
    )
    rel_after = res.rel_residual
    if first.measure_after:
        _, rel_after = residual_norms(counted_f(res.z, injection, rows), res.z)
    sync()
    elapsed_ms = (clock() - start) * 1000.0
    for i, job in enumerate(members):
        job.result = JobResult(
            z=split_row(res.z, i, bsz),
            rel_before=res.rel_trace[i, 0],
            rel_after=rel_after[i],
            iters=res.iters[i],
            status=res.status[i],
            evals=evals[i],
            solve_ms=elapsed_ms,
            group=group,
        )


def stack_rows(items: Sequence[Sequence[Tensor | None]]) -> list[Tensor | None]:
    """Concatenate per-stream lists of (1, ...) tensors along the batch; no copy for one."""
    if len(items) == 1:
        return list(items[0])
    out: list[Tensor | None] = []
    for parts in zip(*items, strict=True):
        if all(p is None for p in parts):
            out.append(None)
        elif any(p is None for p in parts):
            raise StreamDEQError("the model gave some streams a None injection entry, not all")
        else:
            out.append(torch.cat(parts, dim=0))
    return out


def split_row(batch: Sequence[Tensor | None], i: int, bsz: int) -> list:
    """Row ``i`` of batch-first tensors as (1, ...) tensors that own their memory (a view would
    keep the whole batch alive in the stream's state)."""
    if bsz == 1:
        return list(batch)
    return [None if t is None else t[i : i + 1].clone() for t in batch]


def _signature(t: Tensor | None) -> tuple:
    if t is None:
        return (None,)
    return (tuple(t.shape[1:]), t.dtype, t.device)
