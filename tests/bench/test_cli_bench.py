"""``streamdeq bench``: a quick run end to end, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamdeq.app.cli import main

CLI = [sys.executable, "-m", "streamdeq"]


def test_quick_bench_prints_a_table_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [*CLI, "bench", "limit", "--quick", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "frame_over_limit" in proc.stdout
    assert json.loads(out.read_text())["reports"][0]["name"] == "limit"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense", "--quick"], "unknown benchmark"),
        (["limit", "--quick", "--size", "big"], "size must look like"),
        (["limit", "--quick", "--device", "tpu"], "device must be one of cpu, cuda"),
        (["latency", "--quick", "--models", "huge"], "unknown model choice"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["streamdeq", "bench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("streamdeq: error: ") and message in err
    assert err.count("\n") == 1


def test_the_help_names_every_benchmark():
    from typer.testing import CliRunner

    from streamdeq.app.cli import app
    from streamdeq.bench import list_benchmarks

    shown = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"}).output
    assert [name for name in list_benchmarks() if name not in shown] == []
