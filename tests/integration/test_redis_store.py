"""The Redis store keeps the in-memory store's semantics, on a real redis-server."""

import numpy as np
import pytest

from segstream.core.engine import SegmentEngine
from segstream.core.ports import StateBatch
from segstream.core.windows import OpenWindow
from state.memory import InMemoryStateStore
from state.redis_client import connect
from state.redis_store import RedisStateStore
from state.redis_windows import WindowCheckpoints, decode_window, encode_window
from tests.unit.test_engine import CENTROIDS, H, PassThroughModel, window

pytestmark = pytest.mark.integration


def batch(points, last_window, segment):
    n = len(points)
    b = StateBatch.empty(n, H)
    b.h[:] = points
    b.c[:] = np.asarray(points) * 2
    b.segment[:] = segment
    b.last_window[:] = last_window
    b.n_windows[:] = last_window + 1
    return b


def test_round_trip_guard_and_centroid_fold(redis_url):
    store = RedisStateStore(connect(redis_url), H, "test-v1")
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    store.init_centroids(CENTROIDS * 5, prior_weight=9.0)  # second worker: no effect
    written = store.commit(["a", "b"], batch([[1.0, 1.0], [9.0, 9.0]], np.array([3, 3]), np.array([0, -1])))
    assert written.tolist() == [True, True]
    got, stats = store.load(["a", "b", "nobody"])
    np.testing.assert_array_equal(got.h[:2], [[1.0, 1.0], [9.0, 9.0]])
    np.testing.assert_array_equal(got.c[0], [2.0, 2.0])
    assert got.last_window.tolist() == [3, 3, -1] and got.segment.tolist() == [0, -1, -1]
    assert stats.version == 1 and stats.counts.tolist() == [2.0, 1.0]
    np.testing.assert_allclose(stats.centroids[0], [0.5, 0.5])  # (0 + 1) / 2; b had no segment
    # replay of window 3 and an older window 2: neither is written nor folded again
    again = store.commit(["a", "b"], batch([[7.0, 7.0], [0.0, 0.0]], np.array([3, 2]), np.array([1, 0])))
    assert again.tolist() == [False, False]
    _, stats2 = store.load(["a"])
    assert stats2.version == 1 and stats2.counts.tolist() == [2.0, 1.0]


def test_engine_gives_same_results_on_redis_and_in_memory(redis_url):
    mem = SegmentEngine(PassThroughModel(), InMemoryStateStore(H), warmup_windows=2, initial_centroids=CENTROIDS, prior_weight=3)
    red_store = RedisStateStore(connect(redis_url), H, "test-v2")
    red = SegmentEngine(PassThroughModel(), red_store, warmup_windows=2, initial_centroids=CENTROIDS, prior_weight=3)
    rng = np.random.default_rng(0)
    for idx in range(6):
        ws = [window(f"c{i}", idx, rng.uniform(0, 10, 2)) for i in range(50)]
        a, b = mem.process(ws), red.process(ws)
        assert [c.model_dump() for c in a.changes] == [c.model_dump() for c in b.changes]
    np.testing.assert_allclose(mem.store.stats.sums, red_store.centroid_stats().sums, rtol=1e-6)
    assert red_store.scan_segments() == mem.store.segments()


def test_window_checkpoint_round_trip(redis_url):
    w = OpenWindow(spend=[1.5, 0.0, 2.25], n=3, income=None, ids={1, 2**64 - 1})
    assert decode_window(encode_window(w), 3) == w
    cp = WindowCheckpoints(connect(redis_url), 3)
    assert cp.load("t", 0) == (-1, float("-inf"), [])
    cp.save("t", 0, 41, 1234.5, [(7, "cust:1", w)], [])
    cp.save("t", 0, 42, 1300.0, [(8, "cust:1", w)], [(7, "cust:1")])
    assert cp.load("t", 0) == (42, 1300.0, [(8, "cust:1", w)])


def test_segment_sizes_follow_changes(redis_url):
    store = RedisStateStore(connect(redis_url), H, "test-v3")
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    b = batch([[0.0, 0.0], [1.0, 1.0]], np.array([0, 0]), np.array([0, 0]))
    store.commit(["a", "b"], b)
    b2 = batch([[9.0, 9.0]], np.array([1]), np.array([1]))
    b2.prev_segment[:] = 0
    store.commit(["a"], b2)
    assert store.segment_sizes() == {0: 1, 1: 1}


def test_history_keeps_the_last_windows_in_order(redis_url):
    store = RedisStateStore(connect(redis_url), H, "test-v4", history=3)
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    for w in range(5):
        store.commit(["a"], batch([[float(w), 0.0]], np.array([w]), np.array([0])))
    store.commit(["a"], batch([[99.0, 0.0]], np.array([2]), np.array([0])))  # a replay: not recorded
    traj = store.trajectory("a")
    assert traj.last_window.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(traj.h[:, 0], [2.0, 3.0, 4.0])
    assert store.trajectory("nobody").last_window.tolist() == []
