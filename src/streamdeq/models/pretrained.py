"""What a set of trained weights expects of its input, carried with the weights.

Why: weights trained with one normalisation and run with another give confident nonsense, and
nothing in the output says so. timm's ``PretrainedCfg`` ties the input contract to the weights;
here :class:`PretrainedInfo` does the same and travels inside our safetensors files (next to the
model config, see :func:`~.checkpoints.save_safetensors`), on registry entries
(:class:`~.zoo.ModelEntry`) and on a loaded model as ``model.pretrained_info``, where the stream
reads its mean and std.

Format versions: 1 is the first file format with this record; files without it (written before)
read as version 0, their contract derived from the config with the ImageNet statistics every
model then used (:func:`derive_pretrained_info`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import SettingsError
from ..stream.frames import IMAGENET_MEAN, IMAGENET_STD
from ..validation import check_choice, check_int, check_real

#: The file format that stores a :class:`PretrainedInfo`; 0 marks one derived for an older file.
FORMAT_VERSION = 1
#: Channel orders a stream can feed (frames are decoded as RGB).
COLOR_ORDERS = ("RGB",)
#: ``trained_on`` of models trained on :mod:`streamdeq.data.synthetic` only.
GENERATED_SCENES = "generated street scenes"


class PretrainedInfoError(SettingsError):
    """A pretrained-info record with a missing or invalid field."""


@dataclass(frozen=True)
class PretrainedInfo:
    """The input contract of trained weights (timm's ``PretrainedCfg``, for streamdeq).

    Attributes:
        task: "segmentation", "classification" or "detection".
        architecture: the model family, e.g. "mdeq" or "mdeq-faster-rcnn".
        mean, std: per-channel (RGB) normalisation the weights were trained with, applied to
            [0, 1] values.
        color_order: channel order of the input ("RGB").
        class_names: a name per output class, in output order (empty: not recorded).
        input_size: (H, W) of the frames the model expects at inference (not the training
            crop); None when any size works.
        f_thres: N, the full-solve iteration budget the weights were validated with.
        trained_on: a short description of the training data ("cityscapes", "generated street
            scenes"); None for random weights or when unknown.
        format_version: :data:`FORMAT_VERSION` for a record written with the weights, 0 for one
            derived from an older file's config.
    """

    task: str
    architecture: str = "mdeq"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "RGB"
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    f_thres: int | None = None
    trained_on: str | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        error = PretrainedInfoError
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3:
                raise error(f"{name} must be 3 numbers (R, G, B), got {value!r}", field=name)
            minimum = {"exclusive_minimum": 0.0} if name == "std" else {}
            for channel in value:
                check_real(name, channel, label=f"each {name} entry", error=error, **minimum)
            object.__setattr__(self, name, tuple(float(v) for v in value))
        check_choice("color_order", self.color_order, COLOR_ORDERS, error=error)
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) != 2:
                raise error(
                    f"input_size must be (H, W), got {self.input_size!r}", field="input_size"
                )
            for side in size:
                check_int("input_size", side, label="each input_size side", error=error)
            object.__setattr__(self, "input_size", size)
        check_int("f_thres", self.f_thres, optional=True, error=error)
        check_int("format_version", self.format_version, minimum=0, error=error)

    @property
    def generated_only(self) -> bool:
        """Whether the weights saw only generated scenes (so real footage is out of reach)."""
        return self.trained_on is not None and "generated" in self.trained_on.lower()

    def with_overrides(self, **changes: Any) -> PretrainedInfo:
        """A checked copy with fields changed."""
        return replace(self, **changes)

    def to_json(self) -> str:
        values = asdict(self)
        for name in ("mean", "std", "class_names", "input_size"):
            if values[name] is not None:
                values[name] = list(values[name])
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PretrainedInfo:
        """The record :meth:`to_json` wrote; fields a newer version added are ignored, so a
        newer file still loads here with what this version understands."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise PretrainedInfoError(f"pretrained info is not valid JSON ({err})") from None
        if not isinstance(values, Mapping) or "task" not in values:
            raise PretrainedInfoError("pretrained info must be a JSON object with a task")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def derive_pretrained_info(model: object, format_version: int = 0) -> PretrainedInfo | None:
    """The contract of ``model`` as far as its config tells it, with the ImageNet statistics
    (what every model used before the contract was recorded); None when the model has no
    config to read. ``trained_on`` stays None: a config does not say what data it saw."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    backbone = getattr(config, "backbone", None)
    if backbone is not None:  # a detector's config wraps its MDEQ
        task, architecture = "detection", "mdeq-faster-rcnn"
    else:
        task, architecture = str(getattr(config, "task", "classification")), "mdeq"
    return PretrainedInfo(
        task=task,
        architecture=architecture,
        class_names=tuple(getattr(config, "class_names", ())),
        f_thres=getattr(config, "f_thres", None),
        format_version=format_version,
    )


def pretrained_info_of(model: object) -> PretrainedInfo | None:
    """``model.pretrained_info`` when the model carries one (None otherwise)."""
    info = getattr(model, "pretrained_info", None)
    return info if isinstance(info, PretrainedInfo) else None


def generated_scenes_info(
    config: Any, *, architecture: str, class_names: tuple[str, ...]
) -> PretrainedInfo:
    """The contract of a model trained here on the generated street scenes
    (:mod:`streamdeq.data.synthetic`) by a recipe with the default normalisation (ImageNet's):
    whole 128 x 256 frames, N = the config's ``f_thres``."""
    return PretrainedInfo(
        task=config.task,
        architecture=architecture,
        class_names=tuple(class_names),
        input_size=(128, 256),
        f_thres=config.f_thres,
        trained_on=GENERATED_SCENES,
    )
