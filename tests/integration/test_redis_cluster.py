"""The worker on a Redis Cluster whose master dies mid-stream: its replica takes over, nothing is lost.

Each batch's state commit is one script per slot group; before a window checkpoint the
worker waits until every master it wrote has passed the states to a replica, so a
failover can only lose writes the checkpoint does not yet cover, which a replay redoes.
"""

from __future__ import annotations

import subprocess

import pytest

from segstream.assembly import load_model
from segstream.producers.kafka_producer import publish
from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore

from .harness import (
    Worker,
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
from .servers import ROOT, redis_cluster

pytestmark = pytest.mark.integration


def test_a_master_killed_mid_stream_fails_over_and_the_states_equal_a_clean_run(bootstrap, events, tmp_path):
    srv = redis_cluster(tmp_path / "cluster")
    srv.start()
    w = None
    try:
        url = f"redis://127.0.0.1:{srv.port}/0"
        env = isolated_settings(
            bootstrap, url, redis_cluster="true", redis_cluster_groups=8, batch_size=64, checkpoint_interval_s=0.05
        )
        s = settings_from(env)
        publish(events, s, progress=False)
        total = sum(end_offsets(s).values())
        client = connect(url, cluster=True)
        art, _ = load_model(s)
        store = RedisStateStore.for_deployment(client, s, art.hidden_size, art.version)
        # a master holding slot groups that is not the node the clients start from (which a
        # client given several nodes would survive too); chosen before the worker starts, so the
        # kill follows the third of the topic at once (on a loaded machine the model's load in
        # between once let the worker finish first: "killed too late")
        victim = next(n for n in (client.get_node_from_key(k) for k in store.centroid_keys) if n.port != srv.port)
        kill = [str(ROOT / "scripts" / "redis-cluster-local"), "kill-master", str(srv.workdir), str(victim.port)]
        w = Worker(env, tmp_path).start()
        wait_until(lambda: sum(consumed(s).values()) > total // 3, 180, "a third of the topic", [w], poll_s=0.02)
        before = sum(consumed(s).values())
        subprocess.run(kill, check=True)
        assert before < total, "killed too late to test anything"
        wait_until(lambda: sum(consumed(s).values()) >= total, 300, "the worker to finish after the failover", [w])
        m = w.metrics()
        nodes = connect(url, cluster=True).cluster_nodes()
        w.stop()
        # the killed master is marked failed; the worker either met the outage (counted, backed
        # off, resumed from its checkpoint) or redis-py's cluster client retried it against the
        # promoted replica: both happen, depending on where the kill lands
        assert any(addr.endswith(f":{victim.port}") and "fail" in n["flags"] for addr, n in nodes.items()), nodes
        assert m.get("segstream_events_total{outcome=ok}", 0) > 0
        pipe, ref = embedded(s, events)
        assert_same_states(s, pipe)
        got = change_keys(read_topic(s, s.topic_changes))
        assert sorted(set(got)) == change_keys(ref)
    finally:
        if w is not None:
            w.stop()
        srv.stop()
