"""Closed windows per second through the core engine, this tree against another checkout, alternating.

    git worktree add /tmp/prev <commit>
    python bench/engine_versions.py --against /tmp/prev [--rounds 3] [--seconds 20]

An issue's "within 20% of today's throughput" needs both versions measured on the
same VM minutes: each phase runs one tree's engine in its own process (the trees
share module names) for at least ``--seconds``, over the same generated windows at
batch 1,024 with the worker's GC setting, and the phases alternate so a slow moment
of the machine hits both. The ratio per round and its spread are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from checkout_env import checkout_env
from common import ROOT, report  # noqa: I001

# runs inside the measured tree: only APIs both versions have
_PHASE = r"""
import gc, json, sys, time
sys.path[:0] = [{tree!r} + "/bench"]
from common import windows_for
from segstream.assembly import build_pipeline
from segstream.config import Settings
gc.set_threshold(100_000)
months = windows_for({customers}, {months})
n, spent = 0, 0.0
while spent < {seconds}:
    engine = build_pipeline(Settings(batch_size=1024)).engine
    for ws in months:
        for i in range(0, len(ws), 1024):
            t = time.perf_counter()
            engine.process(ws[i : i + 1024])
            spent += time.perf_counter() - t
            n += len(ws[i : i + 1024])
print(json.dumps({{"windows_per_s": n / spent, "windows": n, "seconds": spent}}))
"""


def phase(tree: Path, args: argparse.Namespace) -> float:
    code = _PHASE.format(tree=str(tree), customers=args.customers, months=args.months, seconds=args.seconds)
    env = {**os.environ, **checkout_env(tree)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tree, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["windows_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", type=Path, required=True, help="another checkout (e.g. a git worktree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0, help="engine time per phase")
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--months", type=int, default=6)
    args = ap.parse_args()
    figures: dict = {"against": str(args.against.resolve()), "seconds_per_phase": args.seconds}
    ratios = []
    for r in range(1, args.rounds + 1):
        other = phase(args.against.resolve(), args)
        this = phase(ROOT, args)
        ratios.append(this / other)
        figures[f"round_{r}"] = {"other": round(other), "this": round(this), "ratio": round(this / other, 2)}
    figures["ratio_median"] = round(statistics.median(ratios), 2)
    figures["ratio_min_max"] = [round(min(ratios), 2), round(max(ratios), 2)]
    report("engine_versions", figures)


if __name__ == "__main__":
    main()
