"""The ``streamdeq`` command: thin wrappers that parse, call library functions and print.

Every error a user can cause ends as one line on stderr and exit code 2 (no traceback): see
:func:`main`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ..errors import SettingsError, StreamDEQError

if TYPE_CHECKING:
    from .runner import RunReport

# Choices and help that come from registries are computed by the functions below inside the
# annotations: under ``from __future__ import annotations`` those are strings until typer reads
# them, when the command line is parsed, so a solver, task or experiment a plugin registers
# after this module is imported is listed in --help and accepted like a built-in one.


def _one_of(names: Callable[[], Iterable[str]]) -> Any:
    """The type "one of the names a registry holds now": --help lists them, and a wrong value
    is a usage error (exit 2) that lists them."""
    return Literal[tuple(names())]


def _modes() -> tuple[str, ...]:
    from ..stream import MODES

    return MODES


def _serve_modes() -> tuple[str, ...]:
    from ..serve.settings import SERVE_MODES

    return SERVE_MODES


def _solvers() -> list[str]:
    from ..solvers import list_solvers

    return list_solvers()


def _shot_policies() -> tuple[str, ...]:
    from ..stream import POLICIES

    return POLICIES


def _task_words() -> list[str]:
    from ..tasks import task_words

    return task_words()


def _experiment_help() -> str:
    from .. import experiments

    listed = getattr(experiments, "list_experiments", None)
    names = list(listed() if callable(listed) else experiments.EXPERIMENTS)
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


app = typer.Typer(
    name="streamdeq",
    help="Streaming multiscale deep equilibrium models for online video perception.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring line breaks are wrapping, not layout
)
console = Console()

#: Ctrl-C's exit code (the ``run`` command's docstring lists them all).
EXIT_CTRL_C = 130


@app.command("models")
def models_command() -> None:
    """List the named model configurations."""
    from ..models import get_config, list_models
    from ..models.zoo import get_entry

    table = Table(
        "name",
        "task",
        "channels",
        "F_THRES",
        "classes",
        box=box.SIMPLE,
        pad_edge=False,
        caption="* bundled trained weights; the others are random until a checkpoint is loaded",
    )
    names = list_models()
    table.columns[0].min_width = max(map(len, names)) + 2  # names stay whole on narrow terminals
    table.columns[2].min_width = len("88,176,352,704")
    for name in names:
        cfg = get_config(name)
        backbone = getattr(cfg, "backbone", cfg)  # a detector lists its backbone's channels
        channels = getattr(backbone, "num_channels", None)
        table.add_row(
            f"{name} *" if _has_weights(get_entry(name)) else name,
            str(getattr(cfg, "task", "-")),
            ",".join(map(str, channels)) if channels else "-",
            str(getattr(cfg, "f_thres", "-")),
            str(getattr(cfg, "num_classes", "-")),
        )
    console.print(table)


def _has_weights(entry: object) -> bool:
    path = entry.weights_path()  # type: ignore[attr-defined]
    return path is not None and path.is_file()


@app.command("solvers")
def solvers_command() -> None:
    """List the fixed-point solvers and their settings."""
    from ..solvers import list_solvers, solver_options

    table = Table("solver", "settings (defaults)")
    for name in list_solvers():
        opts = ", ".join(f"{k}={v!r}" for k, v in solver_options(name).items())
        table.add_row(name, opts)
    console.print(table)


@app.command("convert")
def convert_command(
    config_yaml: Annotated[Path, typer.Argument(help="official MDEQ experiment yaml")],
    checkpoint: Annotated[Path, typer.Argument(help="official state dict (.pth / .pkl)")],
    out: Annotated[Path, typer.Argument(help="output .safetensors file")],
) -> None:
    """Convert an official MDEQ checkpoint to a self-describing safetensors file."""
    if out.suffix.lower() != ".safetensors":  # `run --checkpoint` reads it by this suffix
        raise SettingsError(f"{out}: the output must be a .safetensors file")
    _require_file(config_yaml, "config")
    _require_file(checkpoint, "checkpoint")
    from ..models import load_official_mdeq, save_safetensors

    model = load_official_mdeq(config_yaml, checkpoint)
    save_safetensors(model, out)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"wrote {out} ({n_params / 1e6:.2f} M parameters)")


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Argument(help="root folder to write the Cityscapes layout into")],
    clips: Annotated[int, typer.Option(min=1, help="number of clips")] = 8,
    frames: Annotated[int, typer.Option(min=1, help="frames per clip (the last is labelled)")] = 20,
    split: Annotated[str, typer.Option(help="train or val: disjoint sets of scenes")] = "val",
    seed: Annotated[int, typer.Option(min=0, help="seed of the clip set")] = 0,
    height: Annotated[int, typer.Option(min=16, help="frame height in pixels")] = 128,
    width: Annotated[int, typer.Option(min=16, help="frame width in pixels")] = 256,
    cut: Annotated[
        list[int] | None, typer.Option(help="frame index of a hard scene cut (repeatable)")
    ] = None,
) -> None:
    """Write generated street clips laid out like Cityscapes sequences.

    The folders (leftImg8bit_sequence/, gtFine/) are read by streamdeq.data.CityscapesSequence
    like the real data set."""
    from ..data.synthetic import SceneSettings, write_synthetic_split

    settings = SceneSettings(height=height, width=width)
    written = write_synthetic_split(
        out, clips, frames, split=split, seed=seed, settings=settings, cuts=tuple(cut or ())
    )
    console.print(f"wrote {len(written)} clips of {frames} frames ({split}) under {out}")


#: --model and --checkpoint of the commands that run the bundled model unless told otherwise
BundledModelOption = Annotated[
    str | None, typer.Option(help="model name (default: the bundled mdeq-seg-tiny-synthetic)")
]
SafetensorsOption = Annotated[Path | None, typer.Option(help="a .safetensors model to run instead")]


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("streamdeq-demo"),
    model: BundledModelOption = None,
    checkpoint: SafetensorsOption = None,
    clips: Annotated[int, typer.Option(min=1, help="held-out clips for Table 1")] = 8,
    frames: Annotated[int, typer.Option(min=2, help="frames per clip")] = 20,
    figure_clips: Annotated[int, typer.Option(min=1, help="clips for Fig. 3 and Fig. 5")] = 4,
    video_clips: Annotated[int, typer.Option(min=1, help="clips in the overlay video")] = 2,
    threads: Annotated[
        int, typer.Option(min=1, help="CPU threads for torch (1: robust on a busy machine)")
    ] = 1,
) -> None:
    """The method on the bundled model: baseline vs StreamDEQ at M = 1, 2, 4, 8.

    Runs on held-out street clips, prints Table 1, writes an overlay video and the Fig. 3 /
    Fig. 5 plots."""
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(
        clips=clips, frames=frames, figure_clips=figure_clips, video_clips=video_clips
    )
    run_demo(
        out,
        model=model,
        checkpoint=checkpoint,
        settings=settings,
        threads=threads,
        console=console,
    )


@app.command("experiment")
def experiment_command(
    name: Annotated[str, typer.Argument(help=_experiment_help())],
    model: BundledModelOption = None,
    checkpoint: SafetensorsOption = None,
    random_weights: Annotated[
        bool, typer.Option(help="randomly initialised weights (mechanics only)")
    ] = False,
    clips: Annotated[
        int | None, typer.Option(min=1, help="number of clips [default: 8; streaming: 4]")
    ] = None,
    frames: Annotated[int, typer.Option(min=1, help="frames per clip")] = 20,
    iters: Annotated[
        str | None, typer.Option(help="iterations per frame M, comma-separated [default: 1,2,4,8]")
    ] = None,
    steps: Annotated[str | None, typer.Option(help="fig2: solver steps, comma-separated")] = None,
    offsets: Annotated[
        str | None, typer.Option(help="fig5: stream lengths, comma-separated (default 1..T)")
    ] = None,
    cityscapes: Annotated[
        Path | None, typer.Option(help="Cityscapes root (leftImg8bit_sequence + gtFine)")
    ] = None,
    split: Annotated[str, typer.Option(help="data split")] = "val",
    out: Annotated[Path, typer.Option(help="output folder")] = Path("streamdeq-experiments"),
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch")] = 1,
    device: Annotated[str, typer.Option(help="cpu|cuda|cuda:N")] = "cpu",
    task: Annotated[
        _one_of(_task_words) | None,
        typer.Option(help="streaming: the task, which picks its bundled model"),
    ] = None,
    fps: Annotated[
        str | None, typer.Option(help="streaming: input rates, comma-separated [5,10,17,30]")
    ] = None,
    clock: Annotated[
        str | None, typer.Option(help="streaming: sim (virtual time, default) or real")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="streaming, sim clock: bundled (default), measured, or a profile .json"),
    ] = None,
    perf_factor: Annotated[
        float | None, typer.Option(help="streaming, sim clock: divide step costs by X")
    ] = None,
    schedulers: Annotated[
        str | None,
        typer.Option(help="streaming: every,latest,shrinking-tail,fit [latest,fit]"),
    ] = None,
    schemes: Annotated[
        str | None,
        typer.Option(
            help="streaming: baseline, stream=M, keyframe=M, non-streaming=M, tol=T, "
            "budget=MS [baseline,stream=1,stream=2,stream=4,stream=8,tol=0.05,tol=0.01]"
        ),
    ] = None,
) -> None:
    """Regenerate one of the paper's analyses as CSV + PNG on any model and clip set.

    `streaming` runs the model online at each input rate (--fps) and scores it with streaming
    accuracy (Li et al. 2020): each annotated frame against the latest output finished when it
    arrived."""
    from ..experiments.cli import run_experiment_command
    from ..experiments.streaming_cli import StreamingFlags
    from .run_options import resolve_device

    streaming_flags = StreamingFlags(
        task=task,
        fps=fps,
        clock=clock,
        profile=profile,
        perf_factor=perf_factor,
        schedulers=schedulers,
        schemes=schemes,
    )

    run_experiment_command(
        name,
        model=model,
        checkpoint=checkpoint,
        random_weights=random_weights,
        clips=clips,
        frames=frames,
        iters=iters,
        steps=steps,
        offsets=offsets,
        cityscapes=cityscapes,
        split=split,
        out=out,
        threads=threads,
        device=resolve_device(device),
        console=console,
        streaming_flags=streaming_flags,
    )


@app.command("run")
def run_command(
    source: Annotated[str, typer.Argument(help="video file, folder of images, or stream URL")],
    model: Annotated[str | None, typer.Option(help="model name (`streamdeq models`)")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="our .safetensors, or an official .pth/.pkl + --config")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="official yaml of --checkpoint")] = None,
    iters: Annotated[int | None, typer.Option(help="M, iterations per frame (default 4)")] = None,
    tol: Annotated[float | None, typer.Option(help="iterate until rel. residual < T")] = None,
    budget_ms: Annotated[float | None, typer.Option(help="latency budget per frame, ms")] = None,
    max_iters: Annotated[int | None, typer.Option(help="cap for --tol / --budget-ms")] = None,
    mode: Annotated[_one_of(_modes), typer.Option(help="the scheme")] = "stream",
    solver: Annotated[_one_of(_solvers), typer.Option(help="fixed-point solver")] = "broyden",
    shot_policy: Annotated[_one_of(_shot_policies), typer.Option(help="on a cut")] = "keep",
    out: Annotated[
        Path | None,
        typer.Option(
            help="overlay video (.mp4, .mkv, ...) at the source's size (odd sides padded by one "
            "pixel, as H.264 needs); none if omitted"
        ),
    ] = None,
    stats: Annotated[
        Path | None,
        typer.Option(
            help="per-frame stats (.csv/.jsonl/.json); .csv and .jsonl keep every row even if "
            "the run is killed, .json is valid only once the run ends. Each row: `index` (the "
            "input frame, dropped frames counted), `timestamp` (s), the step's `latency_ms`, "
            "`finish_s` (live streams: when the output was ready, on the frames' clock), ..."
        ),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="the model's per-frame outputs, for `streamdeq score`: segmentation, a folder "
            "of class-id PNGs named by input index + index.jsonl; detection, a .jsonl of boxes. "
            "Written as the run goes (PATH.incomplete until it ends; usable if killed)"
        ),
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="stop after K frames")] = None,
    fps: Annotated[float | None, typer.Option(help="fps of image folders and --out")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|cuda:N")] = "auto",
    timeout: Annotated[
        float, typer.Option(help="seconds a stream URL may go silent before the run stops")
    ] = 10.0,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="stop (exit 1) at the first frame that does not decode, not skip it"
        ),
    ] = False,
    reconnect: Annotated[
        float,
        typer.Option(
            help="seconds to keep reopening a live stream URL that ended or broke off (backoff "
            "0.5 s doubling to 5 s; 0: off); the model state restarts, the outputs go on"
        ),
    ] = 0.0,
    task: Annotated[
        _one_of(_task_words) | None, typer.Option(help="renderer (default: the model's task)")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (default: torch's)")
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            help="frame size the model sees: HxW to fit in (aspect kept) or the short side "
            "(default: the weights' input size, else the frame's); outputs stay in the "
            "video's pixels"
        ),
    ] = None,
    hwaccel: Annotated[
        str | None,
        typer.Option(
            help="decode on a GPU: cuda (NVDEC, on --device's GPU) or cuda:N; default: on the CPU"
        ),
    ] = None,
    stop_timeout: Annotated[
        float,
        typer.Option(
            help="seconds Ctrl-C, SIGTERM or SIGHUP wait for the frame in progress before the "
            "outputs are finished without it (keep it below the 10 s docker stop waits)"
        ),
    ] = 5.0,
) -> None:
    """Run a model on a video online, frame by frame: overlay video, per-frame stats, summary.

    A frame that does not decode (a damaged image, a packet FFmpeg rejects, a stretch of stream
    lost to garbage) is dropped and counted: the next stats row says how many in
    `dropped_before`, the model's state carries over the gap, the summary gives the total
    (--strict stops instead). Garbled data that still decodes into a picture cannot be told
    from a good frame; frames FFmpeg flags as concealed are kept and marked `damaged`. An input
    with no decodable frame is an error (exit 2).

    Stopping: Ctrl-C, SIGTERM (`docker stop`, systemd, Kubernetes, schedulers) and SIGHUP let
    the frame in progress finish, for at most --stop-timeout seconds, then finish the outputs
    with the frames done (complete, playable files) and print the summary; a second signal
    stops at once.

    Exit codes: 0 done; 1 the input broke off part-way; 2 a mistake in the command, its input,
    model or output paths (one line, nothing written); 74 an output could not be written mid-run
    (disk full, file size limit, permission changed: the other outputs keep the frames done);
    130 Ctrl-C; 143 SIGTERM and 129 SIGHUP (the process ends by the signal itself, which service
    managers count as a clean stop)."""
    from .run_options import parse_size
    from .runner import RunOptions, run_video, signal_name

    options = RunOptions(
        source=source,
        model=model,
        checkpoint=checkpoint,
        config=config,
        iters=iters,
        tol=tol,
        budget_ms=budget_ms,
        max_iters=max_iters,
        mode=mode,
        solver=solver,
        shot_policy=shot_policy,
        out=out,
        stats=stats,
        predictions=predictions,
        max_frames=max_frames,
        fps=fps,
        device=device,
        timeout=timeout,
        strict=strict,
        reconnect=reconnect,
        task=task,
        threads=threads,
        size=parse_size(size) if size is not None else None,
        hwaccel=hwaccel,
        stop_timeout=stop_timeout,
    )
    try:
        report = run_video(
            options, console=Console(stderr=True), on_stop_timeout=_end_after_stop_timeout
        )
    except KeyboardInterrupt as stop:  # before the first frame: outputs were removed
        signum = getattr(stop, "signum", signal.SIGINT)
        print(
            f"streamdeq: stopped by {signal_name(signum)} before the first frame; "
            "no output written",
            file=sys.stderr,
        )
        raise EndBySignal(signum) from None
    _print_run_end(report)
    if report.stopped == "interrupted" and report.signal is not None:
        raise EndBySignal(report.signal)
    if report.stopped is not None:
        raise SystemExit(report.exit_code)  # typer.Exit would be swallowed by main()


def _print_run_end(report: RunReport) -> None:
    """The summary on stdout, then why the run stopped early (if it did) on stderr."""
    from .runner import stop_line, summary_lines

    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if report.stopped is not None:
        print(f"streamdeq: {stop_line(report)}", file=sys.stderr)


def _end_after_stop_timeout(report: RunReport) -> None:
    """On the stop timer's thread, the outputs finished without the frame still running: say
    so and end the process now, as the signal would have (the main thread is busy in it)."""
    _print_run_end(report)
    end_by_signal(report.signal if report.signal is not None else signal.SIGINT)


@app.command("score")
def score_command(
    stats: Annotated[Path, typer.Argument(help="the run's --stats file (.csv, .jsonl, .json)")],
    predictions: Annotated[Path, typer.Argument(help="the run's --predictions (folder or .jsonl)")],
    annotations: Annotated[
        Path,
        typer.Option(
            help="ground truth: a Cityscapes-layout root or a folder of label PNGs named by "
            "frame index (segmentation); an Argoverse-HD-style manifest .json or ImageNet VID "
            "annotations (detection)"
        ),
    ],
    fps: Annotated[
        float | None,
        typer.Option(help="frames arrive at k/F s (default: their recorded timestamps)"),
    ] = None,
    eta: Annotated[
        float, typer.Option(help="query offset in frames: tau_g - eta/fps (-1: one frame late)")
    ] = 0.0,
    sequence: Annotated[
        str | None, typer.Option(help="the annotations' sequence the run covers")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="the annotations' split (default: the only one, or val)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the result here (.json)")] = None,
) -> None:
    """Score a recorded `streamdeq run` as an online system (streaming accuracy, Li et al. 2020).

    Annotated frame g, arriving at tau_g, is answered by the latest output finished by
    tau_g - eta/fps; a frame nothing answered yet is a miss (an empty prediction). Prints
    streaming and offline accuracy side by side, with the misses and the lag in frames.

    A file is read faster than real time, so its finish times are simulated from the recorded
    step latencies at the source's rate, as the "every frame" scheduler a file run has:
    f_k = max(tau_k, f_(k-1)) + latency_k. Other schedulers (latest frame, shrinking tail, fit
    the interval) need the model re-run: `streamdeq experiment streaming`. A live source's
    recorded finish times (the stats' `finish_s`) are used as they are."""
    from .score import ScoreOptions, score_lines, score_run

    options = ScoreOptions(
        stats=stats,
        predictions=predictions,
        annotations=annotations,
        fps=fps,
        eta=eta,
        sequence=sequence,
        split=split,
        out=out,
    )
    result = score_run(options)
    for line in score_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"wrote {out}", markup=False, highlight=False)


