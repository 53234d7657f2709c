"""The change statistic and the emission policy, on arrays whose answer is known."""

import numpy as np
import pytest

from segstream.core.change import ChangeDetector, EmissionPolicy, decide, month_of_year

SD = np.ones(5)


CHARTS = {
    "cusum": ChangeDetector(),
    "ewma": ChangeDetector(chart="ewma", threshold=25.0),
}


def run_detector(residuals, det=ChangeDetector()):
    memory = np.zeros((residuals.shape[0], 5), np.float32)
    stats = []
    for t in range(residuals.shape[1]):
        memory, stat, _ = det.update(memory, residuals[:, t], SD)
        stats.append(stat)
    return np.stack(stats, 1)


def first_alarm(stat: np.ndarray, threshold: float) -> np.ndarray:
    """Windows after the start to the first alarm; a large number where none came."""
    hit = stat > threshold
    return np.where(hit.any(1), np.argmax(hit, axis=1), 99)


@pytest.mark.parametrize("chart", CHARTS)
def test_noise_rarely_alarms_and_a_shift_soon_does(chart):
    det = CHARTS[chart]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (4000, 24, 5))
    stat = run_detector(noise, det)
    assert (stat[:, 6:] > det.threshold).mean() < 0.002  # false alarms per window on pure noise
    shifted = noise.copy()
    shifted[:, 12:, 0] += 2.5  # a persistent move of one trait by 2.5 spreads
    shifted[:, 12:, 1] -= 2.5
    first = first_alarm(run_detector(shifted, det)[:, 12:], det.threshold)
    assert np.median(first) <= 2 and (first <= 3).mean() > 0.9


def test_the_cusum_sees_a_shift_sooner_than_the_ewma_and_alarms_as_rarely_on_noise():
    """Why 0.8.2 changed the chart: both alarm on fewer than 0.05% of noise windows, and the CUSUM
    alarms in a change's first two windows far more often (it sums from the change, the EWMA
    discounts it)."""
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, (4000, 24, 5))
    shifted = noise.copy()
    shifted[:, 12:, 0] += 2.5
    shifted[:, 12:, 1] -= 2.5
    false, soon = {}, {}
    for name, det in CHARTS.items():
        false[name] = (run_detector(noise, det)[:, 6:] > det.threshold).mean()
        soon[name] = (first_alarm(run_detector(shifted, det)[:, 12:], det.threshold) <= 1).mean()
    assert false["cusum"] < 5e-4 and false["ewma"] < 5e-4
    assert soon["cusum"] > soon["ewma"] + 0.1


def test_the_cusum_forgets_noise_and_remembers_a_direction():
    det = ChangeDetector()
    small = np.full((1, 5), 0.5)  # |z| = 1.1, under the reference 1.75: nothing accumulates
    memory, stat, _ = det.update(np.zeros((1, 5), np.float32), small, SD)
    assert stat[0] == 0.0 and not memory.any()
    push = np.array([[2.0, -2.0, 0.0, 0.0, 0.0]])  # |z| = 2.8 each window, the same way
    stats = run_detector(np.repeat(push[:, None, :], 4, axis=1), det)[0]
    assert (np.diff(stats) > 0).all() and stats[-1] > det.threshold


@pytest.mark.parametrize("chart", CHARTS)
def test_one_huge_month_is_clipped_and_does_not_alarm_alone(chart):
    det = CHARTS[chart]
    r = np.zeros((1, 6, 5))
    r[0, 3, 0] = 50.0  # a car: fifty spreads in one window
    assert run_detector(r, det).max() < det.threshold


def test_a_window_is_quiet_only_while_it_looks_like_the_prediction():
    det = ChangeDetector(restart="window", quiet=9.2)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (4000, 5))
    _, _, quiet = det.update(np.zeros((4000, 5), np.float32), noise, SD)
    assert 0.85 < quiet.mean() < 0.95  # chi-square with 5 d.o.f. is within 9.2 90% of the time
    moved = noise + np.array([2.5, -2.5, 0, 0, 0])
    _, _, quiet = det.update(np.zeros((4000, 5), np.float32), moved, SD)
    assert quiet.mean() < 0.2


def _decide(policy, announced, nearest, previous, margin, streak=0, pending=False, n=10, alarm=False, confidence=1.0):
    a = lambda v, t: np.array([v], t)  # noqa: E731
    return decide(
        policy,
        a(announced, np.int32),
        a(nearest, np.int32),
        a(previous, np.int32),
        a(margin, float),
        a(streak, np.uint8),
        a(pending, bool),
        a(n, np.int32),
        a(alarm, bool),
        a(confidence, float),
    )


# each test isolates one rule: the others (on by default, as the settings have them) off
BARE = {"settle": 0.0, "departure": 0.0, "review": 0}


def test_policy_first_assignment_waits_for_warmup():
    p = EmissionPolicy(warmup=4, **BARE)
    assert _decide(p, -1, 3, 3, 0.0, n=3).segment[0] == -1
    d = _decide(p, -1, 3, 3, 0.0, n=4)
    assert d.segment[0] == 3 and d.changed[0] and not d.detected[0]


