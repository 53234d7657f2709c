"""Month end: every customer's window closes at once. How long until all are applied?

    python bench/month_end_bench.py --customers 100000 1000000      # starts its own redis-server

For each size: N customers each get one event in March (ingested and checkpointed as the
worker does, not timed), then the three events that move the partition's clock past March's
end plus the allowed lateness arrive in one batch. Timed: that batch through the worker's
core (``StreamProcessor``: decode, close N windows, one LSTM step per 8,192 (the batch size), the Redis
commit per 8,192) and the window checkpoint after it, with Redis's CPU seconds and the
core's resident memory. Change events are not published here (no broker): a first window is
a warm-up window and announces nothing, so the broker's share of this month end is nil.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from common import redis_url_or_local, report

from segstream.config import Settings
from segstream.gc_tuning import tune_gc
from segstream.state.redis_client import connect
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.processor import StreamProcessor

MARCH = datetime(2024, 3, 1, tzinfo=UTC)


def event(i: int, when: datetime, tag: str = "m") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{tag}{i}",
            "customer_id": f"C{i:08d}",
            "timestamp": when.isoformat(),
            "amount": 10.0 + i % 90,
            "currency": "EUR",
            "category": ("groceries", "books", "travel", "restaurants")[i % 4],
            "income": 3000.0,
        }
    )


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def redis_cpu(client) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def month_end(url: str, customers: int, batch: int) -> dict:
    s = Settings(redis_url=url, namespace=f"monthend-{customers}", batch_size=batch)
    client = connect(url)
    proc = StreamProcessor(s)
    tune_gc(s.gc_threshold)  # as the worker's core process does once its processor is built
    offset, open_windows = 0, 0
    t_ingest = time.perf_counter()
    for lo in range(0, customers, batch):
        values = [
            event(i, MARCH + timedelta(seconds=20 * i % (27 * 86400))) for i in range(lo, min(lo + batch, customers))
        ]
        open_windows = proc.process([PartitionBatch(0, list(range(offset, offset + len(values))), values)]).open_windows
        proc.checkpoint()
        offset += len(values)
    ingest_s = time.perf_counter() - t_ingest
    after = MARCH + timedelta(days=31 + s.allowed_lateness_s / 86400 + 1)  # past March's end plus the lateness
    trigger = [event(customers + k, after, "late") for k in range(s.watermark_quorum)]
    cpu0, rss0 = redis_cpu(client), rss_mib()
    t = time.perf_counter()
    out = proc.process([PartitionBatch(0, list(range(offset, offset + len(trigger))), trigger)])
    proc.checkpoint()
    seconds = time.perf_counter() - t
    return {
        "customers": customers,
        "open_windows_before": open_windows,
        "windows_closed": out.windows_closed,
        "windows_applied": out.engine.applied,
        "seconds_to_apply_all": round(seconds, 3),
        "windows_per_s": round(out.windows_closed / seconds),
        "us_per_window": round(1e6 * seconds / max(out.windows_closed, 1), 2),
        "redis_cpu_s": round(redis_cpu(client) - cpu0, 2),
        "core_rss_mib_before": round(rss0),
        "core_rss_mib_after": round(rss_mib()),
        "redis_used_memory_mib": round(client.info("memory")["used_memory"] / 2**20),
        "ingest_events_per_s_untimed_part": round(customers / ingest_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--batch", type=int, default=8192, help="records per poll while the month fills (the worker's)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per size (a fresh namespace each)")
    ap.add_argument("--redis-url")
    args = ap.parse_args()
    with redis_url_or_local(args.redis_url, "segstream-bench-monthend-") as url:
        figures: dict = {}
        for n in args.customers:
            runs = []
            for r in range(args.repeats):
                connect(url).flushdb()
                runs.append(month_end(url, n, args.batch))
                print(f"  {n} customers, run {r + 1}: {runs[-1]}", flush=True)
            secs = sorted(x["seconds_to_apply_all"] for x in runs)
            figures[f"seconds_{n}"] = {"median": secs[len(secs) // 2], "min": secs[0], "max": secs[-1]}
            figures[f"us_per_window_{n}"] = sorted(x["us_per_window"] for x in runs)[len(runs) // 2]  # median
            figures[f"runs_{n}"] = runs
        report("month_end", figures)


if __name__ == "__main__":
    main()
