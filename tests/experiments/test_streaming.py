"""``streamdeq experiment streaming``: streaming accuracy against input rate, its shortcuts, its
frontier and its command line."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.experiments import EXPERIMENTS
from streamdeq.experiments.schemes import Scheme
from streamdeq.experiments.streaming import (
    never_behind,
    parse_fps,
    parse_schedulers,
    parse_schemes,
    replay,
    streaming,
)
from streamdeq.experiments.streaming_plot import interpolate
from streamdeq.models import save_safetensors
from streamdeq.streaming import LinearCost, SimulatedClock, run_online
from streamdeq.streaming.profiles import LatencyProfile, ProfileEntry

from .conftest import panning_clip, tiny_model
from .test_cli import run_main

#: 40 ms a step plus 10 ms an iteration: at 30 frames/s every scheme here falls behind.
COST = LinearCost(overhead_ms=40.0, ms_per_eval=10.0)
SCHEMES = "baseline,stream=1,stream=2,tol=0.05"


def noisy_profile() -> LatencyProfile:
    """A profile with spread, so that the seeded draws matter."""
    entries = tuple(
        ProfileEntry(f"stream M={m}", "stream", m, m, (20.0 * m, 35.0 * m), (10.0 * m, 20.0 * m))
        for m in (1, 2, 6)
    )
    return LatencyProfile("tiny", (32, 64), "cpu", entries)


@pytest.fixture(scope="module")
def clips():
    return [panning_clip(1, frames=6), panning_clip(2, frames=6)]


@pytest.fixture(scope="module")
def result(clips):
    schedulers = "every,latest,fit"
    return streaming(tiny_model(), clips, fps=(5, 30), schemes=SCHEMES, schedulers=schedulers, profile=COST)  # fmt: skip


def test_registered_for_the_command_line():
    assert EXPERIMENTS.get("streaming") is streaming


def test_rows_carry_metrics_diagnostics_and_provenance(result):
    row = result.rows[0]
    for column in (
        "scheme", "scheduler", "fps", "smiou", "offline_miou", "miou_covered", "miss_rate",
        "lag_mean", "lag_p90", "processed", "mean_ms", "mean_iters",
        "device", "threads", "torch", "date", "clock", "profile", "perf_factor",
    ):  # fmt: skip
        assert column in row
    assert {r["clock"] for r in result.rows} == {"sim"}
    assert "LinearCost" in row["profile"]
    # 4 schemes x 2 schedulers x 2 rates, and the fit policy at each rate
    assert len(result.rows) == 4 * 2 * 2 + 2
    assert {r["scheme"] for r in result.rows if r["scheduler"] == "fit"} == {"fit"}


def test_save_writes_sweep_frontier_and_json(result, tmp_path):
    files = {p.name for p in result.save(tmp_path)}
    assert files == {
        "streaming.csv", "streaming.png", "frontier.csv", "frontier.png", "streaming.json",
    }  # fmt: skip
    with open(tmp_path / "streaming.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.rows) and all(r["device"] for r in rows)
    assert (tmp_path / "frontier.png").stat().st_size > 0
    saved = json.loads((tmp_path / "streaming.json").read_text())  # standard JSON: no NaN
    assert len(saved["rows"]) == len(result.rows)
    assert all(row["clock"] == "sim" and row["date"] for row in saved["rows"] + saved["frontier"])


def test_a_slow_scheme_falls_behind_at_a_high_rate(result):
    def at(scheme, scheduler, fps):
        return next(
            r for r in result.rows
            if (r["scheme"], r["scheduler"], r["fps"]) == (scheme, scheduler, fps)
        )  # fmt: skip

    slow, fast = at("baseline N", "latest", 30.0), at("baseline N", "latest", 5.0)
    assert slow["processed"] < 1.0 == fast["processed"]  # 100 ms a step > 33 ms an interval
    assert slow["lag_mean"] > fast["lag_mean"] == 1.0  # a finished step answers the next frame
    queued = at("baseline N", "every", 30.0)
    assert queued["processed"] == 1.0 and queued["lag_mean"] >= slow["lag_mean"]


def test_zero_cost_makes_streaming_equal_offline(clips):
    free = streaming(
        tiny_model(), clips, fps=(30,), schemes=SCHEMES, schedulers="latest,shrinking-tail",
        profile=LinearCost(overhead_ms=0.0),
    )  # fmt: skip
    for row in free.rows:
        assert row["miss_rate"] == 0.0 and row["own_input_rate"] == 1.0
        assert row["smiou"] == pytest.approx(row["offline_miou"], abs=1e-12)


def test_two_runs_agree_apart_from_the_date(clips):
    def run():
        return streaming(
            tiny_model(), clips[:1], fps=(12,), schemes="stream=1,tol=0.05",
            schedulers="latest,fit", profile=noisy_profile(), seed=3,
        )  # fmt: skip

    first, second = run(), run()
    for a, b in zip(first.rows, second.rows, strict=True):
        a.pop("date"), b.pop("date")
        assert a == b
    assert len({r["mean_ms"] for r in first.rows}) > 1


@pytest.mark.parametrize("scheduler", ["every", "latest", "shrinking-tail"])
def test_replaying_the_baseline_equals_running_it(scheduler):
    model, frames = tiny_model(), panning_clip(3, frames=8).frames
    clock = SimulatedClock(noisy_profile(), seed=1)
    every = run_online(model, frames, 10.0, Scheme("baseline"), "every", clock)
    direct = run_online(model, frames, 25.0, Scheme("baseline"), scheduler, clock)
    replayed = replay(every, scheduler, 25.0)
    assert [(r.input_index, r.finish_s, r.latency_ms) for r in replayed] == [
        (r.input_index, r.finish_s, r.latency_ms) for r in direct
    ]
    assert all(torch.equal(a.output, b.output) for a, b in zip(replayed, direct, strict=True))


def test_latest_that_never_falls_behind_is_every_frame():
    model, frames = tiny_model(), panning_clip(3, frames=8).frames
    clock = SimulatedClock(COST)
    every = run_online(model, frames, 10.0, Scheme("stream", 2), "every", clock)
    latest = run_online(model, frames, 10.0, Scheme("stream", 2), "latest", clock)
    assert never_behind(every, 10.0)
    assert [(r.input_index, r.finish_s) for r in latest] == [
        (r.input_index, r.finish_s) for r in every
    ]
    assert not never_behind(replay(every, "every", 30.0), 30.0)


def test_frontier_compares_adaptive_settings_with_fixed_m_at_equal_cost(result):
    rows = {r["scheme"]: r for r in result.frontier}
    assert {"stream M=1", "stream M=2", "tol=0.05", "fit"} <= set(rows)
    for name in ("stream M=1", "stream M=2"):
        assert rows[name]["gain_offline"] == 0.0  # on its own curve
    low, high = rows["stream M=1"]["mean_ms"], rows["stream M=2"]["mean_ms"]
    tol = rows["tol=0.05"]
    if low <= tol["mean_ms"] <= high:
        assert tol["gain_offline"] == tol["offline_miou"] - tol["fixed_offline"]
    else:
        assert math.isnan(tol["fixed_offline"])


def test_interpolate_is_linear_inside_and_nan_outside():
    curve = [(10.0, 0.2), (20.0, 0.4)]
    assert interpolate(curve, 15.0) == pytest.approx(0.3)
    assert math.isnan(interpolate(curve, 25.0))


@pytest.mark.parametrize(
    ("parse", "text", "match"),
    [
        (parse_schemes, "stream=0", "M must be an integer >= 1"),
        (parse_schemes, "warp=2", "unknown scheme 'warp=2'"),
        (parse_schemes, "tol=-1", "must be a number > 0"),
        (parse_schemes, "stream=2,stream=2", "repeats"),
        (parse_fps, "5,abc", "comma-separated numbers"),
        (parse_fps, "0", "> 0"),
        (parse_schedulers, "soonest", "unknown scheduler 'soonest'"),
    ],
)
def test_bad_settings_name_the_problem(parse, text, match):
    with pytest.raises(SettingsError, match=match):
        parse(text)


def test_schemes_parse_into_modes_and_options():
    schemes = {s.name: s for s in parse_schemes("baseline,keyframe=2,non-streaming=4,budget=30")}
    assert schemes["keyframe M=2"].scheme == Scheme("keyframe", 2)
    assert schemes["non-streaming M=4"].scheme == Scheme("baseline", 4)
    assert schemes["budget=30ms"].stream_options == {"budget_ms": 30.0, "max_iter_cap": 8}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fig3", "--fps", "5"), "--fps applies to the streaming experiment only"),
        (("streaming", "--iters", "2"), "--iters does not apply to streaming"),
        (("streaming", "--schemes", "stream=x"), "scheme 'stream=x': M must be an integer"),
        (("streaming", "--clock", "real", "--perf-factor", "2"), "price simulated time"),
        (("streaming", "--task", "detect", "--model", "mdeq-seg-tiny-synthetic"), "--task detect"),
    ],
)
def test_bad_flags_are_one_line_errors(monkeypatch, capsys, tmp_path, args, message):
    code, err = run_main(monkeypatch, capsys, "experiment", *args, "--out", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("streamdeq: error: ") and message in err[0]


def test_command_runs_a_checkpoint_with_measured_costs(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_safetensors(tiny_model(), checkpoint)
    args = ("experiment", "streaming", "--checkpoint", str(checkpoint), "--clips", "1",
            "--frames", "3", "--fps", "10", "--schemes", "stream=1", "--schedulers", "latest")  # fmt: skip
    code, err = run_main(monkeypatch, capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 2 and "no bundled latency profile for a checkpoint file" in err[0]
    code, err = run_main(monkeypatch, capsys, *args, "--profile", "measured", "--out", str(tmp_path / "b"))  # fmt: skip
    assert (code, err) == (0, [])
    with open(tmp_path / "b" / "streaming.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["scheme"], row["profile"], row["clock"]) == ("stream M=1", "measured", "sim")
