"""MDEQModel's parts: injection, state shapes, f on row subsets, weight and dropout caches,
and the eval / pretraining / equilibrium forward paths."""

from __future__ import annotations

import copy

import pytest
import torch

from streamdeq.models.layers import WeightNormConv2d
from streamdeq.solvers.base import select_rows

from .conftest import image, tiny_model


def test_input_multiple_and_bad_sizes_are_reported():
    model = tiny_model()  # 4 branches, 2 stem downsamplings
    assert model.input_multiple == 32
    with pytest.raises(ValueError, match="not a multiple of 32.*64x64"):
        model.inject(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.inject(torch.zeros(1, 1, 32, 32))


def test_injection_only_reaches_branch_zero():
    model = tiny_model().eval()
    with torch.no_grad():
        injection = model.inject(image(model))
    assert injection[0].shape == (2, 8, 8, 8)
    assert injection[1:] == [None, None, None]


def test_cifar_tiny_injects_the_stem_output_directly():
    model = tiny_model("mdeq-cls-tiny-cifar")
    assert model.stage0 is None
    assert model.input_multiple == 2
    assert tiny_model("mdeq-cls-large-cifar").stage0 is not None


def test_init_state_is_zeros_halving_per_branch():
    model = tiny_model().eval()
    with torch.no_grad():
        z = model.init_state(model.inject(image(model)))
    assert [tuple(t.shape) for t in z] == [
        (2, 8, 8, 8),
        (2, 16, 4, 4),
        (2, 32, 2, 2),
        (2, 64, 1, 1),
    ]
    assert all(not t.any() for t in z)


def _random_state(model, x, seed=1):
    gen = torch.Generator().manual_seed(seed)
    injection = model.inject(x)
    z = [torch.randn(t.shape, generator=gen) for t in model.init_state(injection)]
    return z, injection


def test_f_on_a_subset_of_rows_equals_those_rows_of_the_full_batch():
    model = tiny_model().eval()
    with torch.no_grad():
        z, injection = _random_state(model, image(model, batch=3))
        full = model.f(z, injection)
        rows = torch.tensor([2, 0])
        part = model.f(select_rows(z, rows), select_rows(injection, rows))
    for a, b in zip(part, full):
        torch.testing.assert_close(a, b[rows])


def test_f_leaves_its_inputs_untouched():
    model = tiny_model().eval()
    with torch.no_grad():
        z, injection = _random_state(model, image(model))
        before = [t.clone() for t in [*z, injection[0]]]
        model.f(z, injection)
    assert all(torch.equal(a, b) for a, b in zip(before, [*z, injection[0]]))


def test_weight_norm_is_computed_at_inject_not_in_f(monkeypatch):
    model = tiny_model().eval()
    calls = []
    original = WeightNormConv2d.compute_weight
    monkeypatch.setattr(
        WeightNormConv2d, "compute_weight", lambda self: calls.append(1) or original(self)
    )
    n_convs = sum(isinstance(m, WeightNormConv2d) for m in model.modules())
    with torch.no_grad():
        z, injection = _random_state(model, image(model))
        assert len(calls) == n_convs
        for _ in range(3):
            z = model.f(z, injection)
    assert len(calls) == n_convs


def test_loading_weights_refreshes_the_cached_normalised_weights():
    model, other = tiny_model(seed=0).eval(), tiny_model(seed=5).eval()
    with torch.no_grad():
        z, injection = _random_state(model, image(model))
        model.f(z, injection)
        model.load_state_dict(other.state_dict())
        after_load = model.f(z, injection)
        other.inject(image(model))
        expected = other.f(z, injection)
    for a, b in zip(after_load, expected):
        torch.testing.assert_close(a, b)


def test_dropout_masks_are_fixed_within_a_forward_and_redrawn_per_inject():
    model = tiny_model(dropout=0.5).train()
    x = image(model)
    with torch.no_grad():
        z, injection = _random_state(model, x)
        first, again = model.f(z, injection), model.f(z, injection)
        model.inject(x)
        redrawn = model.f(z, injection)
        model.eval()
        model.inject(x)
        no_dropout = model.f(z, injection)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, redrawn))
    assert not all(torch.equal(a, b) for a, b in zip(first, no_dropout))


