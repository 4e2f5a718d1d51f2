"""One small registry, used by every plugin point of the project.

Models, solvers, tasks, renderers, training tasks, datasets, experiments and benchmarks are all
looked up by name. Each had its own dict and its own lookup error; this module gives them one
behaviour, as timm's ``_registry.py`` and TorchDEQ's ``register_solver`` do:

- ``register`` refuses to replace an entry unless asked to (``overwrite=True``), so two plugins
  cannot silently shadow each other;
- ``get`` of an unknown name raises the registry's own error type with the known names and the
  closest matches ("choose one of ... (did you mean ...?)");
- ``names`` lists the entries in registration order (or sorted), for help texts and choices.

A registry may also be given a ``loader``: a function called once, before the first lookup, that
imports the modules which fill it (the built-in tasks, entry-point plugins). That keeps
registration out of import-time side effects at the bottom of modules, which is what made import
cycles before.

This module imports nothing of the project, so any module may use it without a cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what an entry is, for messages ("model", "solver", ...).
        error: the exception raised for an unknown name or a duplicate registration; it is
            called with one message string (the project's errors subclass ``StreamDEQError``,
            so the command line turns them into one line).
        loader: called once before the first lookup, to import the modules that register the
            built-in entries (and plugins); None when entries are registered eagerly.
    """

    def __init__(
        self,
        kind: str,
        *,
        error: Callable[[str], Exception] = KeyError,
        loader: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self._error = error
        self._loader = loader
        self._loaded = loader is None
        self._loading = False
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        """Add ``entry`` under ``name``; a taken name raises unless ``overwrite``."""
        if not isinstance(name, str) or not name:
            raise self._error(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not overwrite:
            raise self._error(
                f"a {self.kind} named {name!r} is already registered "
                "(pass overwrite=True to replace it)"
            )
        self._entries[name] = entry
        return entry

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered now, without loading plugins first (for registration
        code, which runs while plugins load)."""
        return name in self._entries

    @contextmanager
    def restored(self) -> Iterator[Registry[T]]:
        """Entries registered or removed inside the block are undone at its end (tests)."""
        self._ensure_loaded()
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries = saved

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plugins that register temporarily)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry for ``name``; unknown names raise with the known ones and close matches."""
        self._ensure_loaded()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._error(self.unknown_message(name)) from None

    def unknown_message(self, name: object, known: Iterable[str] | None = None) -> str:
        """ "unknown <kind> 'x'; choose one of a, b, c (did you mean 'y'?)"; ``known`` replaces
        the registered names where users may also type other words for them (aliases)."""
        self._ensure_loaded()
        known = list(self._entries) if known is None else list(known)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        listing = ", ".join(known) if known else "none is registered"
        return f"unknown {self.kind} {name!r}; choose one of {listing}{hint}"

    def names(self, *, sort: bool = False) -> list[str]:
        """The registered names, in registration order unless ``sort``."""
        self._ensure_loaded()
        return sorted(self._entries) if sort else list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self._ensure_loaded()
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def _ensure_loaded(self) -> None:
        # the flag is set first: a loader's modules register (and may look up) entries
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            assert self._loader is not None
            self._loader()
            self._loaded = True
        finally:
            self._loading = False
