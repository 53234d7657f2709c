"""Faults mid-stream against real servers: the final states equal a clean run's, and the worker recovers.

Each test owns its servers (started and stopped by PID) so a restart cannot disturb other tests.
"""

from __future__ import annotations

import time
from datetime import UTC

import pytest

from segstream.producers.kafka_producer import publish

from .harness import (
    Worker,
    all_consumed,
    applied_by_worker,
    assert_same_states,
    change_keys,
    consumed,
    embedded,
    end_offsets,
    isolated_settings,
    read_topic,
    settings_from,
    wait_until,
)
from .servers import kafka_server, redis_server

pytestmark = pytest.mark.integration


def run_through_fault(env: dict, events: list, workdir, fault) -> None:
    """Produce, let one worker get a quarter in, inject ``fault(worker)``, let it finish, compare."""
    s = settings_from(env)
    publish(events, s, progress=False)
    total = sum(end_offsets(s).values())
    w = Worker(env, workdir).start()
    try:
        wait_until(lambda: sum(consumed(s).values()) > total // 4, 180, "a quarter of the topic", [w])
        fault(w)
        wait_until(all_consumed(s), 300, "the worker to recover and finish", [w])
    finally:
        w.stop()
    assert_same_states(s, embedded(s, events)[0])


def test_redis_restart_mid_stream(bootstrap, events, tmp_path):
    red = redis_server(tmp_path / "redis")
    red.start()

    def restart_redis(w: Worker) -> None:
        red.stop()  # graceful: AOF is flushed, as in a rolling restart
        wait_until(lambda: w.health()[0] == 503, 60, "the worker to report unhealthy", [w])
        time.sleep(2)
        red.start()
        wait_until(lambda: w.health()[0] == 200, 120, "the worker to report healthy again", [w])

    try:
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{red.port}/0", batch_size=256)
        run_through_fault(env, events, tmp_path, restart_redis)
    finally:
        red.stop()


def test_a_redis_restored_from_an_older_backup_under_a_running_worker_is_read_again_not_built_on(
    bootstrap, events, tmp_path
):
    """Before: the worker kept building on the restored states and wrote its newer offsets over the
    restored checkpoints: every one of 250 customers ended three windows short, health 200. Now the
    checkpoint (its offset went back) or the state load (the centroids' version went back) says
    Redis went back in time, and the worker re-reads from the checkpoints Redis holds now."""
    import shutil

    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{red.port}/0", batch_size=256)
        s = settings_from(env)
        a, b = len(events) // 2, int(len(events) * 0.8)
        publish(events[:a], s, progress=False)
        w = Worker(env, tmp_path).start()
        try:
            wait_until(all_consumed(s), 180, "the first half", [w])
            red.stop()  # a backup of the data directory
            shutil.copytree(red.workdir, tmp_path / "backup")
            red.start()
            publish(events[a:b], s, progress=False)
            wait_until(all_consumed(s), 180, "months after the backup", [w])
            red.stop()  # the restore, the worker running
            shutil.rmtree(red.workdir)
            shutil.copytree(tmp_path / "backup", red.workdir)
            red.start()
            publish(events[b:], s, progress=False)
            wait_until(all_consumed(s), 240, "the worker to re-read from the restored checkpoints", [w])
            rolled_back = w.metrics().get("segstream_store_rollbacks_total", 0)
        finally:
            w.stop()
        assert rolled_back >= 1
        assert_same_states(s, embedded(s, events)[0])
    finally:
        red.stop()


def test_redis_full_is_survived_like_redis_down(bootstrap, events, tmp_path):
    """maxmemory with noeviction: writes fail with OOM; the worker reports 503, backs off, and
    once there is room again resumes from its last checkpoint with nothing lost or doubled."""
    from segstream.state.redis_client import connect

    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{red.port}/0", batch_size=256)
        s = settings_from(env)
        half = len(events) // 2
        w = applied_by_worker(env, events[:half], tmp_path, "the first half")
        try:
            r = connect(f"redis://127.0.0.1:{red.port}/0")
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) + 16))
            publish(events[half:], s, progress=False)  # its windows must be written into a full Redis
            wait_until(lambda: w.health()[0] == 503, 60, "the worker to report unhealthy on OOM", [w])
            assert w.metrics().get("segstream_redis_errors_total{op=batch}", 0) >= 1
            time.sleep(2)
            r.config_set("maxmemory", "0")
            wait_until(lambda: w.health()[0] == 200, 120, "the worker to report healthy again", [w])
            wait_until(all_consumed(s), 180, "the worker to finish", [w])
        finally:
            w.stop()
        assert_same_states(s, embedded(s, events)[0])
    finally:
        red.stop()


