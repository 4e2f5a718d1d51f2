"""A stand-in segmentation dataset (so these tests never wait on the street-scene generator)
and recipe helpers for tiny, seeded training runs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from streamdeq.train import Recipe, register_dataset
from streamdeq.train.datasets import list_datasets

STAND_IN = "stand-in-bands"


class BandScenes(Dataset):
    """Images of horizontal bands (sky 10 / building 2 / road 0 from top to bottom) whose
    boundaries and colours vary per item, plus an unlabelled (255) strip: a learnable
    per-pixel task with ignore pixels, seeded per item."""

    def __init__(self, split: str, num_items: int = 8, height: int = 32, width: int = 64):
        self.offset = 0 if split == "train" else 1000
        self.num_items, self.height, self.width = num_items, height, width

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = torch.Generator().manual_seed(self.offset + index)
        h, w = self.height, self.width
        top = int(torch.randint(h // 5, 2 * h // 5, (), generator=rng))
        bottom = int(torch.randint(3 * h // 5, 4 * h // 5, (), generator=rng))
        label = torch.zeros(h, w, dtype=torch.int64)
        label[:top] = 10
        label[top:bottom] = 2
        label[:, :2] = 255
        palette = {10: (70, 130, 180), 2: (110, 70, 70), 0: (128, 64, 128)}
        image = torch.zeros(3, h, w)
        for cls, colour in palette.items():
            jitter = torch.randint(-20, 21, (3,), generator=rng)
            image[:, label == cls] = (torch.tensor(colour) + jitter).float()[:, None]
        image += torch.randint(-8, 9, (3, h, w), generator=rng).float()
        return {"image": image.clamp(0, 255).to(torch.uint8), "label": label}


if STAND_IN not in list_datasets():
    register_dataset(STAND_IN, BandScenes)


def tiny_recipe_dict(out_dir: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A recipe for a 2-branch, 8-channel segmentation MDEQ on the stand-in data."""
    base: dict[str, Any] = {
        "model": {
            "name": "mdeq-seg-small-cityscapes",
            "overrides": {
                "num_branches": 2,
                "num_channels": [8, 16],
                "num_blocks": [1, 1],
                "expansion": 2,
                "num_groups": 4,
                "dropout": 0.0,
                "f_thres": 6,
                "b_thres": 6,
                "num_layers": 2,
            },
        },
        "data": {
            "dataset": STAND_IN,
            "train": {"num_items": 8},
            "val": {},
            "batch_size": 2,
            "cache": False,
        },
        "optim": {"name": "adamw", "lr": 0.01},
        "schedule": {"max_steps": 6, "warmup_steps": 1},
        "deq": {"pretrain_steps": 2},
        "train": {"seed": 0, "log_every": 1, "checkpoint_every": 100},
        "output": {"dir": out_dir},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


@pytest.fixture
def tiny_recipe(tmp_path):
    def make(**sections: dict[str, Any]) -> Recipe:
        return Recipe.from_dict(tiny_recipe_dict(str(tmp_path / "run"), **sections))

    return make
