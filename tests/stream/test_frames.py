"""Preprocessing: frame formats, normalisation, padding and the crop back, frame size changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdeq.solvers import solve
from streamdeq.stream import FrameError, PreprocessSettings, ResetReason, StreamDEQ
from streamdeq.stream.frames import crop_output

from .conftest import normalise, panning_scene


@torch.no_grad()
def test_frame_formats_give_the_same_output(model, clip):
    frame = clip[0]
    chw = torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0
    formats = [
        frame,
        torch.from_numpy(frame),
        chw,
        chw[None],
        frame.astype(np.float32) / 255.0,
    ]
    outputs = [StreamDEQ(model, iters=2).step(f).output for f in formats]
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0])


@torch.no_grad()
def test_normalisation_is_imagenet_by_default(model, clip):
    result = StreamDEQ(model, iters=3).step(clip[0])
    injection = model.inject(normalise(clip[0]))
    expected = solve(model.f, model.init_state(injection), (injection,), max_iter=3)
    torch.testing.assert_close(result.output, model.head(expected.z)[0])


@torch.no_grad()
def test_custom_mean_std_pass_normalised_frames_through(model, clip):
    x = normalise(clip[0])
    identity = PreprocessSettings(mean=(0, 0, 0), std=(1, 1, 1))
    from_normalised = StreamDEQ(model, iters=2, preprocess=identity).step(x).output
    from_uint8 = StreamDEQ(model, iters=2).step(clip[0]).output
    torch.testing.assert_close(from_normalised, from_uint8)


@torch.no_grad()
@pytest.mark.parametrize("size", [(18, 22), (13, 9), (1, 1)])
def test_frames_not_multiple_of_input_multiple_are_padded_and_cropped(model, size):
    frame = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    result = StreamDEQ(model, iters=2).step(frame)
    # TinyDEQ's output is at 1/2 of the padded input: ceil(H / 2) x ceil(W / 2) see the frame
    assert tuple(result.output.shape) == (5, -(-size[0] // 2), -(-size[1] // 2))
    padded = normalise(frame)
    injection = model.inject(padded)
    expected = solve(model.f, model.init_state(injection), (injection,), max_iter=2)
    full = model.head(expected.z)[0]
    torch.testing.assert_close(
        result.output, full[:, : result.output.shape[1], : result.output.shape[2]]
    )


@torch.no_grad()
@pytest.mark.parametrize("pad_mode", ["replicate", "reflect"])
def test_other_pad_modes_run(model, pad_mode):
    frame = np.random.default_rng(0).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    stream = StreamDEQ(model, iters=2, preprocess=PreprocessSettings(pad_mode=pad_mode))
    assert tuple(stream.step(frame).output.shape) == (5, 9, 11)


def test_reflect_padding_of_a_tiny_frame_is_refused(model):
    stream = StreamDEQ(model, iters=2, preprocess=PreprocessSettings(pad_mode="reflect"))
    with pytest.raises(FrameError, match="replicate"):
        stream.step(np.zeros((1, 1, 3), dtype=np.uint8))


def test_crop_leaves_non_spatial_outputs_alone():
    scores = torch.randn(1, 10)
    assert crop_output(scores, (5, 5), (8, 8)) is scores


@torch.no_grad()
def test_frame_size_change_resets_the_state(model, clip):
    stream = StreamDEQ(model, iters=2)
    stream.step(clip[0])
    stream.step(clip[1])
    other = panning_scene(5, 2, height=20, width=12)
    result = stream.step(other[0])
    assert result.info.reset is ResetReason.SIZE_CHANGE
    assert result.info.residual_before == pytest.approx(1.0)
    assert tuple(result.output.shape) == (5, 10, 6)
    assert stream.step(other[1]).info.reset is None
    assert stream.step(clip[2]).info.reset is ResetReason.SIZE_CHANGE


@torch.no_grad()
def test_same_padded_size_but_new_frame_size_also_resets(model):
    stream = StreamDEQ(model, iters=2)
    stream.step(np.zeros((16, 16, 3), dtype=np.uint8))
    assert stream.step(np.zeros((15, 16, 3), dtype=np.uint8)).info.reset is ResetReason.SIZE_CHANGE


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((8, 8), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((8, 8, 4), dtype=np.uint8), r"\(H, W, 3\)"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"uint8 tensor frame must be \(H, W, 3\)"),
        (torch.zeros(8, 8, 3), r"\(3, H, W\) or \(1, 3, H, W\)"),
        (torch.zeros(2, 3, 8, 8), r"\(3, H, W\) or \(1, 3, H, W\)"),
        (torch.zeros(3, 0, 8), "at least one pixel"),
        (torch.zeros(3, 8, 8, dtype=torch.int32), "uint8 or floating point"),
        ([[0, 0, 0]], "numpy array or a torch tensor"),
    ],
)
def test_unreadable_frames_raise_frame_error(model, frame, message):
    with pytest.raises(FrameError, match=message):
        StreamDEQ(model, iters=2).step(frame)


def test_a_bad_frame_leaves_the_stream_usable(model, clip):
    stream = StreamDEQ(model, iters=2)
    stream.step(clip[0])
    with pytest.raises(FrameError):
        stream.step(np.zeros((4, 4), dtype=np.uint8))
    assert stream.step(clip[1]).info.index == 1


@pytest.mark.parametrize(
    "frame",
    [
        np.full((8, 8, 3), 200.0, dtype=np.float32),
        torch.full((3, 8, 8), 200.0),
        torch.full((1, 3, 8, 8), 200.0, dtype=torch.float64),
    ],
)
def test_a_float_frame_in_0_255_is_refused(model, frame):
    with pytest.raises(
        FrameError, match="pass \\[0, 255\\] images as uint8, or divide them by 255"
    ):
        StreamDEQ(model, iters=2).step(frame)


def test_a_float_frame_slightly_above_1_is_accepted(model):
    assert StreamDEQ(model, iters=1).step(torch.full((3, 8, 8), 1.05)).info.index == 0


def test_normalised_frames_are_not_range_checked(model):
    identity = PreprocessSettings(mean=(0, 0, 0), std=(1, 1, 1))
    stream = StreamDEQ(model, iters=1, preprocess=identity)
    assert stream.step(torch.full((3, 8, 8), 2.5)).info.index == 0


def test_frames_prepared_together_equal_frames_prepared_one_by_one():
    """The batched preparation of a step (same-shaped uint8 frames stacked, one copy and one
    of each operation) must give every stream exactly what preparing it alone gives."""
    from streamdeq.stream.frames import prepare_frame, prepare_frames

    rng = np.random.default_rng(0)
    plain = PreprocessSettings()
    fitted = PreprocessSettings(resize=(20, 30), pad_mode="replicate")
    frames = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(4)]
    frames += [rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)]  # a shape of its own
    frames += [torch.from_numpy(frames[0].copy()), frames[1].astype(np.float32) / 255.0]
    settings = [plain, fitted, plain, fitted, plain, plain, fitted]
    cpu = torch.device("cpu")
    together = prepare_frames(frames, settings, 8, cpu, torch.float32)
    for frame, preprocess, prepared in zip(frames, settings, together, strict=True):
        alone = prepare_frame(frame, preprocess, 8, cpu, torch.float32)
        assert torch.equal(prepared.x, alone.x) and torch.equal(prepared.unit, alone.unit)
        assert (prepared.size, prepared.source_size) == (alone.size, alone.source_size)
    assert together[1].source_size == (24, 40) and together[1].size == (18, 30)
    with pytest.raises(FrameError, match="numpy frame must be"):
        prepare_frames(
            [frames[0], frames[0][..., :2].copy()], [plain, plain], 1, cpu, torch.float32
        )
