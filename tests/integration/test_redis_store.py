"""The Redis store keeps the in-memory store's semantics, on a real redis-server."""

from datetime import UTC, datetime

import numpy as np
import pytest

from segstream.core.change import EmissionPolicy
from segstream.core.engine import SegmentEngine
from segstream.core.ports import StateBatch
from segstream.core.windows import WindowAggregator, WindowSpec
from segstream.state.fencing import Fenced
from segstream.state.memory import InMemoryStateStore
from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore
from segstream.state.redis_windows import WindowCheckpoints
from tests.unit.test_engine import CENTROIDS, H, PassThroughModel, window

pytestmark = pytest.mark.integration


def batch(points, last_window, segment):
    n = len(points)
    b = StateBatch.empty(n, H)
    b.h[:] = points
    b.c[:] = np.asarray(points) * 2
    b.segment[:] = segment
    b.nearest[:] = segment  # the centroid the state folds into
    b.last_window[:] = last_window
    b.n_windows[:] = last_window + 1
    return b


def test_engine_gives_same_results_on_redis_and_in_memory(redis_url):
    mem = SegmentEngine(
        PassThroughModel(),
        InMemoryStateStore(H),
        policy=EmissionPolicy(warmup=2, confirm=2, margin=0.1),
        initial_centroids=CENTROIDS,
        prior_weight=3,
    )
    red_store = RedisStateStore(connect(redis_url), H, "test-v2")
    red = SegmentEngine(
        PassThroughModel(),
        red_store,
        policy=EmissionPolicy(warmup=2, confirm=2, margin=0.1),
        initial_centroids=CENTROIDS,
        prior_weight=3,
    )
    rng = np.random.default_rng(0)
    for idx in range(6):
        ws = [window(f"c{i}", idx, rng.uniform(0, 10, 2)) for i in range(50)]
        a, b = mem.process(ws), red.process(ws)
        assert [c.model_dump() for c in a.changes] == [c.model_dump() for c in b.changes]
    np.testing.assert_allclose(mem.store.stats.sums, red_store.centroid_stats().sums, rtol=1e-6)
    assert red_store.segments() == mem.store.segments()


def test_window_flows_are_the_same_on_redis_and_in_memory_and_a_replay_adds_nothing(redis_url):
    """Sizes per window and the flow between segments: kept by the commit in the same atomic step
    as the states, so the rows the guard refuses (a replay) are not counted again."""
    policy = EmissionPolicy(warmup=2, confirm=2, margin=0.1)
    mem = SegmentEngine(
        PassThroughModel(), InMemoryStateStore(H), policy=policy, initial_centroids=CENTROIDS, prior_weight=3
    )
    red_store = RedisStateStore(connect(redis_url), H, "test-flows")
    red = SegmentEngine(PassThroughModel(), red_store, policy=policy, initial_centroids=CENTROIDS, prior_weight=3)
    rng = np.random.default_rng(4)
    batches = [[window(f"c{i}", idx, rng.uniform(0, 10, 2)) for i in range(40)] for idx in range(6)]
    for ws in batches:
        mem.process(ws)
        red.process(ws)
    flows = red_store.window_flows()
    assert flows == mem.store.window_flows() and len(flows) >= 4
    sizes = {w: sum(n for (_, after), n in f.items()) for w, f in flows.items()}
    assert all(n <= 40 for n in sizes.values()) and sizes[max(sizes)] == 40
    assert any(before != after for f in flows.values() for before, after in f if before >= 0)  # moves happen
    red.process(batches[-1])  # replayed: every row refused by the guard
    assert red_store.window_flows() == flows


