"""What every benchmark shares: the report it returns, interleaved timing, the table it prints
and the JSON it writes.

Why interleaved: the machines these run on are shared and noisy, so absolute times drift by
tens of percent within a minute. Every compared variant is therefore timed once per round, in
a rotating order, and each variant's figure is the median over the rounds after warm-up; ratios
between variants measured in the same rounds are what the tables lead with.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cpu_allocator import cpu_allocator_tuned
from ..errors import SettingsError, StreamDEQError
from ..streaming.provenance import cpu_name
from ..validation import check_choice, check_int


class BenchmarkError(StreamDEQError):
    """A benchmark could not run or write its results (unknown name, unwritable output)."""


@dataclass(frozen=True)
class BenchSettings:
    """How much work a benchmark does.

    Attributes:
        quick: a seconds-long smoke run (tiny sizes, one repeat) that checks the machinery,
            not the numbers.
        size: (H, W) input size; None = the benchmark's own default (512 x 1024 for the
            paper-sized ones).
        repeats: timed rounds per variant after the warm-up (medians are over these).
        warmup: untimed rounds first.
        threads: torch intra-op threads (None: leave torch's setting).
        frames: frames per stream where a benchmark runs streams (None: its default).
        device: "cpu" or "cuda".
        models: which models the latency benchmark runs, among "bundled", "small", "xl"
            (None: all three).
        model: the registered model the profile benchmark records (None: the default model).
        profile_out: where the profile benchmark writes the latency profile (None: nowhere).
    """

    quick: bool = False
    size: tuple[int, int] | None = None
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    frames: int | None = None
    device: str = "cpu"
    models: tuple[str, ...] | None = None
    model: str | None = None
    profile_out: str | None = None

    def __post_init__(self) -> None:
        if self.models is not None:
            unknown = sorted(set(self.models) - {"bundled", "small", "xl"})
            if unknown or not self.models:
                raise SettingsError(
                    f"unknown model choice(s) {', '.join(unknown) or 'none'}; use bundled, small, xl"
                )
        check_int("repeats", self.repeats)
        check_int("warmup", self.warmup, minimum=0)
        check_int("threads", self.threads, optional=True)
        check_int("frames", self.frames, optional=True)
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise SettingsError(f"size must be (height, width) > 0, got {self.size}", field="size")
        check_choice("device", self.device, ("cpu", "cuda"))


@dataclass
class BenchReport:
    """One benchmark's results: rows of plain values (one dict per measured variant), the
    conditions they were measured under, and notes (skipped parts, caveats)."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    series: dict[str, list[Any]] = field(default_factory=dict)  # JSON only (e.g. RSS samples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "conditions": self.conditions,
            "rows": self.rows,
            "notes": self.notes,
            "series": self.series,
        }


def parse_size(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SettingsError(f"size must look like 512x1024, got {text!r}") from None
    if height < 1 or width < 1:
        raise SettingsError(f"size must be positive, got {text!r}")
    return height, width


def environment(settings: BenchSettings) -> dict[str, Any]:
    """The conditions a table needs to be read: device, threads, versions, date."""
    info = {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "device": settings.device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_allocator_tuned": cpu_allocator_tuned(),
        "quick": settings.quick,
    }
    if settings.device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def make_sync(device: str) -> Callable[[], None]:
    """A function that waits for the device, so wall-clock timing measures finished work."""
    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def interleaved(
    variants: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each variant, one call per variant per round, the order rotating
    from round to round; the ``warmup`` first rounds are not kept."""
    sync = sync or (lambda: None)
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            variants[name]()
            sync()
            if round_index >= warmup:
                samples[name].append(time.perf_counter() - start)
    return samples


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1e3


def spread_pct(values: Sequence[float]) -> float:
    """(max - min) / median in percent: how noisy a variant's rounds were."""
    mid = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / mid if mid > 0 else 0.0


def print_report(report: BenchReport, console: Any = None) -> None:
    """The rows as a rich table (columns: the union of the rows' keys), then the notes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=180)
    columns: list[str] = []
    for row in report.rows:
        columns += [key for key in row if key not in columns]
    table = Table(*columns, title=report.title, title_justify="left")
    for row in report.rows:
        table.add_row(*(_cell(row.get(key)) for key in columns))
    console.print(table)
    shown = (
        "device",
        "cpu",
        "gpu",
        "threads",
        "size",
        "date_utc",
        "load_avg_1min",
        "cpu_allocator_tuned",
    )
    conditions = ", ".join(f"{k}={report.conditions[k]}" for k in shown if k in report.conditions)
    console.print(f"[dim]{conditions}[/dim]")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def write_json(reports: Sequence[BenchReport], path: str | os.PathLike[str]) -> Path:
    """Write the reports as one JSON document, via a temporary file renamed into place (an
    interrupted run never leaves a complete-looking file)."""
    target = Path(path)
    payload = _clean({"reports": [report.as_dict() for report in reports]})
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as error:
        raise BenchmarkError(f"cannot write {target}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out, indent=2, default=_json_default)
            out.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _clean(value: Any) -> Any:
    """NaN/Inf become null (strict JSON has no NaN)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    return str(value)
