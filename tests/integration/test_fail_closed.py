"""Issue 28: faults of a deployment's first months, on the real broker and Redis.

Each test: no record skipped, no offset committed past an unapplied record (the harness
checks that after every test), /healthz 503 while the worker cannot process, nothing
system-made dead-lettered, and after the repair the states and changes equal a clean run.
"""

from __future__ import annotations

import os
import time

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from segstream.producers.kafka_producer import publish
from segstream.state.redis_client import connect
from segstream.state.redis_windows import WindowCheckpoints

from .harness import (
    Worker,
    all_consumed,
    applied_by_worker,
    assert_same_states,
    change_keys,
    committed_offsets,
    consumed,
    embedded,
    end_offsets,
    isolated_settings,
    read_topic,
    segstream_cli,
    settings_from,
    wait_until,
)
from .servers import kafka_server

pytestmark = pytest.mark.integration


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    """`kafka-topics --alter --partitions total`."""
    from kafka.admin import NewPartitions

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(total)})
    finally:
        admin.close()


def recover(env: dict, *flags: str) -> dict:
    out = segstream_cli(env, "recover", *flags, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return orjson.loads(out.stdout)


def halted(w: Worker, reason: str) -> float:
    return w.metrics().get(f"segstream_halted_partitions{{reason={reason}}}", 0)


def test_redis_restarting_empty_halts_every_partition_until_recover_rebuilds_it(bootstrap, redis_url, events, tmp_path):
    """Before: centroids gone, 9,000 windows dead-lettered as engine:RuntimeError, every partition
    fenced and its records skipped and committed, health 200. Now: the worker halts (503, one
    line per partition), commits nothing, and `segstream recover` rebuilds every state from the
    retained topic."""
    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    half = len(events) // 2
    w = applied_by_worker(env, events[:half], tmp_path)
    try:
        before = committed_offsets(s)
        connect(redis_url).flushdb()  # Redis restarted without persistence
        publish(events[half:], s, progress=False)
        wait_until(lambda: w.health()[0] == 503, 30, "health to say 503", [w])
        wait_until(lambda: halted(w, "store_lost") == 4, 30, "every partition to halt as store_lost", [w])
        time.sleep(3)
        assert committed_offsets(s) == before, "nothing may be committed while the store is lost"
        assert "store_lost" in str(w.health()[1]["problems"])
        repaired = recover(env)
        assert repaired["repaired"] == 4 and repaired["never_applied"] == 0
        wait_until(all_consumed(s), 240, "the worker to rebuild from the topic", [w])
        wait_until(lambda: w.health()[0] == 200, 30, "health to return", [w])
        log = open(w.log.name).read()
    finally:
        w.stop()
    assert log.count("halted, nothing skipped") <= 8  # a line per partition, not megabytes
    pipe, ref = embedded(s, events)
    assert_same_states(s, pipe)
    assert sorted(set(change_keys(read_topic(s, s.topic_changes)))) == change_keys(ref)


def test_a_forged_claim_makes_the_owner_claim_again_not_skip(bootstrap, redis_url, events, tmp_path):
    """Before: one INCR of a partition's epoch fenced its rightful owner, which skipped 3,742
    records and committed them. Now the owner asks Kafka, finds it still owns the partition,
    claims it again and re-reads from its checkpoint."""
    env = isolated_settings(bootstrap, redis_url, batch_size=128, checkpoint_interval_s=0.2)
    s = settings_from(env)
    third = len(events) // 3
    publish(events[:third], s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the first third", [w])
        cp = WindowCheckpoints(connect(redis_url), 0, prefix=s.redis_prefix)
        for p in range(4):
            cp.r.incr(cp.epoch_key(s.topic_transactions, p))  # the stray claims
        publish(events[third:], s, progress=False)
        wait_until(all_consumed(s), 240, "the owner to take its partitions back and finish", [w])
        fenced = sum(v for k, v in w.metrics().items() if k.startswith("segstream_fenced_partitions_total{"))
    finally:
        w.stop()
    assert fenced >= 1
    pipe, ref = embedded(s, events)
    assert_same_states(s, pipe)
    assert sorted(set(change_keys(read_topic(s, s.topic_changes)))) == change_keys(ref)


def test_a_second_deployment_sharing_the_namespace_halts_and_the_first_goes_on(bootstrap, redis_url, events, tmp_path):
    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    other = {**env, "SEGSTREAM_CONSUMER_GROUP": env["SEGSTREAM_CONSUMER_GROUP"] + "-other"}
    other["SEGSTREAM_NAMESPACE"] = s.redis_prefix  # mis-configured: the first one's namespace
    other["SEGSTREAM_TOPIC_CHANGES"] = s.topic_changes + "-other"
    publish(events, s, progress=False)
    a = Worker(env, tmp_path).start()
    b = None
    try:
        wait_until(lambda: sum(consumed(s).values()) > 0, 180, "the first deployment to start", [a])
        b = Worker(other, tmp_path).start()
        wait_until(lambda: halted(b, "namespace_shared") == 4, 120, "the second to halt", [a, b])
        assert b.health()[0] == 503
        wait_until(all_consumed(s), 240, "the first to finish", [a, b])
        assert a.health()[0] == 200
    finally:
        a.stop()
        if b:
            b.stop()
    assert_same_states(s, embedded(s, events)[0])


def test_a_recreated_topic_halts_until_recover_and_then_reads_the_new_log(bootstrap, redis_url, events, tmp_path):
    """Before: a broker recreated without its data (compose down/up) while Redis kept its state:
    every new event was taken for a replay and dropped, health 200. Now the checkpoints beyond the
    new log halt the worker; `segstream recover` moves them to the new log's start."""
    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    cut = int(len(events) * 0.8)
    publish(events[:cut], s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the old topic to be applied", [w])
        time.sleep(2)  # a commit after the last checkpoint
    finally:
        w.stop()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([s.topic_transactions])
        admin.delete_groups([s.consumer_group])
        wait_until(lambda: s.topic_transactions not in admin.list_topics(), 60, "the topic to go")
    finally:
        admin.close()
    w = Worker(env, tmp_path).start()  # creates the topic again, empty
    try:
        wait_until(lambda: len(end_offsets(s)) == 4, 60, "the worker to create the topic again", [w])
        publish(events[cut:], s, progress=False)
        wait_until(lambda: halted(w, "log_mismatch") == 4, 60, "every partition to halt", [w])
        assert w.health()[0] == 503
        assert recover(env)["repaired"] == 4
        wait_until(lambda: halted(w, "log_mismatch") == 0, 60, "the partitions to resume", [w])
        wait_until(all_consumed(s), 180, "the new log to be applied", [w])
    finally:
        w.stop()
    assert_same_states(s, embedded(s, events)[0])


def test_records_deleted_ahead_of_a_running_worker_halt_its_partition_not_skip(bootstrap, redis_url, events, tmp_path):
    """Before: the consumer's ``auto_offset_reset`` was "earliest": a running worker whose next
    records retention (or `kafka-delete-records`) removed jumped to the log's new start, skipped
    the records in between and committed past them, health 200. Only an assignment checked the log's
    start. Now the fetch's out-of-range error rewinds every partition to its checkpoint, and the one
    whose records are gone halts (log_mismatch) until `segstream recover` says how many were lost."""
    from kafka import KafkaConsumer, TopicPartition

    from segstream.stream_app.repartition import records_between

    # a session long enough that the pause is not a rebalance (whose assignment would check the log)
    env = isolated_settings(bootstrap, redis_url, batch_size=256, kafka_session_timeout_ms=60_000)
    s = settings_from(env)
    a, b = len(events) // 3, 2 * len(events) // 3
    publish(events[:a], s, progress=False)
    tp = TopicPartition(s.topic_transactions, 0)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the first third", [w])
        w.pause()  # a long GC pause (or a partition paused at the memory bound), within the session
        try:
            before = end_offsets(s)[0]
            publish(events[a:b], s, progress=False)
            cut = before + (end_offsets(s)[0] - before) // 2
            c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            deleted = {
                r.offset: orjson.loads(r.value)["event_id"] for r in records_between(c, tp.topic, 0, before, cut)
            }
            c.close()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.delete_records({tp: cut})
            admin.close()
        finally:
            w.resume()
        wait_until(lambda: halted(w, "log_mismatch") == 1, 60, "partition 0 to halt", [w])
        assert w.health()[0] == 503 and "deleted" in str(w.health()[1]["problems"])
        assert "the next records to read are gone from the log" in open(w.log.name).read()  # found by the fetch
        committed = consumed(s)[0]
        report = recover(env)
        # what the worker fetched before the deletion (the broker answered its fetch while it was stopped)
        # was applied; the rest of the deleted records never were, and nothing was committed past them
        lost = report["never_applied"]
        assert 0 < lost <= cut - before and committed <= cut - lost
        gone = {eid for off, eid in deleted.items() if off >= cut - lost}
        wait_until(lambda: halted(w, "log_mismatch") == 0, 60, "partition 0 to resume", [w])
        publish(events[b:], s, progress=False)
        wait_until(all_consumed(s), 180, "the rest", [w])
    finally:
        w.stop()
    assert_same_states(s, embedded(s, [e for e in events if e["event_id"] not in gone])[0])


def test_a_topic_given_more_partitions_halts_until_recover_moves_its_open_windows(
    bootstrap, redis_url, events, tmp_path
):
    """Before: after `kafka-topics --alter --partitions 6` a customer's month was split over its old
    and new partition, and the part closing second was dropped as a replay (health 200, nothing
    dead-lettered). Now every partition halts until `segstream recover` has moved the open windows, and
    the records producers still sent by the old count, to the customers' new partitions."""
    from kafka import KafkaProducer

    env = isolated_settings(bootstrap, redis_url, batch_size=256, repartition_settle_s=0)
    s = settings_from(env)
    a, b = len(events) // 2, int(len(events) * 0.7)
    applied_by_worker(env, events[:a], tmp_path).stop()
    stale = KafkaProducer(bootstrap_servers=bootstrap)  # a producer that keeps the old count cached
    assert len(stale.partitions_for(s.topic_transactions)) == 4
    add_partitions(bootstrap, s.topic_transactions, 6)
    for e in events[a:b]:
        stale.send(s.topic_transactions, key=e["customer_id"].encode(), value=orjson.dumps(e))
    stale.close()
    publish(events[b:], s, progress=False)  # a producer that sees six partitions
    before = committed_offsets(s)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(lambda: halted(w, "repartitioned") == 6, 120, "every partition to halt", [w])
        assert w.health()[0] == 503 and "repartitioned" in str(w.health()[1]["problems"])
        time.sleep(2)
        assert committed_offsets(s) == before, "nothing may be committed while the windows are cut for 4"
        moved = recover(env)["repartitioned"]
        assert moved["partitions_before"] == 4 and moved["partitions_after"] == 6
        assert moved["records"] > 0 and moved["rows"] > 0 and moved["behind"] == 0
        assert recover(env)["repartitioned"] is None  # done once
        wait_until(lambda: halted(w, "repartitioned") == 0, 60, "the partitions to resume", [w])
        wait_until(all_consumed(s), 180, "every partition to be applied", [w])
        skipped = w.metrics().get("segstream_events_total{outcome=moved}", 0)
    finally:
        w.stop()
    assert skipped == moved["records"]  # read past where they were sent, applied where they belong
    pipe, ref = embedded(s, events)
    assert_same_states(s, pipe)
    assert sorted(set(change_keys(read_topic(s, s.topic_changes)))) == change_keys(ref)


def test_a_running_worker_halts_within_seconds_of_the_topic_gaining_partitions(bootstrap, redis_url, events, tmp_path):
    """The worker that is running sees the new count at its next metadata refresh and halts; after
    `segstream recover` it goes on with the new partitions as if they had always been there."""
    env = isolated_settings(
        bootstrap, redis_url, batch_size=256, repartition_settle_s=0, kafka_metadata_max_age_ms=2000
    )
    s = settings_from(env)
    half = len(events) // 2
    w = applied_by_worker(env, events[:half], tmp_path)
    try:
        add_partitions(bootstrap, s.topic_transactions, 6)
        wait_until(lambda: halted(w, "repartitioned") == 6, 60, "the running worker to halt", [w])
        assert w.health()[0] == 503
        moved = recover(env)["repartitioned"]
        assert moved["rows"] > 0 and moved["records"] == 0 and moved["behind"] == 0
        wait_until(lambda: halted(w, "repartitioned") == 0, 60, "the partitions to resume", [w])
        publish(events[half:], s, progress=False)
        wait_until(all_consumed(s), 180, "the rest, over six partitions", [w])
        wait_until(lambda: w.health()[0] == 200, 30, "health to return", [w])
    finally:
        w.stop()
    assert len(end_offsets(s)) == 6 and all(end_offsets(s).values())
    pipe, ref = embedded(s, events)
    assert_same_states(s, pipe)
    assert sorted(set(change_keys(read_topic(s, s.topic_changes)))) == change_keys(ref)


def test_recover_moves_nothing_when_producers_do_not_partition_as_kafkas_clients_do(bootstrap, redis_url):
    """Moving a customer's windows to the partition murmur2 names would split them if the producers
    partition otherwise (librdkafka's default): recover checks the new partitions' records first."""
    from kafka import KafkaProducer

    from segstream.stream_app.kafka_config import ensure_topics
    from segstream.stream_app.partitioner import Partitioner

    env = isolated_settings(bootstrap, redis_url, repartition_settle_s=0)
    s = settings_from(env)
    ensure_topics(s)
    WindowCheckpoints(connect(redis_url), 0, prefix=s.redis_prefix).layout(s.topic_transactions, 4)
    add_partitions(bootstrap, s.topic_transactions, 6)
    key = next(k for k in (f"C{i:07d}".encode() for i in range(100)) if Partitioner(6)(k) != 4)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(s.topic_transactions, key=key, value=b"{}", partition=4)  # not where murmur2 puts it
    producer.close()
    out = segstream_cli(env, "recover", timeout=120)
    assert out.returncode != 0 and b"murmur2_random" in out.stderr and b"nothing was moved" in out.stderr
    assert WindowCheckpoints(connect(redis_url), 0, prefix=s.redis_prefix).layout(s.topic_transactions, 6) == 4


def test_a_broker_down_turns_health_503_within_seconds_and_the_log_stays_short(redis_url, events, tmp_path):
    """Before: /healthz 200 for the whole minute, 8,800 ERROR lines."""
    kafka = kafka_server(tmp_path / "kafka")
    kafka.start()
    try:
        env = isolated_settings(f"127.0.0.1:{kafka.port}", redis_url, batch_size=256)
        s = settings_from(env)
        publish(events, s, progress=False)
        w = Worker(env, tmp_path).start()
        try:
            wait_until(all_consumed(s), 180, "the topic", [w])
            wait_until(lambda: w.health()[0] == 200, 30, "health 200 with everything up", [w])
            size = os.path.getsize(w.log.name)
            kafka.stop()
            wait_until(lambda: w.health()[0] == 503, 20, "health to say 503 within seconds", [w])
            assert w.health()[1]["broker"] is False
            time.sleep(30)
            grown = os.path.getsize(w.log.name) - size
            kafka.start()
            wait_until(lambda: w.health()[0] == 200, 120, "health to return with the broker", [w])
        finally:
            w.stop()
    finally:
        kafka.stop()
    assert grown < 100_000, f"{grown} bytes of log in 30 s of outage"
    text = open(w.log.name, errors="replace").read()
    assert "--- Logging error ---" not in text and "Unexpected error in" not in text, "the log filter broke a client"


def test_an_absurd_income_is_the_events_fault_and_the_worker_binds_loopback(bootstrap, redis_url, events, tmp_path):
    """Before: income 1e-40 passed validation, overflowed float32 and made a shared centroid NaN
    for good; the web port listened on 0.0.0.0. Now the event is dead-lettered for its income,
    every state equals a clean run, and the worker's HTTP listens on 127.0.0.1 only."""
    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    poison = dict(events[10], event_id="poison", income=1e-40)
    publish([*events, poison], s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the topic", [w])
        listening = listeners(w.port)
    finally:
        w.stop()
    reasons = [d["reason"] for d in read_topic(s, s.topic_dlq, idle_s=2.0)]
    assert reasons == ["income:out_of_range"]
    assert listening == ["127.0.0.1"]
    assert_same_states(s, embedded(s, events)[0])


def listeners(port: int) -> list[str]:
    """Addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    import ipaddress

    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                raw = bytes.fromhex(addr)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                out.append(str(ipaddress.ip_address(raw)))
    return out


# swap a hash field for a new value in one step (the worker cannot fold between the read and the
# write) and return the old one
SWAP = "local v = redis.call('HGET', KEYS[1], ARGV[1]); redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return v"


def core_failures(w: Worker, reason: str) -> float:
    return w.metrics().get(f"segstream_core_failures_total{{reason={reason}}}", 0)


def test_a_corrupt_shared_record_stops_the_core_until_repaired_and_nothing_is_dead_lettered(
    bootstrap, redis_url, events, tmp_path
):
    """The centroids' record cut short (a truncated write, a hand edit), then holding NaN. Before
    (0.8.5): every window failed to read it, the isolation bisected each batch down to single
    windows and dead-lettered all of them as engine:ValueError, committed past them, health 200.
    Now: the core raises StoreCorrupt, the worker backs off (503 `core`, a count per try, nothing
    committed, nothing dead-lettered) and, once the value is back, applies everything."""
    import numpy as np

    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    half = len(events) // 2
    w = applied_by_worker(env, events[:half], tmp_path)
    try:
        before = committed_offsets(s)
        r = connect(redis_url)
        (key,) = [k for k in r.scan_iter(f"{s.redis_prefix}*centroids*") if b"fence" not in k]
        good = r.eval(SWAP, 1, key, "sums", r.hget(key, "sums")[:-8])
        publish(events[half:], s, progress=False)
        wait_until(lambda: core_failures(w, "store_corrupt") >= 2, 60, "the core to fail and try again", [w])
        status, body = w.health()
        assert status == 503 and "store_corrupt" in str(body["problems"])
        r.eval(SWAP, 1, key, "sums", np.full(len(good) // 8, np.nan).tobytes())
        tries = core_failures(w, "store_corrupt")
        wait_until(lambda: core_failures(w, "store_corrupt") > tries, 60, "NaN centroids to fail too", [w])
        assert committed_offsets(s) == before, "nothing may be committed while the store is corrupt"
        r.hset(key, "sums", good)
        wait_until(all_consumed(s), 240, "the worker to apply the rest once repaired", [w])
        wait_until(lambda: w.health()[0] == 200, 30, "health to return", [w])
    finally:
        w.stop()
    pipe, ref = embedded(s, events)
    assert_same_states(s, pipe)
    assert sorted(set(change_keys(read_topic(s, s.topic_changes)))) == change_keys(ref)


def test_a_worker_started_with_another_state_layout_halts_until_recover_rebuilds(
    bootstrap, redis_url, events, tmp_path
):
    """Restarted with another SEGSTREAM_REDIS_STATE_BUCKETS (as with another model artefact, the states
    live under other keys). Before (0.8.5): the worker found no state under its keys, resumed from the
    checkpoints and re-warmed every customer from there (all 250: 3.8 windows since their fresh start
    at the end against 6.7), health 200. Now: every partition halts
    `layout_changed` (503, nothing committed); `recover` refuses without --rebuild; with it, the
    deployment's keys are deleted and every state is rebuilt under the new layout from the topic."""
    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    half = len(events) // 2
    applied_by_worker(env, events[:half], tmp_path).stop()
    before = committed_offsets(s)
    publish(events[half:], s, progress=False)
    moved = {**env, "SEGSTREAM_REDIS_STATE_BUCKETS": "64"}
    w = Worker(moved, tmp_path).start()
    try:
        wait_until(lambda: halted(w, "layout_changed") == 4, 60, "every partition to halt as layout_changed", [w])
        status, body = w.health()
        assert status == 503 and "layout_changed" in str(body["problems"])
        time.sleep(3)
        assert committed_offsets(s) == before, "nothing may be committed under a layout that holds no state"
        refused = segstream_cli(moved, "recover", timeout=120)
        assert refused.returncode == 1 and b"--rebuild" in refused.stderr
        rebuilt = recover(moved, "--rebuild")
        assert rebuilt["relayout"]["keys_deleted"] > 0 and ":sb64:" in rebuilt["relayout"]["new"]
        wait_until(all_consumed(s), 240, "the worker to rebuild every state from the topic", [w])
        wait_until(lambda: w.health()[0] == 200, 30, "health to return", [w])
    finally:
        w.stop()
    moved_s = settings_from(moved)
    assert_same_states(moved_s, embedded(moved_s, events)[0])


def test_at_its_memory_bound_the_worker_stops_fetching_and_says_so(bootstrap, redis_url, tmp_path):
    """Before: one month of 1M distinct customers grew the core from 545 to 1,335 MB with no
    back-pressure. Now at the bound it pauses (503, segstream_memory_bound 1, one line), commits
    only what its checkpoints cover, and a worker with room finishes the same topic exactly."""
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

    bank = [e for e in SyntheticBank(GeneratorConfig(customers=3000, months=2, seed=3)).events()]
    env = isolated_settings(bootstrap, redis_url, batch_size=256, max_open_windows=1000)
    s = settings_from(env)
    publish(bank, s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(lambda: w.metrics().get("segstream_memory_bound", 0) == 1, 120, "the bound", [w])
        assert w.health()[0] == 503 and "memory" in w.health()[1]["problems"]
        time.sleep(2)  # the batches in flight at the pause still land: the bound kept room for them
        held = w.metrics()["segstream_open_windows"]
        time.sleep(3)
        assert w.metrics()["segstream_open_windows"] == held  # nothing more fetched
        assert held <= 1000
        assert sum(consumed(s).values()) < sum(end_offsets(s).values())
    finally:
        w.stop()
    w = Worker({**env, "SEGSTREAM_MAX_OPEN_WINDOWS": "100000"}, tmp_path).start()
    try:
        wait_until(all_consumed(s), 240, "a worker with room to finish", [w])
    finally:
        w.stop()
    assert_same_states(s, embedded(s, bank)[0])


def test_the_harness_invariant_check_can_fail(bootstrap, redis_url):
    """The check run after every test must see a committed offset past the checkpoint (a check that
    cannot fail would hide a skip: in this session's own work a typo made it return [] for a while)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from .harness import DEPLOYMENTS, fail_closed_violations

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    publish(
        [
            {**e, "customer_id": "C0000001"}
            for e in [
                {
                    "event_id": "a",
                    "timestamp": "2024-01-02T00:00:00Z",
                    "amount": 1.0,
                    "currency": "EUR",
                    "category": "books",
                }
            ]
        ],
        s,
        progress=False,
    )
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=s.consumer_group, enable_auto_commit=False)
    try:
        tp = TopicPartition(s.topic_transactions, next(iter(end_offsets(s))))
        c.assign([tp])
        c.commit({tp: OffsetAndMetadata(1, "", -1)})  # committed, never checkpointed
    finally:
        c.close()
    assert fail_closed_violations(s)
    DEPLOYMENTS.remove(env)  # made on purpose: the after-test check must not fail this test


def test_the_harness_dead_letter_check_can_fail(bootstrap, redis_url):
    """The same for the other half of the invariant: a system-made dead letter must be seen."""
    from kafka import KafkaProducer

    from .harness import DEPLOYMENTS, system_dead_letters

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for reason in ("late:window_closed", "engine:ValueError", "internal:RecursionError"):
            p.send(s.topic_dlq, orjson.dumps({"reason": reason, "raw": ""}))
        p.flush()
    finally:
        p.close()
    assert system_dead_letters(s) == ["engine:ValueError"]
    DEPLOYMENTS.remove(env)  # made on purpose: the after-test check must not fail this test


def test_the_recorded_layout_names_the_model_the_buckets_and_the_window_length(redis_url):
    """Each of them decides where a state lives or how its windows are numbered: another one halts."""
    from segstream.config import Settings
    from segstream.errors import LayoutChanged
    from segstream.state.keys import StateKeys
    from segstream.state.layout import StateLayout

    r, ours = connect(redis_url), StateKeys("layout", "model-a")
    settings = Settings(redis_url=redis_url, namespace="layout")
    StateLayout.for_deployment(r, settings, ours).check()  # the first worker records it
    StateLayout.for_deployment(r, settings, ours).check()  # the same layout goes on
    others = [
        (settings, StateKeys("layout", "model-b")),
        (settings, StateKeys("layout", "model-a", buckets=64)),
        (settings.model_copy(update={"window_months": 2}), ours),
    ]
    for s, keys in others:
        with pytest.raises(LayoutChanged, match="recover --rebuild"):
            StateLayout.for_deployment(r, s, keys).check()
