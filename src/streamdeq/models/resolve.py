"""One way from what a user names (a registered model, our safetensors file, an official
checkpoint with its yaml) to a model ready to run, with one policy for missing weights.

Why one function: ``run``, ``demo``, ``experiment``, ``bench`` and the trainer's ``init_from``
each resolved names and files on their own, with three answers to "the weights are not here"
(random weights, an error, skip) and three spellings of the default model. Each now says which
answer it wants (``weights=``), and the answers are worded once.

>>> resolved = resolve_model("mdeq-seg-tiny-synthetic")             # bundled weights, or an error
>>> resolved = resolve_model(checkpoint="MDEQ_XL_Seg.pkl", config="seg_mdeq_XL.yaml")
>>> resolved.model, resolved.description, resolved.warning, resolved.note
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError, SettingsError, StreamDEQError, UnknownModelError
from .checkpoints import load_official_mdeq, load_safetensors
from .config import OfficialConfigError
from .pretrained import PretrainedInfo, derive_pretrained_info, pretrained_info_of
from .zoo import ModelEntry, create_model, get_entry

#: The model used when none is named: small, trained here, shipped inside the package.
DEFAULT_MODEL = "mdeq-seg-tiny-synthetic"

#: "required": no trained weights is an error; "random": randomly initialised weights (the
#: mechanics only); "random-if-missing": trained weights when there are any, else random ones
#: with a warning. A model not named (the default) always needs its trained weights.
WeightsPolicy = Literal["required", "random", "random-if-missing"]
WEIGHTS_POLICIES: tuple[str, ...] = ("required", "random", "random-if-missing")

#: Seed of random weights: the same random model every run, so runs compare.
RANDOM_SEED = 0


class MissingWeightsError(SettingsError):
    """A model whose trained weights are not available, where they are required."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to run, and what the user should know about where it came from.

    Attributes:
        model: in eval mode, on the requested device.
        entry: its registry entry (None for a checkpoint file).
        description: one line for reports: the name and the kind of weights, or the file.
        warning: why the output will mean nothing (random weights the user did not ask for);
            None otherwise.
        info: the weights' input contract (``model.pretrained_info``; for random weights and
            files without one, derived from the config).
        note: a caveat about the weights' domain (trained only on generated scenes); None
            when there is none.
    """

    model: nn.Module
    entry: ModelEntry | None
    description: str
    warning: str | None = None
    info: PretrainedInfo | None = None
    note: str | None = None


def resolve_model(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    config: str | Path | None = None,
    weights: WeightsPolicy = "required",
    device: str | torch.device = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> ResolvedModel:
    """The model ``name`` or ``checkpoint`` designates (neither: :data:`DEFAULT_MODEL`).

    Args:
        name: a registered model (``streamdeq models``).
        checkpoint: a streamdeq ``.safetensors`` file (self-describing), or an official
            ``.pth`` / ``.pkl`` state dict with its official experiment yaml as ``config``.
        config: the official yaml of an official checkpoint.
        weights: what to do without trained weights (:data:`WeightsPolicy`); a checkpoint
            always has them.
        device: where the model goes.
        overrides: config fields of a named model to change (random weights, or shapes kept).

    Raises:
        SettingsError: conflicting arguments, or an official checkpoint without its yaml.
        UnknownModelError: ``name`` is not registered (the message lists the known ones).
        MissingWeightsError: no trained weights under ``weights="required"``, or no name given
            and the default model is not installed with its weights.
        CheckpointError: a checkpoint (or its official yaml) that is missing, unreadable,
            damaged or does not fit its config; the message is one line naming the file.
    """
    if weights not in WEIGHTS_POLICIES:
        raise SettingsError(
            f"weights must be one of {', '.join(WEIGHTS_POLICIES)}, got {weights!r}"
        )
    if checkpoint is not None:
        if name is not None:
            raise SettingsError("give a model name or a checkpoint, not both")
        if weights == "random" or overrides:
            raise SettingsError("a checkpoint brings its own weights and config; give it alone")
        model, entry, description = _from_checkpoint(Path(checkpoint).expanduser(), config)
        warning = None
    elif config is not None:
        raise SettingsError("an official yaml (config) goes with an official checkpoint; give both")
    else:
        model, entry, description, warning = _from_name(name, weights, dict(overrides or {}))
    model = model.to(device).eval()
    info = pretrained_info_of(model) or derive_pretrained_info(model)
    return ResolvedModel(model, entry, description, warning, info, _domain_note(description, info))


def require_file(path: Path, what: str, error: type[StreamDEQError] = StreamDEQError) -> None:
    """Raise ``error`` ("<what> file not found: <path>", ...) unless ``path`` is a readable
    file, so a wrong path fails with its name before any work starts."""
    if not path.exists():
        raise error(f"{what} file not found: {path}")
    if not path.is_file():
        raise error(f"{what} path is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read {what} {path}: permission denied")


def _from_checkpoint(path: Path, config: str | Path | None) -> tuple[nn.Module, None, str]:
    if path.suffix.lower() == ".safetensors":
        if config is not None:
            raise SettingsError(
                f"{path} is a streamdeq safetensors file, which carries its own config; "
                "give no official yaml"
            )
        return load_safetensors(path), None, f"checkpoint {path}"  # it checks the file first
    if config is None:
        raise SettingsError(
            f"{path} is not a streamdeq .safetensors file: give its official experiment yaml, "
            "or convert it first with `streamdeq convert CONFIG.yaml CHECKPOINT OUT.safetensors`"
        )
    config = Path(config).expanduser()
    require_file(path, "checkpoint", CheckpointError)
    require_file(config, "config yaml", OfficialConfigError)
    model = load_official_mdeq(config, path)
    return model, None, f"official checkpoint {path} ({config.name})"


def _from_name(
    name: str | None, weights: WeightsPolicy, overrides: dict[str, Any]
) -> tuple[nn.Module, ModelEntry, str, str | None]:
    named = name is not None
    name = name if name is not None else DEFAULT_MODEL
    try:
        entry = get_entry(name)
    except UnknownModelError:
        if name != DEFAULT_MODEL:
            raise
        raise MissingWeightsError(
            _missing(name, "is not registered in this install", named)
        ) from None
    if weights == "random":
        return _random(name, overrides), entry, f"{name} (RANDOM weights)", None
    path = entry.weights_path()
    if path is not None and path.is_file():
        model = create_model(name, pretrained=True, **overrides)
        return model, entry, f"{name} (bundled weights)", None
    why = "has no trained weights" if path is None else f"is missing its weights {path}"
    if weights == "required" or not named:
        raise MissingWeightsError(_missing(name, why, named))
    warning = (
        f"{name} {why}: running with RANDOM weights, so its outputs mean nothing "
        "(give --checkpoint PATH for trained ones)"
    )
    return _random(name, overrides), entry, f"{name} (RANDOM weights)", warning


def _random(name: str, overrides: dict[str, Any]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        torch.manual_seed(RANDOM_SEED)
        return create_model(name, **overrides)


def _missing(name: str, why: str, named: bool) -> str:
    if not named:
        return (
            f"no model given and the default {name} (trained weights) is not installed "
            f"({name} {why}); give --model NAME (see `streamdeq models`) or --checkpoint PATH"
        )
    return (
        f"the weights of {name} are not available ({name} {why}); reinstall streamdeq or pass "
        "--checkpoint FILE.safetensors"
    )


def _domain_note(description: str, info: PretrainedInfo | None) -> str | None:
    """Why real footage will look wrong, for weights that saw only generated scenes."""
    if info is None or not info.generated_only:
        return None
    label = description.removesuffix(" (bundled weights)")
    if info.task == "detection":
        remedy = "there are no official detection weights to use instead"
    else:
        remedy = "for real video convert the official Cityscapes checkpoint"
    return (
        f"{label} was trained only on {info.trained_on}: expect nonsense on real footage; "
        f"{remedy} (see README: On real footage)"
    )
