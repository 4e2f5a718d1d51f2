"""``streamdeq run``: a model on a real video, online, frame by frame, with an overlay video and
per-frame stats.

>>> options = RunOptions("clip.mp4", model="mdeq-seg-small-cityscapes", iters=2,
...                      out=Path("out.mp4"), stats=Path("stats.csv"))
>>> report = run_video(options)
>>> report.frames, report.latency_ms(50), report.shot_changes

The order of work is chosen so that a user's mistake costs nothing: options are checked when
:class:`RunOptions` is built, then the input is opened, then the outputs are checked (their
folders must exist and be writable), then the model is loaded, and only then does decoding start.

How a run ends (``RunReport.stopped``, and the command's exit code):

* complete (0): every frame of the input (or ``max_frames``) was processed;
* input error (1): the input broke off part-way (truncated or damaged file, a stream that dropped);
* interrupted (130): Ctrl-C. The first Ctrl-C lets the frame in progress finish, a second one
  stops at once.

In the last two cases the video and stats are finished with the frames done so far: complete,
playable files. If no frame was done, no output file is made and the input error is raised.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..data import CorruptVideoError, StatsWriter, VideoFrame, VideoSource, VideoWriter, open_video
from ..stream import FrameInfo, StepResult, StreamDEQ
from ..tasks import FrameRenderer, renderer_for
from .run_options import RunOptions, load_run_model, resolve_device

__all__ = ["RunOptions", "RunOutputs", "RunReport", "run_video", "stop_line", "summary_lines"]

#: Output frame rate when neither the input nor ``--fps`` gives one.
FALLBACK_FPS = 25.0

EXIT_COMPLETE, EXIT_INPUT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


# ----------------------------------------------------------------------------- outputs


class RunOutputs:
    """The overlay video and the stats file of a run, created (and so checked) together,
    finished or aborted together."""

    def __init__(self, out: Path | None, stats: Path | None, fps: float, size: tuple[int, int]):
        self.video = VideoWriter(out, fps, size) if out is not None else None
        try:
            self.stats = StatsWriter(stats) if stats is not None else None
        except BaseException:
            if self.video is not None:
                self.video.abort()
            raise

    @property
    def wanted(self) -> bool:
        return self.video is not None or self.stats is not None

    def write(self, image: Any, row: dict[str, Any]) -> None:
        if self.video is not None:
            self.video.write(image)
        if self.stats is not None:
            self.stats.write(row)

    def finish(self) -> None:
        try:
            for sink in (self.video, self.stats):
                if sink is not None:
                    sink.finish()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for sink in (self.video, self.stats):
            if sink is not None:
                sink.abort()


# ----------------------------------------------------------------------------- the run


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        frames: frames processed (and written).
        total: frames the input declared (None: unknown, e.g. a live stream).
        stopped: None (complete), "input_error" or "interrupted".
        stop_reason: the input error's message, or "Ctrl-C".
        out, stats: the files written (None: not asked for).
        model: where the model came from (name, checkpoint; "RANDOM weights" if so).
        task: the renderer used.
        device: where it ran.
        wall_seconds: from the first frame decoded to the outputs finished.
        shot_changes: indices of the frames where a shot change was detected.
        resets, divergences: frames that started from zeros other than the first, and frames
            whose solve diverged.
        iters_total: solver iterations over all frames.
        latencies_ms: each frame's step latency (8 bytes a frame: 20 MB for a day at 30 fps).
    """

    frames: int = 0
    total: int | None = None
    stopped: str | None = None
    stop_reason: str = ""
    out: Path | None = None
    stats: Path | None = None
    model: str = ""
    task: str = ""
    device: str = ""
    wall_seconds: float = 0.0
    shot_changes: list[int] = field(default_factory=list)
    resets: int = 0
    divergences: int = 0
    iters_total: int = 0
    latencies_ms: array = field(default_factory=lambda: array("d"))

    @property
    def exit_code(self) -> int:
        return {None: EXIT_COMPLETE, "input_error": EXIT_INPUT_ERROR}.get(
            self.stopped, EXIT_INTERRUPTED
        )

    def latency_ms(self, percentile: float) -> float:
        """A percentile (0..100) of the per-frame step latency (NaN before any frame)."""
        if not self.latencies_ms:
            return math.nan
        return float(torch.quantile(torch.tensor(self.latencies_ms), percentile / 100.0))

    @property
    def mean_iters(self) -> float:
        return self.iters_total / self.frames if self.frames else math.nan

    def record(self, info: FrameInfo) -> None:
        self.frames += 1
        self.iters_total += info.iters
        self.latencies_ms.append(info.latency_ms)
        if info.shot_change:
            self.shot_changes.append(info.index)
        if info.reset is not None and info.index > 0:
            self.resets += 1
        if info.diverged:
            self.divergences += 1


FrameCallback = Callable[[VideoFrame, StepResult], None]


