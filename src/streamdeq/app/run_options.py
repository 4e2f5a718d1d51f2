"""What ``streamdeq run`` is asked to do, checked at once, and the model it runs.

:class:`RunOptions` names the command-line flags in its errors, so a user sees which of their
flags conflict: the library's settings classes check the stream's settings, and
:func:`in_flag_words` rewords their errors with :data:`FLAGS`; :func:`load_run_model` turns a
model name or a checkpoint (ours, or an official one with its yaml) into a model in eval mode,
saying when its weights are random.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.hardware import HardwareDecoding
from ..data.sinks import STATS_FORMATS, VIDEO_SUFFIXES
from ..errors import SettingsError
from ..models.resolve import DEFAULT_MODEL, ResolvedModel, resolve_model  # noqa: F401 (re-exported)
from ..stream import PreprocessSettings, StreamSettings

DEVICES = ("auto", "cpu", "cuda")

#: Each setting of ``streamdeq run`` -> its flag: the fields of :class:`RunOptions`, and the
#: library's settings they become (StreamSettings, ShotSettings.policy,
#: PreprocessSettings.resize), so an error about either names what the user typed.
FLAGS: dict[str, str] = {
    "source": "SOURCE",
    "model": "--model",
    "checkpoint": "--checkpoint",
    "config": "--config",
    "iters": "--iters",
    "tol": "--tol",
    "budget_ms": "--budget-ms",
    "max_iters": "--max-iters",
    "max_iter_cap": "--max-iters",
    "mode": "--mode",
    "solver": "--solver",
    "shot_policy": "--shot-policy",
    "policy": "--shot-policy",
    "out": "--out",
    "stats": "--stats",
    "predictions": "--predictions",
    "max_frames": "--max-frames",
    "fps": "--fps",
    "device": "--device",
    "timeout": "--timeout",
    "stop_timeout": "--stop-timeout",
    "strict": "--strict",
    "reconnect": "--reconnect",
    "task": "--task",
    "threads": "--threads",
    "size": "--size",
    "resize": "--size",
    "hwaccel": "--hwaccel",
}

#: Names in :data:`FLAGS` that are also plain words ("the baseline mode solves ..."): in a
#: library message they become flags only where they are the field at fault.
_PLAIN_WORDS = frozenset(
    {"source", "model", "checkpoint", "config", "mode", "solver", "policy", "out", "stats"}
    | {"fps", "device", "timeout", "task", "threads", "size", "strict", "reconnect"}
)


def in_flag_words(error: SettingsError) -> SettingsError:
    """A library :class:`SettingsError` reworded for the command line: the field at fault
    (``error.field``) and the other settings its message names become their flags, e.g.
    "max_iter_cap limits tol or budget_ms" -> "--max-iters limits --tol or --budget-ms".
    An error about a field no flag sets is returned as it is."""
    if error.field not in FLAGS:
        return error
    names = [name for name in FLAGS if name == error.field or name not in _PLAIN_WORDS]
    spellings = {name: FLAGS[name] for name in names}
    spellings |= {name.replace("_", " "): FLAGS[name] for name in names if "_" in name}
    words = sorted(spellings, key=len, reverse=True)  # "shot policy" before "policy"
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])")
    message = pattern.sub(lambda match: spellings[match.group(1)], str(error))
    message = re.sub(r",? or None\b", "", message)  # an omitted flag is the library's None
    return SettingsError(message, field=error.field)


@contextmanager
def flag_words() -> Iterator[None]:
    """Settings errors raised in the block leave it in flag words (:func:`in_flag_words`)."""
    try:
        yield
    except SettingsError as error:
        raise in_flag_words(error) from None


def parse_size(text: str) -> tuple[int, int] | int:
    """``--size``: "HxW" -> (H, W), one number -> the short side. Only the shape of the text
    is checked here; the values are the library's to check (``PreprocessSettings.resize``)."""
    parts = text.strip().lower().split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    if len(numbers) == 1:
        return numbers[0]
    raise SettingsError(
        f"--size must be HxW (e.g. 512x1024) or one number (the short side), got {text!r}",
        field="size",
    )


