"""The checks every settings class makes, written once.

Why one module: the same check ("an integer >= 1, or None") was written by hand in a dozen
settings classes, each with its own small differences (one accepted ``True`` as 1, another NaN
as a tolerance). Here each check has one definition and one wording, and every error it raises
names the field at fault (:attr:`SettingsError.field`), so the command line can point at its own
flag for it.

Each ``check_*`` returns the value it accepted, raises ``error`` (a :class:`SettingsError`
subclass of the caller's choosing, e.g. ``RecipeError``) otherwise, and words the message as
``"<label> must be <what>, got <value>"``; ``label`` defaults to the field's name and lets a
caller add context ("shot warmup", "data.batch_size").

This module imports nothing of streamdeq but its errors, so that any module can use it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NoReturn

from .errors import SettingsError

__all__ = [
    "check_choice",
    "check_int",
    "check_real",
    "check_solver_options",
    "is_real",
]


def is_real(value: object) -> bool:
    """A real number that is not NaN: an int or float, and not a bool.

    Why bools are excluded: ``True`` is an ``int`` to Python, but ``iters=True`` is a mistake,
    not one iteration."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = 1,
    optional: bool = False,
    label: str | None = None,
    note: str = "",
    error: type[SettingsError] = SettingsError,
) -> Any:
    """``value`` if it is an int (not a bool) >= ``minimum`` (None: any int), or None when
    ``optional``. ``note`` is added to the message after the expectation (the reason for it)."""
    if value is None and optional:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        ok = False
    else:
        ok = minimum is None or value >= minimum
    if not ok:
        bound = "" if minimum is None else f" >= {minimum}"
        _fail(error, name, label, f"an integer{bound}{note}", optional, value)
    return value


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    exclusive_maximum: float | None = None,
    finite: bool = True,
    optional: bool = False,
    label: str | None = None,
    note: str = "",
    error: type[SettingsError] = SettingsError,
) -> Any:
    """``value`` if it is a real number (see :func:`is_real`) within the bounds, finite unless
    ``finite=False`` (e.g. a threshold that ``math.inf`` turns off), or None when ``optional``.
    ``note`` is added to the message after the expectation, e.g. ``" (math.inf: off)"``.
    """
    if value is None and optional:
        return value
    ok = is_real(value) and (math.isfinite(value) or not finite)
    if ok:
        ok = (
            (minimum is None or value >= minimum)
            and (exclusive_minimum is None or value > exclusive_minimum)
            and (maximum is None or value <= maximum)
            and (exclusive_maximum is None or value < exclusive_maximum)
        )
    if not ok:
        low = exclusive_minimum if exclusive_minimum is not None else minimum
        high = exclusive_maximum if exclusive_maximum is not None else maximum
        # A closed range implies finiteness; say "finite" only where the bounds do not.
        kind = "a finite number" if finite and (low is None or high is None) else "a number"
        bounds = _bounds(low, exclusive_minimum is not None, high, exclusive_maximum is not None)
        _fail(error, name, label, f"{kind}{bounds}{note}", optional, value)
    return value


def check_choice(
    name: str,
    value: Any,
    choices: Iterable[str],
    *,
    label: str | None = None,
    error: type[SettingsError] = SettingsError,
) -> Any:
    """``value`` if it is one of ``choices``; the message lists them all."""
    choices = tuple(choices)
    if value not in choices:
        _fail(error, name, label, f"one of {', '.join(choices)}", False, value)
    return value


def check_solver_options(
    method: str,
    options: Any,
    known: Collection[str],
    *,
    name: str = "solver_options",
    noun: str = "solver option",
    where: str = "",
    error: type[SettingsError] = SettingsError,
) -> dict[str, Any]:
    """``options`` as a dict if it is a mapping whose keys are all among ``known`` (the
    method-specific options of solver ``method``, ``streamdeq.solvers.solver_options``).

    Why checked against the solver's signature: TorchDEQ silently ignores an unknown keyword,
    so a typo ("memroy") runs with the default unnoticed. ``noun`` and ``where`` word the
    message for the caller ("backward solver broyden: unknown option(s) ...").
    """
    if not isinstance(options, Mapping):
        raise error(
            f"{name} must be a mapping of option names to values, got {type(options).__name__}",
            field=name,
        )
    unknown = sorted(set(options) - set(known))
    if unknown:
        plural = noun.rsplit(" ", 1)[-1] + "s"
        raise error(
            f"{where}{method}: unknown {noun}(s) {', '.join(unknown)}; "
            f"valid {plural}: {', '.join(sorted(known)) or 'none'}",
            field=name,
        )
    return dict(options)


def _bounds(low: float | None, low_open: bool, high: float | None, high_open: bool) -> str:
    """ " in (0, 1]", " > 0", " <= 1" or ""."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def _fail(
    error: type[SettingsError],
    name: str,
    label: str | None,
    expected: str,
    optional: bool,
    value: object,
) -> NoReturn:
    none = " or None" if optional else ""
    raise error(f"{label or name} must be {expected}{none}, got {value!r}", field=name)
