"""``streamdeq run``: a model on a video file, online, with an overlay video and per-frame stats;
partial but complete outputs when the input breaks off or the user presses Ctrl-C; one-line
errors for every mistake, before any work is done."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from rich.console import Console

from streamdeq.app import runner
from streamdeq.app.runner import RunOptions, run_video
from streamdeq.data import (
    CorruptVideoError,
    InputNotFoundError,
    NotAVideoError,
    OutputError,
    VideoWriter,
)
from streamdeq.errors import CheckpointError, SettingsError, UnknownModelError
from streamdeq.models import (
    CheckpointMismatchError,
    load_safetensors,
    resolve,
    zoo,
)
from streamdeq.tasks import TASKS, Task, register_task

from ..data.live import live_stream, mpegts_bytes

FRAMES, HEIGHT, WIDTH, FPS = 6, 32, 64, 10
F_THRES = 5  # N of the tiny model, so the baseline stays cheap
OFFICIAL = Path(__file__).resolve().parent.parent / "fixtures" / "mdeq_official_seg_small8"


def scene(index: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients panning 3 px a frame; each seed another scene."""
    rng = np.random.default_rng(seed)
    base, slope = rng.uniform(20, 200, size=3), rng.uniform(-1.0, 1.0, size=3)
    x = np.arange(WIDTH) + 3 * index
    y = np.arange(HEIGHT)[:, None, None]
    image = base + slope * x[None, :, None] + 0.5 * y
    return np.clip(image, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = VideoWriter(path, FPS, crf=0)
    for frame in frames:
        writer.write(frame)
    writer.finish()
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def leftovers(folder: Path) -> list[str]:
    """Incomplete files a sink left behind."""
    return sorted(p.name for p in folder.iterdir() if ".incomplete." in p.name)


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/app/conftest.py


@pytest.fixture(scope="module")
def checkpoint(tiny_seg_checkpoint) -> Path:
    """The tiny segmentation model of tests/app/conftest.py (its N is F_THRES)."""
    return tiny_seg_checkpoint


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "clip.mp4", [scene(t) for t in range(FRAMES)])


def run(checkpoint: Path, source: Path, **options) -> runner.RunReport:
    return run_video(RunOptions(str(source), checkpoint=checkpoint, device="cpu", **options))


# ----------------------------------------------------------------------------- complete runs


def test_run_writes_one_overlay_frame_and_one_stats_row_per_input_frame(checkpoint, clip, tmp_path):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    report = run(checkpoint, clip, iters=2, out=out, stats=stats)
    assert (report.stopped, report.exit_code, report.frames) == (None, 0, FRAMES)
    frames = decoded_frames(out)
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    rows = read_csv(stats)
    assert [int(r["index"]) for r in rows] == list(range(FRAMES))
    assert [float(r["timestamp"]) for r in rows] == pytest.approx([t / FPS for t in range(FRAMES)])
    assert {r["iters"] for r in rows} == {"2"}
    for column in ("shot_change", "latency_ms", "residual_before", "reset", "label_change"):
        assert column in rows[0]
    assert rows[0]["reset"] == "first_frame" and rows[1]["reset"] == ""
    assert leftovers(tmp_path) == []


def test_a_live_stream_url_runs_frame_by_frame_to_the_end_of_the_broadcast(checkpoint, tmp_path):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    payload = mpegts_bytes([scene(t) for t in range(FRAMES)], FPS)
    with live_stream(payload) as url:
        report = run(checkpoint, url, iters=2, out=out, stats=stats)
    assert (report.stopped, report.exit_code, report.frames) == (None, 0, FRAMES)
    assert len(decoded_frames(out)) == FRAMES
    rows = read_csv(stats)
    assert [int(r["index"]) for r in rows] == list(range(FRAMES))
    assert [float(r["timestamp"]) for r in rows] == pytest.approx([t / FPS for t in range(FRAMES)])
    assert leftovers(tmp_path) == []