def check_fps(fps: float | None) -> None:
    """``--fps`` (of ``run`` and ``score``): a positive number, or None (the input's own)."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise SettingsError(f"--fps must be a positive number, got {fps}", field="fps")


def declared_input_size(model: object) -> tuple[int, int] | None:
    """(H, W) the model's weights declare for inference (``model.pretrained_info.input_size``),
    None when they declare none."""
    size = getattr(getattr(model, "pretrained_info", None), "input_size", None)
    return tuple(size) if size is not None else None


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
        predictions: the model's per-frame outputs, for ``streamdeq score``: a folder of label
            maps (segmentation) or a .jsonl of boxes (detection), as the model's task stores
            them (:mod:`streamdeq.tasks.predictions`); None writes none.
        max_frames: stop after this many frames.
        fps: frame rate of image folders and of the output video (default: the input's).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        timeout: seconds a network stream may take to open or to deliver more data before the
            run stops on it (the frames done are kept); files are not affected.
        strict: stop at the first frame or image that does not decode (the frames done are
            kept); by default it is dropped, counted, and the run goes on.
        reconnect: seconds a live stream URL that ended or broke off is retried for (with
            backoff) before the run ends on it; the stream's state is reset on reconnection
            and the outputs go on in the same files. 0: no retry.
        task: the renderer (``streamdeq.tasks.task_words()``); default: the model's task.
        threads: CPU threads for torch (``torch.set_num_threads``); None leaves torch's default.
        size: the size the model sees: (H, W) to fit each frame inside with its aspect ratio
            kept, or one int for the short side (``PreprocessSettings.resize``); None: the
            inference size the weights declare, else the frame's own. The overlay video, the
            boxes and the stats stay in the source video's pixels.
        hwaccel: decode on NVIDIA's decoder: "cuda" (NVDEC, on the GPU of ``device`` when
            that is a CUDA device) or "cuda:N" (:class:`~streamdeq.data.HardwareDecoding`);
            None: on the CPU.
        stop_timeout: seconds a stop signal (Ctrl-C, SIGTERM, SIGHUP) waits for the frame in
            progress before the outputs are finished without it: below the grace period of
            service managers and container runtimes (Docker: 10 s), so they never kill a run
            before its outputs are finished.
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
    predictions: Path | None = None
    max_frames: int | None = None
    fps: float | None = None
    device: str = "auto"
    timeout: float = 10.0
    strict: bool = False
    reconnect: float = 0.0
    task: str | None = None
    threads: int | None = None
    size: tuple[int, int] | int | None = None
    hwaccel: str | None = None
    stop_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("checkpoint", "config", "out", "stats", "predictions"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        object.__setattr__(self, "source", os.fspath(self.source))
        self._check_model_options()
        self._check_outputs()
        self._check_run_limits()
        # the rest is the library's to check (iteration control, choices, ranges, --size):
        # checked once, there, and reworded with the flags
        with flag_words():
            self.stream_settings()
            if self.size is not None:
                PreprocessSettings(resize=self.size)

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
        named = {"--out": self.out, "--stats": self.stats, "--predictions": self.predictions}
        outputs = {flag: path for flag, path in named.items() if path is not None}
        flags = list(outputs)
        for i, first in enumerate(flags):
            for second in flags[i + 1 :]:
                if _same_path(outputs[first], outputs[second]):
                    raise SettingsError(f"{first} and {second} name the same path; give two paths")
        for output in outputs.values():
            if _same_path(output, Path(self.source)):
                raise SettingsError(f"{output} is the input; write the output to another file")
        # the predictions' writer is the model's task's, made once the model is loaded: check
        # its folder now, so that a typo costs no model load
        if self.predictions is not None and not self.predictions.parent.is_dir():
            raise SettingsError(
                f"--predictions {self.predictions}: folder {self.predictions.parent} does not exist"
            )

    def _check_run_limits(self) -> None:
        """The settings no library class holds: how long and where the run goes."""
        if self.max_frames is not None and self.max_frames < 1:
            raise SettingsError(
                f"--max-frames must be >= 1, got {self.max_frames}", field="max_frames"
            )
        check_fps(self.fps)
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise SettingsError(
                f"--timeout must be a positive number of seconds, got {self.timeout}",
                field="timeout",
            )
        if not (math.isfinite(self.reconnect) and self.reconnect >= 0):
            raise SettingsError(
                f"--reconnect must be a number of seconds >= 0, got {self.reconnect}",
                field="reconnect",
            )
        if not (math.isfinite(self.stop_timeout) and self.stop_timeout > 0):
            raise SettingsError(
                f"--stop-timeout must be a positive number of seconds, got {self.stop_timeout}",
                field="stop_timeout",
            )
        threads = self.threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise SettingsError(
                f"--threads must be an integer >= 1, got {threads!r}", field="threads"
            )
        resolve_device(self.device)
        self.hardware_decoding()

    def hardware_decoding(self) -> HardwareDecoding | None:
        """``hwaccel`` for :func:`~streamdeq.data.open_video` (see :func:`hardware_decoding`)."""
        return hardware_decoding(self.hwaccel, self.device)

    def stream_settings(self, model: object | None = None) -> StreamSettings:
        """The stream's settings for these options, for ``model``: frames are resized to
        ``size``, or to the input size its weights declare (:func:`declared_input_size`),
        on top of the normalisation the stream takes from the model. Without a model: the
        settings with no resize (what every model gets)."""
        with flag_words():
            settings = StreamSettings.from_options(
                mode=self.mode,
                iters=self.iters,
                tol=self.tol,
                budget_ms=self.budget_ms,
                max_iter_cap=self.max_iters,
                solver=self.solver,
                shot_policy=self.shot_policy,
            )
            if model is None:
                return settings
            resize = self.size if self.size is not None else declared_input_size(model)
            if resize is None:
                return settings
            preprocess = replace(settings.preprocess_for(model), resize=resize)
            return replace(settings, preprocess=preprocess)


def hardware_decoding(hwaccel: str | None, device: str) -> HardwareDecoding | None:
    """The hardware decoder ``--hwaccel`` names, a plain "cuda" on the GPU that ``device``
    names, so that decoded frames and the model share one (None without ``hwaccel``)."""
    if hwaccel is None:
        return None
    resolved = resolve_device(device)
    return HardwareDecoding.parse(
        hwaccel, cuda_index=resolved.index if resolved.type == "cuda" else None
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

#: What :func:`load_run_model` returns (kept under its old name).
LoadedModel = ResolvedModel


def load_run_model(options: RunOptions, device: torch.device) -> ResolvedModel:
    """The model ``options`` name, in eval mode on ``device``; a named model without trained
    weights runs with random ones and a warning (the default model must have its weights).

    Raises:
        CheckpointError: a checkpoint that is missing, unreadable or does not fit its config
            (a :class:`~streamdeq.models.CheckpointMismatchError` counts the missing,
            unexpected and wrongly shaped tensors).
        SettingsError: an unknown model name, or no model given and no default installed.
    """
    return resolve_model(
        options.model,
        options.checkpoint,
        config=options.config,
        weights="random-if-missing",
        device=device,
    )


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
