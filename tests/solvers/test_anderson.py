"""Anderson acceleration: its history handling (slots written in place, one-slot memory)."""

from __future__ import annotations

import torch

from streamdeq.solvers import solve

from .conftest import LinearContraction, distance


def test_memory_of_one_is_plain_fixed_point_iteration():
    problem = LinearContraction(bsz=2)
    start = [torch.randn_like(t) for t in problem.zeros()]
    anderson = solve(problem, start, problem.args, method="anderson", max_iter=5, memory=1)
    plain = solve(problem, start, problem.args, method="fixed_point", max_iter=5)
    assert distance(anderson.z, plain.z).max() < 1e-12
    torch.testing.assert_close(anderson.abs_trace, plain.abs_trace)


def test_batched_rows_equal_rows_solved_alone():
    """The history slots of a batch are strided views; each row must still see only its own."""
    problem = LinearContraction(bsz=3)
    start = [torch.randn_like(t) for t in problem.zeros()]
    batched = solve(problem, start, problem.args, method="anderson", max_iter=7, memory=3)
    for row in range(3):
        rows = slice(row, row + 1)
        alone = solve(
            problem,
            [t[rows] for t in start],
            tuple(a[rows] for a in problem.args),
            method="anderson",
            max_iter=7,
            memory=3,
        )
        assert distance([t[rows] for t in batched.z], alone.z).max() < 1e-10
        torch.testing.assert_close(batched.abs_trace[rows], alone.abs_trace)
