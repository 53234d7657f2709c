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

from .harness import (
    Worker,
    all_consumed,
    assert_same_states,
    change_keys,
    embedded,
    isolated_settings,
    read_topic,
    segstream_cli,
    settings_from,
    wait_until,
)

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


def assert_erased_and_the_rest_as_a_clean_run(s, events: list, victims: list[str], held: bytes) -> None:
    """No trace of the victims in Redis (``held``: every key and value), and every other customer's
    state and announced changes as a clean run of the events without them."""
    assert not any(v.encode() in held for v in victims)
    pipe, ref = embedded(s, [e for e in events if e["customer_id"] not in victims])
    assert_same_states(s, pipe)
    announced = [c for c in read_topic(s, s.topic_changes) if c["customer_id"] not in victims]
    assert sorted(set(change_keys(announced))) == change_keys(ref)


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


def test_an_erasure_holds_in_another_namespace_and_model_and_for_refused_records(bootstrap, redis_url):
    """Issue 29: a customer erased, then the input replayed under a new consumer group (the
    upgrade path), had its state re-created and a change event published again; a same-namespace
    replay re-dead-lettered its raw payload."""
    events = list(SyntheticBank(GeneratorConfig(customers=40, months=8, seed=6)).events())
    victim = "C0000007"
    bad = orjson.dumps({**[e for e in events if e["customer_id"] == victim][0], "amount": -1})
    payloads = [orjson.dumps(e) for e in events] + [bad]
    keys = [e["customer_id"].encode() for e in events] + [victim.encode()]
    blue = settings_from(isolated_settings(bootstrap, redis_url))
    proc = StreamProcessor(blue)
    Eraser(blue, proc.redis, proc.store).forget(victim, publish=False)
    green = settings_from(isolated_settings(bootstrap, redis_url))  # another group, namespace and topics
    other = StreamProcessor(green)
    out = other.process([PartitionBatch(0, list(range(len(payloads))), payloads, None, keys)])
    other.checkpoint()
    assert out.outcomes["forgotten"] == sum(1 for e in events if e["customer_id"] == victim) + 1
    assert not out.dead_letters
    assert victim.encode() not in b"".join(every_key_and_value(other.redis))


