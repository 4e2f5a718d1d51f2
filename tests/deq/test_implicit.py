"""Implicit gradients agree with finite differences of the converged fixed point and with
backprop through a long unrolled iteration; the backward is safe to misuse."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest
import torch

from streamdeq.deq import (
    BackwardSettings,
    SecondOrderError,
    equilibrium,
    implicit_backward,
    reapply,
)
from streamdeq.solvers import SolverStatus

from .conftest import (
    assert_matches_fd,
    converged,
    layer_grads,
    max_rel_error,
    probe_loss,
    unrolled_grads,
)

METHODS = ["broyden", "anderson", "fixed_point"]
TIGHT_FORWARD = {
    "f_thres": 200,
    "forward_tol": 1e-13,
    "forward_options": {"stop_mode": "abs"},
}


def tight_backward(method: str = "broyden", **kw) -> BackwardSettings:
    return BackwardSettings(mode="implicit", solver=method, max_iter=200, tol=1e-13, **kw)


def tanh_input(bsz: int = 3, seed: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(bsz, 3, generator=gen, dtype=torch.float64, requires_grad=True)


def conv_input(bsz: int = 2, seed: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(bsz, 4, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(bsz, 4, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True),
    ]


@pytest.mark.parametrize("method", METHODS)
def test_tanh_gradients_match_unrolled_backprop(method, tanh_cell):
    x = tanh_input()
    like = tanh_cell.zeros(3)
    leaves = [*tanh_cell.parameters(), x]
    got = layer_grads(tanh_cell, (x,), like, leaves, tight_backward(method))
    want = unrolled_grads(tanh_cell, (x,), like, leaves)
    assert max_rel_error(got, want) < 1e-12


def test_tanh_gradients_match_finite_differences(tanh_cell):
    x = tanh_input()
    like = tanh_cell.zeros(3)
    leaves = [*tanh_cell.parameters(), x]
    grads = layer_grads(tanh_cell, (x,), like, leaves, tight_backward())
    gen = torch.Generator().manual_seed(5)
    for leaf, grad in zip(leaves, grads):
        assert_matches_fd(tanh_cell, (x,), like, leaf, grad, gen)


def test_conv_gradients_match_unrolled_backprop_and_finite_differences(conv_cell):
    injection = conv_input()
    like = conv_cell.zeros(2)
    leaves = [*conv_cell.parameters(), *injection]
    got = layer_grads(conv_cell, (injection,), like, leaves, tight_backward())
    want = unrolled_grads(conv_cell, (injection,), like, leaves, num_layers=100)
    assert max_rel_error(got, want) < 1e-12
    gen = torch.Generator().manual_seed(7)
    for leaf, grad in [(conv_cell.conv1.weight, got[0]), (injection[1], got[-1])]:
        assert_matches_fd(conv_cell, (injection,), like, leaf, grad, gen)


def test_adjoint_solved_on_row_subsets_is_still_exact(tanh_cell):
    """With a tolerance, samples whose adjoint converged leave the solve; the rest must still
    get their own exact adjoint (the map scatters the active rows into the full batch)."""
    x = tanh_input(bsz=4)
    scales = torch.tensor([0.1, 0.4, 0.8, 1.0], dtype=torch.float64)
    like = tanh_cell.zeros(4)
    leaves = [*tanh_cell.parameters(), x]
    reports = []
    settings = tight_backward("fixed_point", on_adjoint=reports.append)
    got = layer_grads(tanh_cell, (x, scales), like, leaves, settings)
    want = unrolled_grads(tanh_cell, (x, scales), like, leaves)
    assert max_rel_error(got, want) < 1e-12
    (report,) = reports
    assert len(set(report.iters.tolist())) > 1  # the samples did stop at different iterations
    assert (report.status == SolverStatus.CONVERGED).all()


def test_value_is_one_more_application_at_the_fixed_point(tanh_cell):
    x = tanh_input()
    z, result, _ = equilibrium(
        tanh_cell, None, (x,), like=tanh_cell.zeros(3), backward=tight_backward(), **TIGHT_FORWARD
    )
    with torch.no_grad():
        once_more = tanh_cell(result.z, x)
    for a, b, c in zip(z, once_more, result.z):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
        torch.testing.assert_close(a.detach(), c, rtol=0, atol=1e-12)


def test_warm_start_gets_no_gradient(tanh_cell):
    x = tanh_input()
    z0 = [t.clone().requires_grad_() for t in tanh_cell.zeros(3)]
    z, _, _ = equilibrium(tanh_cell, z0, (x,), f_thres=30)
    probe_loss(z).backward()
    assert all(t.grad is None for t in z0)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_second_backward_without_retain_graph_raises(tanh_cell):
    z, _, _ = equilibrium(tanh_cell, None, (tanh_input(),), f_thres=30, like=tanh_cell.zeros(3))
    loss = probe_loss(z)
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_backward_with_retain_graph_repeats_exactly(tanh_cell):
    z, _, _ = equilibrium(tanh_cell, None, (tanh_input(),), f_thres=30, like=tanh_cell.zeros(3))
    loss = probe_loss(z)
    first = torch.autograd.grad(loss, tanh_cell.weight, retain_graph=True)[0]
    second = torch.autograd.grad(loss, tanh_cell.weight)[0]
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_second_order_gradient_through_the_adjoint_is_refused(tanh_cell):
    z, _, _ = equilibrium(tanh_cell, None, (tanh_input(),), f_thres=30, like=tanh_cell.zeros(3))
    with pytest.raises(SecondOrderError, match="create_graph"):
        torch.autograd.grad(probe_loss(z), tanh_cell.weight, create_graph=True)


def test_graph_is_freed_without_the_garbage_collector(tanh_cell):
    """No reference cycle keeps z*, its graph or the adjoint alive after a training step."""
    gc.disable()
    try:
        z_in, z_out = reapply(tanh_cell, tanh_cell.zeros(3), (tanh_input(),))
        watched = weakref.ref(z_in[0])
        z = implicit_backward(z_in, z_out, BackwardSettings(max_iter=10))
        probe_loss(z).backward()
        del z_in, z_out, z
        assert watched() is None
    finally:
        gc.enable()


def test_adjoint_status_goes_to_the_monitor(tanh_cell):
    reports = []
    z, _, _ = equilibrium(
        tanh_cell,
        None,
        (tanh_input(),),
        like=tanh_cell.zeros(3),
        backward=tight_backward(on_adjoint=reports.append),
        **TIGHT_FORWARD,
    )
    probe_loss(z).backward()
    (report,) = reports
    assert (report.status == SolverStatus.CONVERGED).all()
    assert report.abs_residual.max() < 1e-13


def test_diverging_adjoint_warns_and_gives_zero_not_nan(caplog):
    """J = 3 I: y = 3 y + g has no convergent iteration; the gradient must not become NaN."""
    weight = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def expanding(z, x):
        return [3.0 * z[0] + weight * x]

    x = torch.ones(2, 5, dtype=torch.float64)
    z_in, z_out = reapply(expanding, [torch.zeros(2, 5, dtype=torch.float64)], (x,))
    z = implicit_backward(z_in, z_out, BackwardSettings(solver="fixed_point", max_iter=50))
    with caplog.at_level(logging.WARNING, logger="streamdeq.deq.implicit"):
        z[0].sum().backward()
    assert "diverged for 2 of 2 samples" in caplog.text
    assert weight.grad == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_implicit_gradient_on_cuda_matches_cpu(tanh_cell):
    x = tanh_input()
    like = tanh_cell.zeros(3)
    z, _, _ = equilibrium(
        tanh_cell, None, (x,), like=like, backward=tight_backward(), **TIGHT_FORWARD
    )
    want = torch.autograd.grad(probe_loss(z), tanh_cell.weight)[0]
    cell = tanh_cell.cuda()
    x_gpu = x.detach().cuda()
    z, _, _ = equilibrium(
        cell,
        None,
        (x_gpu,),
        like=[t.cuda() for t in like],
        backward=tight_backward(),
        **TIGHT_FORWARD,
    )
    got = torch.autograd.grad(probe_loss([t.cpu() for t in z]), cell.weight)[0]
    torch.testing.assert_close(got.cpu(), want, rtol=1e-9, atol=1e-12)


def test_converged_reference_is_a_fixed_point(tanh_cell):
    """Sanity of the reference itself: the finite-difference points are true fixed points."""
    x = tanh_input()
    z_star = converged(tanh_cell, (x,), tanh_cell.zeros(3))
    with torch.no_grad():
        for a, b in zip(tanh_cell(z_star, x), z_star):
            assert (a - b).abs().max() < 1e-12
