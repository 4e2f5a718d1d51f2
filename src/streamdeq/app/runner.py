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
* input error (1): the input broke off part-way (a truncated file, a stream that dropped or went
  silent and did not come back within ``reconnect``), or with ``strict`` the first frame that
  does not decode;
* output error (74, EX_IOERR): an output could not be written mid-run (no space, file size limit,
  permission changed); the other outputs are finished, the failing one only if its writer can
  still finish it;
* interrupted (130 for Ctrl-C, 128 + the signal's number for SIGTERM and SIGHUP): the way
  terminals, service managers, containers and schedulers stop a job. The first signal lets the
  frame in progress finish, but for at most ``stop_timeout`` seconds (a fully solved XL frame
  takes ~26 s on a CPU, while Docker and Kubernetes send SIGKILL after 10-30 s): after that a
  timer thread finishes the outputs without that frame. A second signal stops at once.

When the run stops early the video and stats are finished with the frames done so far: complete,
playable files. If no frame was done, no output file is made and the input error is raised.

A frame that does not decode (a damaged image in a folder, a packet the decoder rejects, a
stretch of a stream lost to garbage) is not an error: it is dropped like a gap in time (the
stream's state carries on to the next frame), the next stats row says how many were dropped
before it (``dropped_before``), and the summary counts them. A live stream that reconnects
(``reconnect``) starts again from zeros, as a new shot: its first row's ``reset`` is
"reconnect".
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
from typing import Any, Self

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

from ..data import (
    CorruptVideoError,
    OutputError,
    StatsWriter,
    VideoFrame,
    VideoSource,
    VideoWriter,
    open_video,
)
from ..data.video import display_source
from ..errors import SettingsError
from ..stream import FrameInfo, StepResult, StreamDEQ, StreamSettings
from ..tasks import FrameRenderer, get_task, renderer_for
from ..tasks import Task as TaskInfo
from ..tasks.predictions import PredictionsWriter, predictions_header
from .run_options import RunOptions, load_run_model, resolve_device

__all__ = [
    "RunOptions",
    "RunOutputs",
    "RunReport",
    "StopSignal",
    "run_video",
    "signal_name",
    "stop_line",
    "summary_lines",
]

#: Output frame rate when neither the input nor ``--fps`` gives one.
FALLBACK_FPS = 25.0

EXIT_COMPLETE, EXIT_INPUT_ERROR, EXIT_OUTPUT_ERROR, EXIT_INTERRUPTED = 0, 1, 74, 130

#: The signals that stop a run cleanly: Ctrl-C, the stop request of service managers and
#: container runtimes, and a closed terminal or a reload request.
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


# ----------------------------------------------------------------------------- outputs


class RunOutputs:
    """The overlay video, the stats file and the predictions of a run, finished or aborted
    together. The video and stats are created (and so checked) together, before the model is
    loaded; the predictions' writer is the model's task's, added by :meth:`add_predictions`.

    ``lock`` is held for every write and for finishing, because a stop timeout finishes the
    outputs from a timer thread while the frame loop may still be drawing: once ``closed``,
    a write does nothing."""

    def __init__(self, out: Path | None, stats: Path | None, fps: float, size: tuple[int, int]):
        self.lock = threading.RLock()
        self.closed = False
        self.predictions: PredictionsWriter | None = None
        self.video = VideoWriter(out, fps, size) if out is not None else None
        try:
            self.stats = StatsWriter(stats) if stats is not None else None
        except BaseException:
            if self.video is not None:
                self.video.abort()
            raise

    def add_predictions(self, task: TaskInfo, model: Any, path: Path, header: dict) -> None:
        """Open ``task``'s predictions writer at ``path`` (aborting the other outputs if it
        cannot be opened)."""
        if task.predictions is None:
            self.abort()
            raise SettingsError(
                f"the {task.name} task cannot store predictions; drop --predictions"
            )
        try:
            self.predictions = task.predictions.writer(model, path, header)
        except BaseException:
            self.abort()
            raise

    @property
    def sinks(self) -> tuple[tuple[str, Any], ...]:
        return (("video", self.video), ("stats", self.stats), ("predictions", self.predictions))

    @property
    def wanted(self) -> bool:
        """Whether frames must be drawn (the video and the stats' task columns need it)."""
        return self.video is not None or self.stats is not None

    def write(self, image: Any, row: dict[str, Any]) -> None:
        with self.lock:
            if self.closed:
                return
            if self.video is not None:
                self.video.write(image)
            if self.stats is not None:
                self.stats.write(row)

    def write_prediction(self, frame: VideoFrame, output: Any) -> None:
        """The frame's output, filed under its input index; called before :meth:`write`, so
        that every frame a killed run's stats name has its prediction."""
        with self.lock:
            if self.closed or self.predictions is None:
                return
            size = (frame.height, frame.width)
            self.predictions.write(frame.index, frame.timestamp, size, output)

    def finish(self) -> dict[str, OSError]:
        """Finish each output on its own, so one that cannot be written (a full disk) does not
        cost the others their frames. Returns the failures by output ("video", "stats",
        "predictions")."""
        failures: dict[str, OSError] = {}
        with self.lock:
            self.closed = True
            for name, sink in self.sinks:
                if sink is None:
                    continue
                try:
                    sink.finish()
                except OSError as error:
                    sink.abort()
                    failures[name] = error
        return failures

    def abort(self) -> None:
        with self.lock:
            self.closed = True
            for _, sink in self.sinks:
                if sink is not None:
                    sink.abort()


# ----------------------------------------------------------------------------- the run


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        frames: frames processed (and written).
        total: frames the input declared (None: unknown, e.g. a live stream).
        stopped: None (complete), "input_error", "output_error" or "interrupted".
        stop_reason: the input or output error's message, or the signal ("Ctrl-C", "SIGTERM").
        signal: the stop signal's number when one stopped the run (the command then ends by it).
        unfinished: outputs that could not be finished (an output error); not in ``out``/``stats``.
        out, stats, predictions: the outputs written (None: not asked for).
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
    signal: int | None = None
    unfinished: list[Path] = field(default_factory=list)
    out: Path | None = None
    stats: Path | None = None
    predictions: Path | None = None
    model: str = ""
    task: str = ""
    device: str = ""
    wall_seconds: float = 0.0
    shot_changes: list[int] = field(default_factory=list)
    resets: int = 0
    divergences: int = 0
    iters_total: int = 0
    dropped: int = 0
    decode_errors: int = 0
    damaged: int = 0
    reconnects: int = 0
    latencies_ms: array = field(default_factory=lambda: array("d"))

    @property
    def exit_code(self) -> int:
        """0, 1, 74, or 130 for Ctrl-C and 128 + the number of another stop signal (what a
        shell shows for a process that signal ended)."""
        if self.stopped == "interrupted" and self.signal not in (None, signal.SIGINT):
            return 128 + self.signal
        codes = {
            None: EXIT_COMPLETE,
            "input_error": EXIT_INPUT_ERROR,
            "output_error": EXIT_OUTPUT_ERROR,
        }
        return codes.get(self.stopped, EXIT_INTERRUPTED)

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
    on_stop_timeout: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """Run a model on a video online: each frame through the stream, drawn, written.

    Args:
        options: what to run (checked already).
        console: where to show a progress bar, the model's warning (random weights) and note
            (e.g. trained only on generated scenes), once, before the first frame (a rich
            Console, usually on stderr); None shows nothing. The bar only appears on a terminal.
        on_frame: called after each frame is written, with the decoded frame and the stream's
            result (e.g. to collect outputs).
        on_stop_timeout: called from a timer thread, with the report (outputs already
            finished), when a stop signal's frame did not finish within ``stop_timeout``; the
            command ends the process there. Without it the run returns when that frame ends.

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
        options.source,
        max_frames=options.max_frames,
        fps=options.fps,
        timeout=options.timeout,
        strict=options.strict,
        reconnect=options.reconnect,
        hwaccel=options.hardware_decoding(),
    )
    with video, _StopSignals(options.stop_timeout) as stop:
        fps = options.fps or video.fps or FALLBACK_FPS
        outputs = RunOutputs(options.out, options.stats, fps, video.size)
        try:
            loaded = load_run_model(options, device)
            task, renderer = renderer_for(loaded.model, options.task)
            if options.predictions is not None:
                # a URL's password stays out of the file, as out of every message
                source = display_source(options.source)
                task_info = get_task(task)
                header = _predictions_header(task_info, loaded, source, fps, device)
                outputs.add_predictions(task_info, loaded.model, options.predictions, header)
            settings = options.stream_settings(loaded.model)  # resized as the weights declare
            stream = StreamDEQ(loaded.model, settings=settings, device=device)
        except BaseException:
            outputs.abort()
            raise
        if console is not None:
            for line in _notices(loaded.warning, loaded.note, outputs):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        report = RunReport(
            total=video.frame_count,
            out=options.out,
            stats=options.stats,
            predictions=options.predictions,
            model=loaded.description,
            task=task,
            device=str(device),
        )
        _process(video, stream, renderer, outputs, report, console, on_frame, stop, on_stop_timeout)
        report.dropped, report.decode_errors = video.dropped, video.decode_errors
        report.damaged, report.reconnects = video.damaged, video.reconnects
    return report


def warm_up(stream: StreamDEQ, image: Any) -> None:
    """Two cheap throwaway steps on the first frame (M = 1, from zeros and then from the
    state, through a stream of its own) before the run's first timed frame.

    Why: the first call of a model pays one-time costs (allocations, thread pools, kernel
    selection) that can be many times a frame's steady cost. Left in the first frame, they make
    its ``latency_ms`` (and a latency-aware score of the run, which replays those latencies)
    describe the process starting, not the model. The run's own stream is untouched.
    """
    settings = stream.settings
    warm = StreamDEQ(
        stream.model,
        settings=StreamSettings(
            mode="stream",
            iters=1,
            solver=settings.solver,
            solver_options=settings.solver_options,
            preprocess=settings.preprocess,
        ),
        device=stream.runtime.device,
    )
    warm.step(image)  # from zeros
    warm.step(image)  # from the state: the warm-start path has first-call costs of its own


def _notices(warning: str | None, note: str | None, outputs: RunOutputs) -> list[str]:
    """What the user should know before the first frame: the model's warning (random weights)
    and note (e.g. trained only on generated scenes), and outputs that replace a killed run's
    incomplete files."""
    lines = [f"{prefix}: {text}" for prefix, text in (("warning", warning), ("note", note)) if text]
    for _, sink in outputs.sinks:
        if sink is not None and sink.replaced_incomplete:
            lines.append(
                f"note: replacing {sink.incomplete_path}, left by a run that ended abruptly"
            )
    return lines


def _process(
    video: VideoSource,
    stream: StreamDEQ,
    renderer: FrameRenderer,
    outputs: RunOutputs,
    report: RunReport,
    console: Console | None,
    on_frame: FrameCallback | None,
    stop: _StopSignals,
    on_stop_timeout: Callable[[RunReport], None] | None,
) -> None:
    """The frame loop; finishes the outputs with the frames done, whatever stops it."""
    start = time.perf_counter()
    interrupted = False
    warmed = False
    live_clock = _LiveClock() if video.is_live else None

    def stop_timed_out() -> None:  # on the timer thread, while the frame may still be running
        with outputs.lock:
            if outputs.closed:  # the loop got to finishing first
                return
            _record_stop_signal(report, stop, abandoned=True)
            _finish_outputs(outputs, report, start)
        if on_stop_timeout is not None:
            on_stop_timeout(report)

    try:
        with stop.frames(stop_timed_out), _progress(console, report.total) as advance:
            for frame in video:
                if stop.requested:  # it came while decoding: start no new frame
                    break
                if not warmed:
                    warm_up(stream, frame.image)
                    warmed = True
                    if stop.requested:
                        break
                if frame.reconnected:  # a new connection is a new shot: start from zeros
                    stream.reset()
                if live_clock is not None:
                    live_clock.arrived(frame)
                result = stream.step(frame.image)
                finish_s = None if live_clock is None else live_clock.now()
                image = row = None
                if outputs.wanted:  # drawing costs, and only the outputs need it
                    image, extra = renderer.render(frame.image, result.output)
                    row = _stats_row(frame, result.info, extra, renderer.columns, finish_s)
                with outputs.lock, stop.second_signal_waits():  # the files and report agree
                    if outputs.closed:  # the stop timeout finished them without this frame
                        break
                    outputs.write_prediction(frame, result.output)
                    if outputs.wanted:
                        outputs.write(image, row)
                    report.record(result.info)
                advance(result.info)
                if on_frame is not None:
                    on_frame(frame, result)
                if stop.requested:
                    break
    except KeyboardInterrupt:  # a second stop signal (or a Ctrl-C where no handler is set)
        interrupted = True
    except OutputError as error:  # no space, file size limit, permission changed
        report.stopped, report.stop_reason = "output_error", str(error)
    except CorruptVideoError as error:
        if report.frames == 0:
            outputs.abort()
            raise
        report.stopped, report.stop_reason = "input_error", str(error)
    except BaseException:
        outputs.abort()
        raise
    with outputs.lock:
        if outputs.closed:  # by the stop timeout, which also filled in the report
            return
        if report.stopped is None and (stop.requested or interrupted):
            _record_stop_signal(report, stop)
        _finish_outputs(outputs, report, start)


def _record_stop_signal(report: RunReport, stop: _StopSignals, abandoned: bool = False) -> None:
    signum = stop.signum if stop.signum is not None else signal.SIGINT
    report.stopped, report.signal, report.stop_reason = "interrupted", signum, signal_name(signum)
    if abandoned:
        report.stop_reason += (
            f"; the frame in progress was abandoned at the {stop.timeout:g} s stop timeout"
        )


def _finish_outputs(outputs: RunOutputs, report: RunReport, start: float) -> None:
    """Finish the outputs with the frames done (no file when none was); call it holding
    ``outputs.lock``. An output that cannot be finished makes the run an output error."""
    if report.frames == 0:  # nothing to show (stopped before the first frame): make no file
        outputs.abort()
        report.out = report.stats = report.predictions = None
    else:
        failures = outputs.finish()
        for name, attribute in (
            ("video", "out"),
            ("stats", "stats"),
            ("predictions", "predictions"),
        ):
            path = getattr(report, attribute)
            if name in failures and path is not None:  # it is not a finished output
                report.unfinished.append(path)
                setattr(report, attribute, None)
        reasons = [str(error) for error in failures.values()]
        if reasons and report.stopped == "output_error":  # what is left of the failing output
            report.stop_reason = "; ".join([report.stop_reason, *reasons])
        elif reasons:
            report.stopped, report.stop_reason = "output_error", "; ".join(reasons)
    report.wall_seconds = time.perf_counter() - start


def _stats_row(
    frame: VideoFrame,
    info: FrameInfo,
    extra: dict[str, Any],
    columns: Sequence[str],
    finish_s: float | None = None,
) -> dict[str, Any]:
    """One stats row: the frame's input index (its place in the source, dropped frames
    counted: the index its predictions are filed under), its timestamp in seconds, the input
    frames dropped just before it and whether the decoder flagged it damaged, then the
    stream's FrameInfo (with its shot_change column and the step's ``latency_ms``),
    ``finish_s`` (live sources: when the output was ready, in seconds on the frames' clock;
    empty for files, which are read faster than real time), then the renderer's ``columns``
    (empty where it gave no value), so every row has the same columns. The stream reports a
    reset after a reconnection as a manual one: the row says "reconnect", the cause."""
    row = info.as_row()
    row.pop("index")  # the stream's own count, which skips dropped frames
    head = {
        "index": frame.index,
        "timestamp": round(frame.timestamp, 6),
        "dropped_before": frame.dropped_before,
        "damaged": frame.damaged,
    }
    if frame.reconnected:
        row["reset"] = "reconnect"
    timing = {"finish_s": None if finish_s is None else round(finish_s, 6)}
    return head | row | timing | {column: extra.get(column) for column in columns}


class _LiveClock:
    """Wall time on a live stream's own clock: zero when the first frame arrived, minus that
    frame's timestamp, so a finish time compares with the frames' timestamps (what
    ``streamdeq score`` pairs them by)."""

    def __init__(self) -> None:
        self._zero: float | None = None

    def arrived(self, frame: VideoFrame) -> None:
        if self._zero is None:
            self._zero = time.perf_counter() - frame.timestamp

    def now(self) -> float:
        assert self._zero is not None
        return time.perf_counter() - self._zero


def _predictions_header(
    task: TaskInfo, loaded: Any, source: str, fps: float, device: torch.device
) -> dict[str, Any]:
    """The predictions' header: what ran, on what input and machine (``measured_on``: the
    latencies a score is computed from are this machine's), with the model's classes."""
    from ..streaming.provenance import measured_on

    config = getattr(loaded.model, "config", None)
    classes = {
        key: list(getattr(config, key))
        for key in ("class_ids", "class_names")
        if getattr(config, key, None) is not None
    }
    if getattr(config, "num_classes", None) is not None:
        classes["num_classes"] = int(config.num_classes)
    return predictions_header(
        task.name,
        model=loaded.description,
        source=source,
        fps=float(fps),
        measured_on=measured_on(device),
        **classes,
    )


class StopSignal(KeyboardInterrupt):
    """A stop signal that ends a run at once: one before the first frame (nothing is lost), or
    a second one while the first lets a frame finish. A KeyboardInterrupt, so whatever handles
    Ctrl-C handles SIGTERM and SIGHUP too.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    """ "Ctrl-C" for SIGINT (what users press), else the signal's name ("SIGTERM")."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class _StopSignals:
    """A run's handlers of :data:`STOP_SIGNALS`, which act by phase:

    * setup (loading the model): a signal stops at once (:class:`StopSignal`): nothing is done;
    * frames (:meth:`frames`): the first signal only raises a flag, checked between frames, so no
      frame is cut in the middle of encoding, and arms a timer that calls ``on_timeout`` after
      ``timeout`` seconds (the loop normally finishes the outputs first, which makes that call
      do nothing); a second signal stops at once, or at the end of a
      :meth:`second_signal_waits` block;
    * finishing: a signal is recorded but stops nothing, so the outputs are finished whole.

    The handler itself only sets flags, arms the timer or raises: the outputs are the loop's
    (or the timer's) to finish. Handlers exist only in the main thread, where Python delivers
    signals; elsewhere signals behave as usual and ``requested`` stays False.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.signum: int | None = None
        self._phase = "setup"
        self._on_timeout: Callable[[], None] = lambda: None
        self._timer: threading.Timer | None = None
        self._waiting = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._phase = "finishing"
        if self._timer is not None:
            self._timer.cancel()
        for signum, previous in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    @contextmanager
    def frames(self, on_timeout: Callable[[], None]) -> Iterator[None]:
        """The frame loop's phase; ``on_timeout`` runs on the timer's thread."""
        self._on_timeout, self._phase = on_timeout, "frames"
        try:
            yield
        finally:
            self._phase = "finishing"

    @contextmanager
    def second_signal_waits(self) -> Iterator[None]:
        """A second signal inside the block stops the run when the block ends, so a frame's
        write and its place in the report are never separated."""
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False
        if self._pending is not None:
            raise StopSignal(self._pending)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self._phase == "finishing":
            return
        if self._phase == "setup":
            raise StopSignal(signum)
        if first:
            self._timer = threading.Timer(self.timeout, self._on_timeout)
            self._timer.daemon = True  # never keeps a finished process alive
            self._timer.start()
        elif self._waiting:
            self._pending = signum
        else:
            raise StopSignal(signum)


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
        f"{_count(report.frames, 'frame')} with {report.model} on {report.device} "
        f"({report.task}): "
        f"step latency median {report.latency_ms(50):.1f} ms, p90 {report.latency_ms(90):.1f} "
        f"ms, {report.mean_iters:.2f} iterations/frame, "
        f"{report.frames / max(report.wall_seconds, 1e-9):.1f} frames/s overall",
        (
            f"shot changes at frames {report.shot_changes}"
            if report.shot_changes
            else "no shot change"
        )
        + f"; {_count(report.resets, 'reset')}, {_count(report.divergences, 'diverged frame')}",
    ]
    if report.dropped or report.damaged or report.reconnects:
        lines.append(
            f"input: {report.dropped} frames dropped ({report.decode_errors} rejected by the "
            f"decoder), {report.damaged} damaged frames kept, {report.reconnects} reconnects"
        )
    outputs = (("video", report.out), ("stats", report.stats), ("predictions", report.predictions))
    for what, path in outputs:
        if path is not None:
            lines.append(f"wrote {what} {path}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def stop_line(report: RunReport) -> str | None:
    """One line saying why the run stopped early and what was kept (None if it did not)."""
    if report.stopped is None:
        return None
    kept = [str(p) for p in (report.out, report.stats, report.predictions) if p is not None]
    if kept:
        verb = "holds" if len(kept) == 1 else "hold"
        line = f"{' and '.join(kept)} {verb} the {report.frames} frames done, complete"
    else:
        line = f"the summary covers the {report.frames} frames done"
    unnamed = [str(p) for p in report.unfinished if str(p) not in report.stop_reason]
    if unnamed:
        line += f"; {' and '.join(unnamed)} could not be finished"
    return f"stopped early ({report.stop_reason}): {line}"
