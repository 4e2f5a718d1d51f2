from __future__ import annotations

import numpy as np
import torch

from streamdeq.stream import StreamDEQ


def _frames(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return [np.roll(base, shift=k, axis=1) for k in range(count)]


def test_a_stream_of_a_detector_returns_detections_per_frame(detector):
    detector.eval()
    stream = StreamDEQ(detector, iters=2)
    for frame in _frames(3, 30, 60):  # padded to 32 x 64 inside the stream
        result = stream.step(frame)
        det = result.output
        assert set(det) == {"boxes", "scores", "labels"}
        assert det["boxes"].shape[1] == 4 and det["boxes"].shape[0] == det["scores"].shape[0]
        # in the frame's coordinates: the padding is cropped away
        assert (det["boxes"][:, 2] <= 60).all() and (det["boxes"][:, 3] <= 30).all()
        assert result.info.iters == 2
    assert stream.frame_index == 3


def test_streaming_warm_starts_the_detector_state(detector):
    # the stream's state after frame t is where frame t + 1 starts: two M=2 frames of the same
    # image equal one M=4 solve from zeros (fixed-point iterations are memoryless)
    detector.eval()
    frame = _frames(1, 32, 64)[0]
    streamed = StreamDEQ(detector, iters=2, solver="fixed_point")
    streamed.step(frame)
    second = streamed.step(frame).output
    at_once = StreamDEQ(detector, iters=4, solver="fixed_point").step(frame).output
    torch.testing.assert_close(second["boxes"], at_once["boxes"])
    torch.testing.assert_close(second["scores"], at_once["scores"])


def test_baseline_mode_streams_detection_with_the_full_budget(detector):
    detector.eval()
    stream = StreamDEQ(detector, mode="baseline")
    result = stream.step(_frames(1, 32, 64)[0])
    assert result.info.iters == detector.config.f_thres
    assert isinstance(result.output["labels"], torch.Tensor)