@app.command("train")
def train_command(
    recipe: Annotated[Path, typer.Argument(help="training recipe (.yaml), see configs/")],
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.pt")] = False,
    out: Annotated[Path | None, typer.Option(help="run directory (default: output.dir)")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="stop after N steps (the lr schedule is unchanged)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu|cuda (default: train.device)")] = None,
) -> None:
    """Train a model from a recipe (configs/), on one process or under torchrun.

    Under `torchrun --nproc_per_node=K -m streamdeq train ...` the K processes share each
    global batch."""
    _require_file(recipe, "recipe")
    import os

    from ..train import train

    result = train(recipe, out_dir=out, resume=resume, max_steps=max_steps, device=device)
    if result.export is not None:
        console.print(f"trained {result.steps} steps; weights: {result.export}")
    elif os.environ.get("RANK", "0") == "0":
        console.print(f"stopped after {result.steps} steps; continue with --resume")


@app.command("bench")
def bench_command(
    name: Annotated[
        str,
        typer.Argument(
            help="all, or some of overhead,limit,streams,memory,latency,carry,gpu,profile "
            "(comma-separated)"
        ),
    ] = "all",
    quick: Annotated[bool, typer.Option(help="seconds-long smoke run (tiny sizes)")] = False,
    out: Annotated[Path | None, typer.Option(help="write all tables as JSON here")] = None,
    size: Annotated[str | None, typer.Option(help="input HxW, e.g. 256x512")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="timed rounds (medians)")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="untimed rounds first")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads")] = None,
    frames: Annotated[int | None, typer.Option(min=1, help="frames per stream")] = None,
    device: Annotated[str, typer.Option(help="cpu|cuda")] = "cpu",
    models: Annotated[
        str | None, typer.Option(help="latency: bundled,small,xl (default all)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="profile: the model to record (default: the bundled one)")
    ] = None,
    profile_out: Annotated[
        Path | None, typer.Option(help="profile: write the latency profile JSON here")
    ] = None,
) -> None:
    """Benchmarks: StreamDEQ vs its baseline, its peers and its limit.

    Latency vs the baseline, solver overhead vs TorchDEQ, the limit, many streams, memory,
    GPU (see benchmarks/README.md)."""
    from ..bench import BenchSettings, parse_size, resolve_names, run_benchmarks

    settings = BenchSettings(
        quick=quick,
        size=parse_size(size) if size else None,
        repeats=1 if quick else repeats,
        warmup=min(warmup, 1) if quick else warmup,
        threads=threads,
        frames=frames,
        device=device,
        models=tuple(m.strip() for m in models.split(",")) if models else None,
        model=model,
        profile_out=str(profile_out) if profile_out else None,
    )
    run_benchmarks(resolve_names(name), settings, out=out)
    if out is not None:
        console.print(f"wrote {out}")


