"""Two processes (torchrun, gloo) with batch 1 each train exactly like one process with batch 2:
same sampled global batches, per-sample augmentation/dropout/probes, averaged gradients and
BatchNorm statistics over the global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from streamdeq.train import Recipe, train

from .conftest import tiny_recipe_dict

REPO = Path(__file__).resolve().parents[2]


def test_two_processes_match_one_process_at_equal_global_batch(tmp_path):
    sections = {
        "model": {
            "overrides": {
                **tiny_recipe_dict("x")["model"]["overrides"],
                "dropout": 0.2,
            }
        },
        # a dataset the torchrun children can import by name
        "data": {
            "dataset": "tests.train.conftest:BandScenes",
            "augment": {"scale": [0.75, 1.25], "crop": [32, 64], "flip": True, "color_jitter": 0.2},
        },
        # SGD: a bias in front of BatchNorm has a zero gradient up to rounding, which Adam
        # would blow up into lr-sized steps that differ between the two runs
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"max_steps": 3},
        "deq": {"pretrain_steps": 1, "jac_weight": 1.0},
    }
    split = tiny_recipe_dict(str(tmp_path / "two"), **sections)
    split["data"]["batch_size"] = 1
    recipe_path = tmp_path / "two.yaml"
    recipe_path.write_text(yaml.safe_dump(split), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    out = subprocess.run(
        [*launch, "-m", "streamdeq", "train", str(recipe_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    whole = tiny_recipe_dict(str(tmp_path / "one"), **sections)
    whole["data"]["batch_size"] = 2
    train(Recipe.from_dict(whole))

    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)["model"]
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)["model"]
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
