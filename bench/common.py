"""What every bench script shares: the machine line, JSON output, real windows to feed."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segstream.core.windows import ClosedWindow  # noqa: E402
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank  # noqa: E402


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def report(name: str, figures: dict) -> None:
    """Human lines, then one JSON line (what BENCHMARKS.md quotes)."""
    print(f"# {name} on {machine()}")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(json.dumps({"bench": name, "machine": machine(), **figures}))


def windows_for(customers: int, months: int, seed: int = 0) -> list[list[ClosedWindow]]:
    """Real closed windows from the synthetic bank, grouped by month."""
    bank = SyntheticBank(GeneratorConfig(customers=customers, months=months, seed=seed))
    spend, active = bank.monthly_spend()
    spend = spend * bank.income[:, None, None]
    out = []
    for m in range(months):
        rows = np.flatnonzero(active[:, m])
        out.append(
            [
                ClosedWindow(str(bank.customer_ids[i]), m, m * 1.0, m + 1.0, spend[i, m], 20, float(bank.income[i]))
                for i in rows
            ]
        )
    return out


@contextmanager
def local_servers(prefix: str):
    """A Kafka broker and a Redis server on loopback for one bench run; yields (bootstrap, redis_port)."""
    from tests.integration.servers import kafka_server, redis_server

    work = Path(tempfile.mkdtemp(prefix=prefix))
    kafka, redis = kafka_server(work / "kafka"), redis_server(work / "redis")
    kafka.start()
    redis.start()
    try:
        yield work, f"127.0.0.1:{kafka.port}", redis.port
    finally:
        kafka.stop()
        redis.stop()
        kafka.wipe()
        redis.wipe()


@contextmanager
def redis_url_or_local(url: str | None, prefix: str, cluster: bool = False):
    """The Redis to bench against: ``url`` if given, else a redis-server (or, with ``cluster``, a
    three-master cluster with replicas) started here for the run."""
    if url:
        yield url
        return
    from tests.integration.servers import redis_cluster, redis_server

    srv = (redis_cluster if cluster else redis_server)(Path(tempfile.mkdtemp(prefix=prefix)))
    srv.start()
    try:
        yield f"redis://127.0.0.1:{srv.port}/0"
    finally:
        srv.stop()
        srv.wipe()


def encoded(events, limit: int | None = None) -> list[tuple[bytes, bytes]]:
    """(key, value) payloads as the producer sends them. msgspec, not orjson: an orjson result
    keeps its 4 KiB buffer (measured with tracemalloc: 4,098 B held per 200-byte event against
    280 B), and this list holds millions of them."""
    out = []
    encode = msgspec.json.encode
    for e in events:
        out.append((e["customer_id"].encode(), encode(e)))
        if limit and len(out) >= limit:
            break
    return out
