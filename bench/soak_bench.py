"""A soak run: N events at a fixed rate through one worker; is memory flat and lag bounded?

    python bench/soak_bench.py [--events 1000000] [--rate 15000]

Starts its own Kafka and Redis on loopback, one worker (batch ingest), and a producer
at the given rate. Samples the worker's RSS (with its child processes, from /proc) and its consumer lag
(from /metrics) every few seconds; prints RSS at start (after the first batch) and end.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from common import encoded, local_servers, report  # noqa: I001

from segstream.producers.kafka_producer import publish
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from tests.integration.harness import (
    Worker,
    child_pids,
    consumed,
    end_offsets,
    isolated_settings,
    settings_from,
    wait_until,
)


def rss_mib(pid: int) -> float:
    """Resident memory of the worker and its child processes (the core runs in one)."""
    total = 0.0
    for p in [pid, *child_pids(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=15_000)
    ap.add_argument("--customers", type=int, default=20_000)
    args = ap.parse_args()
    months = max(2, round(args.events / (args.customers * 21)) + 1)
    bank = SyntheticBank(GeneratorConfig(customers=args.customers, months=months, seed=8))
    payloads = encoded(bank.events(), limit=args.events)
    with local_servers("segstream-soak-") as (work, bootstrap, redis_port):
        env = isolated_settings(
            bootstrap, f"redis://127.0.0.1:{redis_port}/0", ingest="batch", centroid_prior_weight=50
        )
        s = settings_from(env)
        publish([], s, progress=False, raw=payloads[:1])
        w = Worker(env, work).start()
        samples: list[tuple[float, float, float]] = []
        try:
            wait_until(lambda: sum(consumed(s).values()) >= 1, 300, "worker ready", [w])
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    try:
                        m = w.metrics()
                        lag = sum(v for k, v in m.items() if k.startswith("segstream_consumer_lag_messages"))
                    except Exception:
                        lag = float("nan")
                    samples.append((time.monotonic(), rss_mib(w.proc.pid), lag))
                    done.wait(2)

            t = threading.Thread(target=sample, daemon=True)
            t.start()
            t0 = time.perf_counter()
            publish([], s, progress=False, rate=args.rate, raw=payloads[1:])
            produce_s = time.perf_counter() - t0
            ends = end_offsets(s)
            wait_until(lambda: consumed(s) == ends, 1800, "drain", [w])
            drain_s = time.perf_counter() - t0 - produce_s
            done.set()
            t.join()
        finally:
            w.stop()
        lags = [x[2] for x in samples if x[2] == x[2]]
        figures = {
            "events": len(payloads),
            "offered_events_per_s": args.rate,
            "achieved_produce_events_per_s": round((len(payloads) - 1) / produce_s),
            "drain_after_producer_s": round(drain_s, 1),
            "rss_mib_start": round(samples[0][1], 1),
            # a leak keeps growing; a working set (open windows of every customer) levels off
            "rss_mib_at_25_50_75_pct": [round(samples[int(len(samples) * q)][1], 1) for q in (0.25, 0.5, 0.75)],
            "rss_mib_end": round(samples[-1][1], 1),
            "rss_mib_max": round(max(x[1] for x in samples), 1),
            "lag_max_messages": int(max(lags)) if lags else None,
            "lag_end_messages": int(lags[-1]) if lags else None,
            "samples": len(samples),
        }
        report("soak", figures)


if __name__ == "__main__":
    main()
