"""Confusion matrix, IoU and mIoU: a hand-computed case, ignore handling, merging, all_reduce."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from streamdeq.errors import SettingsError
from streamdeq.eval import ConfusionMatrix, LabelRangeError

# 3 classes, 8 pixels (255 = ignore):
TARGET = torch.tensor([[0, 0, 0, 1], [1, 2, 255, 255]])
PRED = torch.tensor([[0, 0, 1, 1], [2, 2, 0, 1]])
# counted pixels (target, pred): (0,0) x2, (0,1), (1,1), (1,2), (2,2)
#   class 0: TP 2, FP 0, FN 1 -> 2/3;  class 1: TP 1, FP 1, FN 1 -> 1/3;  class 2: TP 1, FP 1 -> 1/2


def test_iou_and_miou_match_the_hand_computed_case():
    cm = ConfusionMatrix(num_classes=3).update(PRED, TARGET)
    assert torch.allclose(cm.iou(), torch.tensor([2 / 3, 1 / 3, 1 / 2], dtype=torch.float64))
    assert cm.miou() == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    assert cm.total == 6


def test_ignored_pixels_do_not_count_whatever_is_predicted():
    first = ConfusionMatrix(3).update(PRED, TARGET)
    other_pred = PRED.clone()
    other_pred[TARGET == 255] = 2
    assert torch.equal(ConfusionMatrix(3).update(other_pred, TARGET).matrix, first.matrix)


def test_classes_absent_and_never_predicted_are_left_out_of_the_mean():
    cm = ConfusionMatrix(num_classes=19).update(PRED, TARGET)
    assert cm.iou()[3:].isnan().all()
    assert cm.miou() == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)


def test_a_class_predicted_but_absent_counts_with_iou_zero():
    cm = ConfusionMatrix(4).update(torch.tensor([0, 3]), torch.tensor([0, 0]))
    assert cm.iou()[3] == 0 and cm.miou() == pytest.approx((0.5 + 0.0) / 2)


def test_empty_matrix_scores_are_nan():
    cm = ConfusionMatrix(3)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())


@pytest.mark.parametrize("seed", range(3))
def test_merged_parts_equal_one_update_over_everything(seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 5, size=(4, 7, 9))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 5, size=target.shape)
    whole = ConfusionMatrix(5).update(pred, target)
    parts = ConfusionMatrix(5)
    for i in range(4):
        parts.merge(
            ConfusionMatrix(5).update(torch.from_numpy(pred[i]), torch.from_numpy(target[i]))
        )
    assert torch.equal(parts.matrix, whole.matrix)


def test_matrix_matches_a_direct_count():
    rng = np.random.default_rng(7)
    target, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    expected = np.zeros((4, 4), np.int64)
    np.add.at(expected, (target, pred), 1)
    assert np.array_equal(ConfusionMatrix(4).update(pred, target).matrix.numpy(), expected)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(LabelRangeError, match="target"):
        ConfusionMatrix(3).update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(LabelRangeError, match="pred"):
        ConfusionMatrix(3).update(torch.tensor([-1]), torch.tensor([0]))


def test_mismatched_shapes_and_float_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(
            torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="argmax"):
        ConfusionMatrix(3).update(torch.zeros(2), torch.zeros(2, dtype=torch.long))


def test_bad_settings_and_merge_of_other_sizes_are_rejected():
    with pytest.raises(SettingsError):
        ConfusionMatrix(num_classes=3, ignore_index=1)
    with pytest.raises(SettingsError):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))


def test_all_reduce_without_a_process_group_changes_nothing():
    cm = ConfusionMatrix(3).update(PRED, TARGET)
    before = cm.matrix.clone()
    assert torch.equal(cm.all_reduce().matrix, before)


def _rank_counts(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cm = ConfusionMatrix(3)
        cm.update(PRED[rank], TARGET[rank])  # each rank sees one row of the hand-computed case
        cm.all_reduce()
        torch.save(cm.matrix, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_reduce_sums_the_counts_of_two_processes(tmp_path):
    # fork, not spawn: the children inherit the imported torch instead of importing it again
    # (seconds each on a busy machine); torch.multiprocessing's spawn API with its fork method
    mp.start_processes(
        _rank_counts,
        args=(2, _free_port(), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    expected = ConfusionMatrix(3).update(PRED, TARGET).matrix
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), expected)
