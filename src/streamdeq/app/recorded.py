"""A recorded ``streamdeq run`` as a timeline: when each input frame arrived and when its output
was ready, from the run's stats file (``--stats``), for ``streamdeq score``.

Arrivals: frame k arrives at tau_k, its recorded ``timestamp`` (frames the run never saw, e.g.
dropped ones, are placed between their neighbours), or k / fps when ``fps`` is given.

Finish times:

* **live sources** recorded ``finish_s``, the wall time the output was ready on the frames'
  clock: used as they are (an output cannot be ready before its frame arrived, so where the
  stream's clock and the wall clock disagree by a little the finish is taken as the arrival,
  and counted);
* **files** are read faster than real time, so their wall times mean nothing for an online
  system. Their finish times are simulated from the recorded step latencies at the source's
  rate, under the scheduler a file run has ("every frame": each frame processed, in order, as
  soon as it has arrived and the previous one is done)::

      f_k = max(tau_k, f_{k-1}) + latency_k

  Other schedulers (process the latest frame, shrinking tail, fit the interval) would have
  processed other frames, from other states: scoring them needs the model run again
  (``streamdeq experiment streaming``), not a replay.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StreamDEQError
from ..streaming.records import arrival_times as stream_arrival_times
from ..tasks.predictions import parse_json_lines, read_text

#: Columns a stats file needs for scoring.
REQUIRED_COLUMNS = ("index", "timestamp", "latency_ms")


class StatsFileError(StreamDEQError, ValueError):
    """A stats file that cannot be read, or lacks what scoring needs."""


@dataclass(frozen=True)
class RecordedFrame:
    """One stats row: input index k, timestamp (s), step latency (ms), finish (s, live only)."""

    index: int
    timestamp: float
    latency_ms: float
    finish_s: float | None


def read_stats(path: Path) -> list[RecordedFrame]:
    """The rows of a stats file (.csv, .jsonl/.ndjson, .json, or the ``.incomplete`` file of a
    killed run, whose torn last line is skipped), in input order.

    Raises:
        StatsFileError: no such file, an unknown format, missing columns, a value that is not
            a number, indices that repeat or go backwards.
    """
    path = Path(path)
    rows = _raw_rows(path)
    if not rows:
        raise StatsFileError(f"{path}: the stats file has no rows")
    missing = [column for column in REQUIRED_COLUMNS if column not in rows[0]]
    if missing:
        raise StatsFileError(
            f"{path}: the stats lack column(s) {', '.join(missing)}; scoring needs "
            f"{', '.join(REQUIRED_COLUMNS)} (write them with streamdeq run --stats)"
        )
    frames = [_frame(path, number, row) for number, row in enumerate(rows, start=1)]
    for before, after in itertools.pairwise(frames):
        if after.index <= before.index:
            raise StatsFileError(
                f"{path}: frame index {after.index} follows {before.index}; a run's stats "
                "count up (is this two runs' stats in one file?)"
            )
    live = [frame.finish_s is not None for frame in frames]
    if any(live) and not all(live):
        raise StatsFileError(f"{path}: some rows have finish_s and some not; one run has one kind")
    return frames


def is_live(frames: Sequence[RecordedFrame]) -> bool:
    """Whether the run recorded its finish times (a live source)."""
    return bool(frames) and frames[0].finish_s is not None


def arrival_times(
    frames: Sequence[RecordedFrame], count: int, fps: float, *, use_timestamps: bool
) -> list[float]:
    """tau_0 .. tau_{count-1}: the recorded timestamps (``use_timestamps``; frames without one
    placed linearly between their recorded neighbours, and 1 / fps apart beyond the ends), or
    k / fps."""
    if not use_timestamps:
        return stream_arrival_times(count, fps)
    known = {frame.index: frame.timestamp for frame in frames}
    indices = sorted(known)
    arrivals = []
    for k in range(count):
        if k in known:
            arrivals.append(known[k])
            continue
        place = bisect.bisect_left(indices, k)
        before = indices[place - 1] if place > 0 else None
        after = indices[place] if place < len(indices) else None
        if before is None:
            arrivals.append(known[after] - (after - k) / fps)
        elif after is None:
            arrivals.append(known[before] + (k - before) / fps)
        else:
            share = (k - before) / (after - before)
            arrivals.append(known[before] + share * (known[after] - known[before]))
    return arrivals


def finish_times(
    frames: Sequence[RecordedFrame], arrivals: Sequence[float]
) -> tuple[dict[int, float], int]:
    """Each recorded frame's finish time f_k (module docstring), and how many live finish
    times had to be moved up to their frame's arrival."""
    finishes: dict[int, float] = {}
    clamped = 0
    previous = -math.inf
    for frame in frames:
        tau = arrivals[frame.index]
        if frame.finish_s is not None:
            clamped += frame.finish_s < tau
            finishes[frame.index] = max(frame.finish_s, tau)
            continue
        previous = max(tau, previous) + frame.latency_ms / 1000.0
        finishes[frame.index] = previous
    return finishes, clamped


def _raw_rows(path: Path) -> list[Mapping[str, Any]]:
    suffix = path.suffix.lower()
    text = read_text(path, "stats", StatsFileError)
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and None in rows[-1].values():  # a last row torn by a kill mid-write
            rows.pop()
        return rows
    if suffix in (".jsonl", ".ndjson"):
        return parse_json_lines(path, text, StatsFileError)
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError:
            raise StatsFileError(
                f"{path}: not a whole JSON array (a .json stats file is only valid once the "
                "run ends; killed runs keep every row in .csv or .jsonl)"
            ) from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise StatsFileError(f"{path}: a .json stats file is an array of objects")
        return rows
    raise StatsFileError(f"{path}: stats are .csv, .jsonl or .json files, not {suffix or 'this'}")


def _frame(path: Path, number: int, row: Mapping[str, Any]) -> RecordedFrame:
    def number_of(column: str, *, optional: bool = False) -> float | None:
        value = row.get(column)
        if value in (None, "") and optional:
            return None
        try:
            result = float(value)
        except (TypeError, ValueError):
            result = math.nan
        if not math.isfinite(result):
            raise StatsFileError(
                f"{path}: row {number} has {column} {value!r}, not a finite number"
            )
        return result

    index = number_of("index")
    if index != int(index) or index < 0:
        raise StatsFileError(f"{path}: row {number} has index {row.get('index')!r}")
    latency = number_of("latency_ms")
    if latency < 0:
        raise StatsFileError(f"{path}: row {number} has a negative latency_ms")
    return RecordedFrame(
        index=int(index),
        timestamp=number_of("timestamp"),
        latency_ms=latency,
        finish_s=number_of("finish_s", optional=True),
    )


__all__ = [
    "REQUIRED_COLUMNS",
    "RecordedFrame",
    "StatsFileError",
    "arrival_times",
    "finish_times",
    "is_live",
    "read_stats",
]