def test_poison_records_and_every_codec_leave_the_worker_running(bootstrap, redis_url, events, tmp_path):
    """Tombstones, JSON nested 5,000 deep, booleans as amounts, null and foreign keys, and batches
    compressed with lz4, zstd and snappy: each bad record is a dead letter with its reason, the
    rest is processed exactly as the embedded run processes it."""
    import orjson
    from kafka import KafkaProducer

    from segstream.stream_app.kafka_config import kafka_python_options

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    good = events[:6000]
    victim = dict(good[0], event_id="poison")
    deep = b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b", " + orjson.dumps(victim)[1:]
    poison = [
        (b"C0000001", None, "tombstone"),
        (b"C0000001", deep, None),  # malformed_json or internal:RecursionError: whichever parser refuses it
        (victim["customer_id"].encode(), orjson.dumps(dict(victim, amount=True)), "amount:float_type"),
        (None, orjson.dumps(victim), "key:missing"),
        (b"C0000099", orjson.dumps(victim), "key:mismatch"),
        (
            b"x",
            orjson.dumps(dict(victim, customer_id="<img src=x onerror=alert(1)>")),
            "customer_id:string_pattern_mismatch",
        ),
    ]
    thirds = len(good) // 3
    publish(good[:thirds], s, progress=False, compression="lz4")
    raw = KafkaProducer(**kafka_python_options(s), acks="all")
    for key, value, _ in poison:
        raw.send(s.topic_transactions, key=key, value=value, partition=0)
    raw.flush()
    raw.close()
    publish(good[thirds : 2 * thirds], s, progress=False, compression="zstd")
    publish(good[2 * thirds :], s, progress=False, compression="snappy")
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the worker to consume every record", [w])
        m = w.metrics()
        assert w.health()[0] == 200
    finally:
        w.stop()
    assert m["segstream_events_total{outcome=ok}"] == len(good)
    assert sum(v for k, v in m.items() if k.startswith("segstream_dead_letters_total{")) == len(poison)
    for _, _, reason in poison:
        if reason:
            assert m[f"segstream_dead_letters_total{{reason={reason}}}"] >= 1, reason
    dlq = read_topic(s, s.topic_dlq)
    assert {d["reason"] for d in dlq} >= {r for _, _, r in poison if r}
    assert_same_states(s, embedded(s, good)[0])


