from __future__ import annotations

import torch


def random_boxes(count: int, generator: torch.Generator, extent: float = 100.0) -> torch.Tensor:
    """(count, 4) valid boxes inside [0, extent]^2 with sizes from 1 to extent / 3."""
    corner = torch.rand(count, 2, generator=generator) * extent * 0.7
    size = 1 + torch.rand(count, 2, generator=generator) * extent / 3
    return torch.cat([corner, corner + size], dim=1)
