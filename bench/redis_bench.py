"""Customer states read+written per second through the Redis store, beside redis-benchmark.

    python bench/redis_bench.py [--customers 100000 1000000] [--redis-url URL] [--cluster]

Starts its own redis-server on loopback (scripts/redis-local), or with ``--cluster`` a
Redis Cluster of three masters with replicas (scripts/redis-cluster-local), unless
given a URL.
The limit: redis-benchmark's pipelined GET and SET of a value the size of one
state record, on the same server in the same run; a customer state costs one of
each, so the limit in states/s is 1 / (1/GET + 1/SET).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from urllib.parse import urlparse

import numpy as np
from common import redis_url_or_local, report  # noqa: I001
from redis.cluster import RedisCluster

from segstream.config import Settings
from segstream.core.ports import StateBatch
from segstream.models.artefact import ModelArtefact
from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore


def redis_benchmark(host: str, port: int, size: int, n: int, pipeline: int, cluster: bool) -> dict[str, float]:
    out = subprocess.run(
        [
            "redis-benchmark",
            *(["--cluster"] if cluster else []),
            "-h",
            host,
            "-p",
            str(port),
            "-t",
            "set,get",
            "-n",
            str(n),
            "-P",
            str(pipeline),
            "-d",
            str(size),
            "-r",
            "1000000",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(SET|GET): ([\d.]+) requests per second", out)}


def states(n: int, hidden: int, window: int, rng, flip_rate: float = 0.05) -> StateBatch:
    """Plausible states: most customers keep their segment (the demo's flip rate is ~5%)."""
    b = StateBatch.empty(n, hidden)
    b.h[:] = rng.normal(0, 0.3, (n, hidden))
    b.c[:] = rng.normal(0, 0.3, (n, hidden))
    b.segment[:] = np.arange(n) % 20
    b.prev_segment[:] = np.where(rng.random(n) < flip_rate, (b.segment + 1) % 20, b.segment)
    b.last_window[:] = window
    b.n_windows[:] = window + 1
    return b


def store_rate(store: RedisStateStore, customers: int, batch: int, rounds: int, rng) -> float:
    ids = [f"C{i:07d}" for i in range(customers)]
    t = time.perf_counter()
    n = 0
    for w in range(1, rounds + 1):
        for i in range(0, customers, batch):
            chunk = ids[i : i + batch]
            store.load(chunk)
            store.commit(chunk, states(len(chunk), store.hidden_size, w, rng))
            n += len(chunk)
    return n / (time.perf_counter() - t)


def used_memory(r) -> int:
    """Bytes Redis holds: on a cluster, summed over the masters (replicas hold copies)."""
    if isinstance(r, RedisCluster):
        info = r.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return sum(v["used_memory"] for v in info.values())
    return r.info("memory")["used_memory"]


def bytes_per_customer(store: RedisStateStore, customers: int, batch: int, rng, windows: int = 1) -> float:
    """Redis memory per customer after ``windows`` windows each (a trajectory fills with them)."""
    r = store.r
    r.flushdb()
    store.init_centroids(np.zeros((20, store.hidden_size)), 1.0)
    before = used_memory(r)
    for w in range(windows):
        for i in range(0, customers, 10_000):
            ids = [f"C{j:07d}" for j in range(i, min(i + 10_000, customers))]
            store.commit(ids, states(len(ids), store.hidden_size, w, rng))
    return (used_memory(r) - before) / customers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rate-customers", type=int, default=50_000, help="customers in the read+write rate run")
    ap.add_argument("--benchmark-requests", type=int, default=1_000_000)
    ap.add_argument("--redis-url")
    ap.add_argument(
        "--history", type=int, default=0, help="trajectory windows kept per customer (the worker's default is 12)"
    )
    ap.add_argument(
        "--windows", type=int, default=1, help="windows per customer before memory is read (history fills up)"
    )
    ap.add_argument("--cluster", action="store_true", help="a Redis Cluster (three masters, a replica each)")
    ap.add_argument("--groups", type=int, default=16, help="slot groups on a cluster (SEGSTREAM_REDIS_CLUSTER_GROUPS)")
    ap.add_argument(
        "--buckets",
        type=int,
        default=Settings().redis_state_buckets,
        help="state hashes (SEGSTREAM_REDIS_STATE_BUCKETS)",
    )
    args = ap.parse_args()
    with redis_url_or_local(args.redis_url, "segstream-bench-redis-", cluster=args.cluster) as url:
        art = ModelArtefact.load()
        client = connect(url, cluster=args.cluster)
        client.flushdb()
        store = RedisStateStore(
            client, art.hidden_size, art.version, history=args.history, groups=args.groups, buckets=args.buckets
        )
        store.init_centroids(art.centroids, 50.0)
        rng = np.random.default_rng(0)
        u = urlparse(url)
        limit = redis_benchmark(
            u.hostname, u.port, store.dtype.itemsize, args.benchmark_requests, args.batch, args.cluster
        )
        ours = store_rate(store, args.rate_customers, args.batch, 3, rng)
        pair = 1 / (1 / limit["GET"] + 1 / limit["SET"])
        figures = {
            "redis": f"cluster, 3 masters + 3 replicas, {store.groups} slot groups" if args.cluster else "one server",
            "history_windows": args.history,
            "windows_per_customer_for_memory": args.windows,
            "record_bytes": store.dtype.itemsize,
            "state_buckets": store.buckets,
            "redis_benchmark_get_per_s": round(limit["GET"]),
            "redis_benchmark_set_per_s": round(limit["SET"]),
            "limit_states_per_s": round(pair),
            "store_states_per_s": round(ours),
            "ratio_to_limit": round(ours / pair, 3),
        }
        for n in args.customers:
            figures[f"redis_bytes_per_customer_{n}"] = round(
                bytes_per_customer(store, n, args.batch, rng, args.windows), 1
            )
            # with n customers stored, does a batch cost more? (it should not: keyed reads)
            figures[f"store_states_per_s_with_{n}_stored"] = round(
                store_rate(store, min(n, args.rate_customers), args.batch, 2, rng)
            )
        report("redis_state", figures)


if __name__ == "__main__":
    main()
