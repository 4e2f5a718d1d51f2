"""Benchmarks of StreamDEQ against its baseline, its peers and its limit.

>>> from streamdeq.bench import BenchSettings, run_benchmarks
>>> reports = run_benchmarks(["overhead"], BenchSettings(quick=True), out="results.json")

Each benchmark returns a :class:`BenchReport` (rows of plain values + the conditions they were
measured under); :func:`run_benchmarks` prints each as a table and writes them all as one JSON
file. The command line is ``streamdeq bench NAME|all [--quick] [--out results.json]``; the
commands that produced the published tables are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..registry import Registry
from .carry import run_carry
from .common import BenchmarkError, BenchReport, BenchSettings, parse_size, print_report, write_json
from .gpu import run_gpu
from .latency import run_latency
from .many_streams import run_streams
from .memory import run_memory
from .overhead import run_limit, run_overhead
from .profile import run_profile

#: name -> benchmark, in the order ``all`` runs them (cheapest first)
BENCHMARKS: Registry[Callable[[BenchSettings], BenchReport]] = Registry(
    "benchmark", error=BenchmarkError
)
for _name, _run in (
    ("overhead", run_overhead),
    ("limit", run_limit),
    ("streams", run_streams),
    ("memory", run_memory),
    ("latency", run_latency),
    ("carry", run_carry),
    ("gpu", run_gpu),
    ("profile", run_profile),
):
    BENCHMARKS.register(_name, _run)


def list_benchmarks() -> list[str]:
    return BENCHMARKS.names()


def resolve_names(name: str) -> list[str]:
    """'all' or one name (or a comma-separated list) -> benchmark names."""
    names = BENCHMARKS.names() if name == "all" else [n.strip() for n in name.split(",") if n]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise BenchmarkError(
            f"unknown benchmark {', '.join(unknown) or name!r}; choose all or one of "
            f"{', '.join(BENCHMARKS.names())}"
        )
    return names


def run_benchmarks(
    names: Sequence[str],
    settings: BenchSettings,
    out: str | os.PathLike[str] | None = None,
    console: Any = None,
) -> list[BenchReport]:
    """Run the named benchmarks in turn, print each table as it completes, and (with ``out``)
    rewrite the JSON file after each, so an interrupted run keeps the finished ones."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda asked for, but CUDA is not available here")
    torch.manual_seed(0)
    reports: list[BenchReport] = []
    for name in names:
        report = BENCHMARKS.get(name)(settings)
        reports.append(report)
        print_report(report, console)
        if out is not None:
            write_json(reports, out)
    return reports


__all__ = [
    "BENCHMARKS",
    "BenchReport",
    "BenchSettings",
    "BenchmarkError",
    "list_benchmarks",
    "parse_size",
    "resolve_names",
    "run_benchmarks",
]
