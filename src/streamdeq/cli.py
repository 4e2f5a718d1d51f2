"""Deprecated: moved to :mod:`streamdeq.app.cli` (this path works for one more release)."""

from ._deprecated import warn_moved
from .app.cli import *  # noqa: F403

warn_moved("streamdeq.cli", "streamdeq.app.cli")

if __name__ == "__main__":  # python -m streamdeq.cli, as before the move
    main()  # noqa: F405
