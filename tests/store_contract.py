"""The state-store contract, written once and run on every store (after feast's universal
online-store tests and river's ``check_estimator``): the in-memory store in the unit tier
(tests/unit/test_store_contract.py) and Redis on a real server in the integration tier
(tests/integration/test_store_contract.py). A module that imports these functions collects
them; it provides ``make_store(history=0)``, a fresh, empty store with hidden size ``H``.
"""

from __future__ import annotations

import numpy as np

from segstream.core.ports import StateBatch

H = 2
CENTROIDS = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)


def batch(points, last_window, segment, prev_segment=-1) -> StateBatch:
    """States at ``points`` for ``last_window``, announced in ``segment`` and folded into it."""
    n = len(points)
    b = StateBatch.empty(n, H)
    b.h[:] = points
    b.c[:] = np.asarray(points) * 2
    b.segment[:] = segment
    b.prev_segment[:] = prev_segment
    b.nearest[:] = segment
    b.last_window[:] = last_window
    b.n_windows[:] = np.asarray(last_window) + 1
    return b


def seeded(make_store, **kw):
    store = make_store(**kw)
    store.init_centroids(CENTROIDS, prior_weight=1.0)
    return store


def test_round_trip_of_every_field(make_store):
    store = seeded(make_store)
    b = batch([[1.0, 2.0], [3.0, 4.0]], np.array([3, 5]), np.array([0, 1]))
    b.streak[:] = [2, 0]
    b.pending[:] = [True, False]
    b.chart[:] = 0.5
    b.shadow_h[:] = 0.25
    assert store.commit(["a", "b"], b).tolist() == [True, True]
    got, _ = store.load(["a", "b", "nobody"])
    for f in StateBatch.fields():
        np.testing.assert_allclose(getattr(got, f)[:2], getattr(b, f), rtol=1e-3, err_msg=f)
    assert got.last_window[2] == -1 and got.segment[2] == -1  # unknown: empty


def test_the_guard_writes_only_newer_windows(make_store):
    store = seeded(make_store)
    store.commit(["a", "b"], batch([[1.0, 1.0], [9.0, 9.0]], np.array([3, 3]), np.array([0, 1])))
    again = store.commit(
        ["a", "b", "c"], batch([[7.0, 7.0], [0.0, 0.0], [5.0, 5.0]], np.array([3, 2, 0]), np.array([1, 0, 0]))
    )
    assert again.tolist() == [False, False, True]  # same window, older window, new customer
    got, _ = store.load(["a", "b"])
    np.testing.assert_array_equal(got.h, [[1.0, 1.0], [9.0, 9.0]])
    assert store.commit(["a"], batch([[2.0, 2.0]], np.array([4]), np.array([0]))).tolist() == [True]


def test_first_seed_wins_and_only_written_rows_fold(make_store):
    store = seeded(make_store)
    store.init_centroids(CENTROIDS * 5, prior_weight=9.0)  # a second worker's seed: no effect
    store.commit(["a", "b"], batch([[2.0, 2.0], [8.0, 8.0]], np.array([1, 1]), np.array([0, -1])))
    _, stats = store.load(["a"])
    assert stats.counts.tolist() == [2.0, 1.0] and stats.version == 1
    np.testing.assert_allclose(stats.centroids, [[1.0, 1.0], [10.0, 10.0]])  # b had no segment
    store.commit(["a"], batch([[6.0, 6.0]], np.array([1]), np.array([0])))  # a replay: not folded
    _, stats2 = store.load(["a"])
    assert stats2.counts.tolist() == [2.0, 1.0] and stats2.version == 1


def test_segment_sizes_follow_moves_and_ignore_replays(make_store):
    store = seeded(make_store)
    store.commit(["a", "b", "c"], batch([[0.0, 0.0]] * 3, np.array([0, 0, 0]), np.array([0, 0, -1])))
    assert store.segment_sizes() == {0: 2}
    move = batch([[9.0, 9.0]], np.array([1]), np.array([1]), prev_segment=0)
    store.commit(["a"], move)
    assert store.segment_sizes() == {0: 1, 1: 1}
    store.commit(["a"], move)  # replayed: refused, counted nowhere
    assert store.segment_sizes() == {0: 1, 1: 1}


def test_segments_of_some_or_all_customers(make_store):
    store = seeded(make_store)
    store.commit(["a", "b"], batch([[0.0, 0.0], [9.0, 9.0]], np.array([0, 0]), np.array([0, 1])))
    assert store.segments() == {"a": 0, "b": 1}
    assert store.segments(["b", "nobody"]) == {"b": 1, "nobody": -1}


def test_history_keeps_the_last_windows_in_order(make_store):
    store = seeded(make_store, history=3)
    for w in range(5):
        store.commit(["a"], batch([[float(w), 0.0]], np.array([w]), np.array([0])))
    store.commit(["a"], batch([[99.0, 0.0]], np.array([2]), np.array([0])))  # a replay: not recorded
    traj = store.trajectory("a")
    assert traj.last_window.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(traj.h[:, 0], [2.0, 3.0, 4.0])
    assert store.trajectory("nobody").last_window.tolist() == []


def test_window_flows_count_applied_windows_once(make_store):
    store = seeded(make_store)
    store.commit(["a", "b", "c"], batch([[0.0, 0.0]] * 3, np.array([0, 0, 0]), np.array([0, 0, -1])))
    moved = batch([[9.0, 9.0], [0.0, 0.0]], np.array([1, 1]), np.array([1, 0]), prev_segment=np.array([0, 0]))
    store.commit(["a", "b"], moved)
    want = {0: {(-1, 0): 2}, 1: {(0, 1): 1, (0, 0): 1}}  # c never had a segment: not counted
    assert store.window_flows() == want
    store.commit(["a", "b"], moved)  # a replay adds nothing
    assert store.window_flows() == want


def test_one_customer_twice_in_a_batch_in_window_order(make_store):
    """A batch that closes two windows of one customer (a month-end after a gap) commits both
    in window order: the later one stands."""
    store = seeded(make_store, history=3)
    b = batch([[1.0, 1.0], [2.0, 2.0]], np.array([3, 4]), np.array([0, 0]))
    store.commit(["a", "a"], b)
    got, _ = store.load(["a"])
    assert got.last_window.tolist() == [4] and got.h[0].tolist() == [2.0, 2.0]
    assert store.trajectory("a").last_window.tolist() == [3, 4]  # both windows, in order