@app.command("serve")
def serve_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="video files, image folders or stream URLs to watch from the start"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="streams.yaml: streams and default settings (see streamdeq.serve.config)"
        ),
    ] = None,
    model: BundledModelOption = None,
    checkpoint: SafetensorsOption = None,
    host: Annotated[
        str, typer.Option(help="address to bind; other than loopback it needs --token")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0: any free port)")] = 8000,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|cuda:N")] = "auto",
    max_streams: Annotated[int, typer.Option(min=1, help="streams at most")] = 16,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="STREAMDEQ_TOKEN",
            help="bearer token required for changes, results, overlays and events",
        ),
    ] = None,
    media_root: Annotated[
        Path | None,
        typer.Option(help="folder that files added through the API must lie in (default: none)"),
    ] = None,
    allow_scheme: Annotated[
        list[str] | None,
        typer.Option(
            help="URL scheme the API may add (repeatable; default rtsp(s), rtmp(s), http(s))"
        ),
    ] = None,
    allow_hosts: Annotated[
        list[str] | None,
        typer.Option(
            help="host (or pattern) source URLs added through the API may name (repeatable)"
        ),
    ] = None,
    hostname: Annotated[
        list[str] | None,
        typer.Option(help="name this server is reached by, besides loopback ones (repeatable)"),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            help="where API-added streams are kept [default: streams.state.json beside "
            "--config, else in the working folder]"
        ),
    ] = None,
    loop: Annotated[bool, typer.Option(help="loop the SOURCE files and folders")] = True,
    iters: Annotated[
        int | None,
        typer.Option(help="M, iterations per frame (default 4; at most N, the model's full solve)"),
    ] = None,
    tol: Annotated[float | None, typer.Option(help="iterate until rel. residual < T")] = None,
    budget_ms: Annotated[float | None, typer.Option(help="latency budget per frame, ms")] = None,
    mode: Annotated[
        _one_of(_serve_modes) | None,
        typer.Option(help="the scheme [default: --config's defaults, else stream]"),
    ] = None,
    shot_policy: Annotated[
        _one_of(_shot_policies) | None,
        typer.Option(help="on a cut [default: --config's defaults, else keep]"),
    ] = None,
    folder_fps: Annotated[
        float, typer.Option(help="frame rate of image folders (the same as streamdeq run's)")
    ] = 25.0,
    timeout: Annotated[
        float, typer.Option(help="seconds a stream URL may stay silent before it is reopened")
    ] = 10.0,
    probesize: Annotated[
        int | None,
        typer.Option(
            min=32_768,  # serve.sources.PROBESIZE_MIN (serve is imported only when it runs)
            help="bytes FFmpeg reads to learn a stream URL's format; an MPEG-TS camera also "
            "fills a buffer of this size in its first minutes, so lower it (e.g. 1000000) to "
            "bound memory with many cameras [default: FFmpeg's 5000000]",
        ),
    ] = None,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=95, help="of the overlays")] = 80,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (default: torch's)")
    ] = None,
    decoders: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="processes that decode the sources, one per 16 sources up to this many "
            "(0: threads of the serving process, no shared memory) [default: a quarter of "
            "the CPU cores, 1 to 8]",
        ),
    ] = None,
    hwaccel: Annotated[
        str | None,
        typer.Option(
            help="decode the sources on a GPU: cuda (NVDEC, on --device's GPU) or cuda:N; "
            "default: on the CPU"
        ),
    ] = None,
    stop_timeout: Annotated[
        float, typer.Option(help="seconds a stop signal waits for the ticks in progress")
    ] = 5.0,
) -> None:
    """Watch many cameras with one batched engine, behind an HTTP API and a page.

    Each source is read on its own thread, in a few decoder processes (--decoders), and only
    its latest frame is processed (stale frames are dropped and counted); stream URLs reconnect
    with backoff. Streams added through the API are kept in the state file and come back after
    a restart; SOURCE and --config streams are not copied there. Settings flags (--iters,
    --mode, ...) are the default of every stream, over --config's defaults.

    It prints where it listens (with --port 0, the port chosen) on stderr once serving.

    Stopping: SIGTERM, Ctrl-C or SIGHUP drain (the ticks in progress finish, sources and event
    streams close), then the process ends by the signal (exit 143 for SIGTERM)."""
    from .serving import ServeOptions, serve

    given = (
        ("iters", iters),
        ("tol", tol),
        ("budget_ms", budget_ms),
        ("mode", mode),
        ("shot_policy", shot_policy),
    )
    settings = {name: value for name, value in given if value is not None}  # over --config's
    options = ServeOptions(
        sources=tuple(sources or ()),
        config=config,
        model=model,
        checkpoint=checkpoint,
        host=host,
        port=port,
        device=device,
        max_streams=max_streams,
        token=token,
        media_root=media_root,
        allow_schemes=tuple(allow_scheme) if allow_scheme else None,
        allow_hosts=tuple(allow_hosts) if allow_hosts else None,
        hostnames=tuple(hostname or ()),
        state_file=state_file,
        loop=loop,
        settings=settings,
        folder_fps=folder_fps,
        timeout=timeout,
        probesize=probesize,
        jpeg_quality=jpeg_quality,
        threads=threads,
        decoders=decoders,
        hwaccel=hwaccel,
        stop_timeout=stop_timeout,
    )
    serve(options, end_by_signal)


