"""The shared machinery: interleaved timing, JSON output, settings checks."""

from __future__ import annotations

import json

import pytest

from streamdeq.bench import BenchmarkError, BenchReport, BenchSettings, parse_size, resolve_names
from streamdeq.bench.common import interleaved, write_json
from streamdeq.errors import SettingsError


def test_interleaved_times_every_variant_once_per_round_after_warmup():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = interleaved(variants, repeats=3, warmup=2)
    assert {name: len(v) for name, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert len(calls) == 5 * 3
    # the order rotates, so no variant is always first
    firsts = {calls[i] for i in range(0, len(calls), 3)}
    assert firsts == {"a", "b", "c"}


def test_json_has_no_nan_and_leaves_no_temporary_file(tmp_path):
    report = BenchReport("x", "X", rows=[{"a": float("nan"), "b": 1.5}])
    path = write_json([report], tmp_path / "out" / "r.json")
    data = json.loads(path.read_text())
    assert data["reports"][0]["rows"] == [{"a": None, "b": 1.5}]
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_unwritable_output_is_a_benchmark_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BenchmarkError, match="cannot write"):
        write_json([BenchReport("x", "X")], blocker / "r.json")


@pytest.mark.parametrize("text", ["512", "ax3", "0x5", "512x"])
def test_bad_size_is_a_settings_error(text):
    with pytest.raises(SettingsError):
        parse_size(text)


def test_size_parses_height_by_width():
    assert parse_size("256x512") == (256, 512)


def test_unknown_benchmark_name_is_rejected_with_the_choices():
    with pytest.raises(BenchmarkError, match="overhead"):
        resolve_names("nope")
    assert resolve_names("all")[0] == "overhead"
    assert resolve_names("limit,memory") == ["limit", "memory"]


@pytest.mark.parametrize(
    "kwargs", [{"repeats": 0}, {"warmup": -1}, {"device": "tpu"}, {"frames": 0}]
)
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(SettingsError):
        BenchSettings(**kwargs)
