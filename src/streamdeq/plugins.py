"""Finding the code that plugs into streamdeq: the built-in tasks and installed plugins.

Tasks (segmentation, detection, and any a user adds) register their models, renderers,
training tasks and metrics when their package is imported. Registries do not import them at the
top of a module (that made import cycles and loaded every task for any command); instead each
registry that tasks fill calls :func:`load_plugins` before its first lookup, which imports:

1. the built-in task packages (:data:`BUILTIN_TASKS`);
2. every module named by an entry point of the group ``streamdeq.tasks`` in an installed
   distribution (``[project.entry-points."streamdeq.tasks"] mytask = "mypkg.mytask"``): adding a
   task is adding a package, with no edit to streamdeq;
3. the modules listed in the environment variable ``STREAMDEQ_PLUGINS`` (comma-separated), for a
   plugin that is importable but not installed (a script's own task, a test's toy task).

This module imports nothing of the project but its errors: the modules are imported by name.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from .errors import StreamDEQError

#: The task packages that ship with streamdeq.
BUILTIN_TASKS = ("streamdeq.tasks.segmentation", "streamdeq.tasks.detection")

#: The entry-point group plugins declare their task modules in.
ENTRY_POINT_GROUP = "streamdeq.tasks"

#: Environment variable with extra plugin modules, comma-separated.
PLUGINS_ENV = "STREAMDEQ_PLUGINS"

_loaded = False
_loading = False


class PluginError(StreamDEQError, ImportError):
    """A plugin module named by an entry point or ``STREAMDEQ_PLUGINS`` failed to import."""


def load_plugins() -> None:
    """Import the built-in tasks and every plugin once (later calls return at once)."""
    global _loaded, _loading
    if _loaded or _loading:
        return
    _loading = True
    try:
        for module in BUILTIN_TASKS:
            importlib.import_module(module)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            _import(point.value, f"entry point {point.name!r} ({ENTRY_POINT_GROUP})")
        for module in plugin_modules_from_env():
            _import(module, f"{PLUGINS_ENV}")
        _loaded = True
    finally:
        _loading = False


def plugin_modules_from_env() -> list[str]:
    """The module names in ``STREAMDEQ_PLUGINS``."""
    return [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]


def _import(target: str, where: str) -> None:
    """Import ``module`` or ``module:callable`` (the callable is then called with no argument)."""
    module_name, _, attribute = target.partition(":")
    # any failure of a plugin's own code (not only a missing module) is the plugin's, and must
    # reach the user as one line naming it, not as a traceback out of an unrelated command
    try:
        module = importlib.import_module(module_name.strip())
        if attribute:
            getattr(module, attribute.strip())()
    except Exception as error:
        what = f"{type(error).__name__}: {error}" if not isinstance(error, ImportError) else error
        raise PluginError(f"the streamdeq plugin {target!r} from {where} failed: {what}") from None
