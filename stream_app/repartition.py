"""After the transactions topic gains partitions: move each customer's open windows to the
partition its records go to now, as part of ``segstream recover``.

Open windows live per partition (state/redis_windows.py), and a customer's month must be
counted in one of them: split over two, the part that closes second would be dropped as a
replay. So a worker that sees a new partition count halts every partition (positions.py),
and this step, run with the workers halted, makes the windows match the new count:

* each open window row of a customer who now belongs to another partition is merged into
  the same window of that partition (counts and spend add), with the window's dedup digests;
* records after a partition's checkpoint whose customer now belongs elsewhere (sent before
  the producers saw the new count) are added to that partition's open windows by the
  worker's own decode and window rules, and the old partition marks where they end: its
  worker reads past them (re-publishing them instead would put them behind the new
  partition's later records, where its watermark finds them late);
* the new count is recorded and the workers resume by themselves.

It waits ``repartition_settle_s`` after a worker first saw the new count, so that no
producer still sends by the old one. Both steps are safe to run again after a crash.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from segstream.config import Settings
from segstream.core.personality import CATEGORIES
from segstream.core.windows import WindowAggregator, WindowRows
from segstream.errors import ConfigError, Repartitioned
from segstream.state.redis_windows import WindowCheckpoints

from .kafka_config import kafka_python_options
from .partitioner import Partitioner
from .positions import LogBounds


@dataclass
class Moved:
    partitions_before: int
    partitions_after: int
    records: int  # unread records of an old partition added to their customer's new partition
    rows: int  # open window rows moved (a customer in one window)
    customers: int
    behind: int  # rows moved into a month older than any the target still had open: it may have closed it


def repartition(s: Settings, cp: WindowCheckpoints, logs: list[LogBounds], *, dry_run: bool) -> Moved | None:
    """Move open windows and misplaced records to the partitions the topic's new count sends them
    to; None when the count is the one the windows were cut for. ``cp`` must read rows (made with
    the categories' count)."""
    topic, count = s.topic_transactions, len(logs)
    recorded = cp.layout(topic, count, record=not dry_run)
    if recorded == count:
        return None
    now = time.time()
    waited = 0.0 if dry_run else max(now - cp.layout_changed_at(topic, now), 0.0)
    if waited < s.repartition_settle_s and not dry_run:
        raise Repartitioned(
            f"{topic} went from {recorded} to {count} partitions {waited:.0f} s ago: producers may still send "
            f"by the old count; run `segstream recover` again in {s.repartition_settle_s - waited:.0f} s"
        )
    home, bounds = Partitioner(count), {g.partition: g for g in logs}
    checkpointed = {g.partition: g for g in logs if cp.meta(topic, g.partition) is not None}
    _check_partitioner(s, [g for g in logs if g.partition >= recorded], home)
    tails = _tails(s, cp, checkpointed, home)
    taken = sum(map(len, tails.values()))
    rows = behind = 0
    moved: set[str] = set()
    for p in checkpointed:
        _, _, windows = cp.load(topic, p)
        for w in windows:
            targets: dict[int, list[int]] = defaultdict(list)
            for i, c in enumerate(w.customers):
                q = home(c.encode())
                if q != p:
                    targets[q].append(i)
            for q, idx in targets.items():
                rows += len(idx)
                moved.update(w.customers[i] for i in idx)
                if dry_run:
                    continue
                if cp.meta(topic, q) is None:
                    cp.reposition(topic, q, bounds[q].start - 1)
                opened = cp.open_windows(topic, q)
                behind += len(idx) if opened and w.index < min(opened) else 0
                cp.move_rows(topic, p, q, WindowRows(w.index, [w.customers[i] for i in idx], w.records[idx], w.keys))
            if not dry_run:
                cp.drop_rows(topic, p, w.index, [w.customers[i] for idx in targets.values() for i in idx])
    if not dry_run:
        _apply_tails(s, cp, tails, bounds)
        for p, log in checkpointed.items():
            cp.mark_moved(topic, p, log.end, count)
        cp.set_layout(topic, count)
    return Moved(recorded, count, taken, rows, len(moved), behind)


def records_between(consumer, topic: str, partition: int, start: int, stop: int):
    """The partition's records from offset ``start`` up to (not including) ``stop``."""
    from kafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    while consumer.position(tp) < stop:
        for r in consumer.poll(timeout_ms=1000, max_records=5000).get(tp, []):
            if r.offset < stop:
                yield r


def _check_partitioner(s: Settings, new: list[LogBounds], home: Partitioner, sample: int = 1000) -> None:
    """Moving a customer to the partition murmur2 names is right only if the producers partition so:
    the first records of the new partitions must all be where murmur2 puts them."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**kafka_python_options(s), enable_auto_commit=False)
    try:
        for log in new:
            stop = min(log.end, log.start + sample)
            for r in records_between(consumer, s.topic_transactions, log.partition, log.start, stop):
                if r.key is not None and home(r.key) != log.partition:
                    raise ConfigError(
                        f"{s.topic_transactions}[{log.partition}] holds a record keyed {r.key[:40]!r} that Kafka's "
                        f"default partitioner puts in partition {home(r.key)}: the producers partition otherwise "
                        "(librdkafka: set partitioner=murmur2_random), and moving windows by murmur2 would split "
                        "customers; nothing was moved"
                    )
    finally:
        consumer.close()


def _tails(s: Settings, cp: WindowCheckpoints, checkpointed: dict[int, LogBounds], home: Partitioner) -> dict:
    """Each old partition's unread records whose customer now belongs elsewhere, by the partition
    they belong to: [(broker timestamp, source partition, offset, key, value)]."""
    from kafka import KafkaConsumer

    topic, out = s.topic_transactions, defaultdict(list)
    consumer = KafkaConsumer(**kafka_python_options(s), enable_auto_commit=False)
    try:
        for p, log in checkpointed.items():
            start = cp.offset(topic, p) + 1
            if cp.moved_below(topic, p)[1] == home.partitions or start >= log.end:
                continue
            for r in records_between(consumer, topic, p, max(start, log.start), log.end):
                if r.key is not None and home(r.key) != p:
                    out[home(r.key)].append((r.timestamp, p, r.offset, r.key, r.value))
    finally:
        consumer.close()
    return {q: sorted(records) for q, records in out.items()}  # in the order the broker took them


def _apply_tails(s: Settings, cp: WindowCheckpoints, tails: dict, bounds: dict[int, LogBounds]) -> int:
    """Add misplaced records to their new partition's open windows through the worker's own decode
    and window rules (dedup digests make a rerun count nothing twice); what those rules refuse is
    dead-lettered as the worker would. Returns the records taken."""
    from kafka import KafkaProducer

    from segstream.assembly import event_limits, window_spec
    from segstream.core.events import EventRejected, dead_letter
    from segstream.core.pipeline import ingest_payloads
    from segstream.state.forgotten import ForgottenCustomers

    topic, taken = s.topic_transactions, 0
    limits, forgotten = event_limits(s), ForgottenCustomers(cp.r, s.erasure_namespace, s.redis_prefix)
    late = EventRejected("late:window_closed", "the watermark had passed the end of its window")
    dlq = KafkaProducer(**kafka_python_options(s), acks="all")
    try:
        for q, records in tails.items():
            if cp.meta(topic, q) is None:
                cp.reposition(topic, q, bounds[q].start - 1)
            offset, max_event_time, windows = cp.load(topic, q)
            leaders = cp.leaders(topic, q)
            # the partition's clock must not move: its own unread records come from the same weeks, and
            # would be late behind these; a quorum no number of customers reaches holds it where it is
            agg = WindowAggregator(window_spec(s), len(CATEGORIES), s.allowed_lateness_s, quorum=sys.maxsize)
            agg.restore(windows, max_event_time, leaders)
            values, keys = [r[4] for r in records], [r[3] for r in records]
            ing = ingest_payloads(agg, values, limits, keys, withhold=forgotten.withhold)
            for i, err in ing.rejected + [(i, late) for i in ing.late_positions()]:
                bad = dead_letter(
                    values[i], err, source_topic=topic, source_partition=records[i][1], source_offset=records[i][2]
                )
                dlq.send(s.topic_dlq, key=bad.reason.encode(), value=bad.model_dump_json().encode())
            deltas, closed = agg.checkpoint_delta()
            cp.save(topic, q, offset, max_event_time, deltas, closed, agg.window_numbers, leaders=leaders)
            taken += len(records)
        dlq.flush()
    finally:
        dlq.close()
    return taken
