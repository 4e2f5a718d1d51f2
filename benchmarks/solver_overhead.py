"""Solver overhead on a real MDEQ block: time of M solver iterations against the evaluations of f
they performed.

    python benchmarks/solver_overhead.py [--model mdeq-seg-small-cityscapes] [--height 256]
        [--width 512] [--threads 2] [--repeats 5] [--json out.json]

ratio = time(M iterations) / (nfev x time(one bare f)); the floor is 1.0. Also reported: f
evaluations per iteration (published Broyden needs M+1 for M). Every variant is timed in each
repeat round (interleaved), and medians are reported, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from streamdeq.models import create_model
from streamdeq.solvers import solve

VARIANTS = [
    ("fixed_point", {}),
    ("anderson", {}),
    ("broyden", {}),
    ("broyden", {"parity": True}),
]


def _time(fn, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mdeq-seg-small-cityscapes")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)

    model = create_model(opts.model).eval()
    x = torch.randn(1, 3, opts.height, opts.width)
    with torch.no_grad():
        injection = model.inject(x)
        state = model.solve(x, max_iter=6)[0]  # a realistic, partly solved state
        f = model.f
        for _ in range(2):  # warm-up
            f(state, injection)
        samples: dict[str, list[float]] = {"f": []}
        nfev: dict[str, int] = {}
        for _ in range(opts.repeats):
            samples["f"].append(_time(lambda: f(state, injection)))
            for method, options in VARIANTS:
                for m in opts.iters:
                    key = f"{method}{'(parity)' if options else ''} M={m}"
                    res = {}

                    def run(method=method, options=options, m=m, res=res):
                        res["r"] = solve(
                            f, state, (injection,), method=method, max_iter=m, **options
                        )

                    samples.setdefault(key, []).append(_time(run))
                    nfev[key] = res["r"].nfev
            samples.setdefault("inject", []).append(_time(lambda: model.inject(x)))
            samples.setdefault("head", []).append(_time(lambda: model.head(state)))

    t_f = statistics.median(samples["f"])
    print(f"model {opts.model} at {opts.height}x{opts.width}, {opts.threads} threads")
    print(
        f"one bare f: {t_f * 1e3:.1f} ms  inject: {statistics.median(samples['inject']) * 1e3:.1f} ms"
        f"  head: {statistics.median(samples['head']) * 1e3:.1f} ms"
    )
    print(f"{'variant':<24}{'ms':>9}{'f evals':>9}{'evals/iter':>12}{'ratio':>8}")
    rows = []
    for key, vals in samples.items():
        if key in ("f", "inject", "head"):
            continue
        t = statistics.median(vals)
        m = int(key.split("M=")[1])
        ratio = t / (nfev[key] * t_f)
        rows.append(
            {
                "variant": key,
                "ms": t * 1e3,
                "nfev": nfev[key],
                "evals_per_iter": nfev[key] / m,
                "ratio": ratio,
            }
        )
        print(f"{key:<24}{t * 1e3:>9.1f}{nfev[key]:>9d}{nfev[key] / m:>12.2f}{ratio:>8.3f}")
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(
                {
                    "model": opts.model,
                    "size": [opts.height, opts.width],
                    "threads": opts.threads,
                    "f_ms": t_f * 1e3,
                    "rows": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
