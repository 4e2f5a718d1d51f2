"""A training recipe: one yaml file, read into frozen dataclasses, one per section.

Why frozen dataclasses and strict keys: a recipe is read once, before hours of training; a typo
(``weigth_decay``) that silently fell back to a default would only show as a worse model. Every
unknown key is rejected with a one-line error naming it and the valid keys of its section.

Sections: ``model`` (what to build and where its weights start), ``data`` (datasets, batch,
augmentation), ``optim`` (optimizer, clipping), ``schedule`` (steps, warm-up, cosine decay),
``deq`` (pretraining, solvers, Jacobian regulariser), ``train`` (task, seed, device, intervals),
``output`` (run directory, exported weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import SettingsError
from ..validation import check_choice, check_int, check_real

SECTIONS = ("model", "data", "optim", "schedule", "deq", "train", "output")
OPTIMIZERS = ("sgd", "adamw")


class RecipeError(SettingsError):
    """A recipe that cannot be read or holds an unknown or out-of-range setting."""


@dataclass(frozen=True)
class InitFrom:
    """Backbone weights from an official ImageNet MDEQ checkpoint (the head stays new).

    Attributes:
        official_yaml: the official experiment file of the checkpoint (e.g. cls_mdeq_XL.yaml).
        state_dict: the official checkpoint (.pth / .pkl state dict).
    """

    official_yaml: str
    state_dict: str


@dataclass(frozen=True)
class ModelSection:
    """Attributes:
    name: a registered model name (``streamdeq models``) whose config is the starting point.
    overrides: MDEQConfig fields changed from that config (e.g. num_channels).
    init_from: optional official checkpoint for the backbone (:class:`InitFrom`).
    """

    name: str = "mdeq-seg-small-cityscapes"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    init_from: InitFrom | None = None


@dataclass(frozen=True)
class AugmentSection:
    """Training-time augmentation of a segmentation sample, on tensors.

    Attributes:
        scale: (min, max) random rescale factor of image and label.
        crop: (height, width) random crop after rescaling (padded with ignore where smaller);
            None keeps the rescaled size (then scale must be (1, 1) so batches stack).
        flip: random horizontal flip with probability 1/2.
        color_jitter: brightness, contrast and saturation factors drawn in [1 - j, 1 + j].
    """

    scale: tuple[float, float] = (1.0, 1.0)
    crop: tuple[int, int] | None = None
    flip: bool = False
    color_jitter: float = 0.0


@dataclass(frozen=True)
class DataSection:
    """Attributes:
    dataset: a registered dataset name (see :func:`streamdeq.train.register_dataset`).
    train / val: keyword options of that dataset's factory for each split.
    batch_size: samples per process per step (the global batch is batch_size x processes).
    val_batch_size: samples per process per validation batch.
    cache: materialise the training set in memory once (generated data is costly to redo).
    mean / std: per-channel normalisation of images in [0, 1] (ImageNet's, as the official
        models).
    augment: :class:`AugmentSection`.
    """

    dataset: str = "synthetic"
    train: Mapping[str, Any] = field(default_factory=dict)
    val: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 4
    val_batch_size: int = 4
    cache: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    augment: AugmentSection = field(default_factory=AugmentSection)


@dataclass(frozen=True)
class OptimSection:
    """Attributes:
    name: "sgd" or "adamw".
    lr: peak learning rate (after warm-up).
    momentum / nesterov: SGD only.
    betas: AdamW only.
    weight_decay: L2 (SGD) or decoupled (AdamW) decay.
    grad_clip: max global gradient norm; None = no clipping.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None


@dataclass(frozen=True)
class ScheduleSection:
    """Attributes:
    max_steps: optimisation steps of the whole run (pretraining included).
    warmup_steps: linear warm-up from ``lr / warmup_steps`` to ``lr``.
    final_lr_factor: the cosine decays from lr to lr x this at ``max_steps``.
    """

    max_steps: int = 1000
    warmup_steps: int = 0
    final_lr_factor: float = 0.0


