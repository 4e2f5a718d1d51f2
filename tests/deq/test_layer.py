"""The equilibrium layer: what it returns in each mode and outside of training."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from streamdeq.deq import BackwardSettings, DEQSettingsError, InferenceModeError, equilibrium
from streamdeq.solvers import SolverResult, SolverSettingsError

from .test_implicit import TIGHT_FORWARD, tanh_input


def test_under_no_grad_returns_the_fixed_point_without_a_graph(tanh_cell):
    x = tanh_input()
    with torch.no_grad():
        z, result, jac_loss = equilibrium(
            tanh_cell, None, (x,), like=tanh_cell.zeros(3), **TIGHT_FORWARD
        )
    assert isinstance(result, SolverResult)
    assert jac_loss is None
    for a, b in zip(z, result.z):
        assert not a.requires_grad
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_under_no_grad_the_penalty_is_still_measured(tanh_cell):
    with torch.no_grad():
        _, _, jac_loss = equilibrium(
            tanh_cell,
            None,
            (tanh_input(),),
            f_thres=20,
            like=tanh_cell.zeros(3),
            jac_samples=4,
        )
    assert jac_loss > 0 and not jac_loss.requires_grad


def test_under_inference_mode_the_fixed_point_is_returned(tanh_cell):
    with torch.inference_mode():
        z, result, _ = equilibrium(
            tanh_cell, None, (tanh_input(),), f_thres=20, like=tanh_cell.zeros(3)
        )
    for a, b in zip(z, result.z):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_under_inference_mode_the_penalty_is_refused_not_zero(tanh_cell):
    with torch.inference_mode(), pytest.raises(InferenceModeError, match="no_grad"):
        equilibrium(
            tanh_cell,
            None,
            (tanh_input(),),
            f_thres=20,
            like=tanh_cell.zeros(3),
            jac_samples=1,
        )


def test_mode_none_returns_the_fixed_point_detached(tanh_cell):
    z, result, _ = equilibrium(
        tanh_cell,
        None,
        (tanh_input(),),
        f_thres=20,
        like=tanh_cell.zeros(3),
        backward=BackwardSettings(mode="none"),
    )
    assert not any(t.requires_grad for t in z)
    for a, b in zip(z, result.z):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["broyden", "anderson", "fixed_point"])
def test_forward_solver_settings_are_passed_through(method, tanh_cell):
    _, result, _ = equilibrium(
        tanh_cell,
        None,
        (tanh_input(),),
        forward_solver=method,
        f_thres=7,
        like=tanh_cell.zeros(3),
    )
    assert result.iters.tolist() == [7, 7, 7]


def test_unknown_forward_option_is_rejected(tanh_cell):
    with pytest.raises(SolverSettingsError, match="memroy"):
        equilibrium(
            tanh_cell,
            None,
            (tanh_input(),),
            f_thres=5,
            like=tanh_cell.zeros(3),
            forward_options={"memroy": 3},
        )


@pytest.mark.parametrize(
    "bad", [{"jac_samples": -1}, {"jac_samples": 1.5}, {"backward": {"mode": "phantom"}}]
)
def test_invalid_layer_settings_are_rejected(bad, tanh_cell):
    with pytest.raises(DEQSettingsError):
        equilibrium(tanh_cell, None, (tanh_input(),), f_thres=5, like=tanh_cell.zeros(3), **bad)


def test_training_steps_do_not_keep_earlier_steps_alive(tanh_cell):
    """After a step's backward and the release of its outputs, nothing of it survives, even
    without the garbage collector (no reference cycles through hooks or saved state)."""
    optimizer = torch.optim.SGD(tanh_cell.parameters(), lr=1e-3)
    x = tanh_input().detach()
    previous = None
    gc.disable()
    try:
        for _ in range(3):
            optimizer.zero_grad()
            z, _, jac_loss = equilibrium(
                tanh_cell,
                None,
                (x,),
                f_thres=20,
                like=tanh_cell.zeros(3),
                jac_samples=1,
                backward=BackwardSettings(max_iter=10),
            )
            (sum(t.pow(2).sum() for t in z) + jac_loss).backward()
            optimizer.step()
            assert previous is None or previous() is None
            previous = weakref.ref(z[0])
            del z, jac_loss
    finally:
        gc.enable()


def test_forward_max_iter_is_a_deprecated_alias_of_f_thres(tanh_cell):
    x = tanh_input()
    with torch.no_grad():
        z, result, _ = equilibrium(tanh_cell, None, (x,), f_thres=7, like=tanh_cell.zeros(3))
        with pytest.warns(DeprecationWarning, match="forward_max_iter.*f_thres"):
            z_old, result_old, _ = equilibrium(
                tanh_cell, None, (x,), forward_max_iter=7, like=tanh_cell.zeros(3)
            )
    assert int(result_old.iters.max()) == int(result.iters.max())
    for a, b in zip(z_old, z):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_f_thres_and_its_old_name_together_are_rejected(tanh_cell):
    with pytest.raises(DEQSettingsError, match="give only f_thres"):
        equilibrium(
            tanh_cell,
            None,
            (tanh_input(),),
            f_thres=5,
            forward_max_iter=5,
            like=tanh_cell.zeros(3),
        )


def test_f_thres_is_required(tanh_cell):
    with pytest.raises(DEQSettingsError, match="needs f_thres"):
        equilibrium(tanh_cell, None, (tanh_input(),), like=tanh_cell.zeros(3))
