"""Solver overhead on a real MDEQ block; the same as ``streamdeq bench overhead``.

    python benchmarks/solver_overhead.py [--size 512x1024] [--threads 2] [--repeats 3]
        [--out overhead.json] [--quick]

ratio = time(M iterations) / (nfev x time(one bare f on the same state)); the floor is 1.0.
Our Broyden, Anderson and fixed-point iteration (and the published M+1-evaluation Broyden) side
by side with TorchDEQ's solvers on the same f when ``torchdeq`` is installed. The measuring code
lives in :mod:`streamdeq.bench.overhead`; see benchmarks/README.md for every benchmark.
"""

from __future__ import annotations

import sys

from streamdeq.app.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "bench", "overhead", *sys.argv[1:]]
    main()
