"""Solver overhead (benchmark 2) and the limit of a frame's cost (benchmark 3).

Overhead: ratio = time(M solver iterations) / (nfev x time(one bare f on the same state)); the
floor is 1.0. Because the machine is noisy, the time spent inside f during each solve is also
measured directly, and ``outside_f_pct`` (the share of the solve spent outside f) is the number
least disturbed by other load. Evaluations per iteration: our efficient Broyden needs M for M
iterations; the published Broyden (our ``parity=True`` and TorchDEQ) needs M + 1.

Limit: a frame of the stream engine at M iterations costs at least M x T(f) + T(inject) +
T(head); ``frame / limit`` says how close each solver gets.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..solvers import solve
from ..stream import StreamDEQ
from .common import BenchReport, BenchSettings, environment, interleaved, make_sync, median_ms
from .peers import TORCHDEQ_SOLVERS, torchdeq_available, torchdeq_solve
from .setup import panning_clip, partly_solved_state, random_input, solver_model

OURS = [
    ("fixed_point", {}),
    ("anderson", {}),
    ("broyden", {}),
    ("broyden", {"parity": True}),
]


def iteration_counts(settings: BenchSettings) -> tuple[int, ...]:
    return (1, 2) if settings.quick else (1, 2, 4, 8)


class _TimedF:
    """f with a stopwatch: how long the calls of f inside one solve took."""

    def __init__(self, f: Callable, sync: Callable[[], None]) -> None:
        self.f, self.sync, self.seconds = f, sync, 0.0

    def __call__(self, *args: Any) -> Any:
        self.sync()
        start = time.perf_counter()
        out = self.f(*args)
        self.sync()
        self.seconds += time.perf_counter() - start
        return out


def run_overhead(settings: BenchSettings) -> BenchReport:
    spec = solver_model(settings)
    model = spec.build(settings.device)
    x = random_input(model, spec.size, settings.device)
    sync = make_sync(settings.device)
    report = BenchReport("overhead", "Solver overhead: time of M iterations / (nfev x bare f)")
    report.conditions = {**environment(settings), "model": spec.label, "size": list(x.shape[-2:])}
    state = partly_solved_state(model, x)
    with torch.no_grad():
        injection = model.inject(x)
        timed = _TimedF(model.f, sync)
        variants: dict[str, Callable[[], Any]] = {
            "bare f": lambda: model.f(state, injection),
            "inject": lambda: model.inject(x),
            "head": lambda: model.head(state),
        }
        inside: dict[str, list[float]] = {}
        nfev: dict[str, int] = {}
        meta: dict[str, tuple[str, str, int]] = {}
        peers = torchdeq_available()
        if not peers:
            report.notes.append("torchdeq is not installed: its rows are skipped")
        for m in iteration_counts(settings):
            for method, options in OURS:
                key = f"ours {method}{' (published)' if options else ''} M={m}"
                meta[key] = ("ours", method + (" published" if options else ""), m)
                variants[key] = _ours(
                    key, method, options, m, timed, state, injection, inside, nfev
                )
            if peers:
                for method in TORCHDEQ_SOLVERS:
                    key = f"torchdeq {method} M={m}"
                    meta[key] = ("torchdeq", method, m)
                    variants[key] = _peer(key, method, m, timed, state, injection, inside, nfev)
        samples = interleaved(variants, settings.repeats, settings.warmup, sync)
    t_f = statistics.median(samples["bare f"])
    report.rows.append(_cost_row("bare f", samples["bare f"], t_f))
    report.rows.append(_cost_row("inject", samples["inject"], t_f))
    report.rows.append(_cost_row("head", samples["head"], t_f))
    for key, (who, method, m) in meta.items():
        total = statistics.median(samples[key])
        in_f = statistics.median(inside[key][settings.warmup :])
        report.rows.append(
            {
                "variant": key,
                "solver": who,
                "method": method,
                "M": m,
                "ms": total * 1e3,
                "nfev": nfev[key],
                "evals_per_iter": nfev[key] / m,
                "ratio": total / (nfev[key] * t_f),
                "outside_f_pct": 100.0 * max(total - in_f, 0.0) / total,
            }
        )
    report.notes.append(
        "ratio = ms / (nfev x bare f ms); outside_f_pct = share of the solve not spent in f "
        "(measured inside the same call, so robust to machine load)"
    )
    return report


def _cost_row(name: str, values: list[float], t_f: float) -> dict[str, Any]:
    return {"variant": name, "ms": median_ms(values), "ratio": statistics.median(values) / t_f}


def _ours(key, method, options, m, timed, state, injection, inside, nfev):
    def run() -> None:
        timed.seconds = 0.0
        result = solve(timed, state, (injection,), method=method, max_iter=m, **options)
        inside.setdefault(key, []).append(timed.seconds)
        nfev[key] = result.nfev

    return run


def _peer(key, method, m, timed, state, injection, inside, nfev):
    def run() -> None:
        timed.seconds = 0.0
        nfev[key] = torchdeq_solve(method, timed, state, (injection,), m)
        inside.setdefault(key, []).append(timed.seconds)

    return run


def run_limit(settings: BenchSettings) -> BenchReport:
    """Frames through the stream engine at M iterations, against M x T(f) + inject + head."""
    spec = solver_model(settings)
    model = spec.build(settings.device)
    x = random_input(model, spec.size, settings.device)
    size = tuple(x.shape[-2:])
    sync = make_sync(settings.device)
    report = BenchReport("limit", "The limit: frame cost vs M x T(f) + T(inject) + T(head)")
    report.conditions = {**environment(settings), "model": spec.label, "size": list(size)}
    rounds = settings.warmup + settings.repeats
    clip = panning_clip(size, rounds + 1)
    state = partly_solved_state(model, x)
    streams: dict[str, StreamDEQ] = {}
    for m in iteration_counts(settings):
        for method in ("fixed_point", "anderson", "broyden"):
            streams[f"{method} M={m}"] = StreamDEQ(model, iters=m, solver=method)
    frame_index = {"t": 0}
    latencies: dict[str, list[float]] = {key: [] for key in streams}

    def stepper(key: str, stream: StreamDEQ) -> Callable[[], None]:
        def run() -> None:
            info = stream.step(clip[frame_index["t"] % len(clip)]).info
            latencies[key].append(info.latency_ms)

        return run

    with torch.no_grad():
        injection = model.inject(x)
        for stream in streams.values():  # a warm start, as in a running stream
            stream.step(clip[0])
        variants: dict[str, Callable[[], Any]] = {
            "bare f": lambda: model.f(state, injection),
            "inject": lambda: model.inject(x),
            "head": lambda: model.head(state),
        }
        variants.update({key: stepper(key, s) for key, s in streams.items()})
        samples: dict[str, list[float]] = {key: [] for key in variants}
        for _ in range(rounds):  # one frame per round, so every stream sees the same frames
            frame_index["t"] += 1
            got = interleaved(variants, 1, 0, sync)
            for key, vals in got.items():
                samples[key] += vals
    cut = settings.warmup
    t_f, t_inject, t_head = (median_ms(samples[k][cut:]) for k in ("bare f", "inject", "head"))
    report.rows.append({"scheme": "bare f", "frame_ms": t_f})
    report.rows.append({"scheme": "inject", "frame_ms": t_inject})
    report.rows.append({"scheme": "head", "frame_ms": t_head})
    for key in streams:
        method, m_text = key.split(" M=")
        m = int(m_text)
        frame_ms = statistics.median(latencies[key][cut:])
        limit_ms = m * t_f + t_inject + t_head
        report.rows.append(
            {
                "scheme": method,
                "M": m,
                "frame_ms": frame_ms,
                "limit_ms": limit_ms,
                "frame_over_limit": frame_ms / limit_ms,
            }
        )
    report.notes.append(
        "frame_ms is the engine's own per-frame latency (frame in, logits out, preprocessing "
        "included); limit_ms = M x bare f + inject + head, each timed in the same rounds"
    )
    return report
