"""Engine change detection with a transparent model: the hidden state is the input."""

import numpy as np

from segstream.core.change import EmissionPolicy
from segstream.core.engine import SegmentEngine, rounds
from segstream.core.kmeans import nearest
from segstream.core.ports import CentroidStats
from segstream.core.windows import ClosedWindow
from segstream.state.memory import InMemoryStateStore

H = 2


class PassThroughModel:
    """h := x, so each window puts the customer exactly where the test says."""

    version = "passthrough-1"
    hidden_size = H
    calibration = None  # no change statistic: the emission policy alone

    def __init__(self):
        self.calls = 0

    def step(self, x, h, c):
        self.calls += 1
        return x.copy(), c + 1, np.tile(x[:, :1], (1, 5))

    def traits_of(self, h):
        return np.tile(h[:, :1], (1, 5))


CENTROIDS = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)


def window(cid, idx, point):
    spend = np.asarray(point, float)
    return ClosedWindow(cid, idx, idx * 100.0, (idx + 1) * 100.0, spend, 1, income=1.0)


def make(warmup=1, confirm=1, margin=0.0):
    model = PassThroughModel()
    store = InMemoryStateStore(H)
    # the drift rule alone: the other rules (on by default) would hold back these toy moves
    policy = EmissionPolicy(
        warmup=warmup, rewarm=1, confirm=confirm, margin=margin, settle=0.0, departure=0.0, review=0
    )
    return SegmentEngine(model, store, policy=policy, initial_centroids=CENTROIDS, prior_weight=1e6), model, store


def test_first_assignment_then_change_then_no_change():
    eng, _, _ = make()
    r1 = eng.process([window("a", 0, [0.5, 0.0]), window("b", 0, [9.0, 9.5])])
    assert [(c.customer_id, c.old_segment, c.new_segment) for c in r1.changes] == [("a", None, 0), ("b", None, 1)]
    r2 = eng.process([window("a", 1, [9.5, 9.0]), window("b", 1, [10.0, 10.0])])
    assert [(c.customer_id, c.old_segment, c.new_segment) for c in r2.changes] == [("a", 0, 1)]
    ch = r2.changes[0]
    assert ch.model_version == "passthrough-1" and 0.0 <= ch.confidence <= 1.0
    assert ch.distance == np.float32(np.hypot(0.5, 1.0))
    assert eng.process([window("a", 2, [9.9, 9.9])]).changes == []


def test_warmup_withholds_segments():
    eng, _, store = make(warmup=3)
    for i in range(2):
        r = eng.process([window("a", i, [0.0, 0.0])])
        assert r.changes == [] and r.assigned == 0
    r = eng.process([window("a", 2, [0.0, 0.0])])
    assert [c.new_segment for c in r.changes] == [0]
    assert store.segments() == {"a": 0}


def test_replayed_window_is_not_applied_twice():
    eng, model, store = make()
    eng.process([window("a", 0, [0.0, 0.0])])
    before = store.state("a")
    version = store.stats.version
    r = eng.process([window("a", 0, [10.0, 10.0])])  # replay of an applied window
    assert r.stale == 1 and r.applied == 0
    assert [(c.old_segment, c.new_segment) for c in r.changes] == [(None, 0)]  # re-announced, not re-applied
    assert store.state("a")[4] == before[4] and store.stats.version == version
    np.testing.assert_array_equal(store.state("a")[0], before[0])


def test_replay_of_the_last_window_reannounces_its_change():
    """A crash after the state write but before publishing must not lose the change event."""
    eng, _, _ = make()
    eng.process([window("a", 0, [0.0, 0.0])])
    first = eng.process([window("a", 1, [10.0, 10.0])]).changes
    replay = eng.process([window("a", 1, [10.0, 10.0])])
    assert replay.applied == 0 and replay.stale == 1
    assert [(c.old_segment, c.new_segment, c.window_end) for c in replay.changes] == [
        (c.old_segment, c.new_segment, c.window_end) for c in first
    ]
    # an older window replayed says nothing
    assert eng.process([window("a", 0, [0.0, 0.0])]).changes == []


