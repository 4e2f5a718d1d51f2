"""A tiny streamable DEQ, a fake clock and synthetic clips, shared by the stream tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from streamdeq.stream import IMAGENET_MEAN, IMAGENET_STD


class FakeClock:
    """Seconds that advance only when told to: the tiny model advances it as it computes."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000.0


class TinyDEQ(nn.Module):
    """Two branches like a small MDEQ: branch 0 at 1/2 resolution gets the injection, branch 1 at
    1/4 gets none (None entry) and talks to branch 0 through down/upsampling. f is a contraction
    (tanh of maps with small weights), batch rows are independent.

    With ``clock``, every call of f advances it by ``eval_ms`` and inject + head together by
    ``overhead_ms``, so latencies are exact and a slowdown is one assignment away.
    """

    def __init__(self, seed: int = 0, f_thres: int = 12, clock: FakeClock | None = None):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)

        def conv(cin, cout, k, scale, stride=1):
            layer = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scale)
                layer.bias.copy_(torch.randn(cout, generator=gen) * 0.1)
            return layer

        self.embed = conv(3, 4, 3, 0.3, stride=2)
        self.mix0 = conv(4, 4, 3, 0.08)
        self.mix1 = conv(6, 6, 3, 0.08)
        self.up = conv(6, 4, 1, 0.2)
        self.down = conv(4, 6, 1, 0.2)
        self.classify = conv(10, 5, 1, 0.5)
        self.config = SimpleNamespace(f_thres=f_thres)
        self.input_multiple = 4
        self.clock = clock
        self.eval_ms = 1.0
        self.overhead_ms = 1.0
        self.f_calls = 0
        self.eval()

    def _tick(self, ms: float) -> None:
        if self.clock is not None:
            self.clock.advance_ms(ms)

    def inject(self, x):
        if x.shape[-1] % self.input_multiple or x.shape[-2] % self.input_multiple:
            raise ValueError("frame size must be a multiple of 4")
        self._tick(self.overhead_ms / 2)
        return [self.embed(x), None]

    def init_state(self, injection):
        inj = injection[0]
        b, _, h, w = inj.shape
        return [inj.new_zeros(b, 4, h, w), inj.new_zeros(b, 6, h // 2, w // 2)]

    def f(self, z, injection):
        self.f_calls += 1
        self._tick(self.eval_ms)
        z0, z1 = z
        up = F.interpolate(self.up(z1), size=z0.shape[-2:], mode="nearest")
        new0 = torch.tanh(self.mix0(z0) + injection[0] + up)
        new1 = torch.tanh(self.mix1(z1) + self.down(F.avg_pool2d(z0, 2)))
        return [new0, new1]

    def head(self, z):
        self._tick(self.overhead_ms / 2)
        z0, z1 = z
        up = F.interpolate(z1, size=z0.shape[-2:], mode="nearest")
        return self.classify(torch.cat([z0, up], dim=1))


def normalise(frame: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) of an (H, W, 3) uint8 frame, ImageNet-normalised, padded to 4 with zeros:
    an independent statement of the engine's preprocessing."""
    x = torch.from_numpy(frame).permute(2, 0, 1).float()[None] / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % 4, 0, -h % 4))


def panning_scene(
    seed: int, frames: int, height: int = 16, width: int = 24, step: int = 1
) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames of a smooth random scene (coarse noise, bilinearly upsampled, on
    a random tint) under a camera panning ``step`` px a frame; each seed is another scene."""
    rng = np.random.default_rng(seed)
    canvas_w = width + step * frames
    coarse = torch.from_numpy(rng.normal(size=(1, 3, height // 6 + 2, canvas_w // 6 + 2)))
    canvas = F.interpolate(coarse, size=(height, canvas_w), mode="bilinear", align_corners=False)
    tint = torch.from_numpy(rng.uniform(0.25, 0.75, size=(3, 1, 1)))
    canvas = (tint + 0.15 * canvas[0]).clamp(0, 1)
    return [
        (canvas[:, :, step * t : step * t + width].permute(1, 2, 0).numpy() * 255)
        .round()
        .astype(np.uint8)
        for t in range(frames)
    ]


def clip_with_cuts(scene_frames: int = 25, scenes: int = 3) -> list[np.ndarray]:
    """Scenes of ``scene_frames`` frames each, back to back: cuts at multiples of it."""
    return [frame for seed in range(scenes) for frame in panning_scene(seed + 1, scene_frames)]


def states_close(a, b, **tol) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **tol)


@pytest.fixture
def model() -> TinyDEQ:
    torch.manual_seed(0)
    return TinyDEQ()


@pytest.fixture
def clip() -> list[np.ndarray]:
    return panning_scene(seed=1, frames=8)