def _stream(n: int, seed: int):
    """Events over three months for a few customers, with repeated ids."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    ts = np.sort(t0 + rng.uniform(0, 90 * 86400, n))
    return [
        (
            f"c{rng.integers(5)}",
            float(t),
            int(rng.integers(3)),
            float(rng.uniform(1, 50)),
            float(rng.uniform(1000, 3000)) if rng.random() < 0.3 else None,
            f"e{rng.integers(n)}",
        )
        for t in ts
    ]


def _summary(closed):
    return sorted((w.customer_id, w.index, w.n_events, w.income, tuple(np.round(w.spend, 9))) for w in closed)


def test_window_checkpoint_restores_exactly_what_an_uninterrupted_run_has(redis_url):
    spec, events = WindowSpec(months=1), _stream(600, 1)
    whole = WindowAggregator(spec, 3, allowed_lateness_s=86400)
    for e in events:
        whole.add(*e)
    cp = WindowCheckpoints(connect(redis_url), 3)
    assert cp.load("t", 0) == (-1, float("-inf"), [])
    agg, closed, offset = WindowAggregator(spec, 3, allowed_lateness_s=86400), [], -1
    for cut in range(0, 600, 100):  # a "crash" after every checkpoint: the next owner restores
        for e in events[cut : cut + 100]:
            agg.add(*e)
        closed += agg.poll()
        deltas, gone = agg.checkpoint_delta()
        cp.save("t", 0, cut + 99, agg.max_event_time, deltas, gone, agg.window_numbers)
        offset, met, snapshot = cp.load("t", 0)
        agg = WindowAggregator(spec, 3, allowed_lateness_s=86400)
        agg.restore(snapshot, met)
    assert offset == 599
    assert agg.add(*events[-1]) == "duplicate"  # restored keys still deduplicate
    closed += agg.flush()
    assert _summary(closed) == _summary(whole.flush())


def test_a_checkpoint_in_the_old_format_is_refused_not_half_restored(redis_url):
    r = connect(redis_url)
    r.hset("seg:p:old:0", mapping={"offset": 41, "max_event_time": "1.0"})  # 0.1 wrote no "open" field
    with pytest.raises(RuntimeError, match="0.1's format"):
        WindowCheckpoints(r, 3).load("old", 0)


def test_a_newer_claim_fences_the_old_owners_checkpoint_and_state_writes(redis_url):
    """What a zombie (a worker paused past its session, then resumed) would write is refused,
    atomically, and changes nothing; the new owner's writes go through."""
    r = connect(redis_url)
    cp = WindowCheckpoints(r, 2, prefix="fence")
    fences: list[tuple[str, int, int]] = []  # what the worker's core says the next commit is made under
    store = RedisStateStore(r, H, "test-fence", prefix="fence", fences=lambda: fences)
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    old = cp.claim("tx", 0)
    cp.save("tx", 0, 10, 0.0, [], [], [], epoch=old)
    new = cp.claim("tx", 0)  # the partition moved
    assert new > old
    with pytest.raises(Fenced) as err:
        cp.save("tx", 0, 4, 0.0, [], [], [], epoch=old)
    assert err.value.partitions == [0] and err.value.where == "checkpoint"
    assert cp.offset("tx", 0) == 10
    cp.save("tx", 0, 12, 0.0, [], [], [], epoch=new)
    assert cp.offset("tx", 0) == 12

    fences[:] = [(cp.epoch_key("tx", 0), old, 0), (cp.epoch_key("tx", 1), 0, 1)]
    version = store.centroid_stats().version
    with pytest.raises(Fenced) as err:
        store.commit(["a"], batch([[1.0, 1.0]], np.array([3]), np.array([0])))
    assert err.value.partitions == [0] and err.value.where == "state"
    got, stats = store.load(["a"])
    assert got.last_window.tolist() == [-1] and stats.version == version  # nothing written, nothing folded
    fences[:] = [(cp.epoch_key("tx", 0), new, 0)]
    assert store.commit(["a"], batch([[1.0, 1.0]], np.array([3]), np.array([0]))).tolist() == [True]


def test_customer_ids_all_by_prefix_and_first_page(redis_url):
    """Listing reads every bucket's fields; a search lets Redis filter by the prefix (glob
    characters in it are literal) and a limit stops early."""
    store = RedisStateStore(connect(redis_url), H, "test-ids", buckets=8)
    store.init_centroids(CENTROIDS, 1.0)
    ids = [f"C{i:03d}" for i in range(40)] + ["X*1", "X11"]
    store.commit(ids, batch(np.zeros((len(ids), H)), np.zeros(len(ids), int), np.zeros(len(ids), int)))
    assert sorted(store.customer_ids()) == sorted(ids)
    assert sorted(store.customer_ids(prefix="C01")) == [f"C01{i}" for i in range(10)]
    assert store.customer_ids(prefix="X*") == ["X*1"]
    page = store.customer_ids(limit=5)
    assert len(page) == 5 and set(page) <= set(ids)


def test_a_claim_that_vanished_is_a_lost_store_not_a_fence(redis_url):
    """Issue 28: Redis restarted empty took the partition epochs with it; the worker took that for a
    newer owner, fenced itself out and skipped every record. A missing claim is a lost store."""
    from segstream.errors import StoreLost

    r = connect(redis_url)
    cp = WindowCheckpoints(r, 2, prefix="lost")
    fences: list[tuple[str, int, int]] = []
    store = RedisStateStore(r, H, "test-lost", prefix="lost", fences=lambda: fences)
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    epoch = cp.claim("tx", 0)
    fences[:] = [(cp.epoch_key("tx", 0), epoch, 0)]
    r.flushdb()
    with pytest.raises(StoreLost):
        cp.save("tx", 0, 12, 0.0, [], [], [], epoch=epoch)
    with pytest.raises(StoreLost):
        store.load(["a"])
    store.init_centroids(CENTROIDS, prior_weight=1.0)  # a restarted worker seeds them again...
    with pytest.raises(StoreLost):  # ... but the claim it wrote under is gone
        store.commit(["a"], batch([[1.0, 1.0]], np.array([3]), np.array([0])))