def test_backlog_of_one_customer_is_applied_in_window_order_with_one_model_call_per_round():
    eng, model, store = make()
    batch = [window("a", 1, [10, 10]), window("a", 0, [0, 0]), window("b", 0, [0, 0])]
    assert [[w.index for w in r] for r in rounds(batch)] == [[0, 0], [1]]
    r = eng.process(batch)
    assert model.calls == 2 and r.applied == 3
    assert [(c.customer_id, c.new_segment) for c in r.changes] == [("a", 0), ("b", 0), ("a", 1)]
    assert store.state("a")[4] == 1 and store.state("a")[5] == 2


def test_centroids_follow_assigned_states():
    eng, _, store = make()
    store.stats.sums[:] = CENTROIDS  # weight 1 per centroid
    store.stats.counts[:] = 1.0
    eng.process([window("a", 0, [2.0, 0.0])])
    np.testing.assert_allclose(store.stats.centroids[0], [1.0, 0.0])


def test_centroid_stats_seed_and_fold_as_running_means():
    stats = CentroidStats.seed(CENTROIDS, prior_weight=1.0)
    x = np.array([[2.0, 2.0], [8.0, 8.0], [4.0, 4.0]])
    stats.fold(x, nearest(stats.centroids, x)[0])
    np.testing.assert_allclose(stats.centroids, [[2.0, 2.0], [9.0, 9.0]])  # (0+2+4)/3, (10+8)/2
    assert stats.version == 1
    stats.fold(x, np.full(3, -1))  # nothing assigned: nothing folded, same version
    assert stats.version == 1
    idx, dist, conf = nearest(CENTROIDS, np.array([[5.0, 5.0], [0.0, 0.0]]))
    assert conf[0] == 0.0 and conf[1] == 1.0 and dist[1] == 0.0


def test_a_move_is_announced_only_once_confirmed_for_k_windows_by_a_margin():
    eng, _, store = make(confirm=3, margin=0.2)
    eng.process([window("a", 0, [0.0, 0.0])])
    # one window across the boundary, then back: noise, not announced
    assert eng.process([window("a", 1, [9.0, 9.0])]).changes == []
    assert eng.process([window("a", 2, [0.5, 0.5])]).changes == []
    # just past the boundary (relative margin ~0.03 < 0.2) for many windows: not announced
    for i in range(3, 7):
        assert eng.process([window("a", i, [5.2, 5.2])]).changes == []
    # clearly nearer the other centroid: announced on the third window in a row
    assert eng.process([window("a", 7, [9.5, 9.5])]).changes == []
    assert eng.process([window("a", 8, [9.5, 9.5])]).changes == []
    (ch,) = eng.process([window("a", 9, [9.5, 9.5])]).changes
    assert (ch.old_segment, ch.new_segment) == (0, 1)
    assert ch.evidence["reason"] == "confirmed_drift" and ch.evidence["windows_confirmed"] == 3
    assert ch.evidence["margin"] > 0.2
    assert store.segments() == {"a": 1}


