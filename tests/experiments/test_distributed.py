"""Two gloo processes split the clips and return what one process returns."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamdeq.experiments import fig3, fig5, fig7, table1

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {repo!r})
    import torch
    import torch.distributed as dist
    from tests.experiments.conftest import panning_clip, tiny_model
    from streamdeq.experiments import fig3, fig5, fig7, table1

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    model, clips = tiny_model(), [panning_clip(1), panning_clip(2), panning_clip(3)]
    out = {{
        "fig5": fig5(model, clips, iters=(1,), offsets=(1, 2)).rows,
        "fig3": fig3(model, clips, iters=(1,)).rows,
        "fig7": fig7(model, clips, iters=(1,)).rows,
        "table1": table1(model, clips, iters=(1,)).rows,
    }}
    with open(sys.argv[1] + f".{{dist.get_rank()}}.json", "w") as handle:
        json.dump(out, handle)
    dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    script = tmp / "worker.py"
    script.write_text(WORKER.format(repo=str(REPO)))
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp / "rows")], env={**env, "RANK": str(rank)}
        )
        for rank in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    return [json.loads((tmp / f"rows.{rank}.json").read_text()) for rank in range(2)]


def test_every_rank_gets_the_same_result(two_ranks):
    assert two_ranks[0] == two_ranks[1]  # table1's timings too: they are gathered


def test_split_confusion_matrices_sum_to_the_single_process_miou(two_ranks, model):
    from .conftest import panning_clip

    clips = [panning_clip(1), panning_clip(2), panning_clip(3)]
    single = fig5(model, clips, iters=(1,), offsets=(1, 2)).rows
    assert [r["miou"] for r in two_ranks[0]["fig5"]] == pytest.approx(
        [r["miou"] for r in single], abs=1e-12
    )


def test_gathered_distances_equal_the_single_process_ones(two_ranks, model):
    from .conftest import panning_clip

    clips = [panning_clip(1), panning_clip(2), panning_clip(3)]
    single = fig3(model, clips, iters=(1,)).rows
    assert [r["distance"] for r in two_ranks[0]["fig3"]] == pytest.approx(
        [r["distance"] for r in single], rel=1e-9
    )


def test_shot_change_and_table1_accuracy_equal_the_single_process_ones(two_ranks, model):
    from .conftest import panning_clip

    clips = [panning_clip(1), panning_clip(2), panning_clip(3)]
    single7 = fig7(model, clips, iters=(1,)).rows
    for key in ("distance", "miou"):
        assert [r[key] for r in two_ranks[0]["fig7"]] == pytest.approx(
            [r[key] for r in single7], rel=1e-9
        )
    single1 = table1(model, clips, iters=(1,)).rows
    assert [r["miou"] for r in two_ranks[0]["table1"]] == pytest.approx(
        [r["miou"] for r in single1], abs=1e-12
    )
