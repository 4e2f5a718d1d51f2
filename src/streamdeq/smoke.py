"""A smoke example of the method on any named model: warm-started streaming against cold starts
and the full solve, on a synthetic panning clip.

It needs no data and no trained weights, so it shows the mechanics (and the cost) of streaming,
not accuracy: with random weights the numbers say how close M iterations get to the fully solved
representation, frame after frame.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from .models import create_model
from .solvers import solve


def panning_clip(frames: int, height: int, width: int, seed: int = 0, step: int = 4):
    """(T, 1, 3, H, W): a smooth random texture seen by a camera panning ``step`` px a frame."""
    gen = torch.Generator().manual_seed(seed)
    canvas = torch.randn(1, 3, height + 8, width + step * frames + 8, generator=gen)
    canvas = F.avg_pool2d(canvas, 9, stride=1, padding=4) * 3.0
    return torch.stack(
        [canvas[..., 4 : 4 + height, 4 + step * t : 4 + step * t + width] for t in range(frames)]
    )


def _rel_distance(z, ref) -> float:
    num = sum(float((a - b).pow(2).sum()) for a, b in zip(z, ref, strict=True))
    den = sum(float(b.pow(2).sum()) for b in ref)
    return (num / max(den, 1e-30)) ** 0.5


def run_smoke(
    model_name: str = "mdeq-seg-small-cityscapes",
    frames: int = 8,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    iters: tuple[int, ...] = (1, 2, 4),
    console: Console | None = None,
) -> list[dict]:
    """Run the comparison and print a table; returns its rows."""
    console = console or Console()
    torch.manual_seed(seed)
    model = create_model(model_name).eval()
    clip = panning_clip(frames, height, width, seed)
    full_iters = model.config.f_thres
    rows = []
    with torch.no_grad():
        injections = [model.inject(x) for x in clip]
        start = time.perf_counter()
        reference = [
            solve(
                model.f,
                None,
                (inj,),
                method="broyden",
                max_iter=full_iters,
                like=model.init_state(inj),
            ).z
            for inj in injections
        ]
        full_ms = (time.perf_counter() - start) / frames * 1e3
        rows.append(
            {
                "scheme": "full solve (baseline)",
                "M": full_iters,
                "distance": 0.0,
                "ms_per_frame": full_ms,
            }
        )
        for m in iters:
            for scheme in ("cold start", "StreamDEQ"):
                z, start = None, time.perf_counter()
                for inj in injections:
                    z0 = z if (scheme == "StreamDEQ" and z is not None) else model.init_state(inj)
                    z = solve(model.f, z0, (inj,), method="broyden", max_iter=m).z
                ms = (time.perf_counter() - start) / frames * 1e3
                rows.append(
                    {
                        "scheme": scheme,
                        "M": m,
                        "distance": _rel_distance(z, reference[-1]),
                        "ms_per_frame": ms,
                    }
                )
    table = Table(title=f"{model_name} (random weights), {frames} frames {height}x{width}")
    table.add_column("scheme")
    table.add_column("iterations / frame", justify="right")
    table.add_column("distance to full solve, last frame", justify="right")
    table.add_column("ms / frame (solver)", justify="right")
    for row in rows:
        table.add_row(
            row["scheme"], str(row["M"]), f"{row['distance']:.4f}", f"{row['ms_per_frame']:.0f}"
        )
    console.print(table)
    return rows
