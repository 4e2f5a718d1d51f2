"""``streamdeq experiment`` through :func:`streamdeq.app.cli.main`, in this process (no interpreter
start-up per test)."""

from __future__ import annotations

import csv
import sys

from streamdeq.app.cli import main
from streamdeq.models import save_safetensors

from .conftest import tiny_model


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    """Exit code (0 when main returns) and the stderr lines of ``streamdeq ARGS``."""
    monkeypatch.setattr(sys, "argv", ["streamdeq", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err.strip().splitlines()


def test_experiment_command_writes_csv_and_png(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_safetensors(tiny_model(), checkpoint)
    out = tmp_path / "out"
    code, err = run_main(
        monkeypatch, capsys, "experiment", "fig3", "--checkpoint", str(checkpoint),
        "--clips", "2", "--frames", "2", "--iters", "1", "--out", str(out),
    )  # fmt: skip
    assert (code, err) == (0, [])
    with open(out / "fig3.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 2  # 2 schemes x 2 frames
    assert (out / "fig3.png").stat().st_size > 0


def test_unknown_experiment_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    code, err = run_main(monkeypatch, capsys, "experiment", "fig9", "--out", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("streamdeq: error: unknown experiment 'fig9'; choose one of fig2, ")
    assert "fig2, fig3, fig5, fig7, table1, fig8, table1-detect" in err[0]


def test_fig8_on_the_default_segmentation_model_asks_for_a_detector(monkeypatch, capsys, tmp_path):
    code, err = run_main(monkeypatch, capsys, "experiment", "fig8", "--out", str(tmp_path))
    assert (code, err) == (
        2,
        [
            "streamdeq: error: fig8 scores detections, but the model is a segmentation model: "
            "give a detection model such as --model mdeq-det-tiny-synthetic"
        ],
    )


def test_generated_clips_carry_the_model_task_s_annotations():
    from streamdeq.experiments.cli import generated_clips_for

    from .conftest import tiny_model
    from .test_detection import ConvergenceDetector

    assert generated_clips_for(tiny_model(), 1, 1, "val")[0].task == "segmentation"
    (clip,) = generated_clips_for(ConvergenceDetector(), 1, 1, "val")
    assert clip.task == "detection" and set(clip.target_at(0)) == {"boxes", "labels"}


def test_malformed_iteration_list_is_a_one_line_error(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "experiment", "fig3", "--iters", "1,x")
    assert (code, err) == (
        2,
        ["streamdeq: error: --iters takes comma-separated integers, got '1,x'"],
    )


def test_option_of_another_experiment_is_a_one_line_error(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "experiment", "fig3", "--steps", "1,2")
    assert (code, err) == (2, ["streamdeq: error: --steps applies to fig2 only"])


def test_iterations_per_frame_do_not_apply_to_fig2(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "experiment", "fig2", "--iters", "1")
    assert code == 2 and "--iters does not apply to fig2" in err[0] and len(err) == 1
