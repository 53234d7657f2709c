"""Bootstrap (go live with history) against the embedded demo, side by side in one run.

Both read the same generated bank (the demo generates it in-process, as its own figure does;
bootstrap reads it from a JSON-lines file, as a bank's history arrives) and run the same core.
Bootstrap runs as `segstream bootstrap` in a process of its own against a local Kafka (the
cut-off) and Redis (the state), so the harness's CPU stays out of it. Prints each run and the
ratio of events per second, bootstrap over demo.

    python bench/bootstrap_bench.py --customers 20000 --months 24 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import orjson
from common import ROOT, local_servers, report  # noqa: I001

from segstream.producers.synthetic import GeneratorConfig, SyntheticBank


def demo(customers: int, months: int, seed: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "segstream", "demo", "--customers", str(customers), "--months", str(months)]
        + ["--seed", str(seed), "--json"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return orjson.loads(out.stdout.splitlines()[-1])


def bootstrap(path, bootstrap_servers: str, redis_port: int, run: int) -> dict:
    env = {
        **os.environ,
        "SEGSTREAM_KAFKA_BOOTSTRAP": bootstrap_servers,
        "SEGSTREAM_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SEGSTREAM_CONSUMER_GROUP": f"bench-bootstrap-{run}",
        "SEGSTREAM_TOPIC_TRANSACTIONS": f"bench-tx-{run}",
    }
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "segstream", "bootstrap", "--path", str(path), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr.decode()[-2000:])
    got = orjson.loads(out.stdout)
    got["wall_seconds_with_start"] = round(wall, 2)
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with local_servers("segstream-bench-bootstrap-") as (work, bootstrap_servers, redis_port):
        path = work / "history.jsonl"
        bank = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=args.seed))
        with open(path, "wb") as f:
            for e in bank.events():
                f.write(orjson.dumps(e) + b"\n")
        runs = []
        for i in range(args.repeat):
            d = demo(args.customers, args.months, args.seed)
            b = bootstrap(path, bootstrap_servers, redis_port, i)
            runs.append(
                {
                    "demo_events_per_s": d["events_per_s"],
                    "bootstrap_events_per_s": b["events_per_s"],
                    "bootstrap_seconds": b["seconds"],
                    "bootstrap_wall_seconds_with_start": b["wall_seconds_with_start"],
                    "ratio": round(b["events_per_s"] / d["events_per_s"], 3),
                    "events": b["events"],
                }
            )
            print(runs[-1], file=sys.stderr, flush=True)
    ratios = sorted(r["ratio"] for r in runs)
    report(
        "bootstrap",
        {
            "customers": args.customers,
            "months": args.months,
            "runs": runs,
            "ratio_median": ratios[len(ratios) // 2],
            "ratio_range": [ratios[0], ratios[-1]],
            "bootstrap_seconds_range": [
                min(r["bootstrap_seconds"] for r in runs),
                max(r["bootstrap_seconds"] for r in runs),
            ],
        },
    )


if __name__ == "__main__":
    main()