@dataclass(frozen=True)
class DEQSection:
    """The official MDEQ schedule: unrolled weight-tied pretraining, then the equilibrium.

    Attributes:
        pretrain_steps: first steps trained with f unrolled ``num_layers`` times from zeros
            (None: the model config's PRETRAIN_STEPS).
        num_layers: unrolled applications of f (None: the model config's NUM_LAYERS).
        solver: forward solver; f_thres its budget N (None: the model config's F_THRES).
        forward_tol: forward stop tolerance (relative); None = always N iterations.
        backward: :class:`streamdeq.deq.BackwardSettings` fields (default: implicit
            differentiation with the model config's B_THRES Broyden iterations).
        jac_weight: weight of the Jacobian penalty ||J_f(z*)||_F^2 / numel in the loss.
        jac_freq: fraction of DEQ steps that compute it (drawn per step from the seed).
        jac_samples: Hutchinson probes per sample.
    """

    pretrain_steps: int | None = None
    num_layers: int | None = None
    solver: str = "broyden"
    f_thres: int | None = None
    forward_tol: float | None = None
    backward: Mapping[str, Any] = field(default_factory=dict)
    jac_weight: float = 0.0
    jac_freq: float = 1.0
    jac_samples: int = 1


@dataclass(frozen=True)
class TrainSection:
    """Attributes:
    task: a registered task name ("segmentation"; detection registers its own).
    seed: seeds initialisation, sampling order, augmentation, dropout and Jacobian probes.
    device: "cpu", "cuda" or "cuda:N" (under torchrun each process takes cuda:LOCAL_RANK).
    amp: bfloat16 autocast (off by default: solvers are tuned in float32).
    log_every: steps between metrics log lines.
    val_every: steps between validations (0: only at the end).
    val_iters: solver iterations at validation (None: N, the model's F_THRES).
    val_max_batches: validation batches per process (None: the whole val set).
    checkpoint_every: steps between checkpoints (the last step always writes one).
    """

    task: str = "segmentation"
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    log_every: int = 10
    val_every: int = 0
    val_iters: int | None = None
    val_max_batches: int | None = None
    checkpoint_every: int = 100


