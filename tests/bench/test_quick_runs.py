"""Every benchmark's --quick variant runs and writes well-formed JSON (no timing asserts:
numbers belong in benchmarks/, not in tests)."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from streamdeq.bench import BenchSettings, list_benchmarks, run_benchmarks

QUICK = BenchSettings(quick=True, repeats=1, warmup=0, threads=1)

#: columns each benchmark's rows must carry (besides whatever else it reports)
EXPECTED_COLUMNS = {
    "overhead": {"variant", "ms", "ratio"},
    "limit": {"scheme", "frame_ms"},
    "streams": {"streams", "batched_ms_per_frame", "single_ms_per_frame", "batching_speedup"},
    "memory": {"measure"},
    "latency": {"model", "scheme", "ms_per_frame", "fps", "speedup"}
    | ({"faults_per_frame"} if sys.platform != "win32" else set()),
    "carry": {"M", "carry_memory", "median_rel_residual", "vs_restart"},
    "profile": {"scheme", "evals", "batch", "mean_ms", "p50_ms", "p90_ms", "cv"},
}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _load(path):
    return json.loads(path.read_text(), parse_constant=_reject_constant)


def _reject_constant(name):
    raise AssertionError(f"non-standard JSON constant {name} in the output")


@pytest.mark.parametrize("name", sorted(EXPECTED_COLUMNS))
def test_quick_benchmark_writes_its_rows_as_json(name, tmp_path):
    out = tmp_path / "results.json"
    run_benchmarks([name], QUICK, out=out)
    (report,) = _load(out)["reports"]
    assert report["name"] == name
    assert report["rows"], "a benchmark that measured nothing"
    for row in report["rows"]:
        for value in row.values():
            assert value is None or isinstance(value, (str, int, float, bool))
            assert not (isinstance(value, float) and math.isnan(value))
    columns = set().union(*(row.keys() for row in report["rows"]))
    assert EXPECTED_COLUMNS[name] <= columns
    assert report["conditions"]["quick"] is True
    assert "threads" in report["conditions"]


def test_gpu_benchmark_without_cuda_is_skipped_with_a_note(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU benchmark really runs")
    out = tmp_path / "gpu.json"
    run_benchmarks(["gpu"], QUICK, out=out)
    (report,) = _load(out)["reports"]
    assert report["rows"] == []
    assert any("CUDA is not available" in note for note in report["notes"])


def test_every_registered_benchmark_is_covered_here():
    assert set(list_benchmarks()) == set(EXPECTED_COLUMNS) | {"gpu"}


def test_overhead_counts_our_efficient_and_published_broyden_evaluations(tmp_path):
    out = tmp_path / "overhead.json"
    run_benchmarks(["overhead"], QUICK, out=out)
    rows = {row["variant"]: row for row in _load(out)["reports"][0]["rows"]}
    assert rows["ours broyden M=2"]["nfev"] == 2
    assert rows["ours broyden (published) M=2"]["nfev"] == 3
    assert rows["ours fixed_point M=1"]["evals_per_iter"] == 1.0
