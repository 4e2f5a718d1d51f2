"""``full_iters``, the old name of ``f_thres`` (N), still works for one release, with a warning."""

from __future__ import annotations

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.stream import StreamBatch, StreamDEQ, StreamSettings

OLD_NAME = "full_iters is deprecated.*use f_thres"


def test_stream_settings_accepts_full_iters_as_f_thres():
    with pytest.warns(DeprecationWarning, match=OLD_NAME):
        settings = StreamSettings(mode="baseline", full_iters=5)
    assert settings == StreamSettings(mode="baseline", f_thres=5)


def test_stream_settings_rejects_full_iters_with_f_thres():
    with pytest.raises(SettingsError, match="give only f_thres"):
        StreamSettings(full_iters=5, f_thres=5)


def test_from_options_maps_full_iters_over_the_base_f_thres():
    base = StreamSettings(f_thres=3)
    with pytest.warns(DeprecationWarning, match=OLD_NAME):
        settings = StreamSettings.from_options(base, full_iters=5)
    assert settings.f_thres == 5


@torch.no_grad()
def test_stream_deq_full_iters_runs_the_baseline_with_that_n(model, clip):
    with pytest.warns(DeprecationWarning, match=OLD_NAME):
        stream = StreamDEQ(model, mode="baseline", full_iters=5)
    expected = StreamDEQ(model, mode="baseline", f_thres=5).step(clip[0])
    result = stream.step(clip[0])
    assert result.info.iters == 5
    torch.testing.assert_close(result.output, expected.output)


def test_stream_deq_rejects_full_iters_with_f_thres(model):
    with pytest.raises(SettingsError, match="give only f_thres"):
        StreamDEQ(model, mode="baseline", full_iters=5, f_thres=5)


def test_stream_deq_warning_points_at_the_caller(model):
    with pytest.warns(DeprecationWarning, match=OLD_NAME) as caught:
        StreamDEQ(model, mode="baseline", full_iters=5)
    assert caught[0].filename == __file__


def test_stream_batch_defaults_accept_full_iters(model):
    with pytest.warns(DeprecationWarning, match=OLD_NAME):
        batch = StreamBatch(model, mode="baseline", full_iters=5)
    assert batch.defaults.f_thres == 5


def test_add_stream_accepts_full_iters(model):
    batch = StreamBatch(model, mode="baseline")
    with pytest.warns(DeprecationWarning, match=OLD_NAME):
        settings = batch.add_stream("cam0", full_iters=5)
    assert settings.f_thres == 5
