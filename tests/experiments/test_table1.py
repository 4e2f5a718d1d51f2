from __future__ import annotations

import math

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments import table1

from .conftest import F_THRES


@pytest.fixture(scope="module")
def result(model, clips):
    return table1(model, clips, iters=(1, 2))


def test_baseline_comes_first_with_speedup_one(result):
    base = result.rows[0]
    assert (base["mode"], base["M"]) == ("baseline", None)
    assert base["speedup"] == 1.0
    assert base["iters_per_frame"] == F_THRES


def test_streamdeq_and_non_streaming_rows_run_m_iterations(result):
    schemes = [(r["scheme"], r["M"], r["iters_per_frame"]) for r in result.rows[1:]]
    assert schemes == [
        ("StreamDEQ (Eq. 5)", 1, 1),
        ("StreamDEQ (Eq. 5)", 2, 2),
        ("non-streaming", 1, 1),
        ("non-streaming", 2, 2),
    ]


def test_speed_columns_agree(result):
    for row in result.rows:
        assert row["fps"] == pytest.approx(1000.0 / row["ms_per_frame"])
        assert row["speedup"] == pytest.approx(result.rows[0]["ms_per_frame"] / row["ms_per_frame"])
        assert 0.0 <= row["miou"] <= 1.0 and math.isfinite(row["pixel_accuracy"])


def test_unknown_evaluation_protocol_is_rejected(model, clips):
    with pytest.raises(SettingsError, match="evaluate"):
        table1(model, clips, evaluate="first")
