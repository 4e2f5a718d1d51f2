"""The settings of a Faster R-CNN + FPN detector on an MDEQ backbone, as frozen dataclasses.

Defaults are those of the standard Faster R-CNN + FPN recipe (Ren et al. 2015, Lin et al. 2017)
that the paper's detector follows (its §4.2 uses mmdetection's Faster R-CNN with the ResNet
swapped for MDEQ-XL). The pyramid levels are the MDEQ branches: branch i has stride
2**(downsample_times + i) (4, 8, 16, 32 for the official models), plus one extra level made by
max-pooling the coarsest (P6), as in FPN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..config import MDEQConfig, ModelConfigError

TASK = "detection"


class DetectorConfigError(ModelConfigError):
    """Detector settings that cannot build a detector (sizes, thresholds, class lists)."""


@dataclass(frozen=True)
class RPNSettings:
    """Region proposal network.

    Attributes:
        anchor_sizes: one anchor size (pixels, sqrt of the area) per pyramid level, finest first;
            as many as backbone branches + 1 (the extra P6 level).
        aspect_ratios: anchor height / width ratios, the same at every level.
        fg_iou, bg_iou: anchors matching a box by IoU >= fg_iou are positive, < bg_iou negative,
            in between ignored; each box's best anchors are positive too.
        batch_per_image, positive_fraction: anchors sampled per image for the losses, at most
            this share of them positive.
        pre_nms_top_n_train / _test: proposals kept per level (by objectness) before NMS.
        post_nms_top_n_train / _test: proposals kept per image after NMS.
        nms_iou: NMS threshold among proposals (per level).
        min_size: proposals thinner than this (pixels) are dropped.
    """

    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    fg_iou: float = 0.7
    bg_iou: float = 0.3
    batch_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_top_n_train: int = 2000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_test: int = 1000
    nms_iou: float = 0.7
    min_size: float = 1e-3


@dataclass(frozen=True)
class RoIHeadSettings:
    """Box head on pooled proposals.

    Attributes:
        output_size, sampling_ratio: RoIAlign bins per side and samples per bin (<= 0: adaptive).
        canonical_scale, canonical_level: a box of sqrt(area) = canonical_scale pools from level
            canonical_level (FPN Eq. 1: k = k0 + log2(sqrt(wh) / 224)).
        representation_size: width of the two fully connected layers.
        fg_iou, bg_iou: proposals matching a box by IoU >= fg_iou are foreground, < bg_iou
            background.
        batch_per_image, positive_fraction: proposals sampled per image for the losses.
        box_weights: (wx, wy, ww, wh) of the box coder.
        score_thresh, nms_iou, detections_per_image: post-processing (per-class NMS).
    """

    output_size: int = 7
    sampling_ratio: int = 2
    canonical_scale: float = 224.0
    canonical_level: int = 4
    representation_size: int = 1024
    fg_iou: float = 0.5
    bg_iou: float = 0.5
    batch_per_image: int = 512
    positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    score_thresh: float = 0.05
    nms_iou: float = 0.5
    detections_per_image: int = 100


@dataclass(frozen=True)
class DetectorConfig:
    """An MDEQ detector: the backbone's config, the classes, the neck and the two heads.

    Attributes:
        backbone: the MDEQ (its segmentation/classification head is not built).
        class_ids: the dataset's label ids of the detected classes (e.g. Cityscapes train ids
            11 person, 13 car); detections report these ids, and targets use them.
        class_names: a name per class id (for drawing).
        fpn_channels: channels of every pyramid level. The lateral 1x1 convs take the MDEQ
            branch widths (``backbone.num_channels``) instead of a ResNet's stage widths.
        rpn, roi: :class:`RPNSettings`, :class:`RoIHeadSettings`.
    """

    backbone: MDEQConfig
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    fpn_channels: int = 256
    rpn: RPNSettings = field(default_factory=RPNSettings)
    roi: RoIHeadSettings = field(default_factory=RoIHeadSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", tuple(int(c) for c in self.class_ids))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        _validate(self)

    # the members a stream and a trainer read from ``model.config``
    @property
    def task(self) -> str:
        return TASK

    @property
    def num_classes(self) -> int:
        """Object classes (without the background)."""
        return len(self.class_ids)

    @property
    def f_thres(self) -> int:
        """N, the backbone's full-solve iterations."""
        return self.backbone.f_thres

    @property
    def b_thres(self) -> int:
        return self.backbone.b_thres

    @property
    def pretrain_steps(self) -> int:
        return self.backbone.pretrain_steps

    @property
    def num_layers(self) -> int:
        return self.backbone.num_layers

    @property
    def dropout(self) -> float:
        return self.backbone.dropout

    @property
    def num_channels(self) -> tuple[int, ...]:
        return self.backbone.num_channels

    @property
    def num_blocks(self) -> tuple[int, ...]:
        return self.backbone.num_blocks

    @property
    def strides(self) -> tuple[int, ...]:
        """Pixels per feature pixel of each pyramid level (the backbone's branches, then P6)."""
        first = 2**self.backbone.downsample_times
        return tuple(first * 2**i for i in range(self.backbone.num_branches + 1))

    def class_name(self, class_id: int) -> str:
        try:
            return self.class_names[self.class_ids.index(int(class_id))]
        except ValueError:
            return f"class {class_id}"

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["backbone"] = self.backbone.to_dict()
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DetectorConfig:
        values = dict(values)
        _reject_unknown(cls, values, "detector")
        values["backbone"] = MDEQConfig.from_dict(values["backbone"])
        for name, settings in (("rpn", RPNSettings), ("roi", RoIHeadSettings)):
            if name in values:
                _reject_unknown(settings, values[name], name)
                values[name] = settings(**_tuples(values[name]))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> DetectorConfig:
        return cls.from_dict(json.loads(text))

    def build(self):
        """The :class:`~.detector.MDEQDetector` of this config (randomly initialised)."""
        from .detector import MDEQDetector

        return MDEQDetector(self)

    def with_overrides(self, **overrides: Any) -> DetectorConfig:
        """A copy with fields changed; ``backbone``, ``rpn`` and ``roi`` take a mapping of the
        fields to change in that part (e.g. ``backbone={"f_thres": 12}``)."""
        _reject_unknown(DetectorConfig, overrides, "detector")
        changes = dict(overrides)
        for name in ("backbone", "rpn", "roi"):
            if isinstance(changes.get(name), Mapping):
                part = getattr(self, name)
                _reject_unknown(type(part), changes[name], name)
                changes[name] = replace(part, **_tuples(changes[name]))
        return replace(self, **changes)