def test_the_overlay_is_the_segmentation_drawn_on_the_frame(checkpoint, clip, tmp_path):
    out = tmp_path / "out.mp4"
    run(checkpoint, clip, iters=1, out=out, max_frames=1)
    drawn = decoded_frames(out)[0].astype(int)
    original = decoded_frames(clip)[0].astype(int)
    assert np.abs(drawn - original).mean() > 10  # coloured, not a copy of the input


def test_baseline_gives_every_frame_n_iterations_from_zeros(checkpoint, clip, tmp_path):
    stats = tmp_path / "stats.jsonl"
    run(checkpoint, clip, mode="baseline", stats=stats, max_frames=3)
    rows = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [r["iters"] for r in rows] == [F_THRES] * 3
    assert all(r["residual_before"] == 1.0 for r in rows)  # a start from zeros


def test_max_frames_stops_early_and_completely(checkpoint, clip, tmp_path):
    report = run(checkpoint, clip, out=tmp_path / "out.mp4", max_frames=3)
    assert (report.stopped, report.frames) == (None, 3)
    assert len(decoded_frames(tmp_path / "out.mp4")) == 3


def test_a_folder_of_images_runs_at_the_given_frame_rate(checkpoint, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(3):
        _write_png(folder, t)
    stats = tmp_path / "stats.json"
    report = run(checkpoint, folder, fps=5.0, stats=stats, out=tmp_path / "out.mp4")
    rows = json.loads(stats.read_text())
    assert report.frames == 3 and [r["timestamp"] for r in rows] == [0.0, 0.2, 0.4]
    assert len(decoded_frames(tmp_path / "out.mp4")) == 3


def _write_png(folder: Path, index: int) -> None:
    with av.open(str(folder / f"frame{index}.png"), "w") as container:
        stream = container.add_stream("png")
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(scene(index), "rgb24")))
        container.mux(stream.encode(None))


def test_a_hard_cut_is_marked_in_the_shot_change_column(checkpoint, tmp_path):
    cut = 4  # the detector needs 3 frames of statistics first
    frames = [scene(t, seed=0) for t in range(cut)] + [scene(t, seed=5) for t in range(2)]
    source = write_video(tmp_path / "cut.mp4", frames)
    report = run(checkpoint, source, iters=2, stats=tmp_path / "stats.csv")
    marked = [
        int(r["index"]) for r in read_csv(tmp_path / "stats.csv") if r["shot_change"] == "True"
    ]
    assert marked == report.shot_changes == [cut]


def test_a_model_without_trained_weights_runs_and_says_its_weights_are_random(clip, tmp_path):
    messages = StringIO()
    options = RunOptions(
        str(clip), model="mdeq-seg-small-cityscapes", iters=1, max_frames=1, device="cpu"
    )
    report = run_video(options, console=Console(file=messages, width=200))
    assert report.frames == 1 and "RANDOM" in report.model
    assert "RANDOM weights" in messages.getvalue()


# ----------------------------------------------------------------------------- stopping early


def truncated_clip(folder: Path, frames: int = 16, keep: float = 0.5) -> Path:
    """A valid mp4 (index at the front) cut to ``keep`` of its bytes."""
    path = write_video(folder / "long.mp4", [scene(t) for t in range(frames)])
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_truncated_input_keeps_the_frames_done_in_complete_files(checkpoint, tmp_path):
    source = truncated_clip(tmp_path)
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    report = run(checkpoint, source, iters=1, out=out, stats=stats)
    assert (report.stopped, report.exit_code) == ("input_error", 1)
    assert 0 < report.frames < 16
    assert "truncated" in report.stop_reason
    assert len(decoded_frames(out)) == len(read_csv(stats)) == report.frames
    assert leftovers(tmp_path) == []


