"""The segmentation models trained here (the official Cityscapes configurations are the MDEQ
family's, registered in :mod:`streamdeq.models.zoo`)."""

from __future__ import annotations

from ...data.labels import CITYSCAPES_CLASSES
from ...models.pretrained import generated_scenes_info
from ...models.zoo import register_model, segmentation_config

# Trained here: configs/seg_mdeq_tiny_synthetic.yaml on the generated street scenes
# (streamdeq.data.synthetic); the package ships its weights.
TINY_SYNTHETIC = segmentation_config(
    num_branches=4,
    num_channels=(8, 16, 32, 64),
    num_blocks=(1, 1, 1, 1),
    expansion=2,
    num_groups=4,
    dropout=0.0,
    f_thres=24,
    b_thres=16,
    num_layers=4,
    pretrain_steps=400,
)


#: What the bundled weights expect: the normalisation configs/seg_mdeq_tiny_synthetic.yaml trained
#: with (its data.mean / data.std: the recipe defaults, ImageNet's), full 128 x 256 frames (the
#: training crops are 96 x 192), the 19 Cityscapes classes.
TINY_SYNTHETIC_PRETRAINED = generated_scenes_info(
    TINY_SYNTHETIC, architecture="mdeq", class_names=CITYSCAPES_CLASSES
)


def register_models() -> None:
    register_model(
        "mdeq-seg-tiny-synthetic",
        TINY_SYNTHETIC,
        weights="mdeq-seg-tiny-synthetic.safetensors",
        description="4-branch MDEQ (8-64 ch) trained on generated street scenes, 128x256 frames",
        pretrained=TINY_SYNTHETIC_PRETRAINED,
    )
