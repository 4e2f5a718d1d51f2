"""Named MDEQ configurations (one per official experiment file) and ``create_model``.

A name says family, task, size and training data: ``mdeq-seg-small-cityscapes`` is the official
``experiments/cityscapes/seg_mdeq_SMALL.yaml``. An entry may point to bundled weights (a
safetensors file written by :func:`~.checkpoints.save_safetensors`); none of the official
configurations has bundled weights, since the official checkpoints are not redistributed here
(load them with :func:`~.checkpoints.load_official_mdeq`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from ..errors import SettingsError, UnknownModelError
from ..plugins import load_plugins
from ..registry import Registry
from .checkpoints import load_safetensors
from .config import MDEQConfig, ModelConfigError
from .pretrained import PretrainedInfo

#: Where relative weight paths of registry entries are looked up (package data).
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


class ModelConfig(Protocol):
    """What a registered config provides, whatever the model family (``MDEQConfig``,
    ``DetectorConfig``): a checked copy with fields changed, and its model."""

    def with_overrides(self, **overrides: Any) -> ModelConfig: ...

    def build(self) -> nn.Module: ...


class NoPretrainedWeightsError(ModelConfigError):
    """``pretrained=True`` for a model name without bundled weights."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its config, an optional weights file, a one-line description and
    the input contract of its weights (``pretrained``: mean/std, input size, training data; it
    takes precedence over what the weights file records, so an entry can describe files
    written before the contract was stored in them)."""

    name: str
    config: ModelConfig
    weights: Path | None = None
    description: str = ""
    pretrained: PretrainedInfo | None = None

    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        return self.weights if self.weights.is_absolute() else WEIGHTS_DIR / self.weights


MODELS: Registry[ModelEntry] = Registry("model", error=UnknownModelError, loader=load_plugins)


def register_model(
    name: str,
    config: ModelConfig,
    weights: str | Path | None = None,
    description: str = "",
    *,
    pretrained: PretrainedInfo | None = None,
    overwrite: bool = False,
) -> ModelEntry:
    """Add a named model. ``weights``: a safetensors file, absolute or relative to the
    package's ``weights/`` folder; ``pretrained``: the input contract of those weights."""
    if MODELS.registered(name) and not overwrite:
        raise ModelConfigError(f"a model named {name!r} is already registered")
    path = None if weights is None else Path(weights)
    entry = ModelEntry(name, config, path, description, pretrained)
    return MODELS.register(name, entry, overwrite=True)


def list_models() -> list[str]:
    return MODELS.names(sort=True)


def get_entry(name: str) -> ModelEntry:
    """The registered entry; an unknown name lists the known ones and the closest matches."""
    return MODELS.get(name)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The named config with ``overrides`` (its field names) applied."""
    config = get_entry(name).config
    try:
        return config.with_overrides(**overrides)
    except SettingsError as error:
        raise type(error)(f"{name}: {error}") from None


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build the named model (randomly initialised, in training mode), or with
    ``pretrained=True`` its bundled weights (in eval mode, with their input contract as
    ``model.pretrained_info``: the entry's, else the one the weights file records).

    Args:
        name: one of :func:`list_models`.
        pretrained: load the entry's bundled weights.
        overrides: config fields to change (e.g. ``num_channels=(8, 16, 32, 64)``); with
            pretrained weights they must keep the tensor shapes.

    Raises:
        UnknownModelError: the name is not registered.
        NoPretrainedWeightsError: ``pretrained=True`` but the entry has no weights.
    """
    entry = get_entry(name)
    config = get_config(name, **overrides)
    model = config.build()
    if not pretrained:
        return model
    path = entry.weights_path()
    if path is None:
        raise NoPretrainedWeightsError(
            f"{name} has no bundled weights; use create_model({name!r}) for a randomly "
            "initialised model, or load_official_mdeq(yaml, checkpoint) for the official "
            "checkpoint of this configuration"
        )
    model = load_safetensors(path, model=model)
    if entry.pretrained is not None:
        model.pretrained_info = entry.pretrained
    return model


def _cls(**values: Any) -> MDEQConfig:
    return MDEQConfig(task="classification", wnorm=True, num_groups=8, **values)