@dataclass(frozen=True)
class OutputSection:
    """Attributes:
    dir: the run directory (checkpoint.pt, metrics.jsonl, recipe.yaml).
    export: the final weights as safetensors (None: ``dir/model.safetensors``).
    """

    dir: str = "runs/train"
    export: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A whole training run, section by section (see the module docstring)."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    deq: DEQSection = field(default_factory=DEQSection)
    train: TrainSection = field(default_factory=TrainSection)
    output: OutputSection = field(default_factory=OutputSection)

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Recipe:
        """A recipe from nested mappings; unknown keys raise :class:`RecipeError`."""
        return _build(cls, values, "recipe")

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def replace(self, section: str, **values: Any) -> Recipe:
        """A copy with some fields of one section changed (e.g. output dir from the CLI)."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **values)}
        )


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe yaml file."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except (OSError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecipeError(f"cannot read recipe {path}: {first}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"recipe {path} must be a mapping of sections ({', '.join(SECTIONS)})")
    return Recipe.from_dict(raw)


# ----------------------------------------------------------------------------- building

_NESTED = {
    (Recipe, "model"): ModelSection,
    (Recipe, "data"): DataSection,
    (Recipe, "optim"): OptimSection,
    (Recipe, "schedule"): ScheduleSection,
    (Recipe, "deq"): DEQSection,
    (Recipe, "train"): TrainSection,
    (Recipe, "output"): OutputSection,
    (ModelSection, "init_from"): InitFrom,
    (DataSection, "augment"): AugmentSection,
}
_TUPLES = {"scale", "crop", "mean", "std", "betas"}


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise RecipeError(f"{where} must be a mapping, got {type(values).__name__}")
    known = [f.name for f in fields(cls)]
    for key in values:
        if key not in known:
            raise RecipeError(
                f"unknown key {where}.{key}; valid keys of {where}: {', '.join(known)}"
            )
    kwargs = {}
    for key, value in values.items():
        nested = _NESTED.get((cls, key))
        if nested is not None and value is not None:
            kwargs[key] = _build(nested, value, key if cls is Recipe else f"{where}.{key}")
        elif key in _TUPLES and value is not None:
            if not isinstance(value, (list, tuple)):
                raise RecipeError(f"{where}.{key} must be a list, got {value!r}")
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- checking


def _validate(recipe: Recipe) -> None:
    def fail(msg: str) -> None:
        raise RecipeError(msg)

    def positive_int(name: str, value: Any, minimum: int = 1) -> None:
        check_int(name, value, minimum=minimum, error=RecipeError)

    def number(name: str, value: Any, low: float, high: float | None = None) -> None:
        check_real(name, value, minimum=low, maximum=high, error=RecipeError)

    data, optim, sched, deq, train = (
        recipe.data,
        recipe.optim,
        recipe.schedule,
        recipe.deq,
        recipe.train,
    )
    if not isinstance(recipe.model.overrides, Mapping):
        fail("model.overrides must be a mapping of MDEQConfig fields")
    positive_int("data.batch_size", data.batch_size)
    positive_int("data.val_batch_size", data.val_batch_size)
    for name in ("train", "val"):
        if not isinstance(getattr(data, name), Mapping):
            fail(f"data.{name} must be a mapping of dataset options")
    for name in ("mean", "std"):
        if len(getattr(data, name)) != 3:
            fail(f"data.{name} must have 3 entries (R, G, B)")
    if any(s <= 0 for s in data.std):
        fail("data.std entries must be > 0")
    aug = data.augment
    if len(aug.scale) != 2 or not 0 < aug.scale[0] <= aug.scale[1]:
        fail(f"data.augment.scale must be [min, max] with 0 < min <= max, got {list(aug.scale)}")
    if aug.crop is not None and (len(aug.crop) != 2 or min(aug.crop) < 1):
        fail(f"data.augment.crop must be [height, width] (positive), got {list(aug.crop)}")
    if aug.crop is None and aug.scale != (1.0, 1.0):
        fail("data.augment.scale needs data.augment.crop (rescaled samples must be cropped)")
    number("data.augment.color_jitter", aug.color_jitter, 0.0, 1.0)
    check_choice("optim.name", optim.name, OPTIMIZERS, error=RecipeError)
    number("optim.lr", optim.lr, 0.0)
    number("optim.momentum", optim.momentum, 0.0, 1.0)
    number("optim.weight_decay", optim.weight_decay, 0.0)
    if optim.grad_clip is not None:
        number("optim.grad_clip", optim.grad_clip, 0.0)
    positive_int("schedule.max_steps", sched.max_steps)
    positive_int("schedule.warmup_steps", sched.warmup_steps, 0)
    number("schedule.final_lr_factor", sched.final_lr_factor, 0.0, 1.0)
    if deq.pretrain_steps is not None:
        positive_int("deq.pretrain_steps", deq.pretrain_steps, 0)
    for name in ("num_layers", "f_thres"):
        if getattr(deq, name) is not None:
            positive_int(f"deq.{name}", getattr(deq, name))
    if deq.forward_tol is not None:
        number("deq.forward_tol", deq.forward_tol, 0.0)
    if not isinstance(deq.backward, Mapping):
        fail("deq.backward must be a mapping of BackwardSettings fields")
    number("deq.jac_weight", deq.jac_weight, 0.0)
    number("deq.jac_freq", deq.jac_freq, 0.0, 1.0)
    positive_int("deq.jac_samples", deq.jac_samples)
    positive_int("train.log_every", train.log_every)
    positive_int("train.val_every", train.val_every, 0)
    positive_int("train.checkpoint_every", train.checkpoint_every)
    if train.val_iters is not None:
        positive_int("train.val_iters", train.val_iters)
    if train.val_max_batches is not None:
        positive_int("train.val_max_batches", train.val_max_batches)
    check_int("train.seed", train.seed, minimum=None, error=RecipeError)
    if not (train.device == "cpu" or str(train.device).startswith("cuda")):
        fail(f"train.device must be cpu, cuda or cuda:N, got {train.device!r}")