def test_an_output_batch_the_broker_refuses_is_not_checkpointed(bootstrap, redis_url, events, tmp_path):
    """The segment-changes topic refuses every batch (``max.message.bytes`` below any batch): the
    worker counts it, reports 503, backs off and re-reads from its last checkpoint; once an
    operator raises the limit, every change reaches the topic and the states equal a clean run."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    from segstream.stream_app.kafka_config import kafka_python_options

    env = isolated_settings(bootstrap, redis_url, batch_size=256)
    s = settings_from(env)
    admin = KafkaAdminClient(**kafka_python_options(s))
    try:
        admin.create_topics(
            [NewTopic(s.topic_changes, s.topic_partitions, 1, topic_configs={"max.message.bytes": "100"})]
        )
        publish(events, s, progress=False)
        ref_pipe, ref_changes = embedded(s, events)
        assert ref_changes, "the scenario must announce changes for this test to mean anything"
        w = Worker(env, tmp_path).start()
        try:
            wait_until(
                lambda: w.metrics().get("segstream_publish_errors_total", 0) >= 2,
                120,
                "the broker to refuse output batches",
                [w],
            )
            assert w.health()[0] == 503
            time.sleep(3)  # a few retries of the same refused batch
            assert sum(consumed(s).values()) < sum(end_offsets(s).values())  # no checkpoint past it
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.topic_changes, configs={"max.message.bytes": "1048588"})]
            )
            wait_until(lambda: w.health()[0] == 200, 120, "the worker to report healthy again", [w])
            wait_until(all_consumed(s), 180, "the worker to finish", [w])
        finally:
            w.stop()
    finally:
        admin.close()
    assert_same_states(s, ref_pipe)
    got = read_topic(s, s.topic_changes)
    assert set(change_keys(got)) == set(change_keys(ref_changes))  # none lost; a re-announcement may repeat


def test_broker_restart_mid_stream(redis_url, events, tmp_path):
    kafka = kafka_server(tmp_path / "kafka")
    kafka.start()

    def restart_broker(w: Worker) -> None:
        kafka.stop()
        time.sleep(3)
        kafka.start()

    try:
        env = isolated_settings(f"127.0.0.1:{kafka.port}", redis_url, batch_size=256)
        run_through_fault(env, events, tmp_path, restart_broker)
    finally:
        kafka.stop()


def state_hash(s) -> str:
    """A digest of every stored customer state, in customer order."""
    import hashlib

    from segstream.models.artefact import ModelArtefact
    from segstream.state.redis_client import connect
    from segstream.state.redis_store import RedisStateStore

    art = ModelArtefact.load(s.model_path)
    store = RedisStateStore.for_deployment(connect(s.redis_url), s, art.hidden_size, art.version)
    ids = sorted(store.segments())
    states, _ = store.load(ids)
    fields = b"".join(getattr(states, f).tobytes() for f in states.fields())
    return hashlib.sha256("\n".join(ids).encode() + fields).hexdigest()


def test_reprocessing_from_offset_zero_changes_nothing(bootstrap, redis_url, events, tmp_path):
    """A second consumer group reads the whole topic again over the same state: same hash, no new updates."""
    from .harness import read_topic

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    publish(events, s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 180, "the first pass", [w])
    finally:
        w.stop()
    first_hash = state_hash(s)
    first_changes = change_keys(read_topic(s, s.topic_changes))

    # wipe the window checkpoints too, as if the worker's bookkeeping were lost: only
    # the per-window guard stands between a full replay and double counting
    from segstream.state.redis_client import connect

    r = connect(s.redis_url)
    for key in r.scan_iter(match=f"{s.redis_prefix}:[wp]:{s.topic_transactions}:*"):
        r.delete(key)
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.delete_groups([s.consumer_group])  # its offsets went with the bookkeeping
    admin.close()
    # another group, told to keep its state in the first group's namespace: the operator hands
    # the namespace over (without it, the new group's claims are refused: test_fail_closed.py)
    env2 = {
        **env,
        "SEGSTREAM_CONSUMER_GROUP": env["SEGSTREAM_CONSUMER_GROUP"] + "-replay",
        "SEGSTREAM_NAMESPACE": s.redis_prefix,
    }
    from .harness import segstream_cli

    took = segstream_cli(env2, "recover", "--take-over", timeout=120)
    assert took.returncode == 0, took.stderr.decode()[-1000:]
    w = Worker(env2, tmp_path).start()
    try:
        wait_until(all_consumed(settings_from(env2)), 180, "the replay from offset 0", [w])
        m = w.metrics()
    finally:
        w.stop()
    assert state_hash(s) == first_hash
    assert m.get("segstream_state_updates_total", 0) == 0
    assert m["segstream_stale_windows_total"] == m["segstream_windows_closed_total"] > 0
    # re-announcements may repeat events, never invent new ones
    assert set(change_keys(read_topic(s, s.topic_changes))) == set(first_changes)


def test_processor_refuses_work_after_a_failed_batch_until_reset(tmp_path):
    """Under load the worker queues the next batch behind the current one in the core: if the
    current one fails midway, the next must not run on top of half of it."""
    import orjson
    from redis.exceptions import ConnectionError as RedisConnectionError

    from segstream.config import Settings
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
    from segstream.stream_app.batch import PartitionBatch
    from segstream.stream_app.processor import StreamProcessor

    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        proc = StreamProcessor(Settings(redis_url=f"redis://127.0.0.1:{red.port}/0", centroid_prior_weight=50))
        events = [orjson.dumps(e) for e in SyntheticBank(GeneratorConfig(customers=20, months=3, seed=2)).events()]
        proc.process([PartitionBatch(0, list(range(100)), events[:100])])
        second = [PartitionBatch(1, list(range(100)), events[100:200])]  # a new partition: its checkpoint is read
        red.stop()
        with pytest.raises(RedisConnectionError):
            proc.process(second)
        red.start()
        with pytest.raises(RuntimeError, match="reset"):
            proc.process(second)
        proc.reset()
        assert proc.process(second).outcomes["ok"] == 100
    finally:
        red.stop()


def test_a_window_that_trips_the_engine_is_dead_lettered_and_the_stream_goes_on(redis_url):
    """Issue 13, item 4: a failure in the core that is not an outage is narrowed (bisection) to the
    windows that cause it; they go to the DLQ as ``engine:<error>``, everything else is applied."""
    import orjson

    from segstream.config import Settings
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
    from segstream.stream_app.batch import PartitionBatch
    from segstream.stream_app.processor import StreamProcessor
    from tests.unit.test_isolation import tripping

    events = list(SyntheticBank(GeneratorConfig(customers=40, months=4, seed=3)).events())
    victim = events[0]["customer_id"]
    proc = StreamProcessor(Settings(redis_url=redis_url, namespace="trip", centroid_prior_weight=50))
    tripping(proc.pipeline.engine, lambda w: w.customer_id == victim and w.index % 2 == 0, exc=ZeroDivisionError)
    payloads = [orjson.dumps(e) for e in events]
    outs = [
        proc.process([PartitionBatch(0, list(range(i, i + 500)), payloads[i : i + 500])])
        for i in range(0, len(payloads), 500)
    ]
    letters = [d for o in outs for d in o.dead_letters]
    assert letters and {d.reason for d in letters} == {"engine:ZeroDivisionError"}
    assert all(orjson.loads(d.raw)["customer_id"] == victim and d.source_partition == 0 for d in letters)
    closed = sum(o.windows_closed for o in outs)
    assert sum(o.engine.applied for o in outs) == closed - len(letters)
    state, _ = proc.store.load([victim])
    assert state.last_window[0] % 2 == 1  # its odd windows applied around the quarantined even ones


@pytest.mark.parametrize("quorum", [1, 3])
def test_one_event_stamped_days_ahead_closes_no_month_for_the_others(bootstrap, redis_url, tmp_path, quorum):
    """One wrong clock six days into next month, then 98 customers' on-time events of this month:
    with the default quorum (3) none is late; with a quorum of 1 (the plain maximum, as before)
    the single outlier closes the month and they go to the dead-letter topic as late."""
    from datetime import datetime, timedelta

    env = isolated_settings(bootstrap, redis_url, topic_partitions=1, watermark_quorum=quorum)
    s = settings_from(env)
    march = datetime(2024, 3, 1, tzinfo=UTC)

    def event(i: int, when: datetime, tag: str) -> dict:
        return {
            "event_id": f"{tag}-{i}",
            "customer_id": f"C{i:07d}",
            "timestamp": when.isoformat(),
            "amount": 20.0 + i,
            "currency": "EUR",
            "category": "groceries",
            "income": 3000.0,
        }

    before = [event(i, march + timedelta(days=i % 25, hours=i % 24), "a") for i in range(100)]
    before.sort(key=lambda e: e["timestamp"])
    outlier = [event(0, datetime(2024, 4, 6, 12, tzinfo=UTC), "clock-wrong")]
    after = [event(i, datetime(2024, 3, 29, tzinfo=UTC) + timedelta(minutes=i), "b") for i in range(1, 99)]
    publish(before + outlier + after, s, progress=False)
    w = Worker(env, tmp_path).start()
    try:
        wait_until(all_consumed(s), 120, "the worker to consume the topic", [w])
        m = w.metrics()
    finally:
        w.stop()
    late = m.get("segstream_dead_letters_total{reason=late:window_closed}", 0)
    if quorum == 1:
        assert late == len(after)  # the test can see the fault it guards against
    else:
        assert late == 0
        assert m["segstream_events_total{outcome=ok}"] == len(before) + len(outlier) + len(after)
        assert m.get("segstream_windows_closed_total", 0) == 0  # March stays open: the stream is not past it
