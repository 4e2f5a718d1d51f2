"""Multi-process data parallelism under ``torchrun``: process group, gradient averaging and
batch statistics over the global batch.

Why gradients are averaged by hand instead of wrapping the model in DistributedDataParallel:
a DEQ's backward runs an adjoint fixed-point solve inside autograd and, with the Jacobian
regulariser, a double backward; DDP's reducer hooks assume one plain backward per forward and
all parameters used in the same order. One flat all-reduce after ``backward()`` is exact, works
for every gradient mode and task, and costs one collective per step.

Why BatchNorm is replaced: the stem and the segmentation head normalise with batch statistics,
so two processes with batch 1 would normalise differently from one process with batch 2.
:class:`GlobalBatchNorm2d` all-reduces the per-channel sums (with gradients) so the statistics
are those of the global batch, on CPU (gloo) as on CUDA (torch's SyncBatchNorm is GPU-only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``local_rank`` picks its GPU."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: str) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (RANK / WORLD_SIZE / LOCAL_RANK in the
    environment; gloo on CPU, nccl on CUDA); a single process needs no group."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), torch.device(device)
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch_device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(torch_device)
        backend = "nccl"
    else:
        torch_device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return world, torch_device


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(model: nn.Module, world: World) -> None:
    """Replace every parameter's gradient by its mean over the processes (one all-reduce).
    Parameters without a gradient count as zero, so every process reduces the same buffer."""
    if not world.distributed:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat.div_(world.size)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def mean_over_world(values: dict[str, float], world: World) -> dict[str, float]:
    """Average logged scalars over processes (for the metrics log only)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    buf = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(buf)
    return {k: v / world.size for k, v in zip(keys, buf.tolist(), strict=True)}


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch summed over all processes.

    Same parameters and buffers as ``nn.BatchNorm2d`` (checkpoints are interchangeable); in eval
    mode, or without a process group, it is plain BatchNorm.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = (0, 2, 3)
        x32 = x.float()  # sums in float32 even under autocast
        count = torch.full((1,), x.shape[0] * x.shape[2] * x.shape[3], device=x.device)
        stats = torch.cat([x32.sum(dims), x32.pow(2).sum(dims), count])
        stats = _AllReduceSum.apply(stats)
        channels = x.shape[1]
        total, total_sq, n = stats[:channels], stats[channels : 2 * channels], stats[-1]
        mean = total / n
        var = (total_sq / n - mean.pow(2)).clamp(min=0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = var * (n / (n - 1).clamp(min=1))
                momentum = self.momentum
                if momentum is None:  # cumulative average, as nn.BatchNorm2d
                    momentum = 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            shift = self.bias - mean * scale * self.weight
            scale = scale * self.weight
        else:
            shift = -mean * scale
        out = x32 * scale[None, :, None, None] + shift[None, :, None, None]
        return out.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the gradient of a sum shared by all processes is the
    sum of their incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total)
        return total


def use_global_batch_norm(module: nn.Module) -> nn.Module:
    """Swap every ``nn.BatchNorm2d`` for :class:`GlobalBatchNorm2d` in place (same tensors)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(
                child.num_features,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
            )
            replacement.load_state_dict(child.state_dict())
            if child.affine:
                replacement.weight, replacement.bias = child.weight, child.bias
            replacement.to(next(child.buffers()).device)
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            use_global_batch_norm(child)
    return module
