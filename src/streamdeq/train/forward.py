"""The training forward of a DEQ: unrolled weight-tied pretraining for the first steps, then the
equilibrium with implicit differentiation and the Jacobian regulariser.

This is :meth:`MDEQModel.forward`'s training branch with the randomness made per sample:
dropout masks and Jacobian probes are drawn from each sample's own seed (see :mod:`.seeding`),
so that splitting a batch across processes changes nothing. It talks to the model only through
the streamable parts (``inject``, ``init_state``, ``f``), so any task's model trains with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..deq import BackwardSettings, equilibrium, reapply, unrolled_forward, vjp
from ..solvers import SolverResult
from . import seeding


@dataclass(frozen=True)
class DEQPlan:
    """How one training step finds z (resolved from the recipe and the model config).

    Attributes:
        pretrain_steps: steps 0 .. pretrain_steps - 1 unroll f ``num_layers`` times.
        solver, f_thres, forward_tol: the forward solve (N = f_thres).
        backward: the gradient through the fixed point.
        jac_samples: Hutchinson probes per sample when the regulariser runs this step.
    """

    pretrain_steps: int
    num_layers: int
    solver: str
    f_thres: int
    forward_tol: float | None
    backward: BackwardSettings
    jac_samples: int = 1


@dataclass
class TrainingForward:
    """z (one (B, C_i, H_i, W_i) tensor per branch, with its graph), the forward solve's
    result (None while pretraining) and the Jacobian penalty (None when not computed)."""

    z: list[Tensor]
    solver_result: SolverResult | None
    jac_loss: Tensor | None


def deq_forward(
    model: nn.Module,
    images: Tensor,
    plan: DEQPlan,
    step: int,
    sample_ids: Sequence[int],
    seed: int,
    with_jacobian: bool,
) -> TrainingForward:
    """z for a (B, 3, H, W) batch at training step ``step``.

    Args:
        sample_ids: the dataset index of each row; with ``seed`` and ``step`` they seed the
            row's dropout mask and Jacobian probes.
        with_jacobian: compute the penalty at z* this step (ignored while pretraining).
    """
    injection = model.inject(images)
    masks = _dropout_masks(model, images, step, sample_ids, seed)
    args = (injection,) if masks is None else (injection, masks)
    z0 = model.init_state(injection)
    if step < plan.pretrain_steps:
        return TrainingForward(unrolled_forward(model.f, z0, args, plan.num_layers), None, None)
    z, result, _ = equilibrium(
        model.f,
        z0,
        args,
        forward_solver=plan.solver,
        f_thres=plan.f_thres,
        forward_tol=plan.forward_tol,
        forward_options={"stop_mode": "rel"} if plan.forward_tol is not None else None,
        backward=plan.backward,
    )
    jac_loss = None
    if with_jacobian:
        seeds = [seeding.stream_seed(seed, step, i, seeding.JACOBIAN) for i in sample_ids]
        jac_loss = per_sample_jacobian_penalty(model.f, result.z, args, seeds, plan.jac_samples)
    return TrainingForward(z, result, jac_loss)


def per_sample_jacobian_penalty(
    f, z_star: Sequence[Tensor], args: Sequence, seeds: Sequence[int], num_samples: int
) -> Tensor:
    """Hutchinson estimate of ||J_f(z*)||_F^2 / numel (the Jacobian regulariser of Bai et al.,
    2021; see :mod:`streamdeq.deq.jacobian`), with each row's probes from its own seed.
    Differentiable w.r.t. f's parameters and ``args``; z* is held constant."""
    z_in, z_out = reapply(f, z_star, args)
    numel = sum(t.numel() for t in z_in)
    total = z_in[0].new_zeros(())
    for k in range(num_samples):
        probe_seeds = [s + k for s in seeds]
        probes = [
            seeding.per_sample_normal(t.shape[1:], probe_seeds, device=t.device, dtype=t.dtype)
            for t in z_out
        ]
        products = vjp(z_out, z_in, probes, create_graph=True)
        total = total + sum(p.pow(2).sum() for p in products)
    return total / (num_samples * numel)


def _dropout_masks(
    model: nn.Module, images: Tensor, step: int, sample_ids: Sequence[int], seed: int
) -> list[list[Tensor]] | None:
    """Variational dropout masks, one (B, C_i, 1, 1) tensor per block, rows seeded per sample
    (the same in every solver iteration of the step, as the official variational dropout)."""
    rate = model.config.dropout
    if not model.training or rate <= 0:
        return None
    keep = 1.0 - rate
    masks = []
    for branch, (channels, blocks) in enumerate(
        zip(model.config.num_channels, model.config.num_blocks, strict=True)
    ):
        row = []
        for block in range(blocks):
            purpose = seeding.DROPOUT + 16 * (1 + branch * 64 + block)
            seeds = [seeding.stream_seed(seed, step, i, purpose) for i in sample_ids]
            mask = seeding.per_sample_bernoulli(
                (channels, 1, 1), keep, seeds, device=images.device, dtype=images.dtype
            )
            row.append(mask.div_(keep))
        masks.append(row)
    return masks
