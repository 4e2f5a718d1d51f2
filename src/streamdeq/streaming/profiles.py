"""Latency profiles: what each step of a model cost on a named device, recorded once and replayed
by a simulated clock, so that a streaming-accuracy result says "on an H200" or "on this CPU"
without needing that device, and is the same on every run.

A profile belongs to one model at one frame size on one device. It holds the measured steps of
several schemes (:class:`ProfileEntry`: every step's latency and solve time, with the f
evaluations it made) and a fit of all of them to ``latency = overhead + ms_per_eval * evals``.
To price a step it needs only the step's evaluations, so it prices every plan, including the
frames whose iteration count varies (tolerance, time budget, keyframes, shot boosts):

* evaluations that some entry measured: one of that entry's steps, drawn at random (latency and
  solve time together, so their relation is a real one);
* other counts: the linear fit, times the ratio measured / fitted of a step drawn at random
  from all entries (the recorded noise, carried over multiplicatively);
* a step of B streams batched: one stream's price times ``batch_cost(B)``, the measured cost of
  a B-stream step relative to a one-stream step (linear between the recorded sizes).

Profiles are JSON files (:func:`save_profile` / :func:`load_profile`); the ones recorded for the
bundled models ship in ``streamdeq/streaming/profiles/`` (:func:`bundled_profile`); record one
with ``streamdeq bench profile``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingsError

#: The ``format`` field of a profile file.
PROFILE_FORMAT = "streamdeq-latency-profile/1"

#: Where the bundled profiles live.
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(SettingsError):
    """A latency profile that cannot be read or used (missing file, wrong format, no steps)."""


@dataclass(frozen=True)
class ProfileEntry:
    """The measured steps of one scheme.

    Attributes:
        scheme: its name, e.g. "stream M=2" or "baseline N=24".
        mode: the StreamDEQ mode ("stream", "baseline", ...).
        iters: M (None for the baseline's N).
        evals: f evaluations per step (each step of an entry makes the same number).
        batch: streams stepped together (1: one stream).
        latency_ms: each timed step, frame in to output out, device synchronised.
        solve_ms: the solver's part of each step.
    """

    scheme: str
    mode: str
    iters: int | None
    evals: int
    latency_ms: tuple[float, ...]
    solve_ms: tuple[float, ...]
    batch: int = 1

    def __post_init__(self) -> None:
        if not self.latency_ms or len(self.latency_ms) != len(self.solve_ms):
            raise ProfileError(
                f"profile entry {self.scheme!r}: needs as many solve_ms as latency_ms samples "
                f"(at least one), got {len(self.latency_ms)} and {len(self.solve_ms)}"
            )
        object.__setattr__(self, "latency_ms", tuple(float(v) for v in self.latency_ms))
        object.__setattr__(self, "solve_ms", tuple(float(v) for v in self.solve_ms))


@dataclass(frozen=True)
class LatencyProfile:
    """What steps of ``model`` at ``size`` cost on ``device`` (module docstring).

    Attributes:
        model: the model's registered name (or a description).
        size: (H, W) of the frames.
        device: "cpu", "cuda", ...
        entries: the measured schemes.
        measured_on: where and how: device name, threads, torch version, date, notes.
    """

    model: str
    size: tuple[int, int]
    device: str
    entries: tuple[ProfileEntry, ...]
    measured_on: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        single = [e for e in self.entries if e.batch == 1]
        if not single:
            raise ProfileError(f"the profile of {self.model!r} has no one-stream steps")
        object.__setattr__(self, "size", tuple(self.size))
        object.__setattr__(self, "entries", tuple(self.entries))

    # ------------------------------------------------------------------ the cost model

    @cached_property
    def fit(self) -> tuple[float, float]:
        """(overhead_ms, ms_per_eval): least squares of every one-stream step's latency on its
        evaluations (overhead alone when all entries share one count)."""
        points = [(e.evals, ms) for e in self._single() for ms in e.latency_ms]
        xs = [x for x, _ in points]
        mean_x = sum(xs) / len(xs)
        mean_y = sum(y for _, y in points) / len(points)
        var = sum((x - mean_x) ** 2 for x in xs)
        if var == 0:
            return mean_y, 0.0
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
        slope = max(slope, 0.0)
        return mean_y - slope * mean_x, slope

    def expected_ms(self, evals: int, batch: int = 1) -> float:
        """The mean latency of a step with ``evals`` evaluations (the measured mean where an
        entry has that count, else the fit), for ``batch`` streams."""
        entry = self._entry_for(evals)
        if entry is not None:
            mean = sum(entry.latency_ms) / len(entry.latency_ms)
        else:
            overhead, per_eval = self.fit
            mean = overhead + per_eval * evals
        return mean * self.batch_cost(batch)

    def draw(self, evals: int, rng: random.Random, batch: int = 1) -> tuple[float, float]:
        """(latency_ms, solve_ms) of one step with ``evals`` evaluations, for ``batch``
        streams, drawn with ``rng`` (module docstring)."""
        entry = self._entry_for(evals)
        if entry is not None:
            k = rng.randrange(len(entry.latency_ms))
            latency, solve = entry.latency_ms[k], entry.solve_ms[k]
        else:
            overhead, per_eval = self.fit
            ratio = self._draw_ratio(rng)
            latency = (overhead + per_eval * evals) * ratio
            solve = per_eval * evals * ratio
        scale = self.batch_cost(batch)
        return latency * scale, solve * scale

    def batch_cost(self, batch: int) -> float:
        """A step of ``batch`` streams relative to one stream's (1 without batched entries)."""
        if batch <= 1:
            return 1.0
        points = self._batch_points
        if len(points) < 2:
            return float(batch)  # nothing measured: assume no gain from batching
        for (b0, c0), (b1, c1) in itertools.pairwise(points):
            if batch <= b1:
                return c0 + (c1 - c0) * (batch - b0) / (b1 - b0)
        (b0, c0), (b1, c1) = points[-2], points[-1]
        return c1 + (c1 - c0) * (batch - b1) / (b1 - b0)

    def _single(self) -> list[ProfileEntry]:
        return [e for e in self.entries if e.batch == 1]

    def _entry_for(self, evals: int) -> ProfileEntry | None:
        matches = [e for e in self._single() if e.evals == evals]
        return max(matches, key=lambda e: len(e.latency_ms)) if matches else None

    def _draw_ratio(self, rng: random.Random) -> float:
        ratios = self._ratios
        return ratios[rng.randrange(len(ratios))] if ratios else 1.0

    @cached_property
    def _ratios(self) -> list[float]:
        """Each one-stream step's latency over the fit's prediction: the recorded noise."""
        overhead, per_eval = self.fit
        return [
            ms / (overhead + per_eval * e.evals)
            for e in self._single()
            for ms in e.latency_ms
            if overhead + per_eval * e.evals > 0
        ]

    @cached_property
    def _batch_points(self) -> list[tuple[int, float]]:
        """(B, cost of a B-stream step / cost of a one-stream step at the same evaluations);
        cached: a simulated clock prices every step of a batched run with it."""
        points = {1: 1.0}
        for entry in self.entries:
            if entry.batch > 1:
                one = self._entry_for(entry.evals)
                if one is not None:
                    mean = sum(entry.latency_ms) / len(entry.latency_ms)
                    points[entry.batch] = mean / (sum(one.latency_ms) / len(one.latency_ms))
        return sorted(points.items())

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        overhead, per_eval = self.fit
        return {
            "format": PROFILE_FORMAT,
            "model": self.model,
            "size": list(self.size),
            "device": self.device,
            "measured_on": dict(self.measured_on),
            "fit": {"overhead_ms": round(overhead, 4), "ms_per_eval": round(per_eval, 4)},
            "entries": [
                {
                    "scheme": e.scheme,
                    "mode": e.mode,
                    "iters": e.iters,
                    "evals": e.evals,
                    "batch": e.batch,
                    "latency_ms": [round(v, 4) for v in e.latency_ms],
                    "solve_ms": [round(v, 4) for v in e.solve_ms],
                }
                for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "profile") -> LatencyProfile:
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"{source}: not a latency profile (format {PROFILE_FORMAT!r})")
        try:
            entries = tuple(
                ProfileEntry(
                    scheme=str(e["scheme"]),
                    mode=str(e["mode"]),
                    iters=e.get("iters"),
                    evals=int(e["evals"]),
                    batch=int(e.get("batch", 1)),
                    latency_ms=tuple(e["latency_ms"]),
                    solve_ms=tuple(e["solve_ms"]),
                )
                for e in data["entries"]
            )
            return cls(
                model=str(data["model"]),
                size=tuple(int(v) for v in data["size"]),
                device=str(data["device"]),
                entries=entries,
                measured_on=dict(data.get("measured_on", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ProfileError(f"{source}: malformed latency profile ({err!r})") from None


def save_profile(profile: LatencyProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as JSON (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile.to_dict(), indent=1) + "\n")
    return path


def load_profile(path: str | os.PathLike[str]) -> LatencyProfile:
    """Read a profile file written by :func:`save_profile` (or ``streamdeq bench profile``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"no latency profile at {path}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ProfileError(f"cannot read latency profile {path}: {err}") from None
    return LatencyProfile.from_dict(data, source=str(path))


def profile_file_name(model: str, size: Sequence[int], device: str) -> str:
    """The bundled file name of a profile: ``{model}_{H}x{W}_{device}.json``."""
    return f"{model}_{size[0]}x{size[1]}_{device}.json"


def bundled_profiles() -> list[str]:
    """File names of the profiles shipped with the package."""
    return sorted(p.name for p in PROFILE_DIR.glob("*.json"))


def bundled_profile(model: str, size: Sequence[int], device: str = "cpu") -> LatencyProfile:
    """The shipped profile of ``model`` at ``size`` on ``device``."""
    name = profile_file_name(model, size, device)
    if not (PROFILE_DIR / name).is_file():
        known = ", ".join(bundled_profiles()) or "none"
        raise ProfileError(
            f"no bundled latency profile {name}; bundled: {known}; record one with "
            "`streamdeq bench profile`"
        )
    return load_profile(PROFILE_DIR / name)


def summarize_ms(values: Sequence[float]) -> dict[str, float]:
    """mean, p50, p90 (numpy's linear interpolation) and the coefficient of variation
    (std / mean) of latencies in ms."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90])
    return {
        "mean_ms": mean,
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "cv": math.sqrt(var) / mean if mean > 0 else math.nan,
    }


__all__ = [
    "PROFILE_FORMAT",
    "LatencyProfile",
    "ProfileEntry",
    "ProfileError",
    "bundled_profile",
    "bundled_profiles",
    "load_profile",
    "profile_file_name",
    "save_profile",
    "summarize_ms",
]
