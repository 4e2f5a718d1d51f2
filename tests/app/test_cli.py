"""The command line: its listings, and one-line errors with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamdeq.app.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamdeq", *args], capture_output=True, text=True, timeout=120
    )


def test_solvers_lists_every_solver_with_its_settings():
    out = run_cli("solvers")
    assert out.returncode == 0, out.stderr
    for name in ("broyden", "anderson", "fixed_point", "parity", "memory", "damping"):
        assert name in out.stdout


def test_models_lists_the_named_configurations():
    out = run_cli("models")
    assert out.returncode == 0, out.stderr
    for name in ("mdeq-seg-xl-cityscapes", "mdeq-seg-small-cityscapes", "mdeq-cls-tiny-cifar"):
        assert name in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("convert", "missing.yaml", "missing.pth", "out.safetensors"), "config file not found"),
        (("convert", "a.yaml", "b.pth", "out.txt"), "must be a .safetensors file"),
        (("run", "in.mp4", "--mode", "offline"), "Invalid value for '--mode'"),
        (("run", "in.mp4", "--bogus"), "No such option: --bogus"),
        (("run",), "Missing argument"),
    ],
)
def test_user_errors_are_one_line_and_exit_non_zero(args, message, tmp_path):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in out.stderr


def test_mismatched_checkpoint_is_a_one_line_error(tmp_path):
    import torch

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "MODEL:\n  NUM_CLASSES: 19\n  NUM_GROUPS: 4\n  EXTRA:\n    FULL_STAGE:\n"
        "      NUM_BRANCHES: 2\n      NUM_BLOCKS: [1, 1]\n      NUM_CHANNELS: [8, 16]\n"
        "      NUM_MODULES: 1\n      BLOCK: BASIC\n      FUSE_METHOD: SUM\n"
        "DATASET:\n  NUM_CLASSES: 19\n"
    )
    ckpt = tmp_path / "bad.pth"
    torch.save({"not.a.key": torch.zeros(3)}, ckpt)
    out = run_cli("convert", str(cfg), str(ckpt), str(tmp_path / "out.safetensors"))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "missing" in out.stderr and "not.a.key" in out.stderr
    assert not (tmp_path / "out.safetensors").exists()


OFFICIAL = Path(__file__).resolve().parent.parent / "fixtures" / "mdeq_official_seg_small8"


def convert(monkeypatch, out: Path) -> None:
    """``streamdeq convert`` of the official fixture, in this process."""
    args = [str(OFFICIAL / "config.yaml"), str(OFFICIAL / "state_dict.pth"), str(out)]
    monkeypatch.setattr(sys, "argv", ["streamdeq", "convert", *args])
    main()


def test_convert_into_a_missing_folder_is_one_line_and_writes_nothing(
    monkeypatch, capsys, tmp_path
):
    with pytest.raises(SystemExit) as stop:
        convert(monkeypatch, tmp_path / "missing" / "out.safetensors")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamdeq: error: cannot write")
    assert list(tmp_path.iterdir()) == []


def test_convert_writes_a_file_with_the_usual_permissions(monkeypatch, tmp_path):
    previous = os.umask(0o022)
    try:
        convert(monkeypatch, tmp_path / "out.safetensors")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.safetensors").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]


def invoke(*args: str):
    """The app in this process (so a registry changed by the test is the one it reads)."""
    from typer.testing import CliRunner

    from streamdeq.app.cli import app

    return CliRunner().invoke(app, list(args), terminal_width=300)


def test_experiment_help_lists_every_registered_experiment():
    from streamdeq.experiments import EXPERIMENTS

    shown = invoke("experiment", "--help")
    assert shown.exit_code == 0, shown.output
    names = ("fig2", "fig3", "fig5", "fig7", "table1", "fig8", "table1-detect")
    for name in (*names, *EXPERIMENTS):
        assert name in shown.output


def test_run_choices_come_from_the_registries_when_the_command_runs():
    from streamdeq.solvers import SOLVERS, fixed_point, register_solver

    with SOLVERS.restored():
        register_solver("late_solver", fixed_point)  # as a plugin would, after the import
        shown = invoke("run", "--help")
        refused = invoke("run", "in.mp4", "--solver", "newton")
    assert shown.exit_code == 0 and "late_solver" in shown.output
    for choice in ("keyframe", "boost", "segment", "detect"):  # --mode, --shot-policy, --task
        assert choice in shown.output
    assert refused.exit_code == 2 and "late_solver" in refused.output


def test_a_wrong_choice_is_a_usage_error_that_lists_the_choices():
    out = run_cli("run", "in.mp4", "--mode", "offline")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'offline'" in out.stderr and "'keyframe'" in out.stderr


def test_every_run_option_has_a_flag_in_the_table_and_on_the_command():
    from dataclasses import fields

    from streamdeq.app.run_options import FLAGS, RunOptions

    shown = invoke("run", "--help").output
    for field in fields(RunOptions):
        flag = FLAGS[field.name]
        assert flag in shown or not flag.startswith("--"), flag


def _plugin(folder: Path, name: str, body: str) -> dict[str, str]:
    """The environment of a process whose STREAMDEQ_PLUGINS names module ``name`` (``body``)."""
    (folder / f"{name}.py").write_text(body)
    paths = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "STREAMDEQ_PLUGINS": name,
    }


def test_a_plugin_solver_is_listed_and_accepted_by_run(tmp_path):
    body = (
        "from streamdeq.solvers import fixed_point, register_solver\n"
        "register_solver('plugin_solver', fixed_point)\n"
    )
    env = _plugin(tmp_path, "solver_plugin", body)
    command = [sys.executable, "-m", "streamdeq"]
    listed = subprocess.run([*command, "solvers"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "plugin_solver" in listed.stdout, listed.stderr
    helped = subprocess.run([*command, "run", "--help"], env=env, capture_output=True, text=True)
    assert "plugin_solver" in helped.stdout


def test_a_plugin_that_fails_is_one_line_naming_it(tmp_path):
    env = _plugin(tmp_path, "broken_plugin", "raise RuntimeError('boom')\n")
    out = subprocess.run(
        [sys.executable, "-m", "streamdeq", "models"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken_plugin" in lines[0] and "RuntimeError: boom" in lines[0]


def test_models_lists_a_plugin_model_of_another_family(tmp_path):
    env = _plugin(tmp_path, "family_plugin", "import tests.tasks.toy_brightness\n")
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-m", "streamdeq", "models"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "toy-brightness-tiny" in out.stdout and "mdeq-seg-tiny-synthetic *" in out.stdout
