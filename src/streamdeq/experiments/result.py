"""An experiment's outcome: its rows, and how to write them as CSV plus a PNG plot.

Both files appear complete or not at all: each is written beside its target under a hidden
partial name and renamed into place (the CSV by :class:`streamdeq.data.StatsWriter`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import OutputError, StatsWriter

#: Draws an experiment's rows onto a new matplotlib figure and returns it.
Plotter = Callable[[Sequence[dict[str, Any]]], Any]


@dataclass
class ExperimentResult:
    """Rows of one experiment (plain values, one dict per row) and its plot.

    Attributes:
        name: file stem of the outputs ("fig3" -> fig3.csv, fig3.png).
        rows: the data, the same columns in every row.
        plotter: draws ``rows`` (matplotlib, Agg backend).
        meta: what it was run on (model, clips, frames, N ...), for reports.
    """

    name: str
    rows: list[dict[str, Any]]
    plotter: Plotter
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``<name>.csv`` and ``<name>.png`` into ``out_dir`` (created); returns both."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create output folder {out}: {error.strerror}") from error
        return [self.save_csv(out / f"{self.name}.csv"), self.save_png(out / f"{self.name}.png")]

    def save_csv(self, path: Path) -> Path:
        columns = list(self.rows[0]) if self.rows else []
        with StatsWriter(path, columns=columns) as writer:
            for row in self.rows:
                writer.write(row)
        return path

    def save_png(self, path: Path) -> Path:
        figure = self.plotter(self.rows)
        partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        try:
            figure.savefig(partial, dpi=120, bbox_inches="tight")
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise OutputError(f"cannot write plot {path}: {error.strerror}") from error
        finally:
            close_figure(figure)
        return path


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6):
    """A matplotlib figure on the Agg backend (no display needed) and its axes array."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def integer_ticks(ax: Any) -> None:
    """Whole-number ticks on the x axis (frames, steps, offsets)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def close_figure(figure: Any) -> None:
    # a bare Figure (not pyplot) holds no global state; dropping the canvas frees the buffers
    figure.clear()


def series(
    rows: Sequence[dict[str, Any]], x: str, y: str, **match: Any
) -> tuple[list[Any], list[Any]]:
    """The (xs, ys) of the rows whose columns equal ``match``, sorted by x."""
    picked = sorted(
        (row[x], row[y]) for row in rows if all(row.get(k) == v for k, v in match.items())
    )
    return [p[0] for p in picked], [p[1] for p in picked]


#: One colour per M, so every figure reads the same way.
ITER_COLORS = {1: "tab:red", 2: "tab:orange", 4: "tab:green", 8: "tab:blue", 16: "tab:purple"}


def iter_color(iters: int) -> str:
    return ITER_COLORS.get(iters, "tab:gray")
