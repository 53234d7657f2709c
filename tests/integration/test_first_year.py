"""Issue 29's "first year", scripted on real servers: go live with history, stream, pause a
backfill, a mis-dated row, erase customers, rotate the Redis password, recreate the topic,
replay under a new consumer group. It ends with every state equal to a clean run of the same
events (the erased customers absent everywhere) and nothing dead-lettered but for its content.

Run it alone with `scripts/first-year` (it starts its own broker and Redis on loopback).
"""

from __future__ import annotations

import itertools
import os
import time

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from segstream.producers.kafka_producer import publish
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.state.redis_client import connect

from .harness import (
    Worker,
    all_consumed,
    assert_same_states,
    embedded,
    end_offsets,
    isolated_settings,
    read_topic,
    segstream_cli,
    settings_from,
    wait_until,
)
from .servers import redis_server

pytestmark = pytest.mark.integration


def test_a_banks_first_year(bootstrap, tmp_path):
    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        _first_year(bootstrap, f"redis://127.0.0.1:{red.port}/0", tmp_path)
    finally:
        red.stop()


# The suite runs a small bank; `FIRST_YEAR_CUSTOMERS=20000 FIRST_YEAR_HISTORY_MONTHS=24
# scripts/first-year` runs the size (the waits grow with it).
CUSTOMERS = int(os.environ.get("FIRST_YEAR_CUSTOMERS", "300"))
HISTORY = int(os.environ.get("FIRST_YEAR_HISTORY_MONTHS", "10"))
WAIT = 120.0 * max(1.0, CUSTOMERS / 1000)


def _first_year(bootstrap: str, redis_url: str, tmp_path) -> None:
    # a month at a time: the size (20,000 customers, 28 months) is 12M events, too many
    # to hold as dicts (a first attempt that held them all was killed by the kernel at 24 GB)
    gen = SyntheticBank(GeneratorConfig(customers=CUSTOMERS, months=HISTORY + 4, seed=21))

    def month(i: int) -> list[dict]:
        return list(gen.month_events(i))

    live = list(range(HISTORY, HISTORY + 4))
    erased = [f"C{n:07d}" for n in range(10, 20)]
    env = isolated_settings(bootstrap, redis_url, idle_close_s=2, batch_size=512)
    s = settings_from(env)

    # 1. go live: the history in one command, segments on day one
    path = tmp_path / "history.jsonl"
    with open(path, "wb") as f:
        for i in range(HISTORY):
            f.writelines(orjson.dumps(e) + b"\n" for e in gen.month_events(i))
    out = segstream_cli(env, "bootstrap", "--path", str(path), "-q", timeout=30 * WAIT)
    assert out.returncode == 0, out.stderr.decode()[-2000:]

    w = Worker(env, tmp_path).start()
    try:
        # 2. the live stream, and a backfill of the next month that pauses for longer than the idle close
        publish(month(live[0]), s, progress=False)
        backfill = month(live[1])
        half = len(backfill) // 2
        publish(backfill[:half], s, progress=False)
        wait_until(all_consumed(s), WAIT, "the live month and half a backfill", [w])
        time.sleep(8)
        # 3. one mis-dated row inside the backfill: a customer's event dated this month
        misdated = dict(backfill[0], event_id="misdated", timestamp=time.strftime("%Y-%m-01T00:00:00+00:00"))
        publish([misdated, *backfill[half:]], s, progress=False)
        del backfill
        wait_until(all_consumed(s), WAIT, "the rest of the backfill", [w])
        # 4. erase ten customers
        gone = segstream_cli(env, "forget", *erased)
        assert gone.returncode == 0, gone.stderr.decode()[-1000:]
        announced_before = erased_changes(s, erased)
    finally:
        w.stop()

    # 5. rotate the Redis password: the worker comes back with the new one, given as it is
    r = connect(redis_url)
    new = "n3w/pass+word=with:odd@chars"
    r.config_set("requirepass", new)
    env = {**env, "SEGSTREAM_REDIS_PASSWORD": new}
    s = settings_from(env)
    w = Worker(env, tmp_path).start()
    try:
        publish(month(live[2]), s, progress=False)
        wait_until(all_consumed(s), WAIT, "a month with the new password", [w])
    finally:
        w.stop()

    # 6. the topic recreated (the broker's data lost): halted until recovered, then the new log
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([s.topic_transactions])
        admin.delete_groups([s.consumer_group])
        wait_until(lambda: s.topic_transactions not in admin.list_topics(), 60, "the topic to go")
    finally:
        admin.close()
    w = Worker(env, tmp_path).start()
    try:
        wait_until(lambda: len(end_offsets(s)) == 4, 60, "the topic made again", [w])
        publish(month(live[3]), s, progress=False)
        wait_until(
            lambda: w.metrics().get("segstream_halted_partitions{reason=log_mismatch}", 0) > 0, 60, "a halt", [w]
        )
        fixed = segstream_cli(env, "recover")
        assert fixed.returncode == 0, fixed.stderr.decode()[-1000:]
        wait_until(all_consumed(s), WAIT, "the new log", [w])
    finally:
        w.stop()

    # 7. a replay of what the topic holds under a new consumer group and namespace: erasures hold
    green = {**env, "SEGSTREAM_CONSUMER_GROUP": env["SEGSTREAM_CONSUMER_GROUP"] + "-green"}
    g = Worker(green, tmp_path).start()
    try:
        wait_until(all_consumed(settings_from(green)), WAIT, "the green replay", [g])
    finally:
        g.stop()

    # the year's end: every state equals a clean run of the same events, the erased absent everywhere
    every = itertools.chain(gen.events(), [misdated])
    pipe, _ = embedded(s, (e for e in every if e["customer_id"] not in erased))
    assert_same_states(s, pipe)
    r = connect(redis_url, password=new)
    everything = b"".join(k for k in r.scan_iter(count=1000))
    for key in r.scan_iter(count=1000):
        if r.type(key) == b"hash":
            everything += b"".join(r.hkeys(key))
    assert not [c for c in erased if c.encode() in everything]
    assert erased_changes(s, erased) == announced_before  # nothing announced of them after the erasure
    assert read_topic(s, s.topic_dlq) == []  # nothing dead-lettered: no record here is at fault


def erased_changes(s, erased: list[str]) -> int:
    return sum(1 for c in read_topic(s, s.topic_changes) if c["customer_id"] in erased)