def _tuples(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _reject_unknown(cls: type, values: Mapping[str, Any], section: str) -> None:
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise DetectorConfigError(
            f"unknown {section} setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )


def _validate(cfg: DetectorConfig) -> None:
    def fail(msg: str) -> None:
        raise DetectorConfigError(f"invalid detector config: {msg}")

    if not cfg.class_ids:
        fail("class_ids is empty; a detector needs at least one class")
    if len(set(cfg.class_ids)) != len(cfg.class_ids):
        fail(f"class_ids has duplicates: {cfg.class_ids}")
    if len(cfg.class_names) != len(cfg.class_ids):
        fail(f"{len(cfg.class_names)} class_names for {len(cfg.class_ids)} class_ids")
    if cfg.fpn_channels < 1:
        fail(f"fpn_channels must be >= 1, got {cfg.fpn_channels}")
    levels = cfg.backbone.num_branches + 1
    if len(cfg.rpn.anchor_sizes) != levels:
        fail(
            f"rpn.anchor_sizes has {len(cfg.rpn.anchor_sizes)} sizes for {levels} pyramid levels "
            f"({cfg.backbone.num_branches} branches + P6)"
        )
    if not cfg.rpn.aspect_ratios or any(r <= 0 for r in cfg.rpn.aspect_ratios):
        fail(f"rpn.aspect_ratios must be positive, got {cfg.rpn.aspect_ratios}")
    for name, settings in (("rpn", cfg.rpn), ("roi", cfg.roi)):
        if not 0.0 <= settings.bg_iou <= settings.fg_iou <= 1.0:
            fail(
                f"{name} needs 0 <= bg_iou <= fg_iou <= 1, got {settings.bg_iou}, {settings.fg_iou}"
            )
        if not 0.0 < settings.positive_fraction <= 1.0 or settings.batch_per_image < 1:
            fail(f"{name}.positive_fraction must be in (0, 1] and batch_per_image >= 1")
    if cfg.roi.output_size < 1 or cfg.roi.representation_size < 1:
        fail("roi.output_size and roi.representation_size must be >= 1")
