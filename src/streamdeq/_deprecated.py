"""Old import paths that keep working for one release, with a DeprecationWarning.

Modules moved when the application (command line, runner, demo) got its own package and the
tasks became plugins; their old paths are thin modules that warn and re-export.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


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
