"""``streamdeq demo``: the method on the bundled model, end to end, offline, in a few minutes.

It generates held-out street clips (seeds the bundled model never saw in training), runs the
fully solved baseline and StreamDEQ with M in {1, 2, 4, 8} side by side (Table 1), prints mIoU,
frames/s and speed-ups, and writes into the output folder:

* ``overlay.mp4``: StreamDEQ with M = 2 next to the baseline, class colours over the frames;
* ``table1.csv/png``, ``fig3.csv/png`` (distance to the full solve over frames) and
  ``fig5.csv/png`` (mIoU against the frames since the stream started);
* ``streaming.csv/png``: streaming mIoU at the clips' own rate (17 Hz) of the baseline,
  StreamDEQ at M = 1, 2, 4 and the fit-the-interval policy, on a simulated clock priced by the
  bundled CPU latency profile (deterministic; each step's measured cost when the model has no
  bundled profile).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ..data import OutputError, VideoWriter
from ..errors import SettingsError
from ..experiments import (
    PAPER_ITERS,
    Clip,
    ExperimentResult,
    fig3,
    fig5,
    generated_clips,
    table1,
)
from ..experiments.fig5 import frames_to_baseline
from ..experiments.schemes import Scheme
from ..experiments.streaming import streaming
from ..experiments.streaming_plot import plot_one_rate
from ..models.resolve import resolve_model
from ..validation import check_int

#: Video panels are enlarged to at least this height (the bundled model runs at 128 x 256).
VIDEO_MIN_HEIGHT = 256

#: The streaming table's schemes (run on the "latest frame" scheduler) beside the fit policy.
DEMO_STREAMING_SCHEMES = "baseline,stream=1,stream=2,stream=4"

#: Stream lengths of the demo's Fig. 5 (the paper sweeps 1..20; these keep its shape for less).
DEMO_OFFSETS = (1, 2, 3, 4, 6, 8, 12, 16, 20)


@dataclass(frozen=True)
class DemoSettings:
    """How much the demo runs.

    Attributes:
        clips: held-out clips for Table 1 (K).
        frames: frames per clip (T; the paper's clips have 20, the last one evaluated).
        figure_clips: clips of those used for Fig. 3 and Fig. 5 (the costlier analyses).
        video_clips: clips shown in the overlay video.
        iters: the M of StreamDEQ.
        video_iters: the M shown in the video beside the baseline.
        fps: frame rate of the overlay video.
        streaming_clips: clips of those used for the streaming table.
    """

    clips: int = 8
    frames: int = 20
    figure_clips: int = 4
    video_clips: int = 2
    iters: tuple[int, ...] = PAPER_ITERS
    video_iters: int = 2
    fps: float = 8.0
    streaming_clips: int = 4

    def __post_init__(self) -> None:
        check_int("clips", self.clips, label="demo clips")
        check_int(
            "frames",
            self.frames,
            minimum=2,
            label="demo frames",
            note=" (a stream needs a previous frame)",
        )
        check_int("figure_clips", self.figure_clips, label="demo figure_clips")
        check_int("video_clips", self.video_clips, label="demo video_clips")
        check_int("video_iters", self.video_iters, label="demo video_iters")
        check_int("streaming_clips", self.streaming_clips, label="demo streaming_clips")


@dataclass
class DemoReport:
    """What the demo measured and wrote."""

    table: ExperimentResult
    figures: list[ExperimentResult]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    streaming: ExperimentResult | None = None
    streaming_seconds: float = 0.0


def run_demo(
    out_dir: str | Path = "streamdeq-demo",
    *,
    model: Any = None,
    checkpoint: str | Path | None = None,
    settings: DemoSettings | None = None,
    scene: Any = None,
    threads: int | None = None,
    console: Console | None = None,
) -> DemoReport:
    """Run the demo (module docstring) and print its table.

    Args:
        out_dir: where the video, CSVs and plots go (created).
        model: a model name (default: the bundled ``mdeq-seg-tiny-synthetic``) or a model object.
        checkpoint: a safetensors file to run instead of a named model.
        settings: sizes of the run (:class:`DemoSettings`).
        scene: the generator's ``SceneSettings`` (default: its own, the training size).
        threads: torch's CPU threads for the run (None: leave torch's setting). The command
            line uses 1: the bundled model's convolutions are too small to gain much from
            intra-op threads, and on a busy machine (2 cores shared with other jobs) two spinning
            OpenMP threads made Table 1 cost several times the CPU time of one thread.
        console: where to print (rich).

    Raises:
        MissingWeightsError: the bundled weights are not in this install.
    """
    console = console or Console()
    settings = settings or DemoSettings()
    started = time.perf_counter()
    net, name = _model(model, checkpoint)
    out = _prepare_output(Path(out_dir))
    if threads is not None:
        torch.set_num_threads(threads)
    with console.status("generating held-out street clips"):
        clips = generated_clips(settings.clips, settings.frames, split="val", settings=scene)
    size = "x".join(map(str, clips[0].frames.shape[1:3]))
    console.print(
        f"[bold]{name}[/]: {settings.clips} held-out clips of {settings.frames} frames "
        f"({size}), baseline N = {net.config.f_thres}, StreamDEQ M in {list(settings.iters)}"
    )
    with console.status("Table 1: every scheme on every frame, side by side"):
        table = table1(net, clips, iters=settings.iters)
    console.print(table_view(table, title=f"{name}: StreamDEQ vs the fully solved baseline"))
    report = DemoReport(table, [])
    report.files += table.save(out)
    figure_set = clips[: settings.figure_clips]
    with console.status("Fig. 3: distance to the full solve over frames"):
        report.figures.append(fig3(net, figure_set, iters=settings.iters))
    offsets = [k for k in DEMO_OFFSETS if k <= settings.frames] or [settings.frames]
    with console.status("Fig. 5: mIoU against frames since the stream started"):
        report.figures.append(
            fig5(net, figure_set, iters=settings.iters, offsets=offsets, modes=("stream",))
        )
    for result in report.figures:
        report.files += result.save(out)
    with console.status("overlay video"):
        video = write_overlay_video(
            net,
            clips[: settings.video_clips],
            out / "overlay.mp4",
            settings.video_iters,
            settings.fps,
        )
    report.files.append(video)
    rate = _scene_fps(scene)  # the generated clips run at the simulated camera's rate
    with console.status(f"streaming mIoU at {rate:g} frames/s (simulated clock)"):
        began = time.perf_counter()
        report.streaming = demo_streaming(net, name, clips[: settings.streaming_clips], rate)
        report.streaming_seconds = time.perf_counter() - began
    report.files += report.streaming.save(out)
    report.seconds = time.perf_counter() - started
    console.print(_fig5_summary(report.figures[-1]))
    console.print(streaming_view(report.streaming))
    console.print(f"wrote {', '.join(str(p) for p in report.files)}")
    console.print(f"demo took {report.seconds:.0f} s")
    return report


def demo_streaming(model: Any, name: str, clips: Sequence[Clip], fps: float) -> ExperimentResult:
    """Streaming mIoU at ``fps`` of :data:`DEMO_STREAMING_SCHEMES` ("latest frame") and the fit
    policy, priced by the model's bundled CPU profile (its measured costs without one)."""
    from ..streaming import ProfileError, bundled_profile

    size = tuple(clips[0].frames.shape[1:3])
    try:
        profile, label = bundled_profile(name, size, "cpu"), f"bundled {name} cpu profile"
    except ProfileError:
        profile, label = None, "measured"
    result = streaming(
        model,
        clips,
        fps=(fps,),
        schemes=DEMO_STREAMING_SCHEMES,
        schedulers=("latest", "fit"),
        profile=profile,
        profile_name=label,
        frontier=False,
    )
    plot = partial(plot_one_rate, metric="smiou", offline_metric="miou", label="mIoU")
    return ExperimentResult("streaming", result.rows, plot, result.meta)