def test_ctrl_c_finishes_the_frame_in_progress_and_keeps_the_frames_done(
    checkpoint, clip, tmp_path
):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"

    def press_ctrl_c(frame, result):
        if frame.index == 2:
            os.kill(os.getpid(), signal.SIGINT)

    options = RunOptions(str(clip), checkpoint=checkpoint, iters=1, out=out, stats=stats)
    # what the process had before (Python's default handler, or SIG_IGN when the test run was
    # started in the background by a non-interactive shell)
    before = signal.getsignal(signal.SIGINT)
    report = run_video(options, on_frame=press_ctrl_c)
    assert (report.stopped, report.exit_code, report.frames) == ("interrupted", 130, 3)
    assert len(decoded_frames(out)) == len(read_csv(stats)) == 3
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_a_second_ctrl_c_stops_at_once(checkpoint, clip, tmp_path):
    after = []

    def press_ctrl_c_twice(frame, result):
        if frame.index == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # raises here, before the next line
            after.append(frame.index)

    options = RunOptions(str(clip), checkpoint=checkpoint, iters=1, out=tmp_path / "o.mp4")
    report = run_video(options, on_frame=press_ctrl_c_twice)
    assert (report.stopped, report.frames, after) == ("interrupted", 2, [])
    assert len(decoded_frames(tmp_path / "o.mp4")) == 2


def test_on_a_terminal_a_progress_bar_shows_frames_per_second(checkpoint, clip):
    screen = StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    options = RunOptions(str(clip), checkpoint=checkpoint, iters=1, max_frames=2)
    run_video(options, console=console)
    assert "frames/s" in screen.getvalue() and "2/2" in screen.getvalue()