def _require_file(path: Path, what: str) -> None:
    from ..models.resolve import require_file

    require_file(path, what)


class EndBySignal(SystemExit):
    """A command stopped by a signal, its outputs finished: :func:`main` ends the process by
    that signal. Where nothing does (typer's test runner), an exit with the code a shell would
    show: 130 for Ctrl-C, 128 + the signal's number otherwise.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(EXIT_CTRL_C if signum == signal.SIGINT else 128 + signum)
        self.signum = signum


def end_by_signal(signum: int) -> NoReturn:
    """End the process as ``signum`` would have, once the outputs are finished: a shell sees
    128 + signum, and a service manager a stop by that signal, which systemd counts as clean
    (an exit code 143 it counts as a failure). Ctrl-C exits with 130, as it always did.

    Works from any thread: the stop timer calls it while the main thread is still in a frame.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if signum == signal.SIGINT:
        if in_main_thread:
            # the outputs are finished; another Ctrl-C during the interpreter's shutdown would
            # interrupt a cleanup (a temporary folder's finalizer) with a traceback: it ends
            # the process at once instead, quietly (and still ends it, should a cleanup hang)
            signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_CTRL_C))
            sys.exit(EXIT_CTRL_C)
        os._exit(EXIT_CTRL_C)
    if _restore_default_action(signum, in_main_thread):
        signal.pthread_kill(threading.get_ident(), signum)  # the default action: the end
    os._exit(128 + signum)


