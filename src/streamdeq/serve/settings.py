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
from .errors import quoted

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
#: The most iterations a frame when the model does not declare N (its full solve).
FALLBACK_MAX_ITERS = 100
#: The longest latency budget a frame may have (ms): a minute a frame is no live stream.
MAX_BUDGET_MS = 60_000.0


def merge_settings(
    current: Mapping[str, Any], changes: Mapping[str, Any], *, max_iters: int | None = None
) -> dict[str, Any]:
    """``current`` with ``changes`` applied and checked; unknown keys or bad values raise a
    :class:`SettingsError` naming the field. Giving one of iters, tol and budget_ms clears the
    other two (each says how long a frame's solve runs); choosing the baseline mode clears all
    three (it always runs N iterations). With none of them, iters is the engine's default M, so
    the settings show what runs.

    ``max_iters`` caps iters and a compare's iters (None: no cap): more iterations a frame than
    a full solve (N) never help, and a huge M stalls the stream's lane."""
    if not isinstance(changes, Mapping):
        raise SettingsError(f"settings must be an object, got {type(changes).__name__}")
    for name in changes:
        if name not in DEFAULT_SETTINGS:
            close = difflib.get_close_matches(str(name), list(DEFAULT_SETTINGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(
                f"unknown stream setting {quoted(name)}{hint}; "
                f"valid: {', '.join(DEFAULT_SETTINGS)}",
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
    _check(merged, max_iters)
    if merged["mode"] != "baseline" and all(merged[k] is None for k in ITERATION_KEYS):
        merged["iters"] = DEFAULT_ITERS
    return merged


def _check(settings: dict[str, Any], max_iters: int | None) -> None:
    check_choice("mode", settings["mode"], SERVE_MODES)
    check_int("iters", settings["iters"], optional=True)
    _check_cap("iters", settings["iters"], max_iters)
    check_real("tol", settings["tol"], exclusive_minimum=0, optional=True)
    check_real(
        "budget_ms",
        settings["budget_ms"],
        exclusive_minimum=0,
        maximum=MAX_BUDGET_MS,
        optional=True,
    )
    check_choice("shot_policy", settings["shot_policy"], POLICIES)
    settings["compare"] = _checked_compare(settings["compare"], max_iters)
    if settings["mode"] == "baseline" and any(settings[k] is not None for k in ITERATION_KEYS):
        given = next(k for k in ITERATION_KEYS if settings[k] is not None)
        raise SettingsError(
            f"the baseline mode solves every frame with N iterations; {given} applies to the "
            "stream and keyframe modes",
            field=given,
        )


def _check_cap(name: str, iters: int | None, max_iters: int | None) -> None:
    if iters is not None and max_iters is not None and iters > max_iters:
        raise SettingsError(
            f"{name} must be at most {max_iters} (N, the model's full solve: more iterations "
            f"a frame never help), got {iters}",
            field=name.split()[0],
        )


def _checked_compare(compare: Any, max_iters: int | None) -> Any:
    if compare is None or compare == "baseline":
        return compare
    if isinstance(compare, Mapping) and set(compare) == {"iters"}:
        check_int("compare iters", compare["iters"])
        _check_cap("compare iters", compare["iters"], max_iters)
        return {"iters": compare["iters"]}
    raise SettingsError(
        f'compare must be null, "baseline" or {{"iters": M}}, got {quoted(compare)}',
        field="compare",
    )


def max_iters_for(model: Any, base: StreamSettings) -> int:
    """The cap on a served stream's M: N, the model's full solve (``base.f_thres`` or
    ``model.config.f_thres``), else :data:`FALLBACK_MAX_ITERS`. A tolerance or a time budget
    stops at N by itself (the engine's ``max_iter_cap`` defaults to it)."""
    try:
        return base.f_thres_for(model)
    except SettingsError:
        return FALLBACK_MAX_ITERS


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
