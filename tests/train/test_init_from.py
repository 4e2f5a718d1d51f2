"""init_from: an official ImageNet-format checkpoint gives the backbone; the head stays new."""

from __future__ import annotations

import pytest
import torch
import yaml

from streamdeq.models import (
    CheckpointMismatchError,
    MDEQConfig,
    MDEQModel,
    export_official_state_dict,
)
from streamdeq.train import train
from streamdeq.train.init_from import load_backbone
from streamdeq.train.recipe import InitFrom

BACKBONE = {
    "num_branches": 2,
    "num_channels": [8, 16],
    "num_blocks": [1, 1],
    "expansion": 2,
    "num_groups": 4,
    "wnorm": True,
    "downsample_times": 2,
}


def write_official_checkpoint(tmp_path, channels=(8, 16)) -> tuple[InitFrom, MDEQModel]:
    """A tiny ImageNet-style classification MDEQ, saved as the official code would."""
    torch.manual_seed(123)
    config = MDEQConfig(
        **{**BACKBONE, "num_channels": channels},
        task="classification",
        num_classes=5,
        head_channels=(4, 8),
        final_chansize=16,
    )
    model = MDEQModel(config)
    with torch.no_grad():  # make the backbone unlike a fresh init
        for p in model.parameters():
            p.add_(0.1)
    official = {
        "GPUS": [0],
        "DATASET": {"DATASET": "imagenet"},
        "MODEL": {
            "NAME": "mdeq",
            "NUM_GROUPS": 4,
            "WNORM": True,
            "DOWNSAMPLE_TIMES": 2,
            "EXPANSION_FACTOR": 2,
            "NUM_CLASSES": 5,
            "EXTRA": {
                "FULL_STAGE": {
                    "NUM_MODULES": 1,
                    "NUM_BRANCHES": 2,
                    "BLOCK": "BASIC",
                    "NUM_BLOCKS": [1, 1],
                    "NUM_CHANNELS": list(channels),
                    "FUSE_METHOD": "SUM",
                    "HEAD_CHANNELS": [4, 8],
                    "FINAL_CHANSIZE": 16,
                }
            },
        },
    }
    yaml_path = tmp_path / "cls_tiny.yaml"
    yaml_path.write_text(yaml.safe_dump(official), encoding="utf-8")
    weights = tmp_path / "cls_tiny.pth"
    torch.save(export_official_state_dict(model), weights)
    return InitFrom(str(yaml_path), str(weights)), model


def seg_model() -> MDEQModel:
    torch.manual_seed(0)
    return MDEQModel(MDEQConfig(**BACKBONE, task="segmentation", num_classes=19, head_channels=()))


def test_backbone_comes_from_the_checkpoint_and_the_head_stays_new(tmp_path):
    source, classifier = write_official_checkpoint(tmp_path)
    model = seg_model()
    head_before = {k: v.clone() for k, v in model.task_head.state_dict().items()}
    loaded = load_backbone(model, source)
    assert loaded and not any(name.startswith("task_head.") for name in loaded)
    reference = classifier.state_dict()
    for name in loaded:
        torch.testing.assert_close(model.state_dict()[name], reference[name], msg=name)
    for name, value in model.task_head.state_dict().items():
        torch.testing.assert_close(value, head_before[name])


def test_a_backbone_of_another_width_is_a_mismatch_listing_tensors(tmp_path):
    source, _ = write_official_checkpoint(tmp_path, channels=(12, 24))
    with pytest.raises(CheckpointMismatchError, match="wrongly shaped"):
        load_backbone(seg_model(), source)


def test_a_recipe_with_init_from_trains_from_the_official_backbone(tmp_path, tiny_recipe):
    source, classifier = write_official_checkpoint(tmp_path)
    overrides = {**BACKBONE, "num_classes": 19, "f_thres": 4, "b_thres": 4}
    recipe = tiny_recipe(
        model={"overrides": overrides, "init_from": vars(source)},
        optim={"name": "sgd", "lr": 0.0},  # lr 0: the weights stay as loaded
        schedule={"max_steps": 1},
    )
    model = train(recipe).model
    weight = "fullstage.branches.0.blocks.0.conv1.weight_v"
    torch.testing.assert_close(model.state_dict()[weight], classifier.state_dict()[weight])


def test_a_detector_takes_the_checkpoint_into_its_backbone(tmp_path):
    from streamdeq.models import create_model

    source, official = write_official_checkpoint(tmp_path)
    torch.manual_seed(0)
    detector = create_model(
        "mdeq-det-tiny-synthetic", backbone=BACKBONE, rpn={"anchor_sizes": (8.0, 16.0, 32.0)}
    )
    fpn_before = {k: v.clone() for k, v in detector.state_dict().items() if "backbone" not in k}
    loaded = load_backbone(detector, source)
    assert loaded
    own = detector.backbone.state_dict()
    for key in loaded:
        assert torch.equal(own[key], official.state_dict()[key]), key
    for key, value in detector.state_dict().items():
        if key in fpn_before:
            assert torch.equal(value, fpn_before[key]), key
