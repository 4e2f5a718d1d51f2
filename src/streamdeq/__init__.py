"""streamdeq: streaming multiscale deep equilibrium models for online video perception.

The public API in one place::

    model = streamdeq.create_model("mdeq-seg-small-cityscapes")          # or load_official_mdeq
    stream = streamdeq.StreamDEQ(model, iters=2)                          # M = 2 per frame
    for frame in streamdeq.open_video("clip.mp4"):
        result = stream.step(frame.image)                                 # logits + FrameInfo
"""

from __future__ import annotations

from .cpu_allocator import tune_cpu_allocator
from .data import open_video
from .errors import CheckpointError, SettingsError, StreamDEQError, UnknownModelError
from .models import (
    MDEQConfig,
    MDEQModel,
    create_model,
    get_config,
    list_models,
    load_official_mdeq,
    load_safetensors,
    save_safetensors,
)
from .solvers import SolverResult, SolverStatus, list_solvers, solve
from .stream import FrameInfo, StepResult, StreamBatch, StreamDEQ

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "FrameInfo",
    "MDEQConfig",
    "MDEQModel",
    "SettingsError",
    "SolverResult",
    "SolverStatus",
    "StepResult",
    "StreamBatch",
    "StreamDEQ",
    "StreamDEQError",
    "UnknownModelError",
    "__version__",
    "create_model",
    "get_config",
    "list_models",
    "list_solvers",
    "load_official_mdeq",
    "load_safetensors",
    "open_video",
    "save_safetensors",
    "solve",
    "tune_cpu_allocator",
]
