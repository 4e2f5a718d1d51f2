"""The one registry helper every plugin point uses."""

from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.registry import Registry


def test_a_taken_name_needs_overwrite():
    things = Registry("thing", error=SettingsError)
    things.register("a", 1)
    with pytest.raises(SettingsError, match="thing named 'a' is already registered"):
        things.register("a", 2)
    things.register("a", 3, overwrite=True)
    assert things.get("a") == 3


def test_an_unknown_name_lists_the_known_ones_and_the_closest():
    things = Registry("solver", error=SettingsError)
    for name in ("broyden", "anderson"):
        things.register(name, name)
    with pytest.raises(SettingsError) as raised:
        things.get("broydn")
    assert str(raised.value) == (
        "unknown solver 'broydn'; choose one of broyden, anderson (did you mean 'broyden'?)"
    )


def test_the_loader_runs_once_before_the_first_lookup_and_may_register():
    calls = []

    def load() -> None:
        calls.append(1)
        things.register("late", "plugin")  # registration while loading does not recurse
        assert "late" in things

    things = Registry("thing", loader=load)
    things.register("early", "eager")  # registering does not load
    assert calls == []
    assert things.names() == ["early", "late"] and things.get("late") == "plugin"
    things.get("early")
    assert calls == [1]


def test_restored_undoes_what_the_block_registered_and_removed():
    things = Registry("thing")
    things.register("kept", 1)
    with things.restored():
        things.register("temporary", 2)
        things.unregister("kept")
        assert things.names() == ["temporary"]
    assert things.names() == ["kept"]
