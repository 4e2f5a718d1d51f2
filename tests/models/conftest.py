"""Tiny MDEQs for fast tests, and the official reference fixture (seg, 4 branches, 8..64 ch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamdeq.models import MDEQModel, create_model, get_config, load_official_mdeq

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "mdeq_official_seg_small8"
OFFICIAL_YAML = FIXTURE / "config.yaml"
OFFICIAL_STATE = FIXTURE / "state_dict.pth"
OFFICIAL_IO = FIXTURE / "io.pth"


def tiny_overrides(name: str, **extra) -> dict:
    """Overrides that shrink a named config to 8..64 channels (and a narrow classifier head)."""
    config = get_config(name)
    nb = config.num_branches
    shrink = {"num_channels": (8, 16, 32, 64)[:nb]}
    if config.task == "classification":
        shrink |= {"head_channels": (2, 4, 8, 16)[:nb], "final_chansize": 16}
    return shrink | extra


def tiny_model(name: str = "mdeq-seg-small-cityscapes", seed: int = 0, **extra) -> MDEQModel:
    """A seeded tiny model whose norm/BN parameters and statistics are randomised, so a test that
    loses a tensor or a buffer on the way cannot pass by accident."""
    torch.manual_seed(seed)
    model = create_model(name, **tiny_overrides(name, **extra))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for key, buf in model.named_buffers():
            if key.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif key.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
    return model


def image(model: MDEQModel, batch: int = 2, seed: int = 0, scale: int = 1) -> torch.Tensor:
    """A seeded (B, 3, H, W) input, ``scale`` times the smallest size the model accepts (at
    least 16). In training mode a single sample needs scale >= 2: GroupNorm refuses groups of
    one value (the coarsest branch is then 1x1)."""
    side = max(model.input_multiple, 16) * scale
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def official_model() -> MDEQModel:
    return load_official_mdeq(OFFICIAL_YAML, OFFICIAL_STATE)


@pytest.fixture(scope="module")
def official_io() -> dict:
    return torch.load(OFFICIAL_IO, weights_only=True)


@pytest.fixture(scope="module")
def official_state() -> dict:
    return torch.load(OFFICIAL_STATE, weights_only=True)
