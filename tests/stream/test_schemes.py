"""Each scheme of the paper against the solver run by hand on the tiny model."""

from __future__ import annotations

import pytest
import torch

from streamdeq.solvers import SolverStatus, residual_norms, solve
from streamdeq.stream import ResetReason, StreamDEQ

from .conftest import normalise, states_close

N = 12  # TinyDEQ's f_thres


def _solve(model, frame, z0, iters, **kw):
    """The frame's injection and the solve from ``z0`` (None: zeros) with ``iters``."""
    injection = model.inject(normalise(frame))
    start = model.init_state(injection) if z0 is None else z0
    return injection, solve(model.f, start, (injection,), max_iter=iters, **kw)


@torch.no_grad()
@pytest.mark.parametrize("method", ["broyden", "anderson", "fixed_point"])
@pytest.mark.parametrize("iters", [1, 2, 4])
def test_stream_state_is_M_solver_iterations_from_previous_state(model, clip, method, iters):
    stream = StreamDEQ(model, iters=iters, solver=method)
    z = None
    for frame in clip:
        result = stream.step(frame)
        _, expected = _solve(model, frame, z, iters, method=method)
        z = expected.z
        states_close(stream.state, z)
        torch.testing.assert_close(result.output, model.head(z)[0])
        assert result.info.iters == iters
        assert result.info.nfev == expected.nfev
        assert result.info.residual_before == pytest.approx(float(expected.rel_trace[0, 0]))
        assert result.info.residual_after == pytest.approx(float(expected.rel_residual[0]))


@torch.no_grad()
def test_stream_first_frame_starts_from_zeros(model, clip):
    info = StreamDEQ(model, iters=2).step(clip[0]).info
    assert info.reset is ResetReason.FIRST_FRAME
    assert info.residual_before == pytest.approx(1.0)  # ||f(0) - 0|| / ||f(0)||


@torch.no_grad()
def test_later_frames_continue_the_stream(model, clip):
    stream = StreamDEQ(model, iters=2)
    infos = [stream.step(frame).info for frame in clip]
    assert [i.reset for i in infos[1:]] == [None] * (len(clip) - 1)
    assert [i.index for i in infos] == list(range(len(clip)))


@torch.no_grad()
def test_baseline_solves_every_frame_from_zeros_with_N(model, clip):
    stream = StreamDEQ(model, mode="baseline")
    for frame in clip:
        result = stream.step(frame)
        _, expected = _solve(model, frame, None, N)
        torch.testing.assert_close(result.output, model.head(expected.z)[0])
        assert result.info.iters == N
        assert result.info.residual_before == pytest.approx(1.0)
        assert stream.state is None


@torch.no_grad()
def test_baseline_honours_f_thres(model, clip):
    result = StreamDEQ(model, mode="baseline", f_thres=5).step(clip[0])
    assert result.info.iters == 5


@torch.no_grad()
def test_keyframe_solves_first_frame_with_N_then_M(model, clip):
    stream = StreamDEQ(model, iters=2, mode="keyframe")
    z = None
    for t, frame in enumerate(clip):
        result = stream.step(frame)
        _, expected = _solve(model, frame, z, N if t == 0 else 2)
        z = expected.z
        states_close(stream.state, z)
        torch.testing.assert_close(result.output, model.head(z)[0])
        assert result.info.iters == (N if t == 0 else 2)


@torch.no_grad()
def test_reference_starts_each_frame_from_previous_full_solve(model, clip):
    stream = StreamDEQ(model, iters=2, mode="reference")
    z_ref = None
    for frame in clip:
        result = stream.step(frame)
        _, output_solve = _solve(model, frame, z_ref, 2)
        _, full = _solve(model, frame, None, N)
        torch.testing.assert_close(result.output, model.head(output_solve.z)[0])
        z_ref = full.z
        states_close(stream.state, z_ref)
        assert result.info.iters == 2
        assert result.info.nfev == 2 + N


@torch.no_grad()
def test_tolerance_stops_below_tol_within_cap(model, clip):
    tol, cap = 0.02, 9
    stream = StreamDEQ(model, tol=tol, max_iter_cap=cap)
    z = None
    for frame in clip:
        result = stream.step(frame)
        _, expected = _solve(model, frame, z, cap, tol=tol, stop_mode="rel")
        z = expected.z
        states_close(stream.state, z)
        assert result.info.iters == int(expected.iters[0]) <= cap
        if result.info.status is SolverStatus.CONVERGED:
            assert result.info.residual_after < tol
    assert result.info.status is SolverStatus.CONVERGED


@torch.no_grad()
def test_tolerance_cap_defaults_to_N(model, clip):
    result = StreamDEQ(model, tol=1e-12).step(clip[0])
    assert result.info.iters == N
    assert result.info.status is SolverStatus.MAX_ITER


@torch.no_grad()
def test_measure_after_reports_the_returned_states_residual(model, clip):
    stream = StreamDEQ(model, iters=2, measure_after=True)
    for frame in clip[:3]:
        result = stream.step(frame)
        injection = model.inject(normalise(frame))
        _, rel = residual_norms(model.f(stream.state, injection), stream.state)
        assert result.info.residual_after == pytest.approx(float(rel[0]), rel=1e-5)
        assert result.info.nfev == 3


@torch.no_grad()
def test_solver_options_reach_the_solver(model, clip):
    info = StreamDEQ(model, iters=3, solver_options={"parity": True}).step(clip[0]).info
    assert info.nfev == 4  # the published Broyden evaluates f M + 1 times


@torch.no_grad()
def test_default_is_stream_mode_with_default_iters(model, clip):
    from streamdeq.stream import DEFAULT_ITERS

    assert StreamDEQ(model).step(clip[0]).info.iters == DEFAULT_ITERS


@torch.no_grad()
def test_manual_reset_restarts_from_zeros(model, clip):
    stream = StreamDEQ(model, iters=2)
    stream.step(clip[0])
    stream.step(clip[1])
    stream.reset()
    assert stream.state is None
    result = stream.step(clip[2])
    _, expected = _solve(model, clip[2], None, 2)
    assert result.info.reset is ResetReason.MANUAL
    states_close(stream.state, expected.z)
    assert stream.step(clip[3]).info.reset is None


@torch.no_grad()
def test_reset_before_first_frame_reports_first_frame(model, clip):
    stream = StreamDEQ(model, iters=2)
    stream.reset()
    assert stream.step(clip[0]).info.reset is ResetReason.FIRST_FRAME


@torch.no_grad()
def test_keyframe_after_reset_solves_with_N_again(model, clip):
    stream = StreamDEQ(model, iters=2, mode="keyframe")
    stream.step(clip[0])
    stream.step(clip[1])
    stream.reset()
    assert stream.step(clip[2]).info.iters == N
    assert stream.step(clip[3]).info.iters == 2


@torch.no_grad()
def test_info_row_is_flat(model, clip):
    row = StreamDEQ(model, iters=2).step(clip[0]).info.as_row()
    assert row["reset"] == "first_frame"
    assert row["status"] == "max_iter"
    assert all(isinstance(v, (int, float, str, bool)) for v in row.values())


@torch.no_grad()
def test_at_one_iteration_residual_after_is_the_start_points_unless_measured(model, clip):
    # documented in FrameInfo: M = 1 evaluates f only at the start point
    plain, measured = StreamDEQ(model, iters=1), StreamDEQ(model, iters=1, measure_after=True)
    for frame in clip[:3]:
        info, exact = plain.step(frame).info, measured.step(frame).info
        assert info.residual_after == info.residual_before
        assert exact.residual_after < exact.residual_before
