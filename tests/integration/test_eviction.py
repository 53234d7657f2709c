"""A Redis that may evict keys (``allkeys-*`` with ``maxmemory``, a cache's settings) on real servers.

Before: nothing looked. Redis evicted whole hashes of customers' states and open windows under
memory pressure, the worker re-warmed those customers from nothing and committed past their
records, healthy. Now an evicting policy halts every partition until it is changed, and evictions
halt them until ``segstream recover`` has rebuilt the namespace from the retained input.
"""

from __future__ import annotations

import time

import orjson
import pytest

from segstream.errors import StoreEvicted, StoreMayEvict
from segstream.producers.kafka_producer import publish
from segstream.state.eviction import EvictionWatch
from segstream.state.redis_client import connect

from .harness import (
    Worker,
    all_consumed,
    assert_same_states,
    consumed,
    embedded,
    isolated_settings,
    segstream_cli,
    settings_from,
    wait_until,
)
from .servers import redis_server

pytestmark = pytest.mark.integration


def evict_something(r) -> int:
    """Fill Redis past a ``maxmemory`` just above what it holds, as another tenant of it would,
    until it evicts, then free the tenant's keys (the policy stays); returns the keys evicted."""
    before = int(r.info("stats")["evicted_keys"])
    r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) + (1 << 20)))
    for i in range(400):
        r.set(f"cache:{i}", b"x" * 10_000)
        if int(r.info("stats")["evicted_keys"]) > before:
            break
    r.delete(*r.keys("cache:*"))
    return int(r.info("stats")["evicted_keys"]) - before


def test_the_watch_halts_on_an_evicting_policy_and_remembers_evictions_until_a_rebuild(tmp_path):
    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        r = connect(f"redis://127.0.0.1:{red.port}/0")
        a, b = EvictionWatch(r, "ns"), EvictionWatch(r, "ns")  # two workers of one deployment
        a.check()  # Debian's default: noeviction
        r.config_set("maxmemory-policy", "allkeys-lru")
        a.check()  # no maxmemory: nothing can be evicted
        r.config_set("maxmemory", str(1 << 30))
        with pytest.raises(StoreMayEvict, match="allkeys-lru"):
            a.check()
        r.config_set("maxmemory-policy", "volatile-lru")  # evicts keys with a TTL only: none of ours
        a.check()
        r.config_set("maxmemory-policy", "allkeys-lfu")
        r.set("ns:s:1", b"a state")
        assert evict_something(r) > 0
        with pytest.raises(StoreEvicted, match="evicted"):
            a.check()
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", "0")
        with pytest.raises(StoreEvicted):  # another worker, and after the policy is fixed
            b.check()
        r.delete(a.flag_key)  # the flag itself evicted: the worker that saw the loss writes it again
        with pytest.raises(StoreEvicted):
            a.check()
        assert r.exists(a.flag_key)
        r.set("ns:forgotten", b"digests")
        assert a.wipe(keep=("ns:forgotten",)) >= 0 and not r.exists("ns:s:1") and r.exists("ns:forgotten")
        a.rebuilt()
        a.check()
        b.check()

        r.config_set("maxmemory-policy", "allkeys-lru")
        r.delete(a.seen_key)  # the counts themselves evicted, and a worker that never looked before
        assert evict_something(r) > 0
        r.set("ns:s:2", b"a state the evictions left")
        with pytest.raises(StoreEvicted, match="kept no count"):
            EvictionWatch(r, "ns").check()
        r.config_set("maxmemory", "0")
        a.wipe()
        a.rebuilt()

        r.config_set("maxmemory-policy", "allkeys-lru")
        r.config_set("maxmemory", str(1 << 30))
        with pytest.raises(StoreMayEvict):
            a.check()  # its count now says it could evict
        red.stop()  # a restart forgets CONFIG SET (noeviction again) and the eviction count
        red.start()
        with pytest.raises(StoreEvicted, match="restarted"):
            EvictionWatch(connect(f"redis://127.0.0.1:{red.port}/0"), "ns").check()
        assert orjson.loads(r.get(a.flag_key))["why"].startswith("Redis restarted")
    finally:
        red.stop()


def test_a_redis_that_evicts_halts_the_worker_until_recover_rebuilds_the_namespace(bootstrap, events, tmp_path):
    red = redis_server(tmp_path / "redis")
    red.start()
    try:
        env = isolated_settings(bootstrap, f"redis://127.0.0.1:{red.port}/0", batch_size=256)
        s = settings_from(env)
        r = connect(s.redis_url)
        a, b = len(events) // 2, int(len(events) * 0.75)
        publish(events[:a], s, progress=False)
        w = Worker(env, tmp_path).start()
        try:
            wait_until(all_consumed(s), 180, "the first half", [w])
            r.config_set("maxmemory-policy", "allkeys-lru")  # made a cache, with room to spare for now
            r.config_set("maxmemory", str(1 << 30))
            halted = "segstream_halted_partitions{reason=store_may_evict}"
            wait_until(lambda: w.metrics().get(halted, 0) == 4, 60, "every partition to halt", [w])
            assert w.health()[0] == 503
            before = sum(consumed(s).values())
            publish(events[a:b], s, progress=False)
            time.sleep(8)  # past a recheck: nothing is read while Redis may evict
            assert sum(consumed(s).values()) == before
            assert evict_something(r) > 0  # another tenant fills it
            evicted = "segstream_halted_partitions{reason=store_evicted}"
            wait_until(lambda: w.metrics().get(evicted, 0) == 4, 60, "every partition to halt as evicted", [w])
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", "0")
            time.sleep(8)  # the policy is fixed, but what was evicted is still missing
            assert w.metrics().get(evicted, 0) == 4 and sum(consumed(s).values()) == before
            out = segstream_cli(env, "recover", timeout=120)
            assert out.returncode == 0, out.stderr.decode()[-2000:]
            assert orjson.loads(out.stdout)["evicted"]["keys_deleted"] > 0
            publish(events[b:], s, progress=False)
            wait_until(all_consumed(s), 300, "the worker to rebuild every state from the log", [w])
            assert w.metrics().get(evicted, 0) == 0 and w.health()[0] == 200
        finally:
            w.stop()
        assert_same_states(s, embedded(s, events)[0])
    finally:
        red.stop()


def test_the_watch_reads_every_primary_of_a_cluster_and_rebuilds_in_one_slot(redis_cluster_url):
    from redis.cluster import RedisCluster

    r = connect(redis_cluster_url, cluster=True)
    w = EvictionWatch(r, f"ns{time.time_ns()}")
    assert len(w.nodes()) == 3
    w.check()
    try:
        r.config_set("maxmemory-policy", "allkeys-lru", target_nodes=RedisCluster.PRIMARIES)
        r.config_set("maxmemory", str(1 << 30), target_nodes=RedisCluster.PRIMARIES)
        with pytest.raises(StoreMayEvict):
            w.check()
    finally:
        r.config_set("maxmemory-policy", "noeviction", target_nodes=RedisCluster.PRIMARIES)
        r.config_set("maxmemory", "0", target_nodes=RedisCluster.PRIMARIES)
    r.set(f"{w.prefix}:{{g0}}:s", b"a state")
    r.set(w.flag_key, orjson.dumps({"why": "Redis evicted 1 keys", "at": time.time()}))
    with pytest.raises(StoreEvicted):
        w.check()
    assert w.wipe() == 1 and not r.exists(f"{w.prefix}:{{g0}}:s")
    w.rebuilt()  # one MULTI over the watch's keys: one slot
    w.check()
