"""Latency profiles: pricing any number of evaluations, files, the bundled ones, recording."""

from __future__ import annotations

import json
import random

import pytest

from streamdeq.streaming.profiles import (
    LatencyProfile,
    ProfileEntry,
    ProfileError,
    bundled_profile,
    bundled_profiles,
    load_profile,
    save_profile,
    summarize_ms,
)


def linear_profile(noise: tuple[float, ...] = (1.0,)) -> LatencyProfile:
    """Steps cost exactly (10 + 5 x evaluations) x each noise factor, solve 5 x evals x it."""
    entries = tuple(
        ProfileEntry(
            f"stream M={m}",
            "stream",
            m,
            m,
            tuple((10.0 + 5.0 * m) * r for r in noise),
            tuple(5.0 * m * r for r in noise),
        )
        for m in (1, 2, 8)
    )
    batched = ProfileEntry("stream M=2 x4", "stream", 2, 2, (60.0,), (40.0,), batch=4)
    return LatencyProfile("toy", (16, 24), "cpu", (*entries, batched))


def test_the_fit_recovers_a_linear_cost():
    overhead, per_eval = linear_profile().fit
    assert overhead == pytest.approx(10.0)
    assert per_eval == pytest.approx(5.0)


def test_a_measured_count_draws_one_of_its_steps():
    profile = linear_profile(noise=(1.0, 2.0))
    draws = {profile.draw(2, random.Random(seed)) for seed in range(20)}
    assert draws == {(20.0, 10.0), (40.0, 20.0)}  # latency and solve drawn together


def test_an_unmeasured_count_follows_the_fit():
    latency, solve = linear_profile().draw(5, random.Random(0))
    assert latency == pytest.approx(35.0)
    assert solve == pytest.approx(25.0)
    assert linear_profile().expected_ms(5) == pytest.approx(35.0)


def test_batched_steps_interpolate_the_measured_batch_cost():
    profile = linear_profile()
    assert profile.batch_cost(1) == 1.0
    assert profile.batch_cost(4) == pytest.approx(3.0)  # 60 ms against 20 ms for one
    assert profile.batch_cost(2) == pytest.approx(1 + 2.0 * 1 / 3)
    assert profile.draw(2, random.Random(0), batch=4)[0] == pytest.approx(60.0)


def test_save_and_load_round_trip(tmp_path):
    profile = linear_profile(noise=(1.0, 1.5))
    loaded = load_profile(save_profile(profile, tmp_path / "p.json"))
    assert loaded == profile


def test_files_that_are_not_profiles_are_refused(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ProfileError, match="not a latency profile"):
        load_profile(tmp_path / "other.json")
    with pytest.raises(ProfileError, match="no latency profile"):
        load_profile(tmp_path / "missing.json")
    broken = linear_profile().to_dict()
    del broken["entries"][0]["evals"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ProfileError, match="malformed"):
        load_profile(tmp_path / "broken.json")


def test_an_entry_needs_paired_samples():
    with pytest.raises(ProfileError, match="solve_ms"):
        ProfileEntry("x", "stream", 1, 1, (1.0, 2.0), (1.0,))


@pytest.mark.parametrize("model", ["mdeq-seg-tiny-synthetic", "mdeq-det-tiny-synthetic"])
def test_bundled_profiles_cover_the_paper_schemes(model):
    profile = bundled_profile(model, (128, 256), "cpu")
    assert profile.measured_on["device_name"]
    single = {e.scheme: e for e in profile.entries if e.batch == 1}
    for m in (1, 2, 4, 8):
        assert single[f"stream M={m}"].evals == m
    baseline = next(e for e in single.values() if e.mode == "baseline")
    assert profile.expected_ms(baseline.evals) > profile.expected_ms(8) > profile.expected_ms(1)


def test_an_unknown_bundled_profile_lists_the_bundled_ones():
    with pytest.raises(ProfileError, match=bundled_profiles()[0]):
        bundled_profile("mdeq-seg-xl-cityscapes", (512, 1024), "cuda")


def test_summary_quantiles():
    summary = summarize_ms([1.0, 2.0, 3.0, 4.0, 5.0])
    assert summary["mean_ms"] == 3.0
    assert summary["p50_ms"] == 3.0
    assert summary["p90_ms"] == pytest.approx(4.6)


def test_record_profile_times_every_scheme():
    from streamdeq.bench.profile import record_profile
    from tests.stream.conftest import TinyDEQ

    profile = record_profile(
        TinyDEQ(f_thres=4), "tiny", (16, 24), iters=(1, 2), rounds=2, warmup=1, batch_sizes=(2,)
    )
    evals = {(e.scheme, e.batch): e.evals for e in profile.entries}
    assert evals == {
        ("baseline N=4", 1): 4,
        ("stream M=1", 1): 1,
        ("stream M=2", 1): 2,
        ("stream M=2 x2 streams", 2): 2,
    }
    assert all(len(e.latency_ms) == 2 for e in profile.entries)
    assert profile.measured_on["rounds"] == 2
