"""The command line: its listings, and one-line errors with a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