def segmentation_config(**values: Any) -> MDEQConfig:
    """An MDEQ segmentation config with the official Cityscapes experiments' shared values
    (weight norm, stride-4 stem, 19 classes, a 1x1 final conv, ...); ``values`` set the rest
    and may replace any of them."""
    shared = {
        "task": "segmentation",
        "wnorm": True,
        "num_groups": 8,
        "downsample_times": 2,
        "num_layers": 3,
        "num_classes": 19,
        "final_conv_kernel": 1,
        "head_channels": (),
    }
    return MDEQConfig(**{**shared, **values})


_seg = segmentation_config


_WIDE = (88, 176, 352, 704)
_SMALL = (32, 64, 128, 256)
_FOUR = (1, 1, 1, 1)

# Values from the official experiments/*/*.yaml files.
for _name, _config, _about in [
    (
        "mdeq-cls-tiny-cifar",
        _cls(
            num_branches=2,
            num_channels=(24, 24),
            num_blocks=(1, 1),
            expansion=5,
            dropout=0.25,
            downsample_times=0,
            f_thres=22,
            b_thres=24,
            num_layers=10,
            pretrain_steps=3000,
            num_classes=10,
            head_channels=(8, 16),
            final_chansize=200,
        ),
        "experiments/cifar/cls_mdeq_TINY.yaml",
    ),
    (
        "mdeq-cls-large-cifar",
        _cls(
            num_branches=4,
            num_channels=_SMALL,
            num_blocks=_FOUR,
            expansion=5,
            dropout=0.3,
            downsample_times=0,
            f_thres=18,
            b_thres=20,
            num_layers=10,
            pretrain_steps=20000,
            num_classes=10,
            head_channels=(14, 28, 56, 112),
            final_chansize=1680,
        ),
        "experiments/cifar/cls_mdeq_LARGE.yaml",
    ),
    (
        "mdeq-cls-small-imagenet",
        _cls(
            num_branches=4,
            num_channels=_SMALL,
            num_blocks=_FOUR,
            expansion=5,
            dropout=0.0,
            downsample_times=2,
            f_thres=26,
            b_thres=27,
            num_layers=5,
            pretrain_steps=500000,
            num_classes=1000,
            head_channels=(24, 48, 96, 192),
            final_chansize=2048,
        ),
        "experiments/imagenet/cls_mdeq_SMALL.yaml",
    ),
    (
        "mdeq-cls-large-imagenet",
        _cls(
            num_branches=4,
            num_channels=_WIDE,
            num_blocks=_FOUR,
            expansion=6,
            dropout=0.0,
            downsample_times=2,
            f_thres=24,
            b_thres=24,
            num_layers=4,
            pretrain_steps=550000,
            num_classes=1000,
            head_channels=(32, 64, 128, 256),
            final_chansize=2048,
        ),
        "experiments/imagenet/cls_mdeq_LARGE.yaml",
    ),
    (
        "mdeq-cls-xl-imagenet",
        _cls(
            num_branches=4,
            num_channels=_WIDE,
            num_blocks=_FOUR,
            expansion=6,
            dropout=0.0,
            downsample_times=2,
            f_thres=27,
            b_thres=27,
            num_layers=4,
            pretrain_steps=400000,
            num_classes=1000,
            head_channels=(32, 64, 128, 256),
            final_chansize=2048,
        ),
        "experiments/imagenet/cls_mdeq_XL.yaml (same network as LARGE; solver budgets differ)",
    ),
    (
        "mdeq-seg-small-cityscapes",
        _seg(
            num_branches=4,
            num_channels=_SMALL,
            num_blocks=_FOUR,
            expansion=5,
            dropout=0.05,
            f_thres=27,
            b_thres=30,
            pretrain_steps=60000,
        ),
        "experiments/cityscapes/seg_mdeq_SMALL.yaml",
    ),
    (
        "mdeq-seg-large-cityscapes",
        _seg(
            num_branches=4,
            num_channels=(80, 160, 320, 640),
            num_blocks=_FOUR,
            expansion=5,
            dropout=0.03,
            f_thres=26,
            b_thres=26,
            pretrain_steps=32000,
        ),
        "experiments/cityscapes/seg_mdeq_LARGE.yaml",
    ),
    (
        "mdeq-seg-xl-cityscapes",
        _seg(
            num_branches=4,
            num_channels=_WIDE,
            num_blocks=_FOUR,
            expansion=6,
            dropout=0.04,
            f_thres=26,
            b_thres=26,
            pretrain_steps=40000,
        ),
        "experiments/cityscapes/seg_mdeq_XL.yaml",
    ),
]:
    register_model(_name, _config, description=f"official {_about}")
