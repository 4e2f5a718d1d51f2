"""A tiny random MDEQ and two short labelled clips, shared by the experiment tests.

The model is the MDEQ-Small structure at 8..64 channels on 32x64 frames with N = 6, so a
full solve costs milliseconds; the clips are a smooth texture panned a few pixels a frame, with
labels that follow the texture (so they move with it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdeq import create_model
from streamdeq.experiments import Clip

HEIGHT, WIDTH, FRAMES, F_THRES = 32, 64, 3, 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on a shared 2-core machine, two threads per process thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model(
        "mdeq-seg-small-cityscapes", num_channels=(8, 16, 32, 64), f_thres=F_THRES
    ).eval()


@pytest.fixture(scope="session")
def model():
    return tiny_model()


def panning_clip(seed: int, frames: int = FRAMES, step: int = 3) -> Clip:
    rng = np.random.default_rng(seed)
    coarse = rng.random((HEIGHT // 8 + 2, (WIDTH + step * frames) // 8 + 2, 3))
    canvas = np.kron(coarse, np.ones((8, 8, 1)))  # blocky texture, kind to argmax labels
    views = [canvas[:HEIGHT, step * t : step * t + WIDTH] for t in range(frames)]
    images = np.stack([(v * 255).astype(np.uint8) for v in views])
    labels = {t: (v[..., 0] * 19).astype(np.int64).clip(0, 18) for t, v in enumerate(views)}
    labels[0][:2] = 255  # some ignored pixels
    return Clip(f"pan-{seed}", images, labels)


@pytest.fixture(scope="session")
def clips():
    return [panning_clip(1), panning_clip(2)]
