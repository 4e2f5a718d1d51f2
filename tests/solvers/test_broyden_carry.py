"""Carrying Broyden's inverse-Jacobian estimate from one solve to the next (opt-in)."""

from __future__ import annotations

import pytest
import torch

from streamdeq.solvers import BroydenMemory, SolverSettingsError, solve

from .conftest import LinearContraction, distance


def test_a_fresh_memory_walks_the_same_iterates_as_no_carry():
    problem = LinearContraction(bsz=2)
    z0 = problem.zeros()
    plain = solve(problem, z0, problem.args, method="broyden", max_iter=4, memory=8)
    carried = solve(
        problem, z0, problem.args, method="broyden", max_iter=4, memory=8, carry=BroydenMemory()
    )
    assert distance(plain.z, carried.z).max() < 1e-12
    torch.testing.assert_close(plain.abs_trace, carried.abs_trace)


def test_the_memory_keeps_the_pairs_of_the_solve():
    problem = LinearContraction(bsz=2)
    carry = BroydenMemory()
    solve(
        problem, problem.zeros(), problem.args, method="broyden", max_iter=4, memory=8, carry=carry
    )
    assert carry.stored == 3  # M iterations, M - 1 rank-one updates
    assert carry.us.shape[:2] == (2, 8)


def test_a_carried_estimate_speeds_up_the_next_solve_of_the_same_problem():
    problem = LinearContraction(bsz=2, contraction=0.9)
    carry = BroydenMemory()
    first = solve(
        problem, problem.zeros(), problem.args, method="broyden", max_iter=6, memory=10, carry=carry
    )
    z_star = problem.fixed_point()
    plain = solve(problem, first.z, problem.args, method="broyden", max_iter=2, memory=10)
    carried = solve(
        problem, first.z, problem.args, method="broyden", max_iter=2, memory=10, carry=carry
    )
    assert (distance(carried.z, z_star) < distance(plain.z, z_star)).all()


def test_a_memory_of_another_shape_is_replaced_not_misused():
    carry = BroydenMemory()
    small = LinearContraction(bsz=2)
    solve(small, small.zeros(), small.args, method="broyden", max_iter=3, memory=4, carry=carry)
    other = LinearContraction(bsz=3)
    plain = solve(other, other.zeros(), other.args, method="broyden", max_iter=3, memory=4)
    carried = solve(
        other, other.zeros(), other.args, method="broyden", max_iter=3, memory=4, carry=carry
    )
    assert distance(plain.z, carried.z).max() < 1e-12
    assert carry.us.shape[0] == 3


@pytest.mark.parametrize("options", [{"parity": True}, {"tol": 1e-6}, {"carry": "yes"}])
def test_carry_outside_a_fixed_efficient_solve_is_rejected(options):
    problem = LinearContraction(bsz=1)
    options = {"carry": BroydenMemory(), **options}
    with pytest.raises(SolverSettingsError):
        solve(problem, problem.zeros(), problem.args, method="broyden", max_iter=3, **options)
