"""The learning-rate schedule: linear warm-up, then cosine decay to ``final_lr_factor`` x lr.

A function of the step alone (no state beyond the step), so a resumed run continues on exactly
the same curve, and the scheduler's saved state is just its step.
"""

from __future__ import annotations

import math

import torch

from .recipe import ScheduleSection


def lr_factor(step: int, schedule: ScheduleSection) -> float:
    """Multiplier of the peak lr at ``step`` (0-based): (step + 1) / warmup during warm-up,
    then 0.5 (1 + cos(pi t)) scaled into [final_lr_factor, 1], t the fraction of the rest."""
    warmup = schedule.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    span = max(schedule.max_steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    low = schedule.final_lr_factor
    return low + (1.0 - low) * cosine


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: ScheduleSection
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, schedule))
