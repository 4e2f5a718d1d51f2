"""Official checkpoints in and out, wrappers and prefixes, mismatch reports, safetensors."""

from __future__ import annotations

import pytest
import torch

from streamdeq.errors import CheckpointError
from streamdeq.models import (
    CheckpointMismatchError,
    export_official_state_dict,
    load_official_mdeq,
    load_safetensors,
    save_safetensors,
)
from streamdeq.models.checkpoints import MAX_LISTED, official_copy_shapes

from .conftest import OFFICIAL_YAML, image, tiny_model

COPY_PREFIXES = ("fullstage_copy.", "deq.func.", "deq.func_copy.")


def _same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _logits(model, x, iters=3):
    with torch.no_grad():
        z, _ = model.solve(x, max_iter=iters)
        return model.head(z)


def test_every_official_tensor_is_loaded(official_model, official_state):
    own = official_model.state_dict()
    for key, value in official_state.items():
        if key.startswith(COPY_PREFIXES):
            continue
        native = key if key in own else f"task_head.{key}"
        assert torch.equal(own[native], value), key


def test_mismatch_error_names_missing_extra_and_wrongly_shaped(official_state):
    state = dict(official_state)
    del state["stage0.1.running_var"]
    state["fullstage.branches.9.blocks.0.gn1.weight"] = torch.ones(3)
    state["last_layer.3.weight"] = torch.zeros(7, 120, 1, 1)
    with pytest.raises(CheckpointMismatchError) as info:
        load_official_mdeq(OFFICIAL_YAML, state)
    err = info.value
    assert err.missing == ["stage0.1.running_var"]
    assert err.unexpected == ["fullstage.branches.9.blocks.0.gn1.weight"]
    assert err.wrong_shape == [("last_layer.3.weight", (19, 120, 1, 1), (7, 120, 1, 1))]
    message = str(err)
    for text in ("stage0.1.running_var", "branches.9", "last_layer.3.weight", "[19, 120, 1, 1]"):
        assert text in message


def test_wrongly_shaped_copy_is_reported(official_state):
    state = dict(official_state)
    key = "deq.func_copy.branches.0.blocks.0.conv1.weight"
    state[key] = torch.zeros(40, 8, 1, 1)
    with pytest.raises(CheckpointMismatchError) as info:
        load_official_mdeq(OFFICIAL_YAML, state)
    assert info.value.wrong_shape == [(key, (40, 8, 3, 3), (40, 8, 1, 1))]


def test_long_mismatch_report_is_truncated(official_state):
    state = {k: v for k, v in official_state.items() if not k.startswith("fullstage.")}
    with pytest.raises(CheckpointMismatchError) as info:
        load_official_mdeq(OFFICIAL_YAML, state)
    assert len(info.value.missing) > MAX_LISTED
    assert f"and {len(info.value.missing) - MAX_LISTED} more" in str(info.value)
    assert "\n" not in str(info.value)


def test_redundant_copies_are_optional(official_model, official_state):
    state = {k: v for k, v in official_state.items() if not k.startswith(COPY_PREFIXES)}
    assert _same_state(load_official_mdeq(OFFICIAL_YAML, state), official_model)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": sd, "epoch": 3, "best_mIoU": 0.5},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
        # the official segmentation trainer: FullModel(model, loss) -> "model." and "loss." keys
        lambda sd: {
            **{f"model.{k}": v for k, v in sd.items()},
            "loss.criterion.weight": torch.ones(19),
        },
    ],
    ids=["module-prefix", "training-checkpoint", "model-wrapper", "seg-fullmodel"],
)
def test_wrapped_and_prefixed_checkpoints_load(official_model, official_state, wrap):
    assert _same_state(load_official_mdeq(OFFICIAL_YAML, wrap(official_state)), official_model)


def test_checkpoint_without_a_state_dict_is_rejected():
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_official_mdeq(OFFICIAL_YAML, {"epoch": 3, "optimizer": {"lr": 0.1}})


def test_unreadable_checkpoint_file_raises_checkpoint_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_official_mdeq(OFFICIAL_YAML, bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_official_mdeq(OFFICIAL_YAML, tmp_path / "missing.pth")


def test_export_has_the_official_key_set_and_shapes(official_model, official_state):
    exported = export_official_state_dict(official_model)
    assert list(exported) == list(official_state)
    for key, value in official_state.items():
        assert exported[key].shape == value.shape, key


def test_exported_copies_hold_the_normalised_weights(official_model):
    exported = export_official_state_dict(official_model)
    conv = official_model.fullstage.branches[1].blocks[0].conv2
    expected = (
        conv.weight_v * conv.weight_g / conv.weight_v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    )
    for prefix in ("fullstage_copy.", "deq.func_copy."):
        torch.testing.assert_close(exported[f"{prefix}branches.1.blocks.0.conv2.weight"], expected)
    assert set(official_copy_shapes(official_model)) == {
        k for k in exported if k.startswith(COPY_PREFIXES)
    }


def test_export_round_trips_through_load_official_mdeq(official_model):
    reloaded = load_official_mdeq(OFFICIAL_YAML, export_official_state_dict(official_model))
    assert _same_state(reloaded, official_model)


@pytest.mark.parametrize("name", ["mdeq-seg-small-cityscapes", "mdeq-cls-tiny-cifar"])
def test_safetensors_round_trip_gives_identical_logits(tmp_path, name):
    model = tiny_model(name).eval()
    path = tmp_path / "model.safetensors"
    save_safetensors(model, path)
    reloaded = load_safetensors(path)  # rebuilt from the config in the file's metadata
    assert reloaded.config == model.config
    assert not reloaded.training
    x = image(model)
    assert torch.equal(_logits(reloaded, x), _logits(model, x))


def test_safetensors_into_a_different_model_reports_the_mismatch(tmp_path):
    path = tmp_path / "model.safetensors"
    save_safetensors(tiny_model(), path)
    other = tiny_model(num_channels=(8, 16, 32, 40))
    with pytest.raises(CheckpointMismatchError, match="fullstage.branches.3"):
        load_safetensors(path, model=other)


def test_official_file_round_trip_on_disk(tmp_path, official_model):
    path = tmp_path / "exported.pth"
    torch.save(export_official_state_dict(official_model), path)
    assert _same_state(load_official_mdeq(OFFICIAL_YAML, path), official_model)