def streaming_view(result: ExperimentResult) -> Table:
    """The streaming table: per scheme, streaming and offline mIoU, misses, lag, cost."""
    meta = result.meta
    view = Table(
        title=f"Streaming mIoU at {meta['fps'][0]:g} frames/s ({meta['clips']} clips, "
        f"simulated clock: {meta['profile']})",
        caption="each labelled frame is scored with the latest output finished when it "
        "arrived; offline = the same outputs scored against their own frames",
    )
    for column in ("scheme", "scheduler", "streaming mIoU %", "offline mIoU %", "missed",
                   "lag (frames)", "ms / frame", "iters / frame"):  # fmt: skip
        left = column in ("scheme", "scheduler")
        view.add_column(column, justify="left" if left else "right", no_wrap=left)
    for row in result.rows:
        view.add_row(
            row["scheme"],
            row["scheduler"],
            f"{100 * row['smiou']:.1f}",
            f"{100 * row['offline_miou']:.1f}",
            f"{100 * row['miss_rate']:.0f}%",
            f"{row['lag_mean']:.2f}",
            f"{row['mean_ms']:.1f}",
            f"{row['mean_iters']:.1f}",
        )
    return view


def _scene_fps(scene: Any) -> float:
    from ..data.synthetic import SceneSettings

    return float((scene if scene is not None else SceneSettings()).fps)


