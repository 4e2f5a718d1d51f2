"""Behaviour every solver shares, checked on problems with known fixed points."""

from __future__ import annotations

import pytest
import torch

from streamdeq.solvers import SolverSettingsError, SolverStatus, list_solvers, solve

from .conftest import METHODS, LinearContraction, distance, forbid_host_sync


@pytest.mark.parametrize("method", METHODS)
def test_converges_to_the_known_fixed_point(method, problem):
    result = solve(
        problem,
        None,
        problem.args,
        method=method,
        max_iter=200,
        tol=1e-10,
        stop_mode="abs",
        like=problem.zeros(),
    )
    assert (result.status == SolverStatus.CONVERGED).all()
    assert distance(result.z, problem.fixed_point()).max() < 1e-8


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("iters", [1, 2, 4])
def test_warm_start_at_the_fixed_point_stays_there(method, iters, problem):
    z_star = problem.fixed_point()
    result = solve(problem, z_star, problem.args, method=method, max_iter=iters)
    assert distance(result.z, z_star).max() < 1e-12
    assert result.abs_trace[:, 0].max() < 1e-12


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("iters", [1, 2])
def test_makes_progress_from_the_first_iteration(method, iters, problem):
    """TorchDEQ's Anderson returns the start unchanged at 1-2 iterations; ours must move."""
    z_star = problem.fixed_point()
    start = problem.zeros()
    result = solve(problem, start, problem.args, method=method, max_iter=iters)
    assert (distance(result.z, z_star) < 0.9 * distance(start, z_star)).all()


@pytest.mark.parametrize("method", METHODS)
def test_one_iteration_is_one_fixed_point_step(method, problem):
    start = [torch.randn_like(t) for t in problem.zeros()]
    result = solve(problem, start, problem.args, method=method, max_iter=1)
    expected = problem(start, *problem.args)
    assert distance(result.z, expected).max() < 1e-12
    assert result.nfev == 1


@pytest.mark.parametrize("method", METHODS)
def test_samples_stop_at_their_own_iteration_and_stop_costing(method):
    problem = LinearContraction(bsz=4)
    result = solve(
        problem,
        None,
        problem.args,
        method=method,
        max_iter=100,
        tol=1e-9,
        stop_mode="abs",
        like=problem.zeros(),
    )
    assert (result.status == SolverStatus.CONVERGED).all()
    iters = result.iters.tolist()
    assert len(set(iters)) > 1, "samples with different contraction should stop at different steps"
    assert iters == sorted(iters), "weaker contraction (smaller scale) must converge sooner"
    # f saw only the rows still being solved
    assert problem.rows_seen < problem.bsz * problem.calls
    assert distance(result.z, problem.fixed_point()).max() < 1e-7


@pytest.mark.parametrize("method", METHODS)
def test_traces_are_per_sample_and_decrease(method, problem):
    result = solve(problem, None, problem.args, method=method, max_iter=12, like=problem.zeros())
    assert result.abs_trace.shape == (problem.bsz, result.nfev)
    assert result.rel_trace.shape == (problem.bsz, result.nfev)
    assert (result.abs_trace[:, -1] < result.abs_trace[:, 0]).all()
    assert (result.iters == 12).all()
    assert (result.status == SolverStatus.MAX_ITER).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tol", [None, 1e-6])
def test_divergent_f_stops_with_a_status_and_no_nan(method, tol):
    def exploding(z):
        return [t * 1e30 + 1.0 for t in z]

    start = [torch.ones(2, 3), torch.ones(2, 2, 2)]
    result = solve(exploding, start, (), method=method, max_iter=8, tol=tol)
    assert (result.status == SolverStatus.DIVERGED).all()
    for t in result.z:
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("method", METHODS)
def test_one_diverging_sample_leaves_the_others_alone(method, problem):
    def half_exploding(z, x, scales):  # the sample with the smallest scale (row 0) blows up
        out = problem(z, x, scales)
        bad = (scales < 0.35).view(-1, 1)
        return [torch.where(bad, o * 1e30 + 1.0, o) for o in out]

    result = solve(
        half_exploding,
        None,
        problem.args,
        method=method,
        max_iter=200,
        tol=1e-10,
        stop_mode="abs",
        like=problem.zeros(),
    )
    assert result.status[0] == SolverStatus.DIVERGED
    assert (result.status[1:] == SolverStatus.CONVERGED).all()
    assert distance([t[1:] for t in result.z], [t[1:] for t in problem.fixed_point()]).max() < 1e-8


@pytest.mark.parametrize("method", METHODS)
def test_fixed_budget_makes_no_host_synchronisation(method, problem):
    z0 = problem.zeros()
    with forbid_host_sync():
        result = solve(problem, z0, problem.args, method=method, max_iter=6)
    assert result.nfev == 6


@pytest.mark.parametrize("method", METHODS)
def test_float32_state_stays_float32(method):
    problem = LinearContraction()
    args = tuple(a.float() for a in problem.args)

    def f32(z, x, scales):
        return [t.float() for t in problem([t.double() for t in z], x.double(), scales.double())]

    z0 = [t.float() for t in problem.zeros()]
    result = solve(f32, z0, args, method=method, max_iter=5)
    assert all(t.dtype == torch.float32 for t in result.z)
    assert result.abs_trace.dtype == torch.float32


def test_unknown_solver_is_rejected(problem):
    with pytest.raises(SolverSettingsError, match="unknown solver 'broydn'.*anderson"):
        solve(problem, problem.zeros(), problem.args, method="broydn", max_iter=3)


@pytest.mark.parametrize(
    ("method", "setting"),
    [
        ("broyden", "memroy"),
        ("anderson", "parity"),
        ("fixed_point", "memory"),
        ("anderson", "f_solvr"),
    ],
)
def test_unknown_setting_is_rejected(method, setting, problem):
    with pytest.raises(SolverSettingsError, match=f"unknown setting.*{setting}"):
        solve(problem, problem.zeros(), problem.args, method=method, max_iter=3, **{setting: 1})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_iter": 0},
        {"max_iter": 2.5},
        {"max_iter": 3, "tol": -1.0},
        {"max_iter": 3, "stop_mode": "relative"},
    ],
)
def test_invalid_common_settings_are_rejected(kwargs, problem):
    with pytest.raises(SolverSettingsError):
        solve(problem, problem.zeros(), problem.args, method="anderson", **kwargs)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("anderson", {"memory": 0}),
        ("anderson", {"mixing": 1.5}),
        ("fixed_point", {"damping": 0}),
        ("broyden", {"memory": 0}),
    ],
)
def test_invalid_solver_settings_are_rejected(method, options, problem):
    with pytest.raises(SolverSettingsError):
        solve(problem, problem.zeros(), problem.args, method=method, max_iter=3, **options)


def test_zero_start_needs_shapes(problem):
    with pytest.raises(SolverSettingsError, match="like="):
        solve(problem, None, problem.args, method="broyden", max_iter=3)


@pytest.mark.parametrize("method", list_solvers())
def test_solves_under_grad_mode_with_an_f_whose_parameters_require_grad(method):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4)
    with torch.enable_grad():
        result = solve(
            lambda z: [torch.tanh(lin(z[0]))],
            None,
            like=[torch.zeros(2, 4)],
            max_iter=3,
            method=method,
        )
    assert result.z[0].shape == (2, 4)
    assert not result.z[0].requires_grad  # gradients come from streamdeq.deq.equilibrium


@pytest.mark.parametrize("status", list(SolverStatus))
def test_a_status_prints_its_name_as_stats_files_write_it(status):
    assert str(status) == f"{status}" == status.name.lower()
    assert int(status) == status.value
