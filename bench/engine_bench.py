"""Closed windows per second through the core engine (in-memory store), by batch size.

    python bench/engine_bench.py [--customers 20000] [--months 6]

Side by side in one run: the same windows processed one at a time (batch 1) and in
batches of 64 and 1024; the ratio batched/per-window is what batching buys.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import report, windows_for  # noqa: I001

from segstream.assembly import build_pipeline
from segstream.config import Settings


def rate(batch_size: int, months: list, limit: int | None) -> tuple[float, dict]:
    pipe = build_pipeline(Settings(batch_size=batch_size))
    engine = pipe.engine
    n, spent = 0, 0.0
    stages = dict.fromkeys(("state_load", "lstm_step", "assignment", "state_write"), 0.0)
    for ws in months:
        ws = ws[:limit] if limit else ws
        for i in range(0, len(ws), batch_size):
            chunk = ws[i : i + batch_size]
            t = time.perf_counter()
            r = engine.process(chunk)
            spent += time.perf_counter() - t
            n += len(chunk)
            for k, v in r.seconds.items():
                stages[k] += v
    return n / spent, {k: round(v / max(spent, 1e-12), 3) for k, v in stages.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--per-window-limit", type=int, default=2000, help="windows per month at batch size 1")
    args = ap.parse_args()
    months = windows_for(args.customers, args.months)
    figures = {"customers": args.customers, "windows": sum(map(len, months))}
    rates = {}
    for b in (1, 64, 1024):
        r, share = rate(b, months, args.per_window_limit if b == 1 else None)
        rates[b] = r
        figures[f"windows_per_s_batch_{b}"] = round(r)
        figures[f"time_share_batch_{b}"] = share
    figures["ratio_batch_1024_vs_1"] = round(rates[1024] / rates[1], 1)
    figures["ratio_batch_64_vs_1"] = round(rates[64] / rates[1], 1)
    report("engine", figures)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
