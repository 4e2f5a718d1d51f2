from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from streamdeq.models import load_safetensors
from streamdeq.models.detection import LOSS_NAMES, MDEQDetector
from streamdeq.train import Recipe, get_task, register_dataset, train
from streamdeq.train.datasets import list_datasets

STAND_IN = "stand-in-boxes"


class BoxScenes(Dataset):
    """32 x 64 dark images with one or two bright rectangles: class 11 tall, class 13 wide."""

    def __init__(self, split: str, num_items: int = 4) -> None:
        self.offset = 0 if split == "train" else 1000
        self.num_items = num_items

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = torch.Generator().manual_seed(self.offset + index)
        image = torch.randint(0, 40, (3, 32, 64), generator=rng, dtype=torch.uint8)
        x = int(torch.randint(0, 30, (), generator=rng))
        y = int(torch.randint(0, 10, (), generator=rng))
        boxes = torch.tensor(
            [[x, y, x + 8, y + 20], [x + 10, y + 4, x + 34, y + 14]], dtype=torch.float32
        )
        for x1, y1, x2, y2 in boxes.long().tolist():
            image[:, y1:y2, x1:x2] = 220
        return {"image": image, "boxes": boxes, "classes": torch.tensor([11, 13])}


if STAND_IN not in list_datasets():
    register_dataset(STAND_IN, BoxScenes)


def _recipe(out_dir: str, **sections: dict[str, Any]) -> Recipe:
    base: dict[str, Any] = {
        "model": {
            "name": "mdeq-det-tiny-synthetic",
            "overrides": {
                "backbone": {
                    "num_branches": 2,
                    "num_channels": [8, 16],
                    "num_blocks": [1, 1],
                    "f_thres": 4,
                    "b_thres": 4,
                    "num_layers": 2,
                },
                "class_ids": [11, 13],
                "class_names": ["person", "car"],
                "fpn_channels": 8,
                "rpn": {
                    "anchor_sizes": [8, 16, 32],
                    "batch_per_image": 32,
                    "pre_nms_top_n_train": 100,
                },
                "roi": {"output_size": 4, "representation_size": 16, "batch_per_image": 16},
            },
        },
        "data": {
            "dataset": STAND_IN,
            "train": {},
            "val": {"num_items": 2},
            "batch_size": 2,
            "cache": False,
        },
        "optim": {"name": "adamw", "lr": 0.003},
        "schedule": {"max_steps": 2, "warmup_steps": 1},
        "deq": {"pretrain_steps": 1, "jac_weight": 0.5},
        "train": {"task": "detection", "seed": 0, "log_every": 1, "checkpoint_every": 100},
        "output": {"dir": out_dir},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Recipe.from_dict(base)


def test_flipping_a_sample_mirrors_its_boxes_with_the_image(tmp_path):
    recipe = _recipe(str(tmp_path), data={"augment": {"flip": True}})
    task = get_task("detection")
    item = BoxScenes("train")[0]
    flipped = None
    for seed in range(8):  # some seed flips (probability 1/2 each)
        sample = task.prepare(item, recipe, torch.Generator().manual_seed(seed))
        if not torch.equal(sample["image"], task.prepare(item, recipe, None)["image"]):
            flipped = sample
            break
    assert flipped is not None
    for x1, y1, x2, y2 in flipped["target"]["boxes"].long().tolist():
        assert (flipped["image"][:, y1:y2, x1:x2] > 0.8).all()


def test_detection_loss_is_the_sum_of_the_four_parts(tmp_path):
    task = get_task("detection")
    parts = {name: torch.tensor(float(k + 1)) for k, name in enumerate(LOSS_NAMES)}
    total, logged = task.loss(parts, {})
    assert total.item() == 10.0 and set(logged) == set(LOSS_NAMES)


def test_the_trainer_trains_validates_and_exports_a_detector(tmp_path):
    result = train(_recipe(str(tmp_path / "run")))
    assert result.steps == 2
    assert set(LOSS_NAMES) <= set(result.last_log) and "jac_loss" in result.last_log
    assert 0.0 <= result.validation["map50"] <= 1.0
    exported = load_safetensors(result.export)
    assert isinstance(exported, MDEQDetector) and exported.config.class_ids == (11, 13)
