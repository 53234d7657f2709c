"""Events per second through a real worker, beside a bare consumer of the same topic.

    python bench/e2e_bench.py [--customers 50000] [--months 6] [--repeats 3] [--latency-seconds 60]

Starts its own Kafka broker and Redis on loopback. Produces the events once (streamed from
the generator, so millions fit), then:
  * bare and worker, alternating ``--repeats`` times on the same topic: an aiokafka
            consumer that only reads and JSON-decodes every event (the limit), then one
            `segstream worker` (batch ingest) on a fresh consumer group and namespace, timed
            from its first checkpoint to its last (and from process start, which includes
            torch import and the group join); the ratio per pair, its median and spread;
  * agent:  one worker with Faust's agent ingest, the same way (``--no-agent`` skips it);
  * two workers (batch ingest) on a fresh consumer group, the same way;
  * variants (``--variant NAME:KEY=VALUE,...``): one batch worker each with those
            settings, for side-by-side comparisons in the same run;
  * latency: a fresh topic fed (aiokafka, a batch per partition every 5 ms: ``paced_feed``)
            at half the one worker's measured rate, capped by ``--latency-max-rate``
            (30k: where the feed shares the worker's cores, as on a 2-core machine, half
            of the rate measured without a feed overloads the worker), or at
            ``--latency-rate``, for ``--latency-seconds`` while one worker (batch ingest)
            runs, with weekly windows (``--latency-window-days``) so that batches close
            windows and carry changes all along, not only at a month end;
            p50/p99 of ingest-to-publish of segment changes from the worker's histogram
            (bucket interpolation, as Prometheus does) and how many batches it rests on.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
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


async def bare_consumer(bootstrap: str, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    await c.start()
    got, t0 = 0, time.perf_counter()
    try:
        while got < n:
            for msgs in (await c.getmany(timeout_ms=1000, max_records=10_000)).values():
                for m in msgs:
                    orjson.loads(m.value)
                got += len(msgs)
    finally:
        await c.stop()
    return n / (time.perf_counter() - t0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the core's process), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *child_pids(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def run_workers(env: dict, k: int, workdir: Path, total: int) -> dict:
    s = settings_from(env)
    t_start = time.perf_counter()
    ws = [Worker(env, workdir).start() for _ in range(k)]
    try:
        wait_until(lambda: sum(consumed(s).values()) > 0, 300, "first batch", ws)
        t_first = time.perf_counter()
        first = sum(consumed(s).values())
        ends = end_offsets(s)
        wait_until(lambda: consumed(s) == ends, 1800, "all events", ws)
        t_end = time.perf_counter()
        m = [w.metrics() for w in ws]
        cpu = sum(cpu_seconds(w.proc.pid) for w in ws)  # since process start: includes torch import and joining
    finally:
        for w in ws:
            w.stop()
    incl_startup = total / (t_end - t_start)
    steady = first < total and t_end > t_first
    return {
        # from the first checkpoint to the last; a run too small to span two polls has no
        # steady state, and then only the rate including startup is meaningful
        "events_per_s": (total - first) / (t_end - t_first) if steady else incl_startup,
        "steady_state_measured": steady,
        "events_per_s_incl_startup": incl_startup,
        "startup_s": t_first - t_start,
        "cpu_s_per_million_events_incl_startup": round(cpu / total * 1e6, 2),
        "windows": sum(x.get("segstream_windows_closed_total", 0) for x in m),
        # where the worker's wall-clock went (summed over workers; fetch and ack_wait are waits only)
        "stage_seconds": {
            k.split("stage=")[1].rstrip("}"): round(sum(x.get(k, 0) for x in m), 2)
            for k in m[0]
            if k.startswith("segstream_worker_stage_seconds_sum")
        },
    }


def histogram_quantile(q: float, metrics: dict, name: str) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    buckets = sorted(
        (float(k.split("le=")[1].rstrip("}")), v) for k, v in metrics.items() if k.startswith(name + "_bucket")
    )
    total = buckets[-1][1]
    if not total:
        return float("nan")
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--latency-rate", type=float, help="offered events/s (default: half the worker's rate)")
    ap.add_argument("--latency-seconds", type=float, default=60.0, help="how long the latency feed lasts")
    ap.add_argument("--no-agent", action="store_true", help="skip the (slow) Faust agent ingest run")
    ap.add_argument("--repeats", type=int, default=3, help="bare/worker pairs, alternating")
    ap.add_argument("--latency-customers", type=int, default=200)
    ap.add_argument("--latency-max-rate", type=float, default=30_000.0, help="cap of the default latency rate")
    ap.add_argument("--latency-window-days", type=int, default=7, help="window length of the latency run")
    ap.add_argument("--compression", default="gzip", help="of the produced topics (segstream produce's default: gzip)")
    ap.add_argument("--latency-only", action="store_true", help="only the latency run (give --latency-rate)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="also time one batch worker with these settings, e.g. core-thread:SEGSTREAM_CORE_PROCESS=false",
    )
    args = ap.parse_args()
    if args.latency_only and not args.latency_rate:
        ap.error("--latency-only needs --latency-rate (there is no measured worker rate to halve)")
    variants = {}
    for v in args.variant:
        name, _, pairs = v.partition(":")
        variants[name] = dict(kv.split("=", 1) for kv in pairs.split(",") if kv)
    with local_servers("segstream-bench-e2e-") as (work, bootstrap, redis_port):
        figures = {} if args.latency_only else throughput(args, variants, work, bootstrap, redis_port)
        # half the worker's measured rate, capped: where the feed shares the worker's cores (the
        # 2-core VM of BENCHMARKS.md) half the rate measured without a feed overloads the worker
        rate = args.latency_rate or min(figures["batch_worker_events_per_s"] / 2, args.latency_max_rate)
        figures.update(latency(args, work, bootstrap, redis_port, rate))
        report("end_to_end", figures)


def throughput(args, variants: dict, work: Path, bootstrap: str, redis_port: int) -> dict:
    rurl = f"redis://127.0.0.1:{redis_port}/0"
    env = isolated_settings(bootstrap, rurl, centroid_prior_weight=50)
    s = settings_from(env)
    bank = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=3))
    t = time.perf_counter()
    total = publish(bank.events(), s, progress=False, compression=args.compression)
    produce_rate = total / (time.perf_counter() - t)

    def fresh(i: int, **over: str) -> dict:
        """Its own consumer group and Redis namespace: nothing of an earlier run is reused."""
        group = f"{env['SEGSTREAM_CONSUMER_GROUP']}-{i}"
        return {
            **env,
            "SEGSTREAM_INGEST": "batch",
            **over,
            "SEGSTREAM_CONSUMER_GROUP": group,
            "SEGSTREAM_NAMESPACE": group,
        }

    pairs = []
    for r in range(args.repeats):
        bare_r = asyncio.run(bare_consumer(bootstrap, s.topic_transactions, total))
        run_r = run_workers(fresh(100 + r), 1, work, total)
        pairs.append(
            {
                "bare": round(bare_r),
                "worker": round(run_r["events_per_s"]),
                "ratio": round(run_r["events_per_s"] / bare_r, 3),
                "run": run_r,
            }
        )
        print(f"  pair {r + 1}: bare {bare_r:,.0f}/s, worker {run_r['events_per_s']:,.0f}/s", flush=True)
    ratios = sorted(p["ratio"] for p in pairs)
    median_pair = sorted(pairs, key=lambda p: p["ratio"])[len(pairs) // 2]
    bare = median_pair["bare"]
    runs = {("batch", 1): median_pair["run"]}
    plan = [("agent", 1, {}), ("batch", 2, {})] + [(name, 1, over) for name, over in variants.items()]
    for i, (mode, k, over) in enumerate(plan):
        if mode == "agent" and args.no_agent:
            continue
        runs[(mode, k)] = run_workers(
            fresh(i, **({"SEGSTREAM_INGEST": "agent"} if mode == "agent" else over)), k, work, total
        )

    figures = {
        "events": total,
        "customers": args.customers,
        "compression": args.compression,
        "produce_events_per_s": round(produce_rate),
        "bare_consumer_events_per_s": round(bare),
        "batch_size": s.batch_size,
        "agent_worker_events_per_s": round(runs[("agent", 1)]["events_per_s"]) if ("agent", 1) in runs else None,
        "batch_worker_events_per_s": round(runs[("batch", 1)]["events_per_s"]),
        "batch_worker_events_per_s_incl_startup": round(runs[("batch", 1)]["events_per_s_incl_startup"]),
        "worker_startup_s": round(runs[("batch", 1)]["startup_s"], 1),
        "worker_cpu_s_per_million_events_incl_startup": [
            p["run"]["cpu_s_per_million_events_incl_startup"] for p in pairs
        ],
        "ratio_agent_worker_to_bare": round(runs[("agent", 1)]["events_per_s"] / bare, 3)
        if ("agent", 1) in runs
        else None,
        "ratio_batch_worker_to_bare": round(runs[("batch", 1)]["events_per_s"] / bare, 3),
        "ratio_batch_worker_to_bare_pairs": [p["ratio"] for p in pairs],
        "ratio_batch_worker_to_bare_median_min_max": [ratios[len(ratios) // 2], ratios[0], ratios[-1]],
        "bare_phase_seconds": [round(total / p["bare"], 1) for p in pairs],
        "worker_phase_seconds": [round(total / p["run"]["events_per_s"], 1) for p in pairs],
        "two_batch_workers_events_per_s": round(runs[("batch", 2)]["events_per_s"]),
        "ratio_two_to_one_batch_worker": round(
            runs[("batch", 2)]["events_per_s"] / runs[("batch", 1)]["events_per_s"], 2
        ),
        "windows_closed": runs[("batch", 1)]["windows"],
        "batch_worker_stage_seconds": runs[("batch", 1)]["stage_seconds"],
    }
    for name in variants:
        figures[f"variant_{name}_events_per_s"] = round(runs[(name, 1)]["events_per_s"])
        figures[f"ratio_variant_{name}_to_bare"] = round(runs[(name, 1)]["events_per_s"] / bare, 3)
    return figures


async def paced_feed(s, payloads: list[tuple[bytes, bytes]], rate: float, compression: str) -> int:
    """Send ``payloads`` at ``rate`` records/s with aiokafka, a batch per partition every few
    milliseconds, keyed and partitioned as Kafka's default partitioner does. kafka-python's
    per-record ``send`` tops out near 30k records/s on this machine; this feed offers several
    times that, so the latency can be taken nearer the worker's capacity."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    from segstream.stream_app.kafka_config import aiokafka_options, ensure_topics

    ensure_topics(s)
    topic, partitioner = s.topic_transactions, DefaultPartitioner()
    producer = AIOKafkaProducer(
        **aiokafka_options(s), acks="all", compression_type=compression, max_batch_size=4 << 20, linger_ms=0
    )
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        step = max(1, int(rate * 0.005))  # records per 5 ms
        start, sent, pending = time.perf_counter(), 0, []
        for lo in range(0, len(payloads), step):
            batches: dict[int, object] = {}
            for key, value in payloads[lo : lo + step]:
                p = partitioner(key, parts, parts)
                batch = batches.setdefault(p, producer.create_batch())
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send, start another
                    pending.append(await producer.send_batch(batch, topic, partition=p))
                    batch = batches[p] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for p, batch in batches.items():
                pending.append(await producer.send_batch(batch, topic, partition=p))
            sent += min(step, len(payloads) - lo)
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def latency(args, work: Path, bootstrap: str, redis_port: int, rate: float) -> dict:
    # latency at a fixed offered rate below saturation, long enough for ~1,000 batches with
    # changes: short windows (weekly by default), so the watermark closes some all along
    env3 = isolated_settings(
        bootstrap,
        f"redis://127.0.0.1:{redis_port}/15",
        centroid_prior_weight=50,
        ingest="batch",
        window_months=0,
        window_seconds=86400 * args.latency_window_days,
        allowed_lateness_s=3600,
    )
    s3 = settings_from(env3)
    # ~21 events a customer-month; at most 400 months, so the feed starts after 1970 (more customers instead)
    need = rate * args.latency_seconds / 21
    lat_customers = max(args.latency_customers, math.ceil(need / 400))
    months = max(2, math.ceil(need / lat_customers))
    # ending before today: the worker refuses events stamped in the future
    start_year = datetime.now(UTC).year - 1 - months // 12
    lat = SyntheticBank(GeneratorConfig(customers=lat_customers, months=months, seed=4, start_year=start_year))
    payloads = encoded(lat.events())  # encoded beforehand: the feed's own JSON work would cap its rate
    w = Worker(env3, work).start()
    try:
        publish([], s3, progress=False, raw=payloads[:1])
        wait_until(lambda: sum(consumed(s3).values()) >= 1, 300, "latency worker ready", [w])
        t_lat = time.perf_counter()
        # lz4: the feed must keep up with the offered rate, on the cores the worker uses too
        lat_events = 1 + asyncio.run(paced_feed(s3, payloads[1:], rate, "lz4"))
        offered = (lat_events - 1) / (time.perf_counter() - t_lat)
        ends = end_offsets(s3)
        wait_until(lambda: consumed(s3) == ends, 600, "latency run drained", [w])
        m = w.metrics()
    finally:
        w.stop()
    name = "segstream_end_to_end_seconds"
    return {
        "latency_events": lat_events,
        "latency_customers": lat_customers,
        "latency_months": months,
        "latency_window_days": args.latency_window_days,
        "latency_target_events_per_s": round(rate),
        "latency_offered_events_per_s": round(offered),
        "latency_feed_seconds": round((lat_events - 1) / offered, 1),
        "latency_batches_with_changes": int(m.get(name + "_count", 0)),
        "latency_p50_s": round(histogram_quantile(0.5, m, name), 3),
        "latency_p99_s": round(histogram_quantile(0.99, m, name), 3),
    }


if __name__ == "__main__":
    main()
