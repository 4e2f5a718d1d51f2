"""What the engine asks of a model beyond its four methods: eval mode, and outputs it can split."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from streamdeq.errors import SettingsError
from streamdeq.stream import MODES, StreamBatch, StreamDEQ

from .conftest import TinyDEQ, panning_scene


class NormedDEQ(TinyDEQ):
    """TinyDEQ whose head has BatchNorm (running statistics) and dropout: what training mode
    would change while streaming."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(5)
        self.drop = nn.Dropout(0.5)
        self.eval()

    def head(self, z):
        return self.drop(self.norm(super().head(z)))


class HeadReturns(TinyDEQ):
    """TinyDEQ whose head returns ``shape(logits)`` instead of the logits."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.shape = shape

    def head(self, z):
        return self.shape(super().head(z))


def _stream_both_ways(model, mode: str, frames) -> None:
    stream = StreamDEQ(model, mode=mode)
    batch = StreamBatch(model, mode=mode)
    batch.add_stream("a")
    batch.add_stream("b")
    for frame in frames:
        stream.step(frame)
        batch.step({"a": frame, "b": frame[:, ::-1].copy()})


@pytest.mark.parametrize("make_runner", [StreamDEQ, StreamBatch])
def test_a_model_in_training_mode_is_refused(make_runner):
    model = NormedDEQ().train()
    with pytest.raises(SettingsError, match=r"training mode .*call model\.eval\(\) before"):
        make_runner(model)


def test_a_model_switched_to_training_mode_mid_stream_is_refused():
    model = NormedDEQ()
    stream = StreamDEQ(model, iters=2)
    frames = panning_scene(seed=1, frames=2)
    stream.step(frames[0])
    model.train()
    with pytest.raises(SettingsError, match="training mode"):
        stream.step(frames[1])


@pytest.mark.parametrize("mode", MODES)
def test_streaming_never_changes_the_models_parameters_or_buffers(mode):
    model = NormedDEQ()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
    before = copy.deepcopy(model.state_dict())
    _stream_both_ways(model, mode, panning_scene(seed=2, frames=4))
    after = model.state_dict()
    assert list(after) == list(before)
    for name, value in before.items():
        assert torch.equal(after[name], value), name


@pytest.mark.parametrize(
    ("shape", "got"),
    [
        (lambda logits: {"logits": logits}, "got dict"),
        (lambda logits: (logits,), "got tuple"),
        (lambda logits: logits[0], r"got a tensor of shape \(5, 4, 6\)"),
        (lambda logits: logits.sum(), r"got a tensor of shape \(\)"),
        (lambda logits: [logits, logits], "got a list of 2"),
    ],
)
@pytest.mark.parametrize("batched", [False, True])
def test_an_unsupported_head_output_fails_at_once_naming_the_rule(shape, got, batched):
    model = HeadReturns(shape)
    frame = panning_scene(seed=1, frames=1, height=8, width=12)[0]
    rule = "head\\(\\) must return a tensor with the batch as its first dimension or a list"
    with pytest.raises(SettingsError, match=f"{rule}.*{got}"):
        if batched:
            batch = StreamBatch(model, iters=1)
            batch.add_stream("a")
            batch.step({"a": frame})
        else:
            StreamDEQ(model, iters=1).step(frame)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (lambda logits: logits, (5, 3, 5)),  # dense (5, 4, 6), cropped to the 5 x 9 frame
        (lambda logits: logits.mean(dim=(2, 3)), (5,)),  # (B, classes)
        (lambda logits: [{"score": row.max()} for row in logits], None),  # one entry per row
    ],
)
def test_supported_head_outputs_are_split_per_stream(shape, expected):
    model = HeadReturns(shape)
    frames = {
        key: panning_scene(seed=seed, frames=1, height=5, width=9)[0]
        for seed, key in enumerate("ab")
    }
    alone = {key: StreamDEQ(model, iters=1).step(frame).output for key, frame in frames.items()}
    batch = StreamBatch(model, iters=1)
    for key in frames:
        batch.add_stream(key)
    together = batch.step(frames)
    for key in frames:
        if expected is None:
            assert isinstance(alone[key], dict)
            torch.testing.assert_close(together[key].output, alone[key])
        else:
            assert alone[key].shape == expected
            torch.testing.assert_close(together[key].output, alone[key], atol=1e-5, rtol=1e-5)
