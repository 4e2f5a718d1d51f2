"""The streaming experiment's two views: accuracy against input rate (one panel per scheduler),
and the frontier, accuracy against mean cost per frame (does an adaptive rule beat a fixed M
at the same cost?)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .result import new_figure

#: Where the frontier reads its streaming column, in order of preference: the scheduler that
#: drops what it cannot process ("latest") shows what a scheme is worth online.
FRONTIER_SCHEDULERS = ("latest", "shrinking-tail", "every")


def frontier_rows(
    rows: Sequence[Mapping[str, Any]],
    offline: Sequence[Mapping[str, Any]],
    offline_key: str,
    streaming_key: str,
    fps: float,
) -> list[dict[str, Any]]:
    """One row per scheme: its offline cost and accuracy (every frame in turn), its streaming
    accuracy at ``fps`` (under the first of :data:`FRONTIER_SCHEDULERS` swept), the fit
    policy's point at ``fps``, and for the others the fixed-M curve at the same cost.

    Columns: scheme, kind, mean_ms, mean_iters, ``offline_<metric>``, fps, scheduler,
    ``<streaming metric>``, ``fixed_offline`` and ``fixed_streaming`` (the fixed-M schemes'
    accuracies interpolated linearly at this scheme's mean_ms; empty outside their range),
    ``gain_offline`` and ``gain_streaming`` (this scheme minus them).
    """
    offline_column = f"offline_{offline_key}"
    scheduler = next((s for s in FRONTIER_SCHEDULERS if any(_at(rows, s, fps))), None)
    live = {r["scheme"]: r for r in _at(rows, scheduler, fps)} if scheduler else {}
    points = [
        {
            **point,
            "fps": fps,
            "scheduler": scheduler,
            streaming_key: live[point["scheme"]][streaming_key]
            if point["scheme"] in live
            else math.nan,
        }
        for point in offline
    ]
    for fit in _at(rows, "fit", fps):
        points.append(
            {
                "scheme": fit["scheme"],
                "kind": "fit",
                "mean_ms": fit["mean_ms"],
                "mean_iters": fit["mean_iters"],
                offline_column: fit[offline_column],
                "fps": fps,
                "scheduler": "fit",
                streaming_key: fit[streaming_key],
            }
        )
    fixed = sorted((p for p in points if p["kind"] == "fixed"), key=lambda p: p["mean_ms"])
    for point in points:
        for column, name in ((offline_column, "offline"), (streaming_key, "streaming")):
            curve = [(p["mean_ms"], p[column]) for p in fixed]
            same_cost = interpolate(curve, point["mean_ms"])
            point[f"fixed_{name}"] = same_cost
            point[f"gain_{name}"] = point[column] - same_cost
    return points


def _at(rows: Sequence[Mapping[str, Any]], scheduler: str, fps: float) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["scheduler"] == scheduler and r["fps"] == fps]


def interpolate(curve: Sequence[tuple[float, float]], x: float) -> float:
    """y at ``x`` on the piecewise-linear ``curve`` (points sorted by x); NaN outside it."""
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if len(curve) == 1 and curve[0][0] == x:
        return curve[0][1]
    return math.nan


def plot_streaming(
    rows: Sequence[Mapping[str, Any]], metric: str, offline: Mapping[str, float], label: str
):
    """``metric`` against input rate, a panel per scheduler, a line per scheme; each scheme's
    offline accuracy as a dotted line of its colour, the fit policy in black on every panel."""
    schedulers = [s for s in dict.fromkeys(r["scheduler"] for r in rows) if s != "fit"]
    figure, axes = new_figure(ncols=max(len(schedulers), 1), width=4.6)
    names = [n for n in dict.fromkeys(r["scheme"] for r in rows) if n != "fit"]
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fit = sorted((r["fps"], r[metric]) for r in rows if r["scheduler"] == "fit")
    for ax, scheduler in zip(axes[0], schedulers or ["fit"], strict=False):
        for name in names:
            points = sorted(
                (r["fps"], r[metric])
                for r in rows
                if r["scheme"] == name and r["scheduler"] == scheduler
            )
            if not points:
                continue
            ax.plot(*zip(*points, strict=True), "o-", color=colours[name], label=name, ms=3)
            if name in offline:
                ax.axhline(offline[name], color=colours[name], ls=":", lw=1)
        if fit:
            ax.plot(*zip(*fit, strict=True), "k*-", label="fit the interval", ms=6)
        ax.set_title(f"scheduler: {scheduler}")
        ax.set_xlabel("input rate (frames / s)")
        ax.set_ylabel(f"streaming {label}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small", title="dotted: offline", title_fontsize="x-small")
    return figure


def plot_frontier(rows: Sequence[Mapping[str, Any]], metric: str, offline_metric: str, label: str):
    """Offline and streaming accuracy against mean ms per frame, one point per setting: the
    fixed-M curve as a line, adaptive settings and the fit policy as markers."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, axes = new_figure(ncols=2, width=4.6)
    offline_column, streaming_column = f"offline_{offline_metric}", metric
    fps = rows[0]["fps"] if rows else math.nan
    titles = (f"offline {label}", f"streaming {label} at {fps:g} frames/s")
    markers = {"fixed": "o-", "adaptive": "D", "baseline": "s", "other": "^", "fit": "*"}
    for ax, column, title in zip(axes[0], (offline_column, streaming_column), titles, strict=True):
        for kind, style in markers.items():
            picked = sorted(
                (r for r in rows if r["kind"] == kind and not _nan(r[column])),
                key=lambda r: r["mean_ms"],
            )
            if not picked:
                continue
            xs, ys = [r["mean_ms"] for r in picked], [r[column] for r in picked]
            ax.plot(xs, ys, style, label=kind, ms=7 if kind == "fit" else 5)
            for r, x, y in zip(picked, xs, ys, strict=True):
                ax.annotate(
                    r["scheme"], (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6
                )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("mean ms per processed frame")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    return figure


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plot_one_rate(rows: Sequence[Mapping[str, Any]], metric: str, offline_metric: str, label: str):
    """At one input rate: each scheme's streaming accuracy beside its offline accuracy (bars),
    the cost of staleness read as the gap between them."""
    figure, axes = new_figure(width=6.0)
    ax = axes[0, 0]
    names = [f"{r['scheme']}\n({r['scheduler']})" for r in rows]
    positions = range(len(rows))
    offline = [r[f"offline_{offline_metric}"] for r in rows]
    live = [r[metric] for r in rows]
    ax.bar([p - 0.2 for p in positions], offline, 0.4, label=f"offline {label}", color="0.7")
    ax.bar([p + 0.2 for p in positions], live, 0.4, label=f"streaming {label}", color="C0")
    ax.set_xticks(list(positions), names, fontsize="x-small")
    rate = rows[0]["fps"] if rows else math.nan
    ax.set_title(
        f"streaming vs offline at {rate:g} frames/s ({rows[0]['profile'] if rows else ''})",
        fontsize="small",
    )
    ax.set_ylabel(label)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="x-small")
    return figure


__all__ = [
    "FRONTIER_SCHEDULERS",
    "frontier_rows",
    "interpolate",
    "plot_frontier",
    "plot_one_rate",
    "plot_streaming",
]