def _prepare_output(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write the demo into {out}: it is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the demo folder {out}: {error.strerror}") from error
    probe = out / ".streamdeq-write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputError(f"cannot write into {out}: {error.strerror}") from error
    return out


def _model(model: Any, checkpoint: str | Path | None) -> tuple[Any, str]:
    if model is not None and not isinstance(model, str):
        if checkpoint is not None:
            raise SettingsError("give a model or a checkpoint, not both")
        return model.eval(), type(model).__name__
    resolved = resolve_model(model, checkpoint, weights="required")
    name = resolved.entry.name if resolved.entry is not None else str(checkpoint)
    return resolved.model, name


def table_view(result: ExperimentResult, title: str = "") -> Table:
    """Table 1's rows as a rich table."""
    view = Table(title=title or None)
    for column in ("scheme", "M", "iters / frame", "mIoU %", "ms / frame", "frames/s", "speed-up"):
        left = column == "scheme"
        view.add_column(column, justify="left" if left else "right", no_wrap=left)
    for row in result.rows:
        view.add_row(
            row["scheme"],
            "" if row["M"] is None else str(row["M"]),
            f"{row['iters_per_frame']:.1f}",
            f"{100 * row['miou']:.1f}",
            f"{row['ms_per_frame']:.1f}",
            f"{row['fps']:.1f}",
            f"{row['speedup']:.2f}x",
        )
    return view


def _fig5_summary(result: ExperimentResult) -> str:
    """Per M: StreamDEQ's mIoU at the longest offset against non-streaming at M and the
    baseline, and after how many frames it stays within a point of the baseline."""
    longest = max(result.meta["offsets"])
    base = next(r["miou"] for r in result.rows if r["mode"] == "baseline")
    reached = frames_to_baseline(result, "stream", tolerance=0.01)
    lines = [
        f"Fig. 5 ({result.meta['clips']} clips, last frame): baseline {100 * base:.1f} mIoU; "
        f"StreamDEQ started {longest} frames before, and non-streaming, at M:"
    ]
    for m in result.meta["iters"]:
        stream = next(
            r["miou"]
            for r in result.rows
            if r["mode"] == "stream" and r["M"] == m and r["offset"] == longest
        )
        cold = next(r["miou"] for r in result.rows if r["mode"] == "non-streaming" and r["M"] == m)
        frames = reached[m]
        within = "never" if frames is None else f"from {frames} frame{'s' * (frames > 1)} on"
        lines.append(
            f"  M = {m}: StreamDEQ {100 * stream:.1f}  non-streaming {100 * cold:.1f}  "
            f"(within 1 point of the baseline: {within})"
        )
    return "\n".join(lines)


def write_overlay_video(
    model: Any, clips: Sequence[Clip], path: Path, iters: int, fps: float
) -> Path:
    """StreamDEQ (M = ``iters``) beside the baseline, predictions over the frames, clip after
    clip (each clip a new stream)."""
    from ..tasks.segmentation import SegmentationRenderer

    with VideoWriter(path, fps) as writer:
        for clip in clips:
            panels = [
                (Scheme("stream", iters), f"StreamDEQ M={iters}"),
                (Scheme("baseline"), f"baseline N={model.config.f_thres}"),
            ]
            streams = [scheme.open(model) for scheme, _ in panels]
            renderers = [SegmentationRenderer(model) for _ in panels]
            for frame in clip.frames:
                shown = _enlarge(frame)
                drawn = []
                for stream, renderer, (_, caption) in zip(streams, renderers, panels, strict=True):
                    result = stream.step(frame)
                    image, _ = renderer.render(shown, result.output)
                    drawn.append(_caption(image, f"{caption}  {result.info.latency_ms:.0f} ms"))
                writer.write(np.concatenate(drawn, axis=1))
    return path


def _enlarge(frame: np.ndarray, min_height: int = VIDEO_MIN_HEIGHT) -> np.ndarray:
    """The frame scaled up by a whole factor to at least ``min_height`` rows, so the legend and
    captions (fixed-size text) leave the scene visible on small frames."""
    factor = -(-min_height // frame.shape[0])
    if factor <= 1:
        return frame
    from PIL import Image

    size = (frame.shape[1] * factor, frame.shape[0] * factor)
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` in white on a dark band at the bottom of ``image``."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), text)
    height = bottom - top + 6
    draw.rectangle((0, image.shape[0] - height, right - left + 8, image.shape[0]), fill=(0, 0, 0))
    draw.text((4, image.shape[0] - height + 3 - top), text, fill=(255, 255, 255))
    return np.asarray(canvas)