def _restore_default_action(signum: int, in_main_thread: bool) -> bool:
    """Give ``signum`` its default action again; False if this Python cannot."""
    if in_main_thread:
        signal.signal(signum, signal.SIG_DFL)
        return True
    try:  # signal.signal only works in the main thread; the C API it wraps works in any
        import ctypes

        setsig = ctypes.pythonapi.PyOS_setsig
        setsig.argtypes, setsig.restype = (ctypes.c_int, ctypes.c_void_p), ctypes.c_void_p
        setsig(signum, None)  # None is the null handler, SIG_DFL
    except (ImportError, AttributeError, OSError):
        return False
    return True


def main() -> None:
    """Entry point: run the app, turning expected errors into one line and exit code 2, and
    ending a run stopped by SIGTERM or SIGHUP by that signal (:func:`end_by_signal`)."""
    from ..cpu_allocator import tune_cpu_allocator

    tune_cpu_allocator()  # a process-wide setting: the command owns the process, the library not
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit in this mode
    except EndBySignal as end:
        end_by_signal(end.signum)
    except StreamDEQError as err:
        print(f"streamdeq: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("streamdeq: interrupted", file=sys.stderr)
        sys.exit(EXIT_CTRL_C)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except _click_exception_type() as err:  # usage errors arrive here in non-standalone mode
        _show_usage_error(err)
        sys.exit(err.exit_code)
    if isinstance(code, int) and code:
        sys.exit(code)


def _show_usage_error(err: Exception) -> None:
    """A wrong flag or value as one line, like every other user error; a bare command that
    asks for its help (no arguments) still gets the help."""
    if type(err).__name__ == "NoArgsIsHelpError":
        err.show()  # type: ignore[attr-defined]
        return
    ctx = getattr(err, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
    print(f"streamdeq: error: {message}{hint}", file=sys.stderr)


def _click_exception_type() -> type[Exception]:
    """Click's base exception: typer >= 0.2x vendors click (a click installed beside it, e.g.
    for uvicorn, is another package whose exceptions typer never raises); older releases
    depend on click."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        from click import ClickException
    return ClickException


if __name__ == "__main__":  # python -m streamdeq.app.cli
    main()
