"""The models, inputs and clips the benchmarks run on.

Paper-sized runs use the official Cityscapes SMALL and XL configurations with random weights at
512 x 1024 (speed does not depend on the weights) and the bundled ``mdeq-seg-tiny-synthetic``
model where it is installed. ``--quick`` runs swap in a narrow SMALL (8/16/32/64 channels) at a
tiny size, so that every benchmark's machinery runs in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import StreamDEQError
from ..models.resolve import DEFAULT_MODEL, resolve_model
from .common import BenchSettings

SMALL = "mdeq-seg-small-cityscapes"
XL = "mdeq-seg-xl-cityscapes"
BUNDLED = DEFAULT_MODEL
PAPER_SIZE = (512, 1024)
QUICK_SIZE = (64, 128)
QUICK_OVERRIDES = {"num_channels": (8, 16, 32, 64)}


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: its registered name, whether to load bundled weights, the input
    size (H, W) and how many frames a stream benchmark gives it."""

    name: str
    pretrained: bool
    size: tuple[int, int]
    frames: int
    label: str = ""

    def build(self, device: str = "cpu") -> torch.nn.Module:
        """The model in eval mode on ``device``: trained weights when ``pretrained`` (an error
        without them), else random ones (speed does not depend on the weights)."""
        overrides = {} if self.pretrained or not self.label.endswith("(quick)") else QUICK_OVERRIDES
        weights = "required" if self.pretrained else "random"
        return resolve_model(self.name, weights=weights, device=device, overrides=overrides).model


def bundled_available() -> tuple[bool, str]:
    """Whether the bundled model is registered and its weights load (it ships separately);
    the benchmarks skip it, with the reason, when they do not."""
    try:
        resolve_model(BUNDLED, weights="required")
    except (StreamDEQError, OSError) as error:
        return False, f"{BUNDLED} is not available ({error}); skipped"
    return True, ""


def solver_model(settings: BenchSettings) -> ModelSpec:
    """The model of the solver benchmarks: SMALL at the paper's size (or the quick stand-in)."""
    if settings.quick:
        return ModelSpec(SMALL, False, settings.size or QUICK_SIZE, 1, f"{SMALL} (quick)")
    return ModelSpec(SMALL, False, settings.size or PAPER_SIZE, 1, SMALL)


def scale_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """``size`` rounded down to multiples of ``multiple`` (at least one multiple)."""
    return tuple(max(multiple, (v // multiple) * multiple) for v in size)  # type: ignore[return-value]


def random_input(model: torch.nn.Module, size: tuple[int, int], device: str, seed: int = 0):
    """A (1, 3, H, W) normalised-looking input, H and W fitted to the model."""
    height, width = scale_size(size, model.input_multiple)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, height, width, generator=gen).to(device)


def partly_solved_state(model, x: torch.Tensor, iters: int = 6) -> list[torch.Tensor]:
    """A realistic state to time f on: ``iters`` Broyden steps from zeros (a warm-started
    stream's state looks like this, not like zeros)."""
    with torch.no_grad():
        z, _ = model.solve(x, max_iter=iters)
    return [t.clone() for t in z]


def panning_clip(size: tuple[int, int], num_frames: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a window panning smoothly across a larger random texture:
    consecutive frames are close, as in video, which is what warm starts exploit."""
    height, width = size
    gen = np.random.default_rng(seed)
    pad = 4 * num_frames + 8
    coarse = gen.integers(0, 256, size=(height // 8 + 2, (width + pad) // 8 + 2, 3))
    texture = np.kron(coarse, np.ones((8, 8, 1))).astype(np.float32)
    frames = []
    for t in range(num_frames):
        shift = 4 * t
        frames.append(texture[:height, shift : shift + width])
    return np.stack(frames).clip(0, 255).astype(np.uint8)
