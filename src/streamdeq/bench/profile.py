"""Record a latency profile (:mod:`streamdeq.streaming.profiles`): what each step of one model
costs at one frame size on this device, for simulated clocks to replay.

``streamdeq bench profile --model NAME [--size HxW] [--device cuda] --profile-out FILE.json``.
Every scheme (the baseline's N from zeros, StreamDEQ at M = 1, 2, 4, 8, and StreamDEQ M = 2 with
2 and 4 streams batched) is its own stream on the same smoothly panning clip; after ``warmup``
untimed rounds each round steps every scheme once, in a rotating order (the machine may be
shared: drift hits all schemes alike). A step's latency is the engine's own (frame in, output
out, device synchronised, so it is honest on CUDA too).
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from ..cpu_allocator import cpu_allocator_tuned
from ..models.resolve import DEFAULT_MODEL, resolve_model
from ..stream import StreamBatch, StreamDEQ
from ..stream.shots import ShotSettings
from ..streaming.profiles import LatencyProfile, ProfileEntry, save_profile, summarize_ms
from ..streaming.provenance import device_name
from .common import BenchReport, BenchSettings, environment
from .setup import QUICK_SIZE, panning_clip, scale_size

#: Streams batched in the batch entries (StreamDEQ M = 2).
BATCH_SIZES = (2, 4)
#: Shot detection off, as in the experiments (``streamdeq.experiments.schemes.NO_SHOTS``).
NO_SHOTS = ShotSettings(policy="keep", detect="off")
#: What a profile recorded here says about its conditions.
SHARED_NOTE = (
    "recorded on a machine other processes may share; load_avg_1min (at the start) says how "
    "busy it was, and the spread of the samples is part of the profile"
)
#: Timed rounds (frames per stream) unless ``--frames`` says otherwise.
DEFAULT_ROUNDS = 10


@dataclass
class _Scheme:
    """One thing to time: a stream (or a batch of ``batch`` streams) and its samples."""

    name: str
    mode: str
    iters: int | None
    runner: Any
    batch: int = 1

    def __post_init__(self) -> None:
        self.samples: list[tuple[float, float, int]] = []

    def step(self, frame: Any) -> tuple[float, float, int]:
        if self.batch == 1:
            info = self.runner.step(frame).info
        else:
            results = self.runner.step(dict.fromkeys(range(self.batch), frame))
            info = max((r.info for r in results.values()), key=lambda i: i.nfev)
        return info.latency_ms, info.solve_ms, info.nfev

    def entry(self) -> ProfileEntry:
        evals = Counter(s[2] for s in self.samples).most_common(1)[0][0]
        kept = [s for s in self.samples if s[2] == evals]
        return ProfileEntry(
            scheme=self.name,
            mode=self.mode,
            iters=self.iters,
            evals=evals,
            batch=self.batch,
            latency_ms=tuple(s[0] for s in kept),
            solve_ms=tuple(s[1] for s in kept),
        )


def record_profile(
    model: Any,
    model_name: str,
    size: tuple[int, int],
    device: str = "cpu",
    iters: tuple[int, ...] = (1, 2, 4, 8),
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = 2,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    note: str = "",
) -> LatencyProfile:
    """Time ``model``'s schemes at ``size`` on ``device`` (module docstring)."""
    size = scale_size(size, model.input_multiple)
    n_full = model.config.f_thres
    schemes = [_Scheme(f"baseline N={n_full}", "baseline", None, _stream(model, device, None))]
    schemes += [_Scheme(f"stream M={m}", "stream", m, _stream(model, device, m)) for m in iters]
    for b in batch_sizes:
        batch = StreamBatch(model, device=device, iters=2, mode="stream", shots=NO_SHOTS)
        for k in range(b):
            batch.add_stream(k)
        schemes.append(_Scheme(f"stream M=2 x{b} streams", "stream", 2, batch, batch=b))
    clip = panning_clip(size, warmup + rounds)
    with torch.no_grad():
        for t, frame in enumerate(clip):
            shift = t % len(schemes)
            for scheme in schemes[shift:] + schemes[:shift]:
                sample = scheme.step(frame)
                if t >= warmup:
                    scheme.samples.append(sample)
    return LatencyProfile(
        model=model_name,
        size=size,
        device=device,
        entries=tuple(s.entry() for s in schemes),
        measured_on=_measured_on(device, rounds, warmup, note),
    )


def _stream(model: Any, device: str, iters: int | None) -> StreamDEQ:
    if iters is None:
        return StreamDEQ(model, mode="baseline", device=device, shots=NO_SHOTS)
    return StreamDEQ(model, mode="stream", iters=iters, device=device, shots=NO_SHOTS)


def _measured_on(device: str, rounds: int, warmup: int, note: str) -> dict[str, Any]:
    return {
        "device_name": device_name(torch.device(device)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_allocator_tuned": cpu_allocator_tuned(),
        "rounds": rounds,
        "warmup_rounds": warmup,
        "note": note,
    }


def run_profile(settings: BenchSettings) -> BenchReport:
    """The ``profile`` benchmark: record one model's profile, print its summary, and write it
    to ``settings.profile_out`` when given."""
    name = settings.model or DEFAULT_MODEL
    report = BenchReport("profile", f"latency profile of {name} on {settings.device}")
    report.conditions = environment(settings)
    resolved = resolve_model(name, weights="random-if-missing", device=settings.device)
    model = resolved.model
    native = getattr(getattr(model, "pretrained_info", None), "input_size", None)
    size = settings.size or (QUICK_SIZE if settings.quick else native) or QUICK_SIZE
    profile = record_profile(
        model,
        name,
        size,
        device=settings.device,
        iters=(1, 2) if settings.quick else (1, 2, 4, 8),
        rounds=1 if settings.quick else settings.frames or DEFAULT_ROUNDS,
        warmup=max(settings.warmup, 1),
        batch_sizes=() if settings.quick else BATCH_SIZES,
        note=SHARED_NOTE,
    )
    for entry in profile.entries:
        report.rows.append(
            {
                "scheme": entry.scheme,
                "evals": entry.evals,
                "batch": entry.batch,
                "steps": len(entry.latency_ms),
                **{k: round(v, 3) for k, v in summarize_ms(entry.latency_ms).items()},
            }
        )
    overhead, per_eval = profile.fit
    report.notes.append(
        f"fit: latency = {overhead:.2f} ms + {per_eval:.2f} ms x evaluations; size "
        f"{profile.size[0]}x{profile.size[1]}"
    )
    if settings.profile_out:
        path = save_profile(profile, settings.profile_out)
        report.notes.append(f"profile written to {path}")
    return report


__all__ = ["record_profile", "run_profile"]
