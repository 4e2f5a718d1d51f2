"""``streamdeq run`` stopped the way terminals, service managers, containers and schedulers stop
jobs: real signals sent to a real process at a random frame, then the outputs opened at their
final names. Also the exit code of an output that cannot be written mid-run (74)."""

from __future__ import annotations

import csv
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from streamdeq.app.cli import app
from streamdeq.app.runner import RunOptions
from streamdeq.errors import SettingsError

from ..data.clips import write_clip

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: Long enough never to end on its own during a test; frames of ~0.1 s with one thread.
CLIP_FRAMES = 200
STARTUP_SECONDS = 60  # importing torch and loading the model, on a busy machine


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", CLIP_FRAMES)


class Run:
    """A ``streamdeq run`` subprocess writing ``out.mp4`` and ``stats.csv`` in ``folder``."""

    def __init__(self, folder: Path, source: Path, *args: str, preexec_fn=None) -> None:
        self.folder = folder
        self.out, self.stats = folder / "out.mp4", folder / "stats.csv"
        self._stdout, self._stderr = folder / "stdout.txt", folder / "stderr.txt"
        command = [sys.executable, "-m", "streamdeq", "run", str(source), "--threads", "1"]
        command += ["--out", str(self.out), "--stats", str(self.stats), *args]
        with open(self._stdout, "w") as stdout, open(self._stderr, "w") as stderr:
            self.process = subprocess.Popen(
                command, stdout=stdout, stderr=stderr, preexec_fn=preexec_fn
            )

    def rows_so_far(self) -> int:
        """Rows in the stats file, under whichever name it has during the run."""
        names = [p for p in self.folder.glob("*stats*.csv") if p.is_file()]
        return max((len(p.read_text().splitlines()) - 1 for p in names), default=0)

    def wait_for_rows(self, rows: int) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while self.rows_so_far() < rows:
            assert self.process.poll() is None, f"ended early: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {rows} stats rows: {self.stderr()}"
            time.sleep(0.02)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return self._stdout.read_text()

    def stderr(self) -> str:
        return self._stderr.read_text()

    def summary_frames(self) -> int:
        match = re.search(r"^(\d+) frames? with ", self.stdout(), re.MULTILINE)
        assert match, f"no summary: {self.stdout()} {self.stderr()}"
        return int(match.group(1))

    def leftovers(self) -> list[str]:
        """Files still under a name used only during a run."""
        return sorted(
            p.name for p in self.folder.iterdir() if ".incomplete" in p.name or ".partial" in p.name
        )


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(source: Path, *args: str, **kwargs) -> Run:
        started.append(Run(tmp_path, source, *args, **kwargs))
        return started[-1]

    yield start
    for each in started:  # a failed test leaves no process behind
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait()


def video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def stats_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def assert_outputs_agree(run: Run) -> int:
    """Both outputs at their final names, playable / readable, with the frames the summary
    reports; returns that number."""
    frames = run.summary_frames()
    rows = stats_rows(run.stats)
    assert [int(row["index"]) for row in rows] == list(range(frames))
    assert video_frames(run.out) == frames
    assert run.leftovers() == []
    return frames


def send_at_a_random_frame(run: Run, signum: int) -> int:
    rows = random.randint(2, 8)
    run.wait_for_rows(rows)
    run.process.send_signal(signum)
    return rows


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")]
)
def test_sigterm_and_sighup_finish_the_outputs_then_end_the_process_by_that_signal(
    run, clip, signum, name
):
    job = run(clip)
    rows = send_at_a_random_frame(job, signum)
    assert job.wait() == -signum, job.stderr()  # killed by it: shells show 128 + signum
    frames = assert_outputs_agree(job)
    assert rows <= frames < CLIP_FRAMES
    assert f"stopped early ({name})" in job.stderr()


def test_ctrl_c_twice_stops_at_once_with_playable_outputs(run, clip):
    job = run(clip)
    send_at_a_random_frame(job, signal.SIGINT)
    time.sleep(0.01)
    job.process.send_signal(signal.SIGINT)
    assert job.wait() == 130, job.stderr()
    assert_outputs_agree(job)
    assert "Traceback" not in job.stderr()


def test_a_frame_that_outlasts_the_stop_timeout_is_abandoned(run, clip):
    # the baseline solve on a large resize: a frame takes 3 s or more here
    job = run(clip, "--mode", "baseline", "--size", "720x960", "--stop-timeout", "0.5")
    job.wait_for_rows(1)
    time.sleep(0.2)  # into the second frame (a signal between frames starts none)
    sent = time.monotonic()
    job.process.send_signal(signal.SIGTERM)
    assert job.wait() == -signal.SIGTERM, job.stderr()
    assert time.monotonic() - sent < 0.5 + 1.5
    latency = stats_rows(job.stats)[0]["latency_ms"]
    assert "abandoned at the 0.5 s stop timeout" in job.stderr(), f"a frame took {latency} ms"
    assert assert_outputs_agree(job) == 1


def test_an_output_that_cannot_be_written_mid_run_exits_74_and_keeps_the_others(
    run, tmp_path_factory
):
    # the video grows far faster than the stats: it meets the file size limit first, mid-run
    # or when it is finished
    source = write_clip(tmp_path_factory.mktemp("wide") / "wide.mp4", 60, width=320, height=240)

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG rather than die
        resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))

    job = run(source, "--size", "48x64", preexec_fn=limit_file_size)
    assert job.wait(timeout=120) == 74, job.stderr()
    last_line = job.stderr().strip().splitlines()[-1]
    assert last_line.startswith("streamdeq: stopped early (") and str(job.out) in last_line
    assert "Traceback" not in job.stderr()
    frames = job.summary_frames()
    assert frames > 0
    assert [int(row["index"]) for row in stats_rows(job.stats)] == list(range(frames))


def test_run_help_lists_every_exit_code():
    shown = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    for code in (
        "0 done",
        "1 the input",
        "2 a mistake",
        "74 an output",
        "130 Ctrl-C",
        "143",
        "129",
    ):
        assert code in text, code
    assert "--stop-timeout" in text


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("inf"), float("nan")])
def test_stop_timeout_must_be_a_positive_number_of_seconds(seconds):
    with pytest.raises(SettingsError, match="--stop-timeout must be a positive number"):
        RunOptions("clip.mp4", stop_timeout=seconds)


def test_a_ctrl_c_during_the_shutdown_after_a_ctrl_c_stop_prints_no_traceback():
    """The outputs are finished when the process ends by Ctrl-C; one more Ctrl-C landing in
    the interpreter's shutdown (here: in an exit handler, as a temporary folder's finalizer
    is) must not print a traceback or change the exit status."""
    code = (
        "import atexit, os, signal, time\n"
        "from streamdeq.app.cli import end_by_signal\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
        "end_by_signal(signal.SIGINT)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=STARTUP_SECONDS
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
