"""Named detector configurations, registered in the model zoo beside the MDEQs by the detection
task.

- ``mdeq-det-tiny-synthetic``: a small MDEQ detector for the generated street scenes (128 x 256
  frames, the six thing classes that get boxes), trainable on a CPU; bundled weights when
  ``weights/mdeq-det-tiny-synthetic.safetensors`` exists.
- ``mdeq-det-xl-imagenet-vid``: the paper's detector (§4.2): MDEQ-XL (the ImageNet
  classification model's equilibrium layer, N = 26) with Faster R-CNN + FPN, the 30 VID classes.
"""

from __future__ import annotations

from typing import Any

from ...data.imagenet_vid import VID_CLASS_NAMES
from ...data.labels import CITYSCAPES_CLASSES
from ...models.config import MDEQConfig
from ...models.detection.config import DetectorConfig, RoIHeadSettings, RPNSettings
from ...models.pretrained import generated_scenes_info
from ...models.zoo import WEIGHTS_DIR, register_model

#: Cityscapes train ids of the generated scenes' boxed things: person, rider, car, truck, bus,
#: bicycle.
SYNTHETIC_THING_IDS = (11, 12, 13, 14, 15, 18)


def _backbone(**values: Any) -> MDEQConfig:
    """A detector backbone: a 4-branch MDEQ built like the segmentation models (stride-4 stem,
    one block per branch), whose per-pixel head the detector replaces."""
    return MDEQConfig(
        task="segmentation",
        num_branches=4,
        num_blocks=(1, 1, 1, 1),
        dropout=0.0,
        wnorm=True,
        downsample_times=2,
        num_layers=4,
        num_classes=1,
        **values,
    )


TINY_SYNTHETIC_WEIGHTS = "mdeq-det-tiny-synthetic.safetensors"

TINY_SYNTHETIC = DetectorConfig(
    backbone=_backbone(
        num_channels=(8, 16, 32, 64),
        expansion=2,
        num_groups=4,
        f_thres=18,
        b_thres=18,
        pretrain_steps=450,
        # the official dense-prediction momentum (0.01) leaves the stem's running statistics
        # far from the batch statistics after a few hundred CPU steps, and an eval-mode
        # detector then sees an almost input-independent injection; 0.1 converges in ~50 steps
        bn_momentum=0.1,
    ),
    class_ids=SYNTHETIC_THING_IDS,
    class_names=tuple(CITYSCAPES_CLASSES[i] for i in SYNTHETIC_THING_IDS),
    fpn_channels=32,
    # objects in 128 x 256 frames are 6 to ~100 pixels tall: anchors an octave apart from 8
    rpn=RPNSettings(
        anchor_sizes=(8.0, 16.0, 32.0, 64.0, 128.0),
        aspect_ratios=(0.5, 1.0, 2.0, 4.0),
        batch_per_image=128,
        pre_nms_top_n_train=300,
        post_nms_top_n_train=150,
        pre_nms_top_n_test=300,
        post_nms_top_n_test=150,
    ),
    roi=RoIHeadSettings(
        canonical_scale=32.0,
        canonical_level=3,
        representation_size=128,
        batch_per_image=64,
        detections_per_image=50,
    ),
)

#: What the bundled weights expect: the normalisation configs/det_mdeq_tiny_synthetic.yaml trained
#: with (the recipe defaults, ImageNet's), whole 128 x 256 frames, N = 18 (its val_iters).
TINY_SYNTHETIC_PRETRAINED = generated_scenes_info(
    TINY_SYNTHETIC, architecture="mdeq-faster-rcnn", class_names=TINY_SYNTHETIC.class_names
)

XL_IMAGENET_VID = DetectorConfig(
    backbone=_backbone(
        num_channels=(88, 176, 352, 704),
        expansion=6,
        num_groups=8,
        f_thres=26,
        b_thres=26,
        pretrain_steps=0,
    ),
    class_ids=tuple(range(len(VID_CLASS_NAMES))),
    class_names=VID_CLASS_NAMES,
    fpn_channels=256,
)


def register_models() -> None:
    register_model(
        "mdeq-det-tiny-synthetic",
        TINY_SYNTHETIC,
        weights=TINY_SYNTHETIC_WEIGHTS if (WEIGHTS_DIR / TINY_SYNTHETIC_WEIGHTS).exists() else None,
        description="Faster R-CNN + FPN on a tiny MDEQ, generated street scenes (6 thing classes)",
        pretrained=TINY_SYNTHETIC_PRETRAINED,
    )
    register_model(
        "mdeq-det-xl-imagenet-vid",
        XL_IMAGENET_VID,
        description="the paper's detector: Faster R-CNN + FPN on MDEQ-XL, ImageNet VID (30 classes)",
    )
