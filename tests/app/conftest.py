"""Fixtures shared by the application's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamdeq.models import create_model, save_safetensors


@pytest.fixture(scope="module")
def single_thread():
    """Tiny convolutions gain nothing from threads, and on a busy machine threads that wait for
    each other cost several times the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_seg_checkpoint(tmp_path_factory) -> Path:
    """A tiny segmentation model (8..64 channels, N = 5) as a self-describing safetensors."""
    torch.manual_seed(0)
    model = create_model("mdeq-seg-small-cityscapes", num_channels=(8, 16, 32, 64), f_thres=5)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_safetensors(model.eval(), path)
    return path
