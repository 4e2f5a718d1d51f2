"""The Hutchinson Jacobian penalty: unbiased for ||J||_F^2 / numel, and trainable."""

from __future__ import annotations

import pytest
import torch

from streamdeq.deq import BackwardSettings, DEQSettingsError, equilibrium, jacobian_penalty

from .conftest import converged
from .test_implicit import tanh_input


def exact_penalty(f, z, args):
    """||J_f(z)||_F^2 / numel by the full per-sample Jacobian (differentiable)."""
    shapes = [t.shape[1:] for t in z]
    sizes = [s.numel() for s in shapes]
    total = 0.0
    for row in range(z[0].shape[0]):
        point = torch.cat([t[row].reshape(-1) for t in z]).detach()
        row_args = tuple(a[row : row + 1] for a in args)

        def flat_f(v, row_args=row_args):
            parts = torch.split(v, sizes)
            state = [p.reshape(1, *s) for p, s in zip(parts, shapes)]
            return torch.cat([t.reshape(-1) for t in f(state, *row_args)])

        jac = torch.autograd.functional.jacobian(flat_f, point, create_graph=True)
        total = total + jac.pow(2).sum()
    return total / sum(t.numel() for t in z)


def test_estimate_matches_the_exact_penalty_in_expectation(tanh_cell):
    x = tanh_input(bsz=8)
    z_star = converged(tanh_cell, (x,), tanh_cell.zeros(8))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        estimate = jacobian_penalty(tanh_cell, z_star, (x,), num_samples=3000, generator=gen)
    exact = exact_penalty(tanh_cell, z_star, (x,)).detach()
    assert not estimate.requires_grad
    assert abs(float(estimate / exact) - 1) < 0.03


def test_penalty_gradient_matches_finite_differences_of_the_exact_penalty(tanh_cell):
    x = tanh_input(bsz=4)
    z_star = converged(tanh_cell, (x,), tanh_cell.zeros(4))
    gen = torch.Generator().manual_seed(1)
    estimate = jacobian_penalty(tanh_cell, z_star, (x,), num_samples=2000, generator=gen)
    (grad,) = torch.autograd.grad(estimate, tanh_cell.weight)
    assert grad.abs().sum() > 0

    direction = torch.randn(tanh_cell.weight.shape, generator=gen, dtype=torch.float64)
    h = 1e-5
    values = []
    with torch.no_grad():
        saved = tanh_cell.weight.clone()
        for sign in (1.0, -1.0):
            tanh_cell.weight.copy_(saved + sign * h * direction)
            values.append(float(exact_penalty(tanh_cell, z_star, (x,))))
        tanh_cell.weight.copy_(saved)
    fd = (values[0] - values[1]) / (2 * h)
    assert abs(float((grad * direction).sum()) / fd - 1) < 0.1


def test_penalty_from_the_layer_trains_parameters_and_input(tanh_cell):
    """TorchDEQ issue #10: the penalty returned by the layer must carry gradients."""
    x = tanh_input()
    settings = BackwardSettings(mode="implicit", max_iter=10)
    _, _, jac_loss = equilibrium(
        tanh_cell,
        None,
        (x,),
        f_thres=30,
        like=tanh_cell.zeros(3),
        backward=settings,
        jac_samples=2,
    )
    jac_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tanh_cell.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["phantom", "none"])
def test_penalty_is_returned_in_every_backward_mode(mode, tanh_cell):
    _, _, jac_loss = equilibrium(
        tanh_cell,
        None,
        (tanh_input(),),
        f_thres=30,
        like=tanh_cell.zeros(3),
        backward=BackwardSettings(mode=mode),
        jac_samples=1,
    )
    assert jac_loss.dim() == 0 and jac_loss.requires_grad


def test_penalty_rejects_zero_samples(tanh_cell):
    with pytest.raises(DEQSettingsError):
        jacobian_penalty(tanh_cell, tanh_cell.zeros(3), (tanh_input(),), num_samples=0)
