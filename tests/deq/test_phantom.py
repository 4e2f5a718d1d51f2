"""Phantom gradients: one undamped step is backprop through one application of f; many damped
steps converge to the implicit gradient."""

from __future__ import annotations

import pytest
import torch

from streamdeq.deq import BackwardSettings, DEQSettingsError, equilibrium, phantom_gradient

from .conftest import converged, layer_grads, max_rel_error, probe_loss
from .test_implicit import TIGHT_FORWARD, tanh_input, tight_backward


def test_one_undamped_step_is_backprop_through_one_application(tanh_cell):
    x = tanh_input()
    leaves = [*tanh_cell.parameters(), x]
    z_star = converged(tanh_cell, (x,), tanh_cell.zeros(3))
    got = torch.autograd.grad(probe_loss(phantom_gradient(tanh_cell, z_star, (x,))), leaves)
    want = torch.autograd.grad(probe_loss(tanh_cell(z_star, x)), leaves)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_many_damped_steps_approach_the_implicit_gradient(tanh_cell):
    x = tanh_input()
    like = tanh_cell.zeros(3)
    leaves = [*tanh_cell.parameters(), x]
    implicit = layer_grads(tanh_cell, (x,), like, leaves, tight_backward())
    errors = []
    for steps in (2, 10, 120):
        settings = BackwardSettings(mode="phantom", phantom_steps=steps, phantom_damping=0.6)
        errors.append(max_rel_error(layer_grads(tanh_cell, (x,), like, leaves, settings), implicit))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-10


def test_phantom_value_stays_at_the_fixed_point(tanh_cell):
    x = tanh_input()
    settings = BackwardSettings(mode="phantom", phantom_steps=3, phantom_damping=0.5)
    z, result, _ = equilibrium(
        tanh_cell, None, (x,), like=tanh_cell.zeros(3), backward=settings, **TIGHT_FORWARD
    )
    for a, b in zip(z, result.z):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [{"steps": 0}, {"damping": 0.0}, {"damping": 1.5}])
def test_phantom_rejects_bad_settings(bad, tanh_cell):
    x = tanh_input()
    with pytest.raises(DEQSettingsError):
        phantom_gradient(tanh_cell, tanh_cell.zeros(3), (x,), **bad)
