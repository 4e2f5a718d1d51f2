"""The shared validators: what they accept, what they refuse, and how they say it."""

from __future__ import annotations

import math

import pytest

from streamdeq.deq import DEQSettingsError
from streamdeq.errors import SettingsError
from streamdeq.train.recipe import RecipeError
from streamdeq.validation import (
    check_choice,
    check_int,
    check_real,
    check_solver_options,
    is_real,
)


@pytest.mark.parametrize("value", [1, 2.5, -3, 0.0, math.inf])
def test_is_real_accepts_ints_and_floats(value):
    assert is_real(value)


@pytest.mark.parametrize("value", [True, False, math.nan, "1", None, [1]])
def test_is_real_rejects_bools_nan_and_non_numbers(value):
    assert not is_real(value)


def test_check_int_returns_the_value():
    assert check_int("iters", 3) == 3


@pytest.mark.parametrize("value", [True, False, 2.0, "2", None])
def test_check_int_rejects_non_integers_including_bool(value):
    with pytest.raises(SettingsError, match="iters must be an integer >= 0"):
        check_int("iters", value, minimum=0)


def test_check_int_message_names_the_bound_and_value():
    with pytest.raises(SettingsError) as caught:
        check_int("iters", 0)
    assert str(caught.value) == "iters must be an integer >= 1, got 0"


def test_check_int_without_minimum_accepts_any_integer():
    assert check_int("seed", -7, minimum=None) == -7
    with pytest.raises(SettingsError, match="seed must be an integer, got 1.5"):
        check_int("seed", 1.5, minimum=None)


def test_optional_accepts_none_and_says_so_when_refusing():
    assert check_int("iters", None, optional=True) is None
    assert check_real("tol", None, exclusive_minimum=0, optional=True) is None
    with pytest.raises(SettingsError, match=r"iters must be an integer >= 1 or None, got 0"):
        check_int("iters", 0, optional=True)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "0.1"])
def test_check_real_rejects_nan_inf_bool_and_strings(value):
    with pytest.raises(SettingsError, match="tol must be a finite number > 0"):
        check_real("tol", value, exclusive_minimum=0)


def test_check_real_allows_inf_when_not_finite_but_never_nan():
    assert check_real("diverge_residual", math.inf, exclusive_minimum=0, finite=False) == math.inf
    with pytest.raises(SettingsError, match="diverge_residual must be a number > 0"):
        check_real("diverge_residual", math.nan, exclusive_minimum=0, finite=False)


@pytest.mark.parametrize(
    ("bounds", "good", "bad", "words"),
    [
        ({"exclusive_minimum": 0, "maximum": 1}, 1, 0, r"a number in \(0, 1\]"),
        ({"minimum": 0, "exclusive_maximum": 1}, 0, 1, r"a number in \[0, 1\)"),
        ({"minimum": 0}, 0, -1, "a finite number >= 0"),
        ({"maximum": 1}, 1, 2, "a finite number <= 1"),
    ],
)
def test_check_real_bounds_are_inclusive_or_exclusive_as_asked(bounds, good, bad, words):
    assert check_real("x", good, **bounds) == good
    with pytest.raises(SettingsError, match=f"x must be {words}, got {bad}"):
        check_real("x", bad, **bounds)


def test_check_choice_lists_the_choices():
    assert check_choice("mode", "abs", ("abs", "rel")) == "abs"
    with pytest.raises(SettingsError) as caught:
        check_choice("mode", "max", ("abs", "rel"))
    assert str(caught.value) == "mode must be one of abs, rel, got 'max'"


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_int("warmup", -1, label="shot warmup"),
        lambda: check_real("warmup", -1.0, minimum=0, label="shot warmup"),
        lambda: check_choice("warmup", "x", ("a",), label="shot warmup"),
    ],
)
def test_errors_carry_the_field_and_the_label_only_in_the_message(call):
    with pytest.raises(SettingsError) as caught:
        call()
    assert caught.value.field == "warmup"
    assert str(caught.value).startswith("shot warmup must be")


@pytest.mark.parametrize("error", [RecipeError, DEQSettingsError])
def test_the_callers_error_class_is_raised(error):
    with pytest.raises(error) as caught:
        check_int("data.batch_size", 0, error=error)
    assert caught.value.field == "data.batch_size"
    with pytest.raises(error):
        check_real("optim.lr", -1.0, minimum=0, error=error)
    with pytest.raises(error):
        check_choice("optim.name", "rmsprop", ("sgd", "adam"), error=error)
    with pytest.raises(error):
        check_solver_options("broyden", {"memroy": 1}, ("memory",), error=error)


def test_note_follows_the_expectation():
    with pytest.raises(SettingsError, match=r"frames must be an integer >= 2 \(why\), got 1"):
        check_int("frames", 1, minimum=2, note=" (why)")


def test_check_solver_options_returns_a_dict_copy():
    options = {"memory": 5}
    checked = check_solver_options("broyden", options, ("memory", "parity"))
    assert checked == options and checked is not options


def test_check_solver_options_names_unknown_and_valid_options():
    with pytest.raises(SettingsError) as caught:
        check_solver_options("broyden", {"memroy": 5, "x": 1}, ("parity", "memory"))
    assert str(caught.value) == (
        "broyden: unknown solver option(s) memroy, x; valid options: memory, parity"
    )
    assert caught.value.field == "solver_options"


def test_check_solver_options_wording_is_the_callers():
    with pytest.raises(SettingsError, match=r"^backward solver x: unknown option\(s\) a; "):
        check_solver_options("x", {"a": 1}, (), noun="option", where="backward solver ")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) a; valid settings: none"):
        check_solver_options("x", {"a": 1}, (), noun="setting")


def test_check_solver_options_rejects_a_non_mapping():
    with pytest.raises(SettingsError, match="solver_options must be a mapping"):
        check_solver_options("broyden", [("memory", 5)], ("memory",))
