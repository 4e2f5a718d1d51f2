"""The model an experiment or the demo runs: a registered name or a safetensors file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SettingsError, StreamDEQError

#: The model the demo and the experiments use by default (shipped inside the package).
BUNDLED_MODEL = "mdeq-seg-tiny-synthetic"


class MissingWeightsError(StreamDEQError):
    """A model name whose weights are not available (and random weights were not asked for)."""


def load_model(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    random_weights: bool = False,
    device: str = "cpu",
) -> Any:
    """The model in eval mode: ``checkpoint`` (a safetensors file written by
    ``streamdeq.models.save_safetensors``, self-describing), else the named model's bundled
    weights (default :data:`BUNDLED_MODEL`).

    Raises:
        MissingWeightsError: the name has no weights file here and ``random_weights`` is False.
    """
    from ..models import create_model, load_safetensors
    from ..models.zoo import get_entry

    if checkpoint is not None:
        if name is not None:
            raise SettingsError("give a model name or a checkpoint, not both")
        path = Path(checkpoint)
        if not path.is_file():
            raise SettingsError(f"checkpoint file not found: {path}")
        if path.suffix.lower() != ".safetensors":
            raise SettingsError(
                f"{path}: experiments read safetensors checkpoints; convert an official "
                "checkpoint first with `streamdeq convert CONFIG.yaml CHECKPOINT OUT.safetensors`"
            )
        return load_safetensors(path, device=device).eval()
    name = name or BUNDLED_MODEL
    if random_weights:
        return create_model(name).to(device).eval()
    try:
        entry = get_entry(name)
    except StreamDEQError:
        if name == BUNDLED_MODEL:
            raise MissingWeightsError(
                _missing(name, "it is not registered in this install")
            ) from None
        raise
    path = entry.weights_path()
    if path is None or not path.is_file():
        where = "it has no weights file" if path is None else f"{path} is missing"
        raise MissingWeightsError(_missing(name, where))
    return create_model(name, pretrained=True).to(device).eval()


def _missing(name: str, why: str) -> str:
    return (
        f"the weights of {name} are not available ({why}); reinstall streamdeq or pass "
        "--checkpoint FILE.safetensors"
    )
