"""The command line's side of ``streamdeq experiment streaming``: its flags, checked, turned
into the arguments of :func:`~streamdeq.experiments.streaming.streaming`.

Only the streaming experiment takes these flags; another experiment given one is refused, so a
flag never silently does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..streaming import bundled_profile, load_profile
from ..tasks import get_task, task_of
from ..validation import check_real
from .detection import EXAMPLE_DETECTOR
from .streaming import CLOCKS, parse_fps, parse_schedulers, parse_schemes

#: The experiment these flags belong to.
NAME = "streaming"

#: ``--profile`` words: the bundled profile of the model at the clips' size on the CPU, or
#: each step's measured cost on this machine (still virtual time).
PROFILE_WORDS = ("bundled", "measured")

#: Clips of the default sweep: about 40 s of one CPU core each with the bundled models.
STREAMING_CLIPS = 4

#: The model ``--task`` picks when no ``--model`` or ``--checkpoint`` is given.
TASK_MODELS = {"segmentation": None, "detection": EXAMPLE_DETECTOR}


@dataclass(frozen=True)
class StreamingFlags:
    """The streaming experiment's flags as typed (None: not given)."""

    task: str | None = None
    fps: str | None = None
    clock: str | None = None
    profile: str | None = None
    perf_factor: float | None = None
    schedulers: str | None = None
    schemes: str | None = None

    def given(self) -> list[str]:
        """The flags given, as the command line spells them."""
        return [f"--{f.name.replace('_', '-')}" for f in fields(self) if getattr(self, f.name)]

    def refuse_for(self, experiment: str) -> None:
        """Raise unless ``experiment`` is the streaming one or none of these flags is given."""
        given = self.given()
        if experiment != NAME and given:
            verb = "applies" if len(given) == 1 else "apply"
            raise SettingsError(f"{', '.join(given)} {verb} to the streaming experiment only")

    def default_model(self, model: str | None, checkpoint: Path | None) -> str | None:
        """The model to load: the one named, else the task's bundled one."""
        if model is not None or checkpoint is not None or self.task is None:
            return model
        return TASK_MODELS[get_task(self.task).name]

    def options(self, model: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`streaming` for ``model``, except the pricing
        (:meth:`pricing`, which needs the clips' size)."""
        if self.task is not None and task_of(model).name != get_task(self.task).name:
            raise SettingsError(
                f"--task {self.task} but the model is a {task_of(model).name} model"
            )
        clock = self.clock or "sim"
        if clock not in CLOCKS:
            raise SettingsError(f"--clock takes sim or real, got {clock!r}")
        if clock == "real" and (self.profile is not None or self.perf_factor is not None):
            raise SettingsError("--profile and --perf-factor price simulated time: use --clock sim")
        if self.perf_factor is not None:
            check_real("perf_factor", self.perf_factor, exclusive_minimum=0, label="--perf-factor")
        options: dict[str, Any] = {"clock": clock}
        if self.fps is not None:
            options["fps"] = parse_fps(self.fps)
        if self.schemes is not None:
            options["schemes"] = parse_schemes(self.schemes)
        if self.schedulers is not None:
            options["schedulers"] = parse_schedulers(self.schedulers)
        return options

    def pricing(self, model_name: str | None, size: tuple[int, int]) -> dict[str, Any]:
        """The simulated clock's cost (``profile``, ``profile_name``, ``perf_factor``) for
        the model registered as ``model_name`` (None: a checkpoint file) on clips of ``size``
        (H, W); nothing for the real clock."""
        if (self.clock or "sim") != "sim":
            return {}
        profile, profile_name = self._profile(model_name, size)
        perf_factor = 1.0 if self.perf_factor is None else self.perf_factor
        return {"profile": profile, "profile_name": profile_name, "perf_factor": perf_factor}

    def _profile(self, model_name: str | None, size: tuple[int, int]) -> tuple[Any, str]:
        word = self.profile or "bundled"
        if word == "measured":
            return None, "measured"
        if word == "bundled":
            if model_name is None:
                raise SettingsError(
                    "no bundled latency profile for a checkpoint file; give --profile FILE "
                    "(`streamdeq bench profile`) or --profile measured"
                )
            profile = bundled_profile(model_name, size, "cpu")
            return profile, f"bundled {model_name} {size[0]}x{size[1]} cpu"
        path = Path(word).expanduser()
        return load_profile(path), str(path)


__all__ = ["NAME", "PROFILE_WORDS", "STREAMING_CLIPS", "StreamingFlags"]
