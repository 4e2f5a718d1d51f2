"""Old names and import paths that keep working for one release, with a DeprecationWarning.

Modules moved when the application (command line, runner, demo) got its own package and the
tasks became plugins: their old paths are thin modules that warn and re-export. Keywords that
were renamed (one name for the full-solve budget N) are mapped by :func:`renamed_keyword`. One
module, so the warnings read alike and removing the aliases later is a search for it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import SettingsError


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{old} has moved to {new}; the old name will be removed in the next release",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def moved_attributes(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``moved`` names ("new.module:attr") with a warning."""

    def __getattr__(name: str) -> Any:
        target = moved.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, attribute = target.partition(":")
        warn_moved(f"{module}.{name}", f"{new_module}.{attribute}")
        return getattr(importlib.import_module(new_module), attribute)

    return __getattr__


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
