from __future__ import annotations

import pytest
import torch

from streamdeq.models import MDEQConfig
from streamdeq.models.detection import DetectorConfig, MDEQDetector, RoIHeadSettings, RPNSettings


def tiny_config(**changes) -> DetectorConfig:
    """Two branches (strides 4 and 8, P6 at 16), 32 x 64 inputs, two classes (ids 11 and 13)."""
    backbone = MDEQConfig(
        task="segmentation",
        num_branches=2,
        num_channels=(8, 16),
        num_blocks=(1, 1),
        expansion=2,
        num_groups=4,
        downsample_times=2,
        f_thres=6,
        b_thres=6,
        num_layers=3,
        pretrain_steps=0,
        num_classes=1,
    )
    config = DetectorConfig(
        backbone=backbone,
        class_ids=(11, 13),
        class_names=("person", "car"),
        fpn_channels=8,
        rpn=RPNSettings(
            anchor_sizes=(8.0, 16.0, 32.0),
            batch_per_image=64,
            pre_nms_top_n_train=200,
            post_nms_top_n_train=100,
            pre_nms_top_n_test=100,
            post_nms_top_n_test=50,
        ),
        roi=RoIHeadSettings(
            output_size=4,
            representation_size=32,
            batch_per_image=32,
            canonical_scale=16.0,
            canonical_level=3,
        ),
    )
    return config.with_overrides(**changes) if changes else config


@pytest.fixture
def detector() -> MDEQDetector:
    torch.manual_seed(0)
    return MDEQDetector(tiny_config())


@pytest.fixture
def batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Two 32 x 64 images with boxes of both classes (and one of a class the detector lacks)."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 32, 64, generator=gen)
    targets = [
        {
            "boxes": torch.tensor([[4.0, 6.0, 14.0, 28.0], [30.0, 10.0, 60.0, 26.0]]),
            "labels": torch.tensor([11, 13]),
        },
        {
            "boxes": torch.tensor([[20.0, 2.0, 44.0, 20.0], [1.0, 1.0, 5.0, 5.0]]),
            "labels": torch.tensor([13, 7]),
        },
    ]
    return images, targets
