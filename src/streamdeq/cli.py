"""The ``streamdeq`` command: thin wrappers that parse, call library functions and print.

Every error a user can cause ends as one line on stderr and exit code 2 (no traceback): see
:func:`main`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .errors import StreamDEQError

app = typer.Typer(
    name="streamdeq",
    help="Streaming multiscale deep equilibrium models for online video perception.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@app.command("models")
def models_command() -> None:
    """List the named model configurations."""
    from .models import get_config, list_models

    table = Table("name", "task", "channels", "F_THRES", "classes", box=box.SIMPLE, pad_edge=False)
    names = list_models()
    table.columns[0].min_width = max(map(len, names))  # names stay whole on narrow terminals
    table.columns[2].min_width = len("88,176,352,704")
    for name in names:
        cfg = get_config(name)
        table.add_row(
            name,
            cfg.task,
            ",".join(map(str, cfg.num_channels)),
            str(cfg.f_thres),
            str(cfg.num_classes),
        )
    console.print(table)


@app.command("solvers")
def solvers_command() -> None:
    """List the fixed-point solvers and their settings."""
    from .solvers import list_solvers, solver_options

    table = Table("solver", "settings (defaults)")
    for name in list_solvers():
        opts = ", ".join(f"{k}={v!r}" for k, v in solver_options(name).items())
        table.add_row(name, opts)
    console.print(table)


@app.command("convert")
def convert_command(
    config_yaml: Annotated[Path, typer.Argument(help="official MDEQ experiment yaml")],
    checkpoint: Annotated[Path, typer.Argument(help="official state dict (.pth / .pkl)")],
    out: Annotated[Path, typer.Argument(help="output .safetensors file")],
) -> None:
    """Convert an official MDEQ checkpoint to a self-describing safetensors file."""
    _require_file(config_yaml, "config")
    _require_file(checkpoint, "checkpoint")
    from .models import load_official_mdeq, save_safetensors

    model = load_official_mdeq(config_yaml, checkpoint)
    save_safetensors(model, out)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"wrote {out} ({n_params / 1e6:.2f} M parameters)")


@app.command("demo")
def demo_command(
    model: Annotated[str, typer.Option(help="model name (see `streamdeq models`)")] = (
        "mdeq-seg-small-cityscapes"
    ),
    frames: Annotated[int, typer.Option(min=2, help="frames of the synthetic clip")] = 8,
    height: Annotated[int, typer.Option(help="frame height (multiple of 32)")] = 128,
    width: Annotated[int, typer.Option(help="frame width (multiple of 32)")] = 256,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Smoke example: warm-started streaming vs. cold starts vs. the full solve on a moving
    synthetic clip, with a randomly initialised model."""
    from .smoke import run_smoke

    run_smoke(model, frames=frames, height=height, width=width, seed=seed, console=console)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise StreamDEQError(f"{what} file not found: {path}")
    if not path.is_file():
        raise StreamDEQError(f"{what} path is not a file: {path}")


def main() -> None:
    """Entry point: run the app, turning expected errors into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except StreamDEQError as err:
        print(f"streamdeq: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("streamdeq: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
