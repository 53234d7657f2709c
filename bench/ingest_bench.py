"""The worker's processing without Kafka: payloads through StreamProcessor into a real Redis.

    python bench/ingest_bench.py [--customers 4000] [--months 6] [--partitions 6] [--batch 1024 8192]

Same payloads as the end-to-end bench, split by customer over partitions as Kafka would,
fed in batches of the given sizes to ``StreamProcessor.process`` then ``checkpoint`` (what
the worker runs per batch). The limit beside it: ``orjson.loads`` of every payload, the
bare consumer's own work per event. Starts its own redis-server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import orjson
from common import encoded, report  # noqa: I001

from segstream.config import Settings
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.processor import StreamProcessor
from tests.integration.servers import redis_server


def worker_batches(payloads: list[tuple[bytes, bytes]], partitions: int, batch: int) -> list[list[PartitionBatch]]:
    """Worker batches of ``batch`` records, a slice of every partition in each, in offset order."""
    parts: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for key, value in payloads:
        parts[zlib.crc32(key) % partitions].append(value)
    per = max(1, batch // partitions)
    out, start = [], 0
    while any(start < len(v) for v in parts.values()):
        out.append(
            [
                PartitionBatch(p, list(range(start, start + len(v[start : start + per]))), v[start : start + per])
                for p, v in parts.items()
                if start < len(v)
            ]
        )
        start += per
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=4000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch", type=int, nargs="+", default=[1024, 8192])
    args = ap.parse_args()
    payloads = encoded(SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=3)).events())
    n = len(payloads)
    t = time.perf_counter()
    for _, v in payloads:
        orjson.loads(v)
    bare = n / (time.perf_counter() - t)
    figures: dict = {"events": n, "orjson_only_events_per_s": round(bare)}
    srv = redis_server(Path(tempfile.mkdtemp(prefix="segstream-bench-ingest-")))
    srv.start()
    try:
        for db, size in enumerate(args.batch):
            s = Settings(redis_url=f"redis://127.0.0.1:{srv.port}/{db}", centroid_prior_weight=50, batch_size=size)
            proc = StreamProcessor(s)
            spent = {"process": 0.0, "checkpoint": 0.0}
            windows = 0
            for wb in worker_batches(payloads, args.partitions, size):
                t0 = time.perf_counter()
                windows += proc.process(wb).windows_closed
                t1 = time.perf_counter()
                proc.checkpoint()
                spent["process"] += t1 - t0
                spent["checkpoint"] += time.perf_counter() - t1
            rate = n / sum(spent.values())
            figures[f"batch_{size}_events_per_s"] = round(rate)
            figures[f"batch_{size}_process_us_per_event"] = round(spent["process"] / n * 1e6, 2)
            figures[f"batch_{size}_checkpoint_us_per_event"] = round(spent["checkpoint"] / n * 1e6, 2)
            figures[f"batch_{size}_ratio_to_orjson_only"] = round(rate / bare, 3)
            figures["windows_closed"] = windows
    finally:
        srv.stop()
        srv.wipe()
    report("ingest", figures)


if __name__ == "__main__":
    main()
