"""A served stream's settings: the small JSON dict an operator edits live, checked, and what it
becomes for the engine (a :class:`~streamdeq.stream.StreamSettings`).

Why a dict of its own rather than StreamSettings itself: the API and the state file speak JSON,
and an operator changes one knob at a time (``{"iters": 2}``), so "setting one of iters, tol
and budget_ms clears the others" must hold for partial updates, as it does for the engine's
``from_options``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import SettingsError
from ..stream import POLICIES, StreamSettings
from ..stream.settings import DEFAULT_ITERS
from ..validation import check_choice, check_int, check_real

#: The schemes a served stream may run (the analysis-only "reference" scheme is left out).
SERVE_MODES = ("stream", "baseline", "keyframe")
ITERATION_KEYS = ("iters", "tol", "budget_ms")
DEFAULT_SETTINGS: dict[str, Any] = {
    "mode": "stream",
    "iters": None,
    "tol": None,
    "budget_ms": None,
    "shot_policy": "keep",
    "compare": None,
}
#: A scheme whose frames take more than this many iterations runs in the slow lane, so it never
#: holds the ticks of the streams around it (M = 1, 2, 4, 8 are the paper's fast schemes).
SLOW_ITERS = 8


def merge_settings(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied and checked; unknown keys or bad values raise a
    :class:`SettingsError` naming the field. Giving one of iters, tol and budget_ms clears the
    other two (each says how long a frame's solve runs); choosing the baseline mode clears all
    three (it always runs N iterations)."""
    if not isinstance(changes, Mapping):
        raise SettingsError(f"settings must be an object, got {type(changes).__name__}")
    for name in changes:
        if name not in DEFAULT_SETTINGS:
            close = difflib.get_close_matches(str(name), list(DEFAULT_SETTINGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(
                f"unknown stream setting {name!r}{hint}; valid: {', '.join(DEFAULT_SETTINGS)}",
                field=str(name),
            )
    merged = {**DEFAULT_SETTINGS, **current}
    chosen = [k for k in ITERATION_KEYS if changes.get(k) is not None]
    if len(chosen) > 1:
        raise SettingsError(
            f"{' and '.join(chosen)} conflict: give one of iters, tol or budget_ms", field=chosen[0]
        )
    if chosen or changes.get("mode") == "baseline":
        merged.update(dict.fromkeys(ITERATION_KEYS))
    merged.update(changes)
    _check(merged)
    return merged


def _check(settings: dict[str, Any]) -> None:
    check_choice("mode", settings["mode"], SERVE_MODES)
    check_int("iters", settings["iters"], optional=True)
    check_real("tol", settings["tol"], exclusive_minimum=0, optional=True)
    check_real("budget_ms", settings["budget_ms"], exclusive_minimum=0, optional=True)
    check_choice("shot_policy", settings["shot_policy"], POLICIES)
    settings["compare"] = _checked_compare(settings["compare"])
    if settings["mode"] == "baseline" and any(settings[k] is not None for k in ITERATION_KEYS):
        given = next(k for k in ITERATION_KEYS if settings[k] is not None)
        raise SettingsError(
            f"the baseline mode solves every frame with N iterations; {given} applies to the "
            "stream and keyframe modes",
            field=given,
        )


def _checked_compare(compare: Any) -> Any:
    if compare is None or compare == "baseline":
        return compare
    if isinstance(compare, Mapping) and set(compare) == {"iters"}:
        check_int("compare iters", compare["iters"])
        return {"iters": compare["iters"]}
    raise SettingsError(
        f'compare must be null, "baseline" or {{"iters": M}}, got {compare!r}', field="compare"
    )


def stream_settings(settings: Mapping[str, Any], base: StreamSettings) -> StreamSettings:
    """The engine's settings of a stream's own solve."""
    return StreamSettings.from_options(
        base,
        mode=settings["mode"],
        iters=settings["iters"],
        tol=settings["tol"],
        budget_ms=settings["budget_ms"],
        shot_policy=settings["shot_policy"],
    )


def compare_settings(settings: Mapping[str, Any], base: StreamSettings) -> StreamSettings | None:
    """The engine's settings of a stream's compare solve (None: no compare). It keeps the
    stream's shot policy, so the two sides differ only in how frames are solved."""
    compare = settings["compare"]
    if compare is None:
        return None
    if compare == "baseline":
        return StreamSettings.from_options(base, mode="baseline", shot_policy="keep")
    return StreamSettings.from_options(
        base, mode="stream", iters=compare["iters"], shot_policy=settings["shot_policy"]
    )


def is_slow(settings: Mapping[str, Any]) -> bool:
    """Whether a stream (its own solve or its compare solve) needs more than SLOW_ITERS
    iterations a frame: a full solve (baseline), a tolerance (up to N) or a large M."""
    if settings["mode"] == "baseline" or settings["tol"] is not None:
        return True
    if (settings["iters"] or DEFAULT_ITERS) > SLOW_ITERS:
        return True
    compare = settings["compare"]
    return compare == "baseline" or (isinstance(compare, Mapping) and compare["iters"] > SLOW_ITERS)


def needs_reset(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A change of mode starts the stream's state again (the schemes keep different states:
    the baseline none, the keyframe scheme a full solve first); a change of iters, tol,
    budget_ms or shot policy keeps it (the warm start is as good for any M)."""
    return old["mode"] != new["mode"]