def test_a_detected_change_restarts_from_the_windows_since_it_began():
    """The restarted state has seen the change's first window too, not only the alarm's."""
    from segstream.core.change import Calibration, ChangeDetector
    from segstream.core.personality import CATEGORIES, CATEGORY_INDEX, log_ratio_traits

    k = len(CATEGORIES)

    def mix(category):
        v = np.full(k, 1.0)
        v[CATEGORY_INDEX[category]] = 200.0
        return v

    class SumModel:
        """h := the window, c := sum of the windows this state has seen; it always predicts a reader of books."""

        version, hidden_size = "sum-1", k
        calibration = Calibration(np.zeros(5), np.ones(5), np.full(5, 0.05), np.zeros((12, 5)))

        def step(self, x, h, c):
            return x.copy(), c + x, self.traits_of(x)

        def traits_of(self, h):
            return np.tile(log_ratio_traits(mix("books")), (len(h), 1))

    store = InMemoryStateStore(k)
    eng = SegmentEngine(
        SumModel(),
        store,
        policy=EmissionPolicy(
            warmup=3, rewarm=1, confirm=3, margin=0.2, settle=0.0, patience=3, departure=0.0, review=0
        ),
        # one clipped window reaches (6.7 - 1.75)^2 = 24.5 on the CUSUM: at 30 it takes two to call it
        detector=ChangeDetector(threshold=30.0, quiet=9.2),
        initial_centroids=np.stack([mix("books"), mix("savings")]).astype(np.float32) / 229.0,
    )
    w = lambda i, cat: ClosedWindow("a", i, i * 100.0, (i + 1) * 100.0, mix(cat), 1, income=1.0)  # noqa: E731
    for i in range(4):
        assert eng.process([w(i, "books")]).detected == 0
    first = eng.process([w(4, "savings")])  # the change begins: too early to call, but not quiet
    assert first.detected == 0
    (shadow,) = store.load(["a"])[0].shadow_c
    np.testing.assert_allclose(shadow, mix("savings"), rtol=1e-3)  # the shadow restarted at it
    assert eng.process([w(5, "savings")]).detected == 1
    state = store.load(["a"])[0]
    np.testing.assert_allclose(state.c[0], 2 * mix("savings"), rtol=1e-3)  # both changed windows, no books
    assert not state.shadow_c.any()


def test_the_k_means_module_s_example_holds():
    """The doctest in segstream/core/kmeans.py is its spec (as river's k_means.py has one)."""
    import doctest

    from segstream.core import kmeans

    assert doctest.testmod(kmeans).failed == 0


def test_without_a_calibrated_confidence_no_setting_holds_a_first_segment():
    """A freshly trained artefact has no fitted confidence: the event's confidence is then the
    margin, which is no probability, and a first segment near a boundary still goes out at the
    warm-up whatever first_confidence says (the blue-green test's green model)."""
    model, store = PassThroughModel(), InMemoryStateStore(H)
    policy = EmissionPolicy(warmup=1, review=0, first_confidence=0.9, min_confidence=0.9)
    eng = SegmentEngine(model, store, policy=policy, initial_centroids=CENTROIDS, prior_weight=1e6)
    (change,) = eng.process([window("a", 0, [4.5, 4.5])]).changes  # nearly halfway between the centroids
    assert change.old_segment is None and change.new_segment == 0 and change.confidence < 0.9


class LeaningModel(PassThroughModel):
    """h := x, and the state's own traits lead with trait 0 then 1 while h[1] <= 5, else with 2 then
    3: a state can sit nearest one centroid while its traits name the other's label."""

    def traits_of(self, h):
        upper = np.asarray(h)[:, 1:2] > 5
        return np.where(upper, [[0.0, 0.0, 2.0, 1.0, -1.0]], [[2.0, 1.0, 0.0, 0.0, -1.0]]).astype(np.float32)


def test_a_move_waits_while_the_states_own_traits_name_another_segment_at_most_twice_the_warm_up():
    def run(agreement: bool, third: list[float]):
        policy = EmissionPolicy(
            warmup=2, rewarm=1, confirm=1, margin=0.0, settle=0.0, departure=0.0, review=0, agreement=agreement
        )
        eng = SegmentEngine(LeaningModel(), InMemoryStateStore(H), policy=policy, initial_centroids=CENTROIDS)
        out = []
        for i, point in enumerate(([0.0, 0.0], [0.0, 0.0], [9.0, 4.0], third)):
            out.append([(c.old_segment, c.new_segment) for c in eng.process([window("a", i, point)]).changes])
        return out

    # [9, 4] is nearest centroid 1 (at 6.1, centroid 0 at 9.8), but its traits name centroid 0's label
    assert run(False, [9.0, 4.0]) == [[], [(None, 0)], [(0, 1)], []]
    assert run(True, [9.5, 9.0]) == [[], [(None, 0)], [], [(0, 1)]]  # held until the traits agree
    assert run(True, [9.0, 4.0]) == [[], [(None, 0)], [], [(0, 1)]]  # or until twice the warm-up
