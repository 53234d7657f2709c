"""End to end, this tree's worker against another checkout's, on one topic, alternating.

    git worktree add /tmp/prev <commit>
    python bench/e2e_versions.py --against /tmp/prev [--customers 50000] [--rounds 2]

The end-to-end figure of one version (worker over bare consumer, bench/e2e_bench.py) moves
with the machine from run to run; two versions are compared here in one run instead: the
events are produced once, then each round times one worker of each checkout (batch ingest,
a fresh consumer group and namespace each) as e2e_bench.py times one: from its first checkpoint
to the topic's end.
The ratio per round and its spread are printed. Starts its own Kafka broker and Redis.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from checkout_env import checkout_env
from common import ROOT, local_servers, report  # noqa: I001
from e2e_bench import run_workers

from segstream.producers.kafka_producer import publish
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from tests.integration.harness import isolated_settings, settings_from


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", type=Path, required=True, help="another checkout (e.g. a git worktree)")
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with local_servers("segstream-bench-e2e-versions-") as (work, bootstrap, redis_port):
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{redis_port}/0", centroid_prior_weight=50)
        bank = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=3))
        total = publish(bank.events(), settings_from(env), progress=False, compression="gzip")
        figures: dict = {"against": str(args.against.resolve()), "events": total}
        ratios, run = [], 0
        for r in range(1, args.rounds + 1):
            rates = {}
            for name, tree in (("other", args.against.resolve()), ("this", ROOT)):
                run += 1
                group = f"{env['SEGSTREAM_CONSUMER_GROUP']}-{run}"
                fresh = {
                    **env,
                    "SEGSTREAM_INGEST": "batch",
                    "SEGSTREAM_CONSUMER_GROUP": group,
                    "SEGSTREAM_NAMESPACE": group,
                }
                # one worker running ``tree``'s code, from its first checkpoint to the topic's end
                rates[name] = run_workers({**fresh, **checkout_env(tree)}, 1, work, total)["events_per_s"]
            ratios.append(rates["this"] / rates["other"])
            figures[f"round_{r}"] = {**{k: round(v) for k, v in rates.items()}, "ratio": round(ratios[-1], 2)}
        figures["ratio_median"] = round(statistics.median(ratios), 2)
        figures["ratio_min_max"] = [round(min(ratios), 2), round(max(ratios), 2)]
    report("e2e_versions", figures)


if __name__ == "__main__":
    main()
