"""``streamdeq experiment NAME``: parse the command's options into an experiment call, run it,
print its rows and write its CSV + PNG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ..errors import SettingsError
from ..models.resolve import resolve_model
from ..tasks import task_of
from .clips import Clip, cityscapes_clips, generated_clips
from .detection import DETECTION_ONLY, require_detector
from .detection_clips import generated_detection_clips
from .streaming_cli import STREAMING_CLIPS, StreamingFlags

#: Clips an experiment runs on when --clips is not given.
DEFAULT_CLIPS = 8

#: Task name -> the generated street clips annotated for it, (num_clips, num_frames, split=).
GENERATED_CLIPS: dict[str, Callable[..., list[Clip]]] = {
    "segmentation": generated_clips,
    "detection": generated_detection_clips,
}


def run_experiment_command(
    name: str,
    *,
    model: str | None,
    checkpoint: Path | None,
    random_weights: bool,
    clips: int | None,
    frames: int,
    iters: str | None,
    steps: str | None,
    offsets: str | None,
    cityscapes: Path | None,
    split: str,
    out: Path,
    console: Console,
    threads: int | None = None,
    streaming_flags: StreamingFlags | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Run experiment ``name`` as the command line asks; returns the files written."""
    from . import EXPERIMENTS

    experiment = EXPERIMENTS.get(name)
    streaming_flags = streaming_flags or StreamingFlags()
    streaming_flags.refuse_for(name)
    if name == "streaming" and iters is not None:
        raise SettingsError("--iters does not apply to streaming; give --schemes stream=M,...")
    model = streaming_flags.default_model(model, checkpoint)
    if clips is None:
        clips = STREAMING_CLIPS if name == "streaming" else DEFAULT_CLIPS
    options: dict[str, Any] = {}
    if iters is not None:
        if name == "fig2":
            raise SettingsError("--iters does not apply to fig2 (it sweeps solver steps: --steps)")
        options["iters"] = parse_ints("--iters", iters)
    if steps is not None:
        if name != "fig2":
            raise SettingsError("--steps applies to fig2 only")
        options["steps"] = parse_ints("--steps", steps)
    if offsets is not None:
        if name not in ("fig5", "fig8"):
            raise SettingsError("--offsets applies to fig5 and fig8 only")
        options["offsets"] = parse_ints("--offsets", offsets)
    if threads is not None:
        torch.set_num_threads(threads)
    weights = "random" if random_weights else "required"
    resolved = resolve_model(model, checkpoint, weights=weights, device=device)
    net = resolved.model
    if name == "streaming":
        options.update(streaming_flags.options(net))
    if name in DETECTION_ONLY:
        require_detector(name, net)  # before the clips: they take a while
    with console.status("loading clips"):
        if cityscapes is not None:
            clip_set = cityscapes_clips(cityscapes, split, frames_per_clip=frames, max_clips=clips)
        else:
            clip_set = generated_clips_for(net, clips, frames, split)
    if name == "streaming":
        model_name = resolved.entry.name if resolved.entry is not None else None
        size = tuple(clip_set[0].frames.shape[1:3]) if clip_set else (0, 0)
        options.update(streaming_flags.pricing(model_name, size))
    with console.status(f"running {name} on {len(clip_set)} clips of {frames} frames"):
        result = experiment(net, clip_set, **options)
    console.print(rows_table(result.rows, title=name, columns=result.meta.get("table_columns")))
    files = result.save(out)
    console.print(f"wrote {', '.join(map(str, files))}")
    return files


def generated_clips_for(model: Any, num_clips: int, num_frames: int, split: str) -> list[Clip]:
    """Generated street clips annotated for ``model``'s task (label maps, boxes)."""
    task = task_of(model).name
    if task not in GENERATED_CLIPS:
        raise SettingsError(
            f"there are no generated clips for {task} models (only for "
            f"{', '.join(GENERATED_CLIPS)}); run the experiment from Python on your own clips"
        )
    return GENERATED_CLIPS[task](num_clips, num_frames, split=split)


def parse_ints(option: str, text: str) -> list[int]:
    """ "1,2,4" -> [1, 2, 4]; a one-line error for anything else."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SettingsError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise SettingsError(f"{option} takes integers >= 1, got {text!r}")
    return values


def rows_table(
    rows: list[dict[str, Any]],
    title: str = "",
    limit: int = 40,
    columns: list[str] | None = None,
) -> Table:
    """The first ``limit`` rows as a rich table (floats with 4 significant digits), all
    columns or those named (the rest stay in the CSV)."""
    view = Table(title=title or None)
    columns = columns or (list(rows[0]) if rows else [])
    for column in columns:
        view.add_column(
            column, justify="left" if column in ("scheme", "start", "mode") else "right"
        )
    for row in rows[:limit]:
        view.add_row(*(_cell(row[c]) for c in columns))
    if len(rows) > limit:
        view.caption = f"{len(rows) - limit} more rows in the CSV"
    return view


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
