"""What ``streamdeq run`` is asked to do, checked at once, and the model it runs.

:class:`RunOptions` names the command-line flags in its errors, so a user sees which of their
flags conflict; :func:`load_run_model` turns a model name or a checkpoint (ours, or an official
one with its yaml) into a model in eval mode, saying when its weights are random.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.sinks import STATS_FORMATS, VIDEO_SUFFIXES
from .errors import CheckpointError, SettingsError, StreamDEQError
from .models import MDEQModel, create_model, load_official_mdeq, load_safetensors
from .models.zoo import get_entry, list_models
from .solvers import list_solvers
from .stream import MODES, POLICIES, StreamSettings

#: The model ``run`` uses when none is given, if it is installed with its trained weights.
DEFAULT_MODEL = "mdeq-seg-tiny-synthetic"
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    """What ``streamdeq run`` was asked to do; conflicting or invalid options raise
    :class:`SettingsError` (naming the command-line flags) when this is built.

    Attributes:
        source: a video file, a folder of images, or a URL FFmpeg opens.
        model: a registered model name (``streamdeq models``); with bundled weights they are
            loaded, otherwise the weights are random (and the run says so).
        checkpoint: a safetensors file of ours (self-describing) or an official ``.pth``/``.pkl``
            state dict, which needs ``config`` (the official experiment yaml).
        iters, tol, budget_ms: how many iterations a frame gets (M fixed, until the relative
            residual is below tol, or a latency budget in ms); at most one; default M = 4.
        max_iters: the most iterations a frame gets under ``tol`` or ``budget_ms`` (default N).
        mode, solver, shot_policy: see :class:`~streamdeq.stream.StreamSettings`.
        out: the overlay video (.mp4, .m4v, .mov, .mkv); None writes none.
        stats: per-frame stats (.csv, .jsonl, .json); None writes none.
        max_frames: stop after this many frames.
        fps: frame rate of image folders and of the output video (default: the input's).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        timeout: seconds a network stream may take to open or to deliver more data before the
            run stops on it (the frames done are kept); files are not affected.
        task: the renderer (``streamdeq.render.list_renderers()``); default: the model's task.
    """

    source: str
    model: str | None = None
    checkpoint: Path | None = None
    config: Path | None = None
    iters: int | None = None
    tol: float | None = None
    budget_ms: float | None = None
    max_iters: int | None = None
    mode: str = "stream"
    solver: str = "broyden"
    shot_policy: str = "keep"
    out: Path | None = None
    stats: Path | None = None
    max_frames: int | None = None
    fps: float | None = None
    device: str = "auto"
    timeout: float = 10.0
    task: str | None = None

    def __post_init__(self) -> None:
        for name in ("checkpoint", "config", "out", "stats"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        object.__setattr__(self, "source", os.fspath(self.source))
        self._check_iteration_options()
        self._check_model_options()
        self._check_outputs()
        self._check_choices()
        self.stream_settings()  # everything else the stream checks (ranges, ...)

    def _check_iteration_options(self) -> None:
        flags = {"--iters": self.iters, "--tol": self.tol, "--budget-ms": self.budget_ms}
        given = [flag for flag, value in flags.items() if value is not None]
        if len(given) > 1:
            raise SettingsError(
                f"{' and '.join(given)} conflict: give one of --iters M (fixed), --tol T (until "
                "the residual is below T) or --budget-ms B (a latency budget)"
            )
        if self.mode == "baseline" and given:
            raise SettingsError(
                f"--mode baseline solves every frame from zeros with the model's N = F_THRES "
                f"iterations; {given[0]} applies to --mode stream, keyframe and reference"
            )
        if self.max_iters is not None and self.tol is None and self.budget_ms is None:
            raise SettingsError(
                "--max-iters caps --tol or --budget-ms; for a fixed number use --iters alone"
            )

    def _check_model_options(self) -> None:
        if self.model is not None and self.checkpoint is not None:
            raise SettingsError(
                "--model and --checkpoint conflict: a checkpoint carries its own model; give one"
            )
        if self.config is not None and self.checkpoint is None:
            raise SettingsError(
                "--config names the official yaml of an official --checkpoint; give both "
                "(or --model NAME alone)"
            )
        if self.checkpoint is None:
            return
        suffix = self.checkpoint.suffix.lower()
        if suffix == ".safetensors" and self.config is not None:
            raise SettingsError(
                f"{self.checkpoint} is a streamdeq safetensors file, which carries its own "
                "config; drop --config"
            )
        if suffix != ".safetensors" and self.config is None:
            raise SettingsError(
                f"{self.checkpoint} is not a streamdeq .safetensors file, so it is read as an "
                "official MDEQ state dict: give its experiment yaml with --config"
            )

    def _check_outputs(self) -> None:
        if self.out is not None and self.out.suffix.lower() not in VIDEO_SUFFIXES:
            raise SettingsError(
                f"--out {self.out}: unknown video extension; use {', '.join(VIDEO_SUFFIXES)}"
            )
        if self.stats is not None and self.stats.suffix.lower() not in STATS_FORMATS:
            raise SettingsError(
                f"--stats {self.stats}: unknown stats extension; use {', '.join(STATS_FORMATS)}"
            )
        outputs = [p for p in (self.out, self.stats) if p is not None]
        if len(outputs) == 2 and _same_path(*outputs):
            raise SettingsError("--out and --stats name the same file; give two paths")
        for output in outputs:
            if _same_path(output, Path(self.source)):
                raise SettingsError(f"{output} is the input; write the output to another file")

    def _check_choices(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.solver not in list_solvers():
            raise SettingsError(
                f"--solver must be one of {', '.join(list_solvers())}, got {self.solver!r}"
            )
        if self.shot_policy not in POLICIES:
            raise SettingsError(
                f"--shot-policy must be one of {', '.join(POLICIES)}, got {self.shot_policy!r}"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise SettingsError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise SettingsError(f"--fps must be a positive number, got {self.fps}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise SettingsError(
                f"--timeout must be a positive number of seconds, got {self.timeout}"
            )
        resolve_device(self.device)

    def stream_settings(self) -> StreamSettings:
        """The stream's settings for these options."""
        return StreamSettings.from_options(
            mode=self.mode,
            iters=self.iters,
            tol=self.tol,
            budget_ms=self.budget_ms,
            max_iter_cap=self.max_iters,
            solver=self.solver,
            shot_policy=self.shot_policy,
        )


def resolve_device(device: str) -> torch.device:
    """ "auto" -> CUDA when available, else the CPU; "cuda" without CUDA is a SettingsError."""
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and name != "cuda" and not name.startswith("cuda:"):
        raise SettingsError(
            f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}"
        )
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise SettingsError(f"invalid --device {device!r}; use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(
                f"--device {device}: this PyTorch has no usable CUDA device; use --device cpu"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise SettingsError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return resolved


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to stream, and what the user should know about where it came from."""

    model: MDEQModel
    description: str
    warning: str | None = None


def load_run_model(options: RunOptions, device: torch.device) -> LoadedModel:
    """The model ``options`` name, in eval mode on ``device``.

    Raises:
        CheckpointError: a checkpoint that is missing, unreadable or does not fit its config
            (a :class:`~streamdeq.models.CheckpointMismatchError` counts the missing,
            unexpected and wrongly shaped tensors).
        SettingsError: an unknown model name, or no model given and no default installed.
    """
    if options.checkpoint is not None:
        loaded = _load_checkpoint(options.checkpoint, options.config)
    else:
        loaded = _load_named(options.model if options.model is not None else _default_model())
    return LoadedModel(loaded.model.to(device).eval(), loaded.description, loaded.warning)


def _load_checkpoint(checkpoint: Path, config: Path | None) -> LoadedModel:
    _require_file(checkpoint, "checkpoint", CheckpointError)
    if config is None:  # RunOptions guarantees: a safetensors file
        return LoadedModel(load_safetensors(checkpoint), f"checkpoint {checkpoint}")
    _require_file(config, "--config yaml", SettingsError)
    model = load_official_mdeq(config, checkpoint)
    return LoadedModel(model, f"official checkpoint {checkpoint} ({config.name})")


def _load_named(name: str) -> LoadedModel:
    weights = get_entry(name).weights_path()  # UnknownModelError lists the known names
    if weights is not None and weights.is_file():
        return LoadedModel(create_model(name, pretrained=True), f"{name} (bundled weights)")
    with torch.random.fork_rng(devices=[]):  # the same random weights every run
        torch.manual_seed(0)
        model = create_model(name)
    why = "has no trained weights" if weights is None else f"is missing its weights {weights}"
    warning = (
        f"{name} {why}: running with RANDOM weights, so the output shows no real classes "
        "(give --checkpoint PATH for trained ones)"
    )
    return LoadedModel(model, f"{name} (RANDOM weights)", warning)


def _default_model() -> str:
    if DEFAULT_MODEL in list_models():
        weights = get_entry(DEFAULT_MODEL).weights_path()
        if weights is not None and weights.is_file():
            return DEFAULT_MODEL
    raise SettingsError(
        f"no model given and the default {DEFAULT_MODEL} (trained weights) is not installed; "
        "give --model NAME (see `streamdeq models`) or --checkpoint PATH"
    )


def _require_file(path: Path, what: str, error: type[StreamDEQError]) -> None:
    if not path.exists():
        raise error(f"{what} file not found: {path}")
    if not path.is_file():
        raise error(f"{what} path is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read {what} {path}: permission denied")


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
