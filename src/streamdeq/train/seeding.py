"""Per-sample random streams that do not depend on how a batch is split across processes.

Why: two processes with batch 1 must train exactly like one process with batch 2. Anything
random that is drawn for "the batch" (dropout masks, Jacobian probes, augmentation) would come out
differently when the batch is split, so every such draw is made per sample, from a generator
seeded by (run seed, step, the sample's dataset index, purpose).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: What a stream is for; distinct purposes get independent streams for the same sample.
AUGMENT, DROPOUT, JACOBIAN, STEP = 1, 2, 3, 4

_MASK64 = (1 << 63) - 1


def stream_seed(seed: int, step: int, index: int, purpose: int) -> int:
    """A 63-bit seed mixing the four integers (splitmix64-style, so nearby inputs differ)."""
    value = 0
    for part in (seed, step, index, purpose):
        value = (value ^ (part & _MASK64)) * 0x9E3779B97F4A7C15 & ((1 << 64) - 1)
        value ^= value >> 31
    return value & _MASK64


def generator(seed: int, step: int, index: int, purpose: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, step, index, purpose))


def per_sample_normal(
    shape: Sequence[int], seeds: Sequence[int], *, device=None, dtype=None
) -> torch.Tensor:
    """(B, *shape) standard normal, row b drawn from its own seed (on the CPU, then moved)."""
    rows = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


def per_sample_bernoulli(
    shape: Sequence[int], keep: float, seeds: Sequence[int], *, device=None, dtype=None
) -> torch.Tensor:
    """(B, *shape) 0/1 with P(1) = keep, row b from its own seed."""
    rows = [
        torch.rand(tuple(shape), generator=torch.Generator().manual_seed(s)) < keep for s in seeds
    ]
    return torch.stack(rows).to(device=device, dtype=dtype)


def step_uniform(seed: int, step: int) -> float:
    """One uniform number per step, the same in every process (e.g. whether to regularise)."""
    return torch.rand((), generator=generator(seed, step, 0, STEP)).item()
