"""Forgetting a customer (issue 14, item 6) on a real Redis and broker."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer

from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.stream_app.batch import PartitionBatch
from segstream.stream_app.erasure import Eraser
from segstream.stream_app.processor import StreamProcessor

from .harness import isolated_settings, settings_from

pytestmark = pytest.mark.integration


def every_key_and_value(r) -> list[bytes]:
    out = []
    for key in r.scan_iter(count=1000):
        out.append(key)
        kind = r.type(key)
        if kind == b"string":
            out.append(r.get(key))
        elif kind == b"hash":
            for f, v in r.hgetall(key).items():
                out += [f, v]
        elif kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(r.smembers(key))
    return out


def test_forgetting_erases_every_trace_adjusts_the_model_and_withholds_a_replay(bootstrap, redis_url):
    s = settings_from(isolated_settings(bootstrap, redis_url, history_windows=24))
    events = list(SyntheticBank(GeneratorConfig(customers=60, months=9, seed=4)).events())
    payloads = [orjson.dumps(e) for e in events]
    proc = StreamProcessor(s)

    def feed(offset0: int) -> list:
        outs = []
        for i in range(0, len(payloads), 400):
            chunk = payloads[i : i + 400]
            outs.append(proc.process([PartitionBatch(0, list(range(offset0 + i, offset0 + i + len(chunk))), chunk)]))
            proc.checkpoint()
        return outs

    feed(0)
    victim = "C0000011"
    state, before = proc.store.load([victim])
    assert state.segment[0] >= 0 and state.n_windows[0] >= 4
    sizes = proc.store.segment_sizes()
    assert victim.encode() in b"".join(every_key_and_value(proc.redis))  # in open windows, state, history

    done = Eraser(s, proc.redis, proc.store).forget(victim)
    assert done.state and done.window_rows >= 1 and done.tombstone

    assert victim.encode() not in b"".join(every_key_and_value(proc.redis))
    after = proc.store.segment_sizes()
    assert after[int(state.segment[0])] == sizes[int(state.segment[0])] - 1
    assert sum(after.values()) == sum(sizes.values()) - 1
    _, stats = proc.store.load([victim])
    folds = int(state.n_windows[0])  # every window since its last reset was folded, all kept in history
    assert stats.counts.sum() == pytest.approx(before.counts.sum() - folds)
    assert stats.version == before.version + 1 and not np.array_equal(stats.sums, before.sums)

    # the tombstone: keyed by the customer, null value, on the segment-changes topic
    c = KafkaConsumer(
        s.topic_changes, bootstrap_servers=s.kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    tombstones = [m for m in c if m.value is None]
    c.close()
    assert [m.key for m in tombstones] == [victim.encode()]

    # a replay of the whole topic (a new owner without checkpoints would do this) re-creates nothing
    proc.reset()
    outs = feed(10**6)
    withheld = sum(o.outcomes["forgotten"] for o in outs)
    assert withheld == sum(1 for e in events if e["customer_id"] == victim)
    assert victim.encode() not in b"".join(every_key_and_value(proc.redis))
    assert all(ch.customer_id != victim for o in outs for ch in o.changes)

    # new consent: new events count again
    assert Eraser(s, proc.redis, proc.store).consent(victim)
    proc.checkpoint()
    assert proc.forgotten.withhold([victim]).tolist() == [False]


def test_retention_finds_customers_with_no_recent_window(bootstrap, redis_url):
    s = settings_from(isolated_settings(bootstrap, redis_url))
    proc = StreamProcessor(s)
    events = list(SyntheticBank(GeneratorConfig(customers=30, months=6, seed=8)).events())
    gone = {"C0000003", "C0000004"}
    # two customers stop after their third month
    months = sorted({e["timestamp"][:7] for e in events})
    keep = [e for e in events if e["customer_id"] not in gone or e["timestamp"][:7] <= months[2]]
    payloads = [orjson.dumps(e) for e in keep]
    proc.process([PartitionBatch(0, list(range(len(payloads))), payloads)])
    eraser = Eraser(s, proc.redis, proc.store)
    # from the events: the last month of each customer among the closed ones (the last month stays open)
    closed = months[:-1]
    last = {}
    for e in keep:
        if e["timestamp"][:7] in closed:
            last[e["customer_id"]] = max(last.get(e["customer_id"], ""), e["timestamp"][:7])
    newest = max(last.values())
    expected = {c for c, m in last.items() if closed.index(m) <= closed.index(newest) - 2}
    assert gone <= expected
    assert set(eraser.inactive(2)) == expected
    assert eraser.inactive(10) == []