def test_forget_refuses_what_it_cannot_do_and_says_so_in_one_line(bootstrap, redis_url):
    """Issue 29: `forget` with no ids exited 0 silently; `forget '*'` reached SCAN MATCH and
    deleted other customers' records; with Kafka down it printed 30 s of client errors and exited 0."""
    env = isolated_settings(bootstrap, redis_url)
    none = segstream_cli(env, "forget")
    assert none.returncode == 2 and b"no customer ids" in none.stderr
    glob = segstream_cli(env, "forget", "*")
    assert glob.returncode != 0 and b"is not a customer id" in glob.stderr
    assert len(glob.stderr.strip().splitlines()) == 1
    down = segstream_cli({**env, "SEGSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, "forget", "C0000001", timeout=60)
    assert down.returncode == 1 and b"incomplete" in down.stderr
    assert down.stderr.count(b"\n") <= 3, down.stderr.decode()


def test_watch_reads_past_an_erasure_marker(bootstrap, redis_url):
    """Issue 29: `watch --from-beginning` crashed on the tombstone for as long as the topic held it."""
    from kafka import KafkaProducer

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    p = KafkaProducer(bootstrap_servers=bootstrap)
    p.send(s.topic_changes, key=b"C0000002", value=None).get(30)
    p.close()
    out = segstream_cli(env, "watch", "--from-beginning", "--idle-timeout", "3", "--json")
    assert out.returncode == 0, out.stderr.decode()[-500:]
    assert orjson.loads(out.stdout.splitlines()[-1]) == {"customer_id": "C0000002", "erased": True}


def test_an_erasure_survives_redis_restarting_empty_and_the_replay_that_rebuilds_it(
    bootstrap, redis_url, events, tmp_path
):
    """Before: the erased set lived only in Redis; after Redis restarted empty, `segstream recover`
    replayed the topic and brought the erased customers back. Now the erasures topic gives the
    erasures back to Redis before any event is replayed."""
    from segstream.producers.kafka_producer import publish
    from segstream.state.redis_client import connect

    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    victims = ["C0000011", "C0000042"]
    cut = int(len(events) * 0.9)
    publish(events[:cut], s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the first months to be applied", [w])
        erased = segstream_cli(env, "forget", *victims)
        assert erased.returncode == 0, erased.stderr.decode()[-2000:]
        assert all(orjson.loads(line)["logged"] for line in erased.stdout.splitlines())
        r = connect(redis_url)
        r.flushdb()  # Redis restarted without persistence
        publish(events[cut:], s, progress=False)  # the worker finds out at its next batch
        lost = "segstream_halted_partitions{reason=store_lost}"
        wait_until(lambda: w.metrics().get(lost, 0) == 4, 60, "every partition to halt", [w])
        out = segstream_cli(env, "recover", timeout=120)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        replayed = orjson.loads(out.stdout)["erasures"]  # the worker's rewind may have read the log back first
        assert (replayed["erased"], replayed["consented"], replayed["purged"]) == (2, 0, 0)
        wait_until(all_consumed(s), 240, "the worker to rebuild from the topic", [w])
        held = b"".join(every_key_and_value(r))
    finally:
        w.stop()
    assert_erased_and_the_rest_as_a_clean_run(s, events, victims, held)
    # new consent is logged too: a later loss of Redis does not erase the customers again
    back = segstream_cli(env, "forget", "--consent", *victims)
    assert back.returncode == 0, back.stderr.decode()[-2000:]
    connect(redis_url).delete(f"{s.erasure_namespace}:forgotten")
    again = segstream_cli(env, "recover", timeout=120)
    assert orjson.loads(again.stdout)["erasures"] == {"erased": 0, "restored": 0, "consented": 2, "purged": 0}


def test_a_redis_restored_from_a_snapshot_older_than_an_erasure_under_a_running_worker(bootstrap, events, tmp_path):
    """A backup taken before an erasure, restored while the worker runs: the worker's outage path
    reads the erasure log back, finds erasures Redis had lost and halts, since the restored data
    holds the erased customers again; `segstream recover` erases them, and the worker re-reads
    from the restored checkpoints withholding their events."""
    import shutil

    from segstream.producers.kafka_producer import publish
    from segstream.state.redis_client import connect

    from .servers import redis_server

    red = redis_server(tmp_path / "redis")
    red.start()
    backup = tmp_path / "backup"
    try:
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{red.port}/0", batch_size=256)
        s = settings_from(env)
        victims = ["C0000011", "C0000042"]
        a, b = len(events) // 2, int(len(events) * 0.8)
        publish(events[:a], s, progress=False)
        w = Worker(env, tmp_path).start()
        try:
            wait_until(all_consumed(s), 180, "the first half", [w])
            red.stop()  # a backup of the data directory, as an operator takes one
            shutil.copytree(red.workdir, backup)
            red.start()
            publish(events[a:b], s, progress=False)
            wait_until(all_consumed(s), 180, "more months after the backup", [w])
            erased = segstream_cli(env, "forget", *victims)
            assert erased.returncode == 0, erased.stderr.decode()[-2000:]
            red.stop()  # the restore
            shutil.rmtree(red.workdir)
            shutil.copytree(backup, red.workdir)
            red.start()
            publish(events[b:], s, progress=False)
            restored = "segstream_halted_partitions{reason=erasures_restored}"
            wait_until(lambda: w.metrics().get(restored, 0) == 4, 120, "every partition to halt", [w])
            out = segstream_cli(env, "recover", timeout=120)
            assert out.returncode == 0, out.stderr.decode()[-2000:]
            assert orjson.loads(out.stdout)["erasures"]["purged"] == 2
            wait_until(all_consumed(s), 240, "the worker to re-read from the restored checkpoints", [w])
            held = b"".join(every_key_and_value(connect(f"redis://127.0.0.1:{red.port}/0")))
        finally:
            w.stop()
        assert_erased_and_the_rest_as_a_clean_run(s, events, victims, held)
    finally:
        red.stop()
