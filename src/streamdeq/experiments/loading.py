"""The model an experiment or the demo runs: a registered name or a safetensors file.

Kept for its names; the resolution itself is :func:`streamdeq.models.resolve.resolve_model`,
which every command shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.resolve import DEFAULT_MODEL, MissingWeightsError, resolve_model

#: The model the demo and the experiments use by default (shipped inside the package).
BUNDLED_MODEL = DEFAULT_MODEL

__all__ = ["BUNDLED_MODEL", "MissingWeightsError", "load_model"]


def load_model(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    random_weights: bool = False,
    device: str = "cpu",
) -> Any:
    """The model in eval mode: ``checkpoint`` (a safetensors file written by
    ``streamdeq.models.save_safetensors``, self-describing), else the named model's bundled
    weights (default :data:`BUNDLED_MODEL`), or random ones with ``random_weights``.

    Raises:
        MissingWeightsError: the name has no weights file here and ``random_weights`` is False.
    """
    weights = "random" if random_weights else "required"
    return resolve_model(name, checkpoint, weights=weights, device=device).model
