"""Broyden: the same iterates as the published method, and its two evaluation semantics."""

from __future__ import annotations

import pytest
import torch

from streamdeq.solvers import SolverStatus, solve

from .conftest import LinearContraction


class Tanh:
    """A nonlinear f with a dense Jacobian, on a two-tensor state."""

    def __init__(self, bsz=2, dims=(4, 3), seed=1):
        gen = torch.Generator().manual_seed(seed)
        d = sum(dims)
        self.dims = dims
        self.w = 0.9 * torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
        self.x = torch.randn(bsz, d, generator=gen, dtype=torch.float64)

    def flat(self, v, rows=slice(None)):
        return torch.tanh(v @ self.w.T + self.x[rows])

    def __call__(self, z):
        v = torch.cat(z, dim=1)
        out = self.flat(v)
        return [out[:, : self.dims[0]], out[:, self.dims[0] :]]

    def split(self, v):
        return [v[:, : self.dims[0]], v[:, self.dims[0] :]]


def dense_broyden_iterates(fn, x0, steps):
    """Textbook good Broyden on the inverse Jacobian of g(x) = f(x) - x, one sample at a time,
    starting from B_0 = -I; returns x_0 ... x_steps and their residual norms."""
    out = []
    for row in range(x0.shape[0]):
        x = x0[row : row + 1]

        def fn_row(v, row=row):
            return fn(v, slice(row, row + 1))

        g = fn_row(x) - x
        inv = -torch.eye(x.shape[1], dtype=x.dtype)
        xs, res = [x], [g.norm()]
        for _ in range(steps):
            x_new = x - g @ inv.T
            g_new = fn_row(x_new) - x_new
            dx, dg = (x_new - x).T, (g_new - g).T
            inv = inv + (dx - inv @ dg) @ (dx.T @ inv) / (dx.T @ inv @ dg)
            x, g = x_new, g_new
            xs.append(x)
            res.append(g.norm())
        out.append((torch.cat(xs), torch.stack(res)))
    return out


@pytest.mark.parametrize("steps", [1, 2, 5, 9])
def test_efficient_mode_returns_the_broyden_iterate_x_m_with_m_evaluations(steps):
    problem = Tanh()
    x0 = torch.zeros(2, sum(problem.dims), dtype=torch.float64)
    result = solve(problem, problem.split(x0), (), method="broyden", max_iter=steps)
    reference = dense_broyden_iterates(problem.flat, x0, steps)
    assert result.nfev == steps
    for row, (xs, res) in enumerate(reference):
        ours = torch.cat([t[row] for t in result.z])
        torch.testing.assert_close(ours, xs[steps], rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(
            result.abs_trace[row].double(), res[:steps].double(), rtol=1e-5, atol=1e-7
        )


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_parity_mode_evaluates_m_plus_1_times_and_returns_the_lowest_iterate(steps):
    problem = Tanh()
    x0 = torch.zeros(2, sum(problem.dims), dtype=torch.float64)
    result = solve(problem, problem.split(x0), (), method="broyden", max_iter=steps, parity=True)
    reference = dense_broyden_iterates(problem.flat, x0, steps)
    assert result.nfev == steps + 1
    assert result.abs_trace.shape == (2, steps + 1)
    for row, (xs, res) in enumerate(reference):
        best = int(torch.argmin(res))
        ours = torch.cat([t[row] for t in result.z])
        torch.testing.assert_close(ours, xs[best], rtol=1e-9, atol=1e-11)


def test_parity_and_efficient_modes_walk_the_same_iterates():
    problem = LinearContraction(bsz=2)
    z0 = problem.zeros()
    for steps in (2, 4):
        eff = solve(problem, z0, problem.args, method="broyden", max_iter=steps)
        par = solve(problem, z0, problem.args, method="broyden", max_iter=steps, parity=True)
        # on this contraction the residual falls monotonically, so the lowest iterate is x_M
        for a, b in zip(eff.z, par.z):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(eff.abs_trace, par.abs_trace[:, :steps])


def test_parity_mode_with_official_tolerance_stops_like_the_official_loop():
    """Official: stop as soon as ||g|| < eps, having counted that iteration."""
    problem = Tanh(bsz=1)
    x0 = torch.zeros(1, sum(problem.dims), dtype=torch.float64)
    eps = 1e-6
    result = solve(
        problem,
        problem.split(x0),
        (),
        method="broyden",
        max_iter=50,
        tol=eps,
        stop_mode="abs",
        parity=True,
    )
    _, res = dense_broyden_iterates(problem.flat, x0, 50)[0]
    first_below = int((res < eps).nonzero()[0])
    assert int(result.iters[0]) == first_below
    assert result.nfev == first_below + 1
    assert result.status[0] == SolverStatus.CONVERGED


def test_memory_limit_keeps_converging():
    problem = LinearContraction(bsz=2, contraction=0.9)
    result = solve(
        problem,
        None,
        problem.args,
        method="broyden",
        max_iter=200,
        tol=1e-10,
        stop_mode="abs",
        memory=3,
        like=problem.zeros(),
    )
    assert (result.status == SolverStatus.CONVERGED).all()


@pytest.mark.parametrize("memory", [1, 2, 3])
def test_efficient_mode_with_full_memory_walks_the_published_iterates(memory):
    """Beyond ``memory`` updates the oldest pair is replaced; the efficient update (one product
    with B per step) must then still take the published steps: M + 1 efficient iterations
    evaluate f at the same x_0 ... x_M as M published ones."""
    problem = Tanh()
    x0 = torch.zeros(2, sum(problem.dims), dtype=torch.float64)
    steps = 7
    eff = solve(problem, problem.split(x0), (), method="broyden", max_iter=steps + 1, memory=memory)
    pub = solve(
        problem, problem.split(x0), (), method="broyden", max_iter=steps, memory=memory, parity=True
    )
    torch.testing.assert_close(eff.abs_trace, pub.abs_trace, rtol=1e-9, atol=1e-12)