def test_any_other_failure_mid_run_leaves_no_output(checkpoint, clip, tmp_path):
    def fail(frame, result):
        if frame.index == 1:
            raise RuntimeError("boom")

    options = RunOptions(str(clip), checkpoint=checkpoint, iters=1, out=tmp_path / "o.mp4")
    with pytest.raises(RuntimeError, match="boom"):
        run_video(options, on_frame=fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iters": 2, "tol": 1e-3}, "--iters and --tol conflict"),
        ({"iters": 2, "budget_ms": 50.0}, "--iters and --budget-ms conflict"),
        ({"tol": 1e-3, "budget_ms": 50.0}, "--tol and --budget-ms conflict"),
        ({"mode": "baseline", "iters": 2}, "baseline.*--iters applies"),
        ({"max_iters": 8}, "--max-iters limits --tol or --budget-ms"),
        ({"model": "mdeq-seg-small-cityscapes", "checkpoint": "m.safetensors"}, "conflict"),
        ({"config": "official.yaml"}, "--config names the official yaml"),
        ({"checkpoint": "m.pth"}, "give its experiment yaml with --config"),
        ({"checkpoint": "m.safetensors", "config": "x.yaml"}, "drop --config"),
        ({"stats": "stats.txt"}, "unknown stats extension"),
        ({"out": "out.avi"}, "unknown video extension"),
        ({"out": "same.mp4", "stats": "same.mp4"}, "unknown stats extension"),
        ({"out": "in.mp4"}, "is the input"),
        ({"mode": "offline"}, "--mode must be one of"),
        ({"solver": "newton"}, "(?=.*--solver)(?=.*'newton')(?=.*broyden, fixed_point)"),
        ({"shot_policy": "skip"}, "--shot-policy must be one of"),
        ({"device": "tpu"}, "--device must be one of"),
        ({"max_frames": 0}, "--max-frames must be >= 1"),
        ({"fps": -1.0}, "--fps must be a positive"),
        ({"timeout": 0.0}, "--timeout must be a positive"),
        ({"timeout": float("nan")}, "--timeout must be a positive"),
        ({"threads": 0}, "--threads must be an integer >= 1"),
        ({"size": (0, 10)}, "--size must be"),
        ({"size": 0}, "--size must be"),
    ],
)
def test_conflicting_or_invalid_options_are_settings_errors(options, message, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent)  # "in.mp4" need not exist: paths are compared
    with pytest.raises(SettingsError, match=message):
        RunOptions("in.mp4", **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_settings_error():
    with pytest.raises(SettingsError, match="no usable CUDA"):
        RunOptions("in.mp4", device="cuda")


def test_a_missing_input_fails_before_any_output_exists(checkpoint, tmp_path):
    with pytest.raises(InputNotFoundError, match="input not found"):
        run(checkpoint, tmp_path / "missing.mp4", out=tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_video(checkpoint, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 50)
    with pytest.raises(NotAVideoError, match="not a video"):
        run(checkpoint, text)


def test_a_video_truncated_before_its_first_frame_is_an_error_with_no_output(checkpoint, tmp_path):
    source = truncated_clip(tmp_path, keep=0.02)
    with pytest.raises(CorruptVideoError):
        run(checkpoint, source, out=tmp_path / "out.mp4", stats=tmp_path / "s.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


@pytest.mark.parametrize("where", ["missing/out.mp4", "clip_is_a_file/out.mp4"])
def test_an_output_that_cannot_be_written_fails_before_the_model_is_loaded(
    checkpoint, clip, tmp_path, monkeypatch, where
):
    (tmp_path / "clip_is_a_file").write_text("")
    monkeypatch.setattr(runner, "load_run_model", pytest.fail)  # must not be reached
    with pytest.raises(OutputError, match="cannot write video"):
        run(checkpoint, clip, out=tmp_path / where)


def test_a_checkpoint_that_does_not_fit_counts_every_mismatch(clip, tmp_path):
    state = torch.load(OFFICIAL / "state_dict.pth", weights_only=True)
    first = next(k for k in state if k.endswith("weight"))
    del state[next(k for k in state if k.endswith("bias"))]
    state["extra.weight"] = torch.zeros(2)
    state[first] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bad.pth")
    options = RunOptions(
        str(clip), checkpoint=tmp_path / "bad.pth", config=OFFICIAL / "config.yaml"
    )
    with pytest.raises(CheckpointMismatchError, match="1 missing.*1 unexpected.*1 wrongly shaped"):
        run_video(options)


def test_an_official_checkpoint_with_its_yaml_runs(clip, tmp_path):
    options = RunOptions(
        str(clip),
        checkpoint=OFFICIAL / "state_dict.pth",
        config=OFFICIAL / "config.yaml",
        iters=1,
        max_frames=2,
    )
    report = run_video(options)
    assert report.frames == 2 and "official checkpoint" in report.model


def test_a_missing_checkpoint_leaves_no_output(clip, tmp_path):
    options = RunOptions(str(clip), checkpoint=tmp_path / "no.safetensors", out=tmp_path / "o.mp4")
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        run_video(options)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_model_name_lists_the_known_ones(clip):
    with pytest.raises(UnknownModelError, match="mdeq-seg-small-cityscapes"):
        run_video(RunOptions(str(clip), model="mdeq-seg-huge"))


@pytest.fixture
def registry():
    """The model registry, restored after the test."""
    with zoo.MODELS.restored():
        yield zoo


def test_without_a_model_the_default_runs_with_its_bundled_weights(
    checkpoint, clip, registry, monkeypatch
):
    config = load_safetensors(checkpoint).config
    registry.register_model("tiny-bundled", config, weights=checkpoint)
    monkeypatch.setattr(resolve, "DEFAULT_MODEL", "tiny-bundled")
    report = run_video(RunOptions(str(clip), iters=1, max_frames=1))
    assert report.model == "tiny-bundled (bundled weights)"


def test_a_model_whose_weights_file_is_missing_runs_with_random_weights(
    checkpoint, clip, registry, tmp_path
):
    config = load_safetensors(checkpoint).config
    registry.register_model("tiny-lost", config, weights=tmp_path / "gone.safetensors")
    messages = StringIO()
    options = RunOptions(str(clip), model="tiny-lost", iters=1, max_frames=1)
    report = run_video(options, console=Console(file=messages, width=300))
    assert "RANDOM" in report.model and "is missing its weights" in messages.getvalue()


def test_the_default_model_says_once_that_it_knows_only_generated_scenes(clip):
    messages = StringIO()
    run_video(
        RunOptions(str(clip), iters=1, max_frames=2), console=Console(file=messages, width=300)
    )
    notes = [line for line in messages.getvalue().splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "trained only on generated street scenes" in notes[0]
    assert "On real footage" in notes[0]


def test_a_run_says_it_replaces_the_incomplete_output_of_a_killed_run(checkpoint, clip, tmp_path):
    (tmp_path / "out.incomplete.mp4").write_bytes(b"a killed run's fragments")
    messages = StringIO()
    options = RunOptions(str(clip), checkpoint=checkpoint, iters=1, out=tmp_path / "out.mp4")
    run_video(options, console=Console(file=messages, width=300))
    assert f"note: replacing {tmp_path / 'out.incomplete.mp4'}" in messages.getvalue()
    assert leftovers(tmp_path) == []


def test_without_a_model_the_default_must_be_installed(clip, monkeypatch):
    monkeypatch.setattr(resolve, "DEFAULT_MODEL", "not-installed")
    with pytest.raises(SettingsError, match="default not-installed.*--model NAME"):
        run_video(RunOptions(str(clip)))


def test_an_unknown_task_is_refused(checkpoint, clip):
    with pytest.raises(SettingsError, match="unknown task 'paint'"):
        run(checkpoint, clip, task="paint")


def test_a_task_for_another_kind_of_model_is_refused(checkpoint, clip):
    with TASKS.restored():
        register_task(Task("classification", "label"))
        with pytest.raises(SettingsError, match="draws classification outputs"):
            run(checkpoint, clip, task="label")


# ----------------------------------------------------------------------------- the command


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamdeq", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )


def test_command_runs_a_video_and_prints_a_summary(checkpoint, clip, tmp_path):
    out = tmp_path / "out.mp4"
    done = cli(str(clip), "--checkpoint", str(checkpoint), "--iters", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{FRAMES} frames" in done.stdout and "p90" in done.stdout
    assert len(decoded_frames(out)) == FRAMES


def test_command_truncated_input_exits_1_with_one_line_and_a_playable_video(checkpoint, tmp_path):
    source, out = truncated_clip(tmp_path), tmp_path / "out.mp4"
    done = cli(str(source), "--checkpoint", str(checkpoint), "--iters", "1", "--out", str(out))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped early" in lines[0] and "Traceback" not in done.stderr
    assert 0 < len(decoded_frames(out)) < 16


def test_command_user_error_is_one_line_exit_2(checkpoint, clip):
    done = cli(str(clip), "--checkpoint", str(checkpoint), "--iters", "2", "--tol", "0.01")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("streamdeq: error: --iters and --tol")


def test_command_on_a_live_stream_prints_a_summary(checkpoint, tmp_path):
    out = tmp_path / "out.mp4"
    with live_stream(mpegts_bytes([scene(t) for t in range(FRAMES)], FPS)) as url:
        done = cli(url, "--checkpoint", str(checkpoint), "--iters", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{FRAMES} frames" in done.stdout
    assert len(decoded_frames(out)) == FRAMES


def test_command_on_a_stream_that_goes_silent_stops_after_timeout_and_keeps_the_frames(
    checkpoint, tmp_path
):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    payload = mpegts_bytes([scene(t) for t in range(40)], FPS)
    with live_stream(payload, stall_after=len(payload) // 2) as url:
        done = cli(url, "--checkpoint", str(checkpoint), "--iters", "1", "--timeout", "1",
                   "--out", str(out), "--stats", str(stats))  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing arrived for 1 s" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    kept = len(decoded_frames(out))
    assert 0 < kept < 40 and len(read_csv(stats)) == kept
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- size and threads

SOURCE_H, SOURCE_W = 240, 427  # an odd width, as some phone videos have


def source_scene(index: int) -> np.ndarray:
    """(240, 427, 3) uint8: a smooth gradient panning 3 px a frame."""
    y = np.arange(SOURCE_H)[:, None, None]
    x = np.arange(SOURCE_W)[None, :, None] + 3 * index
    image = 30 + 0.4 * y + 0.3 * x + np.array([0, 40, 80])
    return np.clip(image, 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png")
        stream.height, stream.width, stream.pix_fmt = *image.shape[:2], "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode(None))


@pytest.fixture
def model_inputs(monkeypatch) -> list:
    """The FrameInput of every frame the stream prepares."""
    from streamdeq.stream import stepping

    seen, prepare = [], stepping.prepare_frames

    def spy(*args, **kwargs):
        inputs = prepare(*args, **kwargs)
        seen.extend(inputs)
        return inputs

    monkeypatch.setattr(stepping, "prepare_frames", spy)
    return seen


def test_size_fits_the_frame_for_the_model_and_keeps_the_outputs_in_the_sources_pixels(
    checkpoint, tmp_path, monkeypatch, model_inputs
):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(2):
        write_png(folder / f"frame{t}.png", source_scene(t))
    drawn, write = [], runner.RunOutputs.write
    monkeypatch.setattr(
        runner.RunOutputs,
        "write",
        lambda self, image, row: [drawn.append(image), write(self, image, row)],
    )
    outputs = []
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.csv"
    options = RunOptions(
        str(folder), checkpoint=checkpoint, iters=1, fps=5.0, size=(128, 256), out=out, stats=stats
    )
    report = run_video(options, on_frame=lambda frame, result: outputs.append(result.output))
    assert report.frames == 2
    multiple = load_safetensors(checkpoint).input_multiple
    for inp in model_inputs:  # fitted inside 128x256 with the aspect kept, then padded
        assert (inp.source_size, inp.size) == ((240, 427), (128, 227))
        assert all(
            p % multiple == 0 and p - s < multiple for p, s in zip(inp.padded_size, inp.size)
        )
    assert [image.shape for image in drawn] == [(SOURCE_H, SOURCE_W, 3)] * 2
    assert decoded_frames(out)[0].shape == (SOURCE_H, SOURCE_W + 1, 3)  # H.264: even width
    assert len(read_csv(stats)) == 2
    assert outputs[0].shape[-2] < SOURCE_H  # logits at model resolution; the renderer upsamples


def test_without_size_frames_get_the_input_size_the_weights_declare(checkpoint):
    from streamdeq.models.pretrained import PretrainedInfo

    model = load_safetensors(checkpoint)
    declared = PretrainedInfo(task="segmentation", mean=(0.5, 0.5, 0.5), input_size=(16, 32))
    model.pretrained_info = declared
    preprocess = RunOptions("in.mp4").stream_settings(model).preprocess_for(model)
    assert preprocess.resize == (16, 32)
    assert preprocess.mean == (0.5, 0.5, 0.5)  # the weights' normalisation is kept
    preprocess = RunOptions("in.mp4", size=100).stream_settings(model).preprocess_for(model)
    assert preprocess.resize == 100
    model.pretrained_info = None
    assert RunOptions("in.mp4").stream_settings(model).preprocess_for(model).resize is None


def test_threads_sets_torch_threads(checkpoint, clip):
    try:
        run(checkpoint, clip, iters=1, max_frames=1, threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # the module's setting


def test_jsonl_stats_write_null_for_a_missing_value(checkpoint, clip, tmp_path):
    stats = tmp_path / "stats.jsonl"
    run(checkpoint, clip, iters=1, max_frames=2, stats=stats)
    rows = [json.loads(line) for line in stats.read_text().splitlines()]
    assert rows[0]["reset"] == "first_frame" and rows[1]["reset"] is None


@pytest.mark.parametrize(
    ("size", "message"),
    [("12y", "--size must be HxW"), ("0x10", "--size must be an integer >= 1")],
)
def test_command_wrong_size_is_one_line_exit_2(checkpoint, clip, size, message):
    done = cli(str(clip), "--checkpoint", str(checkpoint), "--size", size)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"streamdeq: error: {message}")
