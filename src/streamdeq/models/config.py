"""The hyperparameters of an MDEQ as one frozen dataclass, and how to read them from the official
MDEQ yaml files.

Why a dataclass instead of the official global yacs node: the same settings then travel with the
model (``model.config``), into a safetensors file's metadata and back, and are checked once, at
construction, with messages that say what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import CheckpointError, SettingsError

if TYPE_CHECKING:
    from .mdeq import MDEQModel

TASKS = ("segmentation", "classification")

#: BatchNorm momentum the official code uses per task (``get_seg_net`` / ``get_cls_net``).
TASK_BN_MOMENTUM = {"segmentation": 0.01, "classification": 0.1}

#: Official datasets and the task their experiments train.
_DATASET_TASKS = {
    "cityscapes": "segmentation",
    "lip": "segmentation",
    "pascal_ctx": "segmentation",
    "cifar10": "classification",
    "imagenet": "classification",
}


class ModelConfigError(SettingsError):
    """An MDEQ configuration that cannot be built (inconsistent sizes, unknown values, ...)."""


class OfficialConfigError(ModelConfigError, CheckpointError):
    """An official experiment yaml that cannot be read or is not an MDEQ config.

    Both kinds of error: the yaml is settings, and it is half of an official checkpoint (a
    loader's caller catches :class:`CheckpointError` for every file that will not load)."""


@dataclass(frozen=True)
class MDEQConfig:
    """Hyperparameters of a multiscale deep equilibrium model (Bai et al., 2020).

    Defaults are those of the official ``lib/config/default.py`` where it has one, and otherwise
    those of MDEQ-Small (the structure fields, which the official yaml files always set).

    Attributes:
        num_branches: resolutions of the equilibrium state (NUM_BRANCHES).
        num_channels: channels C_i of each branch (NUM_CHANNELS).
        num_blocks: residual blocks per branch (NUM_BLOCKS); only the first gets the injection.
        expansion: width factor of a block's hidden conv, E*C_i channels (EXPANSION_FACTOR).
        num_groups: GroupNorm groups; the post-fuse norms use ``num_groups // 2`` (NUM_GROUPS).
        dropout: variational dropout rate inside the blocks, training only (DROPOUT).
        wnorm: weight normalisation of the block and post-fuse convs (WNORM).
        downsample_times: stride-2 convs of the input stem, 0..2 (DOWNSAMPLE_TIMES).
        f_thres: N, the forward solver's iteration budget (F_THRES).
        b_thres: the backward (adjoint) solver's budget (B_THRES). The official code actually
            passes F_THRES to its backward solver; this value is kept for configs that want it.
        num_layers: applications of f in unrolled weight-tied pretraining (NUM_LAYERS).
        pretrain_steps: training steps spent in unrolled pretraining (TRAIN.PRETRAIN_STEPS).
        task: "segmentation" (per-pixel logits) or "classification" (one logit vector).
        num_classes: output classes.
        head_channels: classification head width per branch (x4 after its bottlenecks).
        final_chansize: channels before the classifier's linear layer.
        final_conv_kernel: 1 or 3, the last conv of the segmentation head.
        bn_momentum: BatchNorm momentum; None picks the official value for ``task``.
    """

    num_branches: int = 4
    num_channels: tuple[int, ...] = (32, 64, 128, 256)
    num_blocks: tuple[int, ...] = (1, 1, 1, 1)
    expansion: int = 5
    num_groups: int = 4
    dropout: float = 0.0
    wnorm: bool = False
    downsample_times: int = 2
    f_thres: int = 30
    b_thres: int = 40
    num_layers: int = 5
    pretrain_steps: int = 100000
    task: str = "classification"
    num_classes: int = 1000
    head_channels: tuple[int, ...] = (24, 48, 96, 192)
    final_chansize: int = 2048
    final_conv_kernel: int = 1
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("num_channels", "num_blocks", "head_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.bn_momentum is None and self.task in TASK_BN_MOMENTUM:
            object.__setattr__(self, "bn_momentum", TASK_BN_MOMENTUM[self.task])
        _validate(self)

    def with_overrides(self, **overrides: Any) -> MDEQConfig:
        """A copy with ``overrides`` (field names) changed; an unknown name is an error."""
        unknown = sorted(set(overrides) - set(config_fields()))
        if unknown:
            raise ModelConfigError(
                f"unknown override(s) {', '.join(unknown)}; valid: {', '.join(config_fields())}"
            )
        return replace(self, **overrides) if overrides else self

    def build(self) -> MDEQModel:
        """The :class:`~streamdeq.models.mdeq.MDEQModel` of this config (randomly initialised);
        every model family's config builds its own model, so the zoo needs no dispatch."""
        from .mdeq import MDEQModel

        return MDEQModel(self)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MDEQConfig:
        """A config from a mapping of field names; unknown names are an error, not dropped."""
        if not isinstance(values, Mapping):
            raise ModelConfigError(
                f"an MDEQ config must be a mapping of settings, got {type(values).__name__}"
            )
        unknown = sorted(set(values) - set(config_fields()))
        if unknown:
            raise ModelConfigError(
                f"unknown MDEQ setting(s) {', '.join(unknown)}; "
                f"valid settings: {', '.join(config_fields())}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> MDEQConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_official_yaml(cls, path: str | Path, task: str | None = None) -> MDEQConfig:
        """The config of an official MDEQ experiment file (``experiments/*/*.yaml``).

        Keys the file leaves out take the official defaults (``lib/config/default.py``);
        the FULL_STAGE structure keys have no default there and are required. ``task`` is
        inferred from DATASET.DATASET (or, for unknown datasets, from whether the file has
        classification HEAD_CHANNELS) unless given. A missing FINAL_CONV_KERNEL (no official
        default) is taken as 1, the value of every official segmentation experiment.
        """
        return cls.from_official_mapping(read_official_yaml(path), task=task, source=str(path))

    @classmethod
    def from_official_mapping(
        cls, raw: Any, task: str | None = None, source: str = "config"
    ) -> MDEQConfig:
        """The config of an official experiment yaml already parsed (:func:`read_official_yaml`);
        ``source`` names the file in errors."""
        values = official_yaml_values({} if raw is None else raw, task=task, source=source)
        try:
            return cls(**values)
        except ModelConfigError as err:
            key = _OFFICIAL_KEYS.get(err.field or "")
            where = f" (from {key})" if key else ""
            raise OfficialConfigError(f"{source}: {err}{where}", field=err.field) from None


#: libyaml's parser where PyYAML has it (several times faster), else the pure-Python one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_official_yaml(path: str | Path) -> Any:
    """The parsed content of a yaml file (None when empty).

    Raises:
        OfficialConfigError: the file cannot be read or is not valid YAML (one line).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise OfficialConfigError(
            f"cannot read official MDEQ config {path}: {_read_failure(err)}"
        ) from None


def _read_failure(err: BaseException) -> str:
    """Why a yaml file could not be read, in one line (YAML errors span several)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if isinstance(err, yaml.YAMLError) and mark is not None and problem:
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(err, UnicodeDecodeError):
        return "not a text file (not UTF-8)"
    return getattr(err, "strerror", None) or " ".join(str(err).split())


def config_fields() -> list[str]:
    return [f.name for f in fields(MDEQConfig)]


def official_yaml_values(
    raw: Mapping[str, Any], task: str | None = None, source: str = "config"
) -> dict[str, Any]:
    """MDEQConfig keyword arguments from a parsed official yaml mapping."""
    if not isinstance(raw, Mapping):
        raise OfficialConfigError(
            f"{source} is not an official MDEQ config: its top level is {type(raw).__name__}, "
            "not a mapping of sections such as MODEL and DATASET"
        )
    model = _section(raw, "MODEL", source)
    extra = _section(model, "MODEL.EXTRA", source)
    stage = _section(extra, "MODEL.EXTRA.FULL_STAGE", source)
    dataset = _section(raw, "DATASET", source)
    train = _section(raw, "TRAIN", source)

    def required(key: str) -> Any:
        if key not in stage:
            raise OfficialConfigError(f"{source}: MODEL.EXTRA.FULL_STAGE.{key} is required")
        return stage[key]

    _check_official_constant(stage, "NUM_MODULES", 1, source)
    _check_official_constant(stage, "BLOCK", "BASIC", source)
    _check_official_constant(stage, "FUSE_METHOD", "SUM", source)
    if task is None:
        task = _DATASET_TASKS.get(str(dataset.get("DATASET", "")).lower())
    if task is None:
        task = "classification" if "HEAD_CHANNELS" in stage else "segmentation"
    values: dict[str, Any] = {
        "num_branches": required("NUM_BRANCHES"),
        "num_channels": required("NUM_CHANNELS"),
        "num_blocks": required("NUM_BLOCKS"),
        "expansion": model.get("EXPANSION_FACTOR", 5),
        "num_groups": model.get("NUM_GROUPS", 4),
        "dropout": model.get("DROPOUT", 0.0),
        "wnorm": model.get("WNORM", False),
        "downsample_times": model.get("DOWNSAMPLE_TIMES", 2),
        "f_thres": model.get("F_THRES", 30),
        "b_thres": model.get("B_THRES", 40),
        "num_layers": model.get("NUM_LAYERS", 5),
        "pretrain_steps": train.get("PRETRAIN_STEPS", 100000),
        "task": task,
    }
    if task == "classification":
        values["num_classes"] = model.get("NUM_CLASSES", 1000)
        values["head_channels"] = required("HEAD_CHANNELS")
        values["final_chansize"] = required("FINAL_CHANSIZE")
    else:
        values["num_classes"] = dataset.get("NUM_CLASSES", 1000)
        # no official default (the official code fails without it); every official
        # segmentation experiment uses 1
        values["final_conv_kernel"] = extra.get("FINAL_CONV_KERNEL", 1)
        values["head_channels"] = ()
    return values


#: Where each setting comes from in an official yaml, for messages about a wrong value.
_OFFICIAL_KEYS = {
    "num_branches": "MODEL.EXTRA.FULL_STAGE.NUM_BRANCHES",
    "num_channels": "MODEL.EXTRA.FULL_STAGE.NUM_CHANNELS",
    "num_blocks": "MODEL.EXTRA.FULL_STAGE.NUM_BLOCKS",
    "head_channels": "MODEL.EXTRA.FULL_STAGE.HEAD_CHANNELS",
    "final_chansize": "MODEL.EXTRA.FULL_STAGE.FINAL_CHANSIZE",
    "final_conv_kernel": "MODEL.EXTRA.FINAL_CONV_KERNEL",
    "expansion": "MODEL.EXPANSION_FACTOR",
    "num_groups": "MODEL.NUM_GROUPS",
    "dropout": "MODEL.DROPOUT",
    "wnorm": "MODEL.WNORM",
    "downsample_times": "MODEL.DOWNSAMPLE_TIMES",
    "f_thres": "MODEL.F_THRES",
    "b_thres": "MODEL.B_THRES",
    "num_layers": "MODEL.NUM_LAYERS",
    "pretrain_steps": "TRAIN.PRETRAIN_STEPS",
    "num_classes": "MODEL.NUM_CLASSES or DATASET.NUM_CLASSES",
}


def _section(parent: Mapping[str, Any], dotted: str, source: str) -> Mapping[str, Any]:
    """The mapping under the last key of ``dotted`` in ``parent`` (empty when absent)."""
    value = parent.get(dotted.rsplit(".", 1)[-1])
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OfficialConfigError(
            f"{source}: {dotted} must be a mapping of settings, got {type(value).__name__}"
        )
    return value


def _check_official_constant(stage: Mapping[str, Any], key: str, value: Any, source: str) -> None:
    # The official code reads these and then ignores them (it always builds one BASIC/SUM
    # module); accepting another value silently would build a different model than asked for.
    if key in stage and stage[key] != value:
        raise OfficialConfigError(
            f"{source}: FULL_STAGE.{key} = {stage[key]!r} is not supported; MDEQ has only {value!r}"
        )


def _check_types(cfg: MDEQConfig) -> None:
    """Each field of the kind its default has, so that a config read from a file (JSON, yaml)
    fails with the field's name rather than deep inside a comparison or a layer."""
    for field in fields(cfg):
        value = getattr(cfg, field.name)
        default = field.default
        if default is MISSING or (default is None and value is None):
            continue
        if isinstance(default, tuple):
            ok = isinstance(value, (tuple, list)) and all(_is_int(v) for v in value)
            kind = "a list of integers"
        elif isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = _is_int(value), "an integer"
        elif isinstance(default, float) or default is None:
            ok = isinstance(value, Real) and not isinstance(value, bool)
            kind = "a number"
        else:
            ok, kind = isinstance(value, type(default)), f"a {type(default).__name__}"
        if not ok:
            raise ModelConfigError(
                f"invalid MDEQ config: {field.name} must be {kind}, got {value!r}", field=field.name
            )


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _validate(cfg: MDEQConfig) -> None:
    def fail(msg: str) -> None:
        raise ModelConfigError(f"invalid MDEQ config: {msg}")

    if cfg.task not in TASKS:
        fail(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if cfg.num_branches < 1:
        fail(f"num_branches must be >= 1, got {cfg.num_branches}")
    for name in ("num_channels", "num_blocks"):
        if len(getattr(cfg, name)) != cfg.num_branches:
            fail(f"{name} has {len(getattr(cfg, name))} entries for {cfg.num_branches} branches")
    if any(b < 1 for b in cfg.num_blocks):
        fail(f"num_blocks entries must be >= 1, got {cfg.num_blocks}")
    if cfg.num_groups < 2:
        fail(
            f"num_groups must be >= 2 (the post-fuse norms use num_groups // 2), got {cfg.num_groups}"
        )
    for c in cfg.num_channels:
        if c < 1 or c % cfg.num_groups:
            fail(
                f"every entry of num_channels must be a positive multiple of num_groups "
                f"({cfg.num_groups}); got {cfg.num_channels}"
            )
    if cfg.expansion < 1:
        fail(f"expansion must be >= 1, got {cfg.expansion}")
    if not 0.0 <= cfg.dropout < 1.0:
        fail(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.downsample_times not in (0, 1, 2):
        fail(
            f"downsample_times must be 0, 1 or 2 (the stem has two convs), got {cfg.downsample_times}"
        )
    for name in ("f_thres", "b_thres", "num_layers", "num_classes"):
        if getattr(cfg, name) < 1:
            fail(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.pretrain_steps < 0:
        fail(f"pretrain_steps must be >= 0, got {cfg.pretrain_steps}")
    if cfg.bn_momentum is None or not 0.0 <= cfg.bn_momentum <= 1.0:
        fail(f"bn_momentum must be in [0, 1], got {cfg.bn_momentum}")
    if cfg.task == "classification":
        if len(cfg.head_channels) != cfg.num_branches:
            fail(
                f"head_channels has {len(cfg.head_channels)} entries for {cfg.num_branches} "
                "branches (classification needs one per branch)"
            )
        if cfg.final_chansize < 1 or any(c < 1 for c in cfg.head_channels):
            fail("head_channels and final_chansize must be positive")
    elif cfg.final_conv_kernel not in (1, 3):
        fail(f"final_conv_kernel must be 1 or 3, got {cfg.final_conv_kernel}")
