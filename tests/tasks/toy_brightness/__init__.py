"""A toy third task, to show that adding a task is adding a package: brightness regression.

The model is the tiny MDEQ backbone with a one-channel head that predicts each pixel's
brightness (at 1/4 of the frame); the renderer paints the prediction as a grey strip and reports
its mean; the metric is the mean absolute error against the frame's true brightness. Nothing
outside this folder knows about it: it registers itself like the built-in tasks, and is found
through the ``streamdeq.tasks`` entry-point group or ``STREAMDEQ_PLUGINS``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamdeq.models import MDEQConfig, MDEQModel
from streamdeq.models.zoo import register_model
from streamdeq.tasks import Task, register_task

BACKBONE = MDEQConfig(
    task="segmentation",
    num_branches=2,
    num_channels=(8, 16),
    num_blocks=(1, 1),
    expansion=2,
    num_groups=4,
    wnorm=True,
    downsample_times=2,
    f_thres=8,
    b_thres=8,
    num_layers=2,
    num_classes=1,
    head_channels=(),
)


@dataclass(frozen=True)
class BrightnessConfig:
    """The toy model's config (the model zoo's ModelConfig protocol: overrides and build)."""

    backbone: MDEQConfig = field(default_factory=lambda: BACKBONE)
    task: str = "brightness"

    @property
    def f_thres(self) -> int:
        return self.backbone.f_thres

    def with_overrides(self, **overrides: Any) -> BrightnessConfig:
        return dataclasses.replace(self, backbone=self.backbone.with_overrides(**overrides))

    def build(self) -> BrightnessModel:
        return BrightnessModel(self)


class BrightnessModel(nn.Module):
    """Streamable: the backbone's inject/init_state/f, and a head of its own."""

    def __init__(self, config: BrightnessConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = MDEQModel(config.backbone)
        self.readout = nn.Conv2d(config.backbone.num_channels[0], 1, kernel_size=1)

    @property
    def input_multiple(self) -> int:
        return self.backbone.input_multiple

    def inject(self, x: Tensor) -> list[Tensor | None]:
        return self.backbone.inject(x)

    def init_state(self, injection: list[Tensor | None]) -> list[Tensor]:
        return self.backbone.init_state(injection)

    def f(self, z: list[Tensor], injection: list[Tensor | None]) -> list[Tensor]:
        return self.backbone.f(z, injection)

    def head(self, z: list[Tensor]) -> Tensor:
        """(B, 1, H/4, W/4) predicted brightness in [0, 1]."""
        return torch.sigmoid(self.readout(z[0]))


class BrightnessRenderer:
    """The prediction as a grey strip along the frame's top; stats: its mean."""

    columns = ("mean_brightness",)

    def __init__(self, model: Any) -> None:
        self.model = model

    def render(self, frame: np.ndarray, output: Tensor) -> tuple[np.ndarray, dict[str, Any]]:
        mean = float(output.mean())
        drawn = frame.copy()
        drawn[: max(1, frame.shape[0] // 10)] = round(255 * mean)
        return drawn, {"mean_brightness": mean}


class BrightnessMetric:
    """Mean absolute error of the predicted brightness against the frame's (H, W) brightness."""

    def __init__(self, model: Any) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, output: Tensor, target: Any) -> None:
        truth = torch.as_tensor(np.asarray(target), dtype=torch.float32)[None, None]
        predicted = F.interpolate(output[None].float(), size=truth.shape[-2:], mode="bilinear")
        self.total += float((predicted - truth).abs().mean())
        self.count += 1

    def all_reduce(self) -> None:  # one process in the tests
        pass

    def compute(self) -> dict[str, float | int]:
        return {"mae": self.total / max(self.count, 1), "frames": self.count}


def brightness_of(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) brightness in [0, 1]."""
    return frames.astype(np.float32).mean(axis=-1) / 255.0


TASK = Task(
    name="brightness",
    short_name="brightness",
    description="predicted brightness as a grey strip",
    renderer=BrightnessRenderer,
    metric=BrightnessMetric,
    headline="mae",
    headline_label="brightness MAE",
    target_key="brightness map",
)

register_task(TASK, overwrite=True)
register_model(
    "toy-brightness-tiny",
    BrightnessConfig(),
    description="toy task: per-pixel brightness on a 2-branch MDEQ",
    overwrite=True,
)
