"""The training forward's randomness is per sample: splitting a batch changes nothing."""

from __future__ import annotations

import torch

from streamdeq.deq import BackwardSettings
from streamdeq.models import create_model
from streamdeq.train.forward import DEQPlan, _dropout_masks, deq_forward


def tiny_model(dropout: float = 0.25):
    torch.manual_seed(0)
    return create_model(
        "mdeq-seg-small-cityscapes",
        num_branches=2,
        num_channels=(8, 16),
        num_blocks=(1, 1),
        expansion=2,
        num_groups=4,
        dropout=dropout,
        f_thres=5,
        b_thres=5,
    )


PLAN = DEQPlan(
    pretrain_steps=0,
    num_layers=2,
    solver="broyden",
    f_thres=5,
    forward_tol=None,
    backward=BackwardSettings(max_iter=5),
)


def test_dropout_masks_of_a_batch_are_those_of_its_samples_alone():
    model = tiny_model()
    images = torch.zeros(3, 3, 32, 32)
    together = _dropout_masks(model, images, step=7, sample_ids=[4, 9, 2], seed=1)
    for row, index in enumerate([4, 9, 2]):
        alone = _dropout_masks(model, images[:1], step=7, sample_ids=[index], seed=1)
        for branch_masks, branch_alone in zip(together, alone):
            for mask, mask_alone in zip(branch_masks, branch_alone):
                torch.testing.assert_close(mask[row : row + 1], mask_alone)
    other_step = _dropout_masks(model, images, step=8, sample_ids=[4, 9, 2], seed=1)
    assert not torch.equal(together[0][0], other_step[0][0])


def test_jacobian_penalty_of_a_batch_is_the_mean_of_its_samples():
    model = tiny_model(dropout=0.0).eval()  # eval: BatchNorm rows independent
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    both = deq_forward(model, images, PLAN, 5, [11, 12], seed=0, with_jacobian=True).jac_loss
    parts = [
        deq_forward(model, images[i : i + 1], PLAN, 5, [11 + i], 0, True).jac_loss for i in range(2)
    ]
    torch.testing.assert_close(both, (parts[0] + parts[1]) / 2, rtol=1e-4, atol=1e-7)


def test_jacobian_penalty_trains_the_parameters_of_f():
    model = tiny_model(dropout=0.0)
    images = torch.randn(2, 3, 32, 32)
    out = deq_forward(model, images, PLAN, 0, [0, 1], seed=0, with_jacobian=True)
    out.jac_loss.backward()
    grad = model.fullstage.branches[0].blocks[0].conv1.weight_v.grad
    assert grad is not None and grad.abs().sum() > 0


def test_pretraining_steps_unroll_f_without_a_solve():
    model = tiny_model(dropout=0.0)
    plan = DEQPlan(3, 2, "broyden", 5, None, BackwardSettings(max_iter=5))
    out = deq_forward(model, torch.randn(1, 3, 32, 32), plan, 2, [0], 0, True)
    assert out.solver_result is None and out.jac_loss is None
    out = deq_forward(model, torch.randn(1, 3, 32, 32), plan, 3, [0], 0, False)
    assert out.solver_result is not None and int(out.solver_result.iters[0]) == 5
