"""Real clock against a latency profile: do the profile's per-step costs match what an online run
on the real clock measures?

    python benchmarks/real_vs_profile.py --threads 1          # bundled seg model, 128x256, CPU
    python benchmarks/real_vs_profile.py --rounds 4 --frames 12 --json out.json
    python benchmarks/real_vs_profile.py --device cuda --profile my_h200_profile.json

For each scheme (StreamDEQ M = 2 and the baseline, N from zeros), ``--rounds`` online runs of
``--frames`` frames on the real clock (``RealClock``, "every" scheduler, a frame rate no scheme
keeps up with, so the steps run back to back), the schemes alternating from round to round so
that the machine's drift hits both. Every step's latency (the engine's, device synchronised) is
compared with the profile's samples of the same scheme: mean, p50, p90 and the coefficient of
variation (std / mean, the noise), and the ratio of the means. The same runs on the simulated
clock with the profile are added, to show what a simulated run charges.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from streamdeq import tune_cpu_allocator
from streamdeq.bench.setup import panning_clip
from streamdeq.experiments.schemes import Scheme
from streamdeq.models.resolve import DEFAULT_MODEL, resolve_model
from streamdeq.streaming import RealClock, SimulatedClock, bundled_profile, load_profile, run_online
from streamdeq.streaming.profiles import summarize_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", default=None, help="profile JSON (default: the bundled)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10, help="frames per run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = tune_cpu_allocator()  # as the streamdeq command (and so the recorded profile) does

    model = resolve_model(args.model, device=args.device).model
    size = tuple(model.pretrained_info.input_size)
    profile = (
        load_profile(args.profile)
        if args.profile
        else bundled_profile(args.model, size, args.device)
    )
    clip = panning_clip(size, args.frames)
    schemes = {"stream M=2": Scheme("stream", 2), "baseline": Scheme("baseline")}
    real: dict[str, list[float]] = {name: [] for name in schemes}
    simulated: dict[str, list[float]] = {name: [] for name in schemes}
    for round_index in range(args.rounds):
        names = list(schemes)[round_index % 2 :] + list(schemes)[: round_index % 2]
        for name in names:
            for clock, store in (
                (RealClock(), real),
                (SimulatedClock(profile, seed=round_index), simulated),
            ):
                out = run_online(
                    model, clip, 1000.0, schemes[name], "every", clock, keep_outputs=False
                )
                store[name] += [o.latency_ms for o in out]
    rows = []
    for name in schemes:
        entry = next(
            e
            for e in profile.entries
            if e.batch == 1 and (e.scheme == name or (name == "baseline" and e.mode == "baseline"))
        )
        for source, values in (
            ("real clock", real[name]),
            ("profile", list(entry.latency_ms)),
            ("simulated", simulated[name]),
        ):
            rows.append(
                {"scheme": name, "source": source, "steps": len(values), **summarize_ms(values)}
            )
    base = {r["scheme"]: r["mean_ms"] for r in rows if r["source"] == "profile"}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(
        f"{args.model} {size[0]}x{size[1]} on {args.device}, torch threads "
        f"{torch.get_num_threads()}, allocator tuned {tuned}, 1-min load average at the end "
        f"{load}; profile recorded {profile.measured_on.get('date')} at load "
        f"{profile.measured_on.get('load_avg_1min')}"
    )
    print(
        f"{'scheme':<12} {'source':<11} {'steps':>5} {'mean':>8} {'p50':>8} {'p90':>8} {'cv':>6} {'/profile':>8}"
    )
    for r in rows:
        print(
            f"{r['scheme']:<12} {r['source']:<11} {r['steps']:>5} {r['mean_ms']:>8.1f} "
            f"{r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['cv']:>6.3f} "
            f"{r['mean_ms'] / base[r['scheme']]:>8.2f}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"profile": profile.measured_on, "load": load, "rows": rows}, handle, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
