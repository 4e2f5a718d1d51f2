"""Old names kept working for one release, with a DeprecationWarning pointing at the caller.

Why a module of its own: the warnings must read alike wherever a name changed, and removing the
aliases later is a search for this module's functions.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

from .errors import SettingsError

T = TypeVar("T")


def warn_deprecated(old: str, new: str, stacklevel: int = 2) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``; ``stacklevel`` counts from the
    caller of this function (2: whoever called that caller)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def renamed_keyword(
    old: str,
    new: str,
    old_value: T | None,
    new_value: T | None,
    *,
    error: type[Exception] = SettingsError,
    stacklevel: int = 2,
) -> T | None:
    """The value of keyword ``new`` when it may also have been given under its old name.

    Returns ``new_value`` if ``old_value`` is None; otherwise warns and returns ``old_value``.
    Raises ``error`` when both are given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise error(f"{old} is the old name of {new}; give only {new}")
    warn_deprecated(old, new, stacklevel + 1)
    return old_value