def run_video(
    options: RunOptions,
    *,
    console: Console | None = None,
    on_frame: FrameCallback | None = None,
) -> RunReport:
    """Run a model on a video online: each frame through the stream, drawn, written.

    Args:
        options: what to run (checked already).
        console: where to show a progress bar, the model's warning (random weights) and note
            (e.g. trained only on generated scenes), once, before the first frame (a rich
            Console, usually on stderr); None shows nothing. The bar only appears on a terminal.
        on_frame: called after each frame is written, with the decoded frame and the stream's
            result (e.g. to collect outputs).

    Returns:
        the :class:`RunReport`; ``stopped`` says whether the run ended early, in which case the
        outputs hold exactly the frames done.

    Raises:
        StreamDEQError: every user error (input, outputs, model, checkpoint, options) before
            any frame is processed, and an input error if it happens before the first frame.
    """
    device = resolve_device(options.device)
    if options.threads is not None:  # process-wide, as the command owns the process
        torch.set_num_threads(options.threads)
    video = open_video(
        options.source, max_frames=options.max_frames, fps=options.fps, timeout=options.timeout
    )
    with video:
        fps = options.fps or video.fps or FALLBACK_FPS
        outputs = RunOutputs(options.out, options.stats, fps, video.size)
        try:
            loaded = load_run_model(options, device)
            task, renderer = renderer_for(loaded.model, options.task)
            settings = options.stream_settings(loaded.model)  # resized as the weights declare
            stream = StreamDEQ(loaded.model, settings=settings, device=device)
        except BaseException:
            outputs.abort()
            raise
        if console is not None:
            for prefix, message in (("warning", loaded.warning), ("note", loaded.note)):
                if message is not None:
                    console.print(
                        f"{prefix}: {message}", markup=False, highlight=False, soft_wrap=True
                    )
        report = RunReport(
            total=video.frame_count,
            out=options.out,
            stats=options.stats,
            model=loaded.description,
            task=task,
            device=str(device),
        )
        _process(video, stream, renderer, outputs, report, console, on_frame)
    return report


def _process(
    video: VideoSource,
    stream: StreamDEQ,
    renderer: FrameRenderer,
    outputs: RunOutputs,
    report: RunReport,
    console: Console | None,
    on_frame: FrameCallback | None,
) -> None:
    """The frame loop; finishes the outputs with the frames done, whatever stops it."""
    start = time.perf_counter()
    try:
        with _deferred_interrupt() as interrupted, _progress(console, report.total) as advance:
            for frame in video:
                result = stream.step(frame.image)
                if outputs.wanted:  # drawing costs, and only the outputs need it
                    image, extra = renderer.render(frame.image, result.output)
                    row = _stats_row(frame, result.info, extra, renderer.columns)
                    outputs.write(image, row)
                report.record(result.info)
                advance(result.info)
                if on_frame is not None:
                    on_frame(frame, result)
                if interrupted():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        report.stopped, report.stop_reason = "interrupted", "Ctrl-C"
    except CorruptVideoError as error:
        if report.frames == 0:
            outputs.abort()
            raise
        report.stopped, report.stop_reason = "input_error", str(error)
    except BaseException:
        outputs.abort()
        raise
    if report.frames == 0:  # nothing to show (Ctrl-C before the first frame): make no file
        outputs.abort()
        report.out = report.stats = None
    else:
        outputs.finish()
    report.wall_seconds = time.perf_counter() - start


def _stats_row(
    frame: VideoFrame, info: FrameInfo, extra: dict[str, Any], columns: Sequence[str]
) -> dict[str, Any]:
    """One stats row: the stream's FrameInfo (with its shot_change column), the frame's
    timestamp in seconds, then the renderer's ``columns`` (empty where it gave no value), so
    every row has the same columns."""
    row = info.as_row()
    head = {"index": row.pop("index"), "timestamp": round(frame.timestamp, 6)}
    return head | row | {column: extra.get(column) for column in columns}


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C only raises a flag, checked between frames (so no frame is cut in the
    middle of encoding); a second Ctrl-C interrupts at once. Only in the main thread, where
    Python delivers signals; elsewhere Ctrl-C behaves as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received = []

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


class _FramesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} frames/s", style="progress.data.speed")


@contextmanager
def _progress(console: Console | None, total: int | None) -> Iterator[Callable[[FrameInfo], None]]:
    """A rich progress bar (frames, frames/s, the last frame's iterations and latency);
    nothing when ``console`` is None or not a terminal."""
    if console is None or not console.is_terminal:
        yield lambda info: None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _FramesPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
    ]
    with Progress(*columns, console=console) as progress:
        task_id = progress.add_task("streaming", total=total, last="")

        def advance(info: FrameInfo) -> None:
            last = f"M={info.iters} {info.latency_ms:.0f} ms"
            progress.update(task_id, advance=1, last=last + (" cut" if info.shot_change else ""))

        yield advance


def summary_lines(report: RunReport) -> list[str]:
    """The run in a few lines, for the command line."""
    if report.frames == 0:
        return [f"no frames processed with {report.model}; no output written"]
    lines = [
        f"{report.frames} frames with {report.model} on {report.device} ({report.task}): "
        f"step latency median {report.latency_ms(50):.1f} ms, p90 {report.latency_ms(90):.1f} "
        f"ms, {report.mean_iters:.2f} iterations/frame, "
        f"{report.frames / max(report.wall_seconds, 1e-9):.1f} frames/s overall",
        f"shot changes at frames {report.shot_changes or 'none'}; "
        f"{report.resets} resets, {report.divergences} diverged frames",
    ]
    for what, path in (("video", report.out), ("stats", report.stats)):
        if path is not None:
            lines.append(f"wrote {what} {path}")
    return lines


def stop_line(report: RunReport) -> str | None:
    """One line saying why the run stopped early and what was kept (None if it did not)."""
    if report.stopped is None:
        return None
    kept = " and ".join(str(p) for p in (report.out, report.stats) if p is not None)
    kept = f"{kept} hold" if kept else "the summary covers"
    return (
        f"stopped early ({report.stop_reason}): {kept} the {report.frames} frames done; "
        "the files are complete"
    )
