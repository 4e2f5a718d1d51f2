"""The training loop on the stand-in data: it learns, resumes exactly, and keeps its files safe."""

from __future__ import annotations

import json

import pytest
import torch

from streamdeq.models import load_safetensors
from streamdeq.train import TrainingError, train


def logged(result) -> list[dict]:
    return [json.loads(line) for line in result.metrics.read_text().splitlines()]


def test_a_short_run_lowers_the_loss_through_pretraining_and_the_equilibrium(tiny_recipe):
    recipe = tiny_recipe(
        schedule={"max_steps": 12, "warmup_steps": 1},
        deq={"pretrain_steps": 4, "jac_weight": 0.5},
    )
    records = [r for r in logged(train(recipe)) if "ce" in r]
    assert [r["pretraining"] for r in records[:5]] == [1.0] * 4 + [0.0]
    deq_records = [r for r in records if not r["pretraining"]]
    assert all("fwd_rel_residual" in r and "jac_loss" in r for r in deq_records)
    first, last = records[0]["ce"], sum(r["ce"] for r in records[-3:]) / 3
    assert last < 0.8 * first


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path, tiny_recipe):
    sections = {
        "schedule": {"max_steps": 6},
        "deq": {"pretrain_steps": 2, "jac_weight": 0.5},
        "model": {
            "overrides": {
                "num_branches": 2,
                "num_channels": [8, 16],
                "dropout": 0.2,
                "num_blocks": [1, 1],
                "expansion": 2,
                "f_thres": 5,
                "b_thres": 5,
                "num_layers": 2,
            }
        },
        "data": {"augment": {"flip": True, "color_jitter": 0.3}},
    }
    whole = train(tiny_recipe(**sections), out_dir=tmp_path / "whole")
    train(tiny_recipe(**sections), out_dir=tmp_path / "split", max_steps=3)
    resumed = train(tiny_recipe(**sections), out_dir=tmp_path / "split", resume=True)
    assert resumed.steps == 6
    a = torch.load(whole.checkpoint, weights_only=False)["model"]
    b = torch.load(resumed.checkpoint, weights_only=False)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    assert [r["step"] for r in logged(resumed)] == list(range(1, 7))
    assert [r["loss"] for r in logged(resumed)] == pytest.approx(
        [r["loss"] for r in logged(whole)], abs=1e-6
    )


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path, tiny_recipe):
    train(tiny_recipe(schedule={"max_steps": 1}), out_dir=tmp_path / "run")
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny_recipe(schedule={"max_steps": 1}), out_dir=tmp_path / "run")


def test_resume_without_a_checkpoint_says_so(tmp_path, tiny_recipe):
    from streamdeq.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(tiny_recipe(), out_dir=tmp_path / "empty", resume=True)


def test_the_export_is_a_self_describing_safetensors_file(tmp_path, tiny_recipe):
    result = train(
        tiny_recipe(schedule={"max_steps": 2}, output={"export": str(tmp_path / "w.safetensors")})
    )
    assert result.export == tmp_path / "w.safetensors"
    loaded = load_safetensors(result.export)
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_export_records_the_normalisation_the_run_trained_with(tmp_path, tiny_recipe):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    recipe = tiny_recipe(
        data={"mean": list(mean), "std": list(std)},
        schedule={"max_steps": 1},
        output={"export": str(tmp_path / "w.safetensors")},
    )
    info = load_safetensors(train(recipe).export).pretrained_info
    assert (info.mean, info.std) == (mean, std)
    assert info.trained_on == recipe.data.dataset and info.f_thres == 6


def test_a_run_stopped_early_is_not_exported(tmp_path, tiny_recipe):
    export = tmp_path / "w.safetensors"
    recipe = tiny_recipe(schedule={"max_steps": 4}, output={"export": str(export)})
    assert train(recipe, max_steps=2).export is None
    assert not export.exists()
    assert train(recipe, resume=True).export == export
    assert export.exists()


def test_a_diverging_loss_stops_with_an_actionable_error(tiny_recipe):
    recipe = tiny_recipe(optim={"name": "sgd", "lr": 1e12}, schedule={"max_steps": 6})
    with pytest.raises(TrainingError, match="lower optim.lr"):
        train(recipe)


def test_validation_reports_miou_of_the_solved_model(tiny_recipe):
    recipe = tiny_recipe(
        schedule={"max_steps": 2},
        data={"val": {"num_items": 3}, "val_batch_size": 2},
        train={"val_iters": 4},
    )
    result = train(recipe)
    assert 0.0 <= result.validation["miou"] <= 1.0
    assert result.validation["val_rel_residual"] > 0
    assert any("val_miou" in r for r in logged(result))


def test_max_steps_beyond_the_schedule_is_rejected(tiny_recipe):
    from streamdeq.train import RecipeError

    with pytest.raises(RecipeError, match="max-steps"):
        train(tiny_recipe(schedule={"max_steps": 3}), max_steps=4)
