"""Every setting a stream rejects, with a message that says what to do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.stream import (
    BudgetSettings,
    PreprocessSettings,
    ShotSettings,
    StreamBatch,
    StreamDEQ,
    StreamSettings,
)

from .conftest import TinyDEQ


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iter": 2}, r"unknown stream setting 'iter' \(did you mean 'iters'\?\)"),
        ({"f_solver": "broyden"}, "unknown stream setting 'f_solver'"),
        ({"mode": "streaming"}, "mode must be one of stream, baseline, keyframe, reference"),
        ({"iters": 0}, "iters must be an integer >= 1"),
        ({"iters": 2.5}, "iters must be an integer >= 1"),
        ({"iters": True}, "iters must be an integer >= 1"),
        ({"tol": 0.0}, "tol must be a finite number > 0"),
        ({"tol": float("nan")}, "tol must be a finite number > 0"),
        ({"budget_ms": -5.0}, "budget_ms must be a finite number > 0"),
        ({"budget_ms": float("inf")}, "budget_ms must be a finite number > 0"),
        ({"max_iter_cap": 0, "tol": 1e-3}, "max_iter_cap must be an integer >= 1"),
        ({"f_thres": 0}, "f_thres must be an integer >= 1"),
        ({"iters": 2, "tol": 1e-3}, "iters and tol conflict"),
        ({"iters": 2, "budget_ms": 10.0}, "iters and budget_ms conflict"),
        ({"tol": 1e-3, "budget_ms": 10.0}, "tol and budget_ms conflict"),
        ({"mode": "baseline", "iters": 2}, "baseline mode solves every frame from zeros"),
        ({"mode": "baseline", "tol": 1e-3}, "baseline mode"),
        ({"mode": "baseline", "budget_ms": 5.0}, "baseline mode"),
        ({"iters": 2, "max_iter_cap": 8}, "max_iter_cap limits tol or budget_ms"),
        ({"iters": 2, "budget": BudgetSettings()}, "budget .* needs budget_ms"),
        ({"solver": "newton"}, "unknown solver 'newton'; choose one of"),
        ({"solver_options": {"memroy": 5}}, r"broyden: unknown solver option\(s\) memroy"),
        ({"solver": "fixed_point", "solver_options": {"parity": True}}, "valid options: damping"),
        ({"solver_options": [("memory", 5)]}, "solver_options must be a mapping"),
        ({"measure_after": 1}, "measure_after must be True or False"),
        ({"diverge_residual": 0.0}, "diverge_residual must be a number > 0"),
        ({"diverge_residual": float("nan")}, "diverge_residual must be a number > 0"),
        ({"shots": "reset"}, "shots must be a ShotSettings"),
        ({"preprocess": {"mean": (0, 0, 0)}}, "preprocess must be a PreprocessSettings"),
        ({"budget_ms": 5.0, "budget": 0.2}, "budget must be a BudgetSettings"),
        ({"shot_policy": "cut"}, "shot policy must be one of keep, reset, boost"),
        (
            {"shot_policy": "reset", "shots": ShotSettings(policy="boost")},
            "shot_policy='reset' conflicts with shots",
        ),
    ],
)
def test_bad_settings_are_rejected(model, kwargs, message):
    with pytest.raises(SettingsError, match=message):
        StreamDEQ(model, **kwargs)
    with pytest.raises(SettingsError, match=message):
        StreamBatch(model).add_stream("a", **kwargs)


def test_settings_error_is_also_a_value_error(model):
    with pytest.raises(ValueError):
        StreamDEQ(model, iters=-1)


def test_settings_object_and_keywords_combine(model):
    base = StreamSettings(mode="keyframe", iters=3)
    stream = StreamDEQ(model, iters=5, settings=base)
    assert (stream.settings.mode, stream.settings.iters) == ("keyframe", 5)
    assert base.iters == 3


def test_shot_policy_agreeing_with_shots_is_accepted(model):
    stream = StreamDEQ(model, shot_policy="boost", shots=ShotSettings(policy="boost"))
    assert stream.settings.shots.policy == "boost"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": (0.5, 0.5)}, "mean must be 3 finite numbers"),
        ({"std": (1.0, 0.0, 1.0)}, "std must be > 0"),
        ({"std": (1.0, float("inf"), 1.0)}, "std must be 3 finite numbers"),
        ({"pad_mode": "circular"}, "pad_mode must be one of constant, replicate, reflect"),
    ],
)
def test_bad_preprocess_settings_are_rejected(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        PreprocessSettings(**kwargs)


class NoFThres(TinyDEQ):
    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace()


@pytest.mark.parametrize("kwargs", [{"mode": "baseline"}, {"mode": "keyframe"}, {"tol": 1e-3}])
def test_f_thres_is_needed_when_the_model_does_not_declare_N(kwargs):
    with pytest.raises(SettingsError, match="pass f_thres"):
        StreamDEQ(NoFThres(), **kwargs)
    StreamDEQ(NoFThres(), f_thres=6, **kwargs)


def test_stream_mode_with_fixed_M_does_not_need_N():
    StreamDEQ(NoFThres(), iters=2)


class Headless:
    config = SimpleNamespace(f_thres=4)
    input_multiple = 1

    def inject(self, x):
        return [x]

    def init_state(self, injection):
        return [torch.zeros_like(injection[0])]

    def f(self, z, injection):
        return z


def test_a_model_without_a_member_is_rejected():
    with pytest.raises(SettingsError, match="it has no head"):
        StreamDEQ(Headless())


def test_a_bad_input_multiple_is_rejected(model):
    model.input_multiple = 0
    with pytest.raises(SettingsError, match="input_multiple must be an integer >= 1"):
        StreamDEQ(model)


def test_device_errors(model):
    with pytest.raises(SettingsError, match="invalid device"):
        StreamDEQ(model, device="tpu:x")
    with pytest.raises(SettingsError, match="move the model first"):
        StreamDEQ(model, device="meta")


def test_clock_must_be_callable(model):
    with pytest.raises(SettingsError, match="clock must be a callable"):
        StreamDEQ(model, clock=3.0)
