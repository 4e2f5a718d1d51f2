"""Multiscale deep equilibrium models (MDEQ): named configurations, the model split into the parts
a stream calls (``inject``, ``init_state``, ``f``, ``head``), and official checkpoint support.

>>> model = create_model("mdeq-seg-small-cityscapes")
>>> model = load_official_mdeq("seg_mdeq_SMALL.yaml", "MDEQ_Small_Seg.pkl")
>>> z, result = model.solve(x)            # x (B, 3, H, W)
>>> logits = model.head(z)
"""

from __future__ import annotations

from .checkpoints import (
    CheckpointMismatchError,
    export_official_state_dict,
    load_official_mdeq,
    load_official_state_dict,
    load_safetensors,
    save_safetensors,
)
from .config import MDEQConfig, ModelConfigError
from .mdeq import ForwardResult, MDEQModel, official_tol
from .pretrained import PretrainedInfo
from .resolve import DEFAULT_MODEL, ResolvedModel, resolve_model
from .zoo import (
    ModelEntry,
    NoPretrainedWeightsError,
    create_model,
    get_config,
    list_models,
    register_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointMismatchError",
    "ForwardResult",
    "MDEQConfig",
    "MDEQModel",
    "ModelConfigError",
    "ModelEntry",
    "NoPretrainedWeightsError",
    "PretrainedInfo",
    "ResolvedModel",
    "create_model",
    "export_official_state_dict",
    "get_config",
    "list_models",
    "load_official_mdeq",
    "load_official_state_dict",
    "load_safetensors",
    "official_tol",
    "register_model",
    "resolve_model",
    "save_safetensors",
]
