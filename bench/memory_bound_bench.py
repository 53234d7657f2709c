"""The worker's memory bound under a month of many distinct customers (issue 28).

Publishes one month with one event for each of ``--customers`` distinct customers, runs one
worker with ``SEGSTREAM_MAX_CORE_MEMORY_MB`` set, and samples the resident memory of the
worker's core process every half second until the worker has paused at its bound (or read
everything). Prints the peak against the bound, and how many events were read.

    python bench/memory_bound_bench.py --customers 2000000 --bound-mb 1024
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from common import local_servers, report  # noqa: I001


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=2_000_000)
    ap.add_argument("--bound-mb", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--trace", action="store_true", help="print the last samples (seconds, core MB, open windows)")
    args = ap.parse_args()
    from kafka import KafkaProducer

    from tests.integration.harness import Worker, child_pids, isolated_settings, settings_from

    with local_servers("segstream-bench-memory-") as (work, bootstrap, redis_port):
        env = isolated_settings(
            bootstrap, f"redis://127.0.0.1:{redis_port}/0", max_core_memory_mb=args.bound_mb, topic_partitions=4
        )
        s = settings_from(env)
        from segstream.stream_app.kafka_config import ensure_topics

        ensure_topics(s)
        p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20, compression_type="lz4")
        run = uuid.uuid4().hex[:4]
        for i in range(args.customers):
            cid = f"M{run}{i:09d}"
            p.send(
                s.topic_transactions,
                key=cid.encode(),
                value=(
                    f'{{"event_id":"e{i}","customer_id":"{cid}","timestamp":"2024-03-05T10:00:00+00:00",'
                    f'"amount":12.5,"currency":"EUR","category":"books","income":3000.0}}'
                ).encode(),
            )
        p.flush()
        p.close()
        w = Worker(env, work).start()
        peak, core, bounded_at, trace = 0.0, None, None, []
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < args.seconds:
                time.sleep(0.5)
                if core is None:
                    kids = [k for k in child_pids(w.proc.pid) if k != w.proc.pid]
                    core = max(kids, key=rss_mb) if kids else None
                    continue
                peak = max(peak, rss_mb(core))
                m = w.metrics()
                trace.append(
                    (round(time.monotonic() - t0, 1), round(rss_mb(core)), int(m.get("segstream_open_windows", 0)))
                )
                if m.get("segstream_memory_bound", 0) == 1 and bounded_at is None:
                    bounded_at = time.monotonic()
                if bounded_at is not None and time.monotonic() - bounded_at > 20:
                    break
                if m.get("segstream_events_total{outcome=ok}", 0) >= args.customers:
                    break
            m = w.metrics()
        finally:
            w.stop()
    report(
        "memory_bound",
        {
            "customers": args.customers,
            "bound_mb": args.bound_mb,
            "core_rss_peak_mb": round(peak, 1),
            "paused_at_bound": bounded_at is not None,
            "events_read": int(m.get("segstream_events_total{outcome=ok}", 0)),
            "open_windows": int(m.get("segstream_open_windows", 0)),
        },
    )
    print("seconds, core MB, open windows:", trace[-60:] if args.trace else trace[-1:], file=sys.stderr)
    sys.exit(0 if peak <= args.bound_mb * 1.1 else 1)


if __name__ == "__main__":
    main()
