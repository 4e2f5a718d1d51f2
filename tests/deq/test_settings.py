"""BackwardSettings rejects invalid values at construction, not at backward time."""

from __future__ import annotations

import pytest

from streamdeq.deq import BackwardSettings, DEQSettingsError
from streamdeq.errors import SettingsError


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "implict"},
        {"solver": "newton"},
        {"max_iter": 0},
        {"max_iter": 2.5},
        {"max_iter": True},
        {"tol": 0.0},
        {"tol": -1e-3},
        {"stop_mode": "relative"},
        {"phantom_steps": 0},
        {"phantom_damping": 0.0},
        {"phantom_damping": 1.2},
        {"solver_options": {"memroy": 5}},
        {"solver": "fixed_point", "solver_options": {"memory": 5}},
        {"solver_options": {"stop_mode": "abs"}},
        {"on_adjoint": "print"},
    ],
)
def test_rejects_invalid_values(bad):
    with pytest.raises(DEQSettingsError):
        BackwardSettings(**bad)


def test_errors_are_settings_errors():
    with pytest.raises(SettingsError):
        BackwardSettings(mode="implict")
    assert issubclass(DEQSettingsError, ValueError)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(DEQSettingsError, match="max_itr"):
        BackwardSettings.from_dict({"mode": "implicit", "max_itr": 10})


def test_from_dict_builds_valid_settings():
    settings = BackwardSettings.from_dict(
        {"mode": "phantom", "phantom_steps": 5, "phantom_damping": 0.5}
    )
    assert settings == BackwardSettings(mode="phantom", phantom_steps=5, phantom_damping=0.5)


def test_defaults_follow_the_official_backward():
    settings = BackwardSettings()
    assert (settings.mode, settings.solver, settings.max_iter) == ("implicit", "broyden", 30)
    assert settings.stop_mode == "abs"