def test_training_f_on_row_subsets_needs_the_matching_masks():
    model = tiny_model(dropout=0.5).train()
    with torch.no_grad():
        z, injection = _random_state(model, image(model, batch=3, scale=2))
        args = model.f_args(injection)
        assert len(args) == 2  # (injection, masks): solvers slice both with the same rows
        full = model.f(z, *args)
        rows = torch.tensor([1])
        part = model.f(select_rows(z, rows), *select_rows(args, rows))
        with pytest.raises(ValueError, match="dropout masks"):
            model.f(select_rows(z, rows), select_rows(injection, rows))
    for a, b in zip(part, full):
        torch.testing.assert_close(a, b[rows])


def test_eval_forward_is_solve_then_head_with_f_thres_by_default():
    model = tiny_model(f_thres=4).eval()
    x = image(model)
    with torch.no_grad():
        logits = model(x)
        found = model.forward_with_info(x)
        z, result = model.solve(x)
        assert torch.equal(logits, model.head(z))
    assert found.solver.nfev == 4
    assert int(result.iters.max()) == 4


def test_solve_warm_start_from_its_own_answer_changes_little():
    model = tiny_model(f_thres=6).eval()
    x = image(model)
    with torch.no_grad():
        z, result = model.solve(x, solver="anderson")
        _, warm = model.solve(x, z0=z, solver="anderson", max_iter=1)
    assert (warm.abs_trace[:, 0] <= result.abs_trace[:, 0]).all()


def test_pretraining_steps_unroll_f_and_backprop():
    model = tiny_model(dropout=0.2, num_layers=2, pretrain_steps=10).train()
    found = model.forward_with_info(image(model), train_step=0)
    found.output.square().mean().backward()
    assert found.solver is None
    conv = model.fullstage.branches[2].blocks[0].conv1
    assert conv.weight_g.grad is not None and conv.weight_v.grad.abs().sum() > 0


def test_equilibrium_training_gives_gradients_and_a_jacobian_penalty():
    model = tiny_model(dropout=0.2, pretrain_steps=0).train()
    found = model.forward_with_info(image(model), max_iter=3, jac_samples=1)
    (found.output.square().mean() + found.jac_loss).backward()
    assert found.solver.nfev >= 3
    assert found.jac_loss.ndim == 0
    assert model.downsample[0].weight.grad.abs().sum() > 0
    assert model.fullstage.post_fuse_layers[3].conv.weight_v.grad.abs().sum() > 0


def test_a_trained_model_can_be_deep_copied():
    # caches of a training forward hold a graph; copies (e.g. for an EMA model) must not fail
    model = tiny_model(pretrain_steps=0).train()
    model(image(model), max_iter=2, jac_samples=1)
    clone = copy.deepcopy(model)
    for key, value in model.state_dict().items():
        assert torch.equal(clone.state_dict()[key], value)


def test_forward_with_info_returns_the_output_of_a_plain_call_and_its_fixed_point():
    model = tiny_model(f_thres=4).eval()
    x = image(model)
    with torch.no_grad():
        found = model.forward_with_info(x)
        logits = model(x)
    assert torch.equal(found.output, logits)
    assert torch.equal(found.output, model.head(found.z))
    assert found.jac_loss is None


def test_last_results_are_deprecated_but_still_readable():
    model = tiny_model(pretrain_steps=0).train()
    found = model.forward_with_info(image(model), max_iter=2, jac_samples=1)
    with pytest.warns(DeprecationWarning, match="forward_with_info"):
        assert model.last_solver_result is found.solver
    with pytest.warns(DeprecationWarning, match="forward_with_info"):
        assert model.last_jac_loss is found.jac_loss