def test_policy_confirms_the_same_candidate_for_k_windows():
    p = EmissionPolicy(confirm=3, margin=0.2, **BARE)
    d = _decide(p, 1, 2, 2, 0.5, streak=1)
    assert d.segment[0] == 1 and d.streak[0] == 2
    d = _decide(p, 1, 2, 2, 0.5, streak=2)
    assert d.segment[0] == 2 and d.changed[0] and d.streak[0] == 0
    # another candidate restarts the count; a margin below the setting resets it
    assert _decide(p, 1, 2, 5, 0.5, streak=2).streak[0] == 1
    assert _decide(p, 1, 2, 2, 0.1, streak=2).streak[0] == 0


def test_policy_after_a_detected_change_announces_once_rewarmed():
    p = EmissionPolicy(rewarm=2, confirm=3, **BARE)
    d = _decide(p, 1, 4, 1, 0.0, n=1, alarm=True)  # the alarm window: state just reset
    assert d.segment[0] == 1 and d.pending[0]
    d = _decide(p, 1, 4, 4, 0.0, n=2, pending=True)
    assert d.segment[0] == 4 and d.changed[0] and d.detected[0] and not d.pending[0]
    # re-warmed into the same segment: nothing to announce, nothing pending
    d = _decide(p, 1, 1, 1, 0.0, n=2, pending=True)
    assert not d.changed[0] and not d.pending[0]


def test_policy_waits_for_a_sure_new_segment_but_not_past_its_patience():
    p = EmissionPolicy(rewarm=1, patience=2, **{**BARE, "settle": 0.1})
    d = _decide(p, 1, 4, 1, 0.0, n=1, alarm=True, confidence=0.03)  # between two centroids: wait
    assert not d.changed[0] and d.pending[0]
    d = _decide(p, 1, 4, 4, 0.0, n=2, pending=True, confidence=0.03)  # patience reached: announce anyway
    assert d.changed[0] and d.segment[0] == 4 and d.detected[0]
    d = _decide(p, 1, 4, 1, 0.0, n=1, alarm=True, confidence=0.4)  # sure at once: no wait
    assert d.changed[0] and d.segment[0] == 4


def test_month_of_year():
    starts = np.array([0.0, 1_700_000_000.0])  # 1970-01, 2023-11
    assert month_of_year(starts).tolist() == [0, 10]


def test_policy_announces_a_detected_change_only_once_the_state_left_its_segment():
    p = EmissionPolicy(rewarm=1, **{**BARE, "departure": 0.2})
    # a false alarm: the restarted state is nearer another centroid, but barely
    d = _decide(p, 1, 4, 1, 0.1, n=1, alarm=True)
    assert not d.changed[0] and d.segment[0] == 1 and not d.pending[0]
    d = _decide(p, 1, 4, 1, 0.3, n=1, alarm=True)  # it left
    assert d.changed[0] and d.segment[0] == 4 and d.detected[0]


def test_policy_corrects_a_provisional_segment_sooner_than_a_settled_one():
    p = EmissionPolicy(confirm=6, margin=0.35, review=8, review_confirm=2, review_margin=0.15)
    # three windows after a detected change: two windows of another, nearer centroid correct it
    d = _decide(p, 4, 7, 7, 0.2, streak=1, n=3)
    assert d.changed[0] and d.segment[0] == 7 and d.corrected[0] and not d.detected[0]
    assert not _decide(p, 4, 7, 7, 0.2, streak=0, n=3).changed[0]  # one window is not enough
    assert not _decide(p, 4, 7, 7, 0.1, streak=1, n=3).changed[0]  # nor a small margin
    # a settled segment needs the drift rule: six windows by 0.35
    assert not _decide(p, 4, 7, 7, 0.2, streak=1, n=12).changed[0]
    d = _decide(p, 4, 7, 7, 0.4, streak=5, n=12)
    assert d.changed[0] and not d.corrected[0]


def test_the_shadow_starts_where_the_chart_last_stood_near_zero():
    """A change that each window shows only within the noise (1.6 spreads on two traits, as a
    customer with few purchases shows it): the window rule calls most of its windows quiet and
    restarts the shadow after the change began, so a restart six windows in has seen fewer than
    one of them; the chart rule keeps the windows since the chart began to sum them. On noise
    alone both start over almost every window (the shadow holds nothing from before a change)."""
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (4000, 12, 5))
    shifted = noise.copy()
    shifted[:, 6:, 0] += 1.6
    shifted[:, 6:, 1] -= 1.6
    held = {}
    for rule, det in (("chart", ChangeDetector()), ("window", ChangeDetector(restart="window", quiet=12.0))):
        memory, quiet = np.zeros((4000, 5), np.float32), []
        for t in range(12):
            memory, _, q = det.update(memory, shifted[:, t], SD)
            quiet.append(q)
        quiet = np.stack(quiet, 1)
        assert quiet[:, :6].mean() > 0.95
        last_quiet = np.where(quiet.any(1), 11 - np.argmax(quiet[:, ::-1], axis=1), -1)
        held[rule] = np.minimum(11 - last_quiet, 6).mean()  # changed windows the shadow has seen
    assert held["chart"] > 3.0 and held["window"] < 1.0
