import numpy as np

from segstream.core.events import validate_event
from segstream.core.personality import CATEGORIES, TRAITS, trait_scores
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank


def small(seed=3, **kw):
    return SyntheticBank(GeneratorConfig(customers=200, months=6, seed=seed, **kw))


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = small(), small(), small(seed=4)
    assert list(a.events()) == list(b.events())
    assert a.truth.equals(b.truth)
    assert not np.array_equal(a.traits, c.traits)
    # months can be generated in any order and still agree
    np.testing.assert_array_equal(a.month(4).amount, small().month(4).amount)


def test_truth_matches_traits_and_covers_micro_segments():
    bank = SyntheticBank(GeneratorConfig(customers=2000, months=1, seed=0))
    t = bank.truth
    order = np.argsort(-bank.traits, axis=1)
    assert (t["dominant"] == [TRAITS[i] for i in order[:, 0]]).all()
    assert t["micro_segment"].nunique() == 20 and t["coarse_segment"].nunique() == 5


def test_events_are_valid_time_ordered_and_carry_noise():
    bank = small(missing_month_rate=0.2, life_event_rate=0.2)
    events = list(bank.events())
    stamps = [validate_event(e, now=float("inf")).epoch for e in events]
    assert stamps == sorted(stamps)
    spend, active = bank.monthly_spend()
    assert 0.6 < active.mean() < 0.95  # missing months
    assert spend.sum(2).max() > 1.0  # a one-off purchase larger than a month's income


def test_spending_reveals_personality():
    bank = SyntheticBank(GeneratorConfig(customers=1000, months=12, seed=1))
    spend, _ = bank.monthly_spend()
    evinced = trait_scores(spend.sum(1))
    z = (evinced - evinced.mean(0)) / evinced.std(0)
    agree = (z.argmax(1) == bank.traits.argmax(1)).mean()
    assert agree > 0.5  # chance is 0.2


def test_changes_are_new_dominant_and_second_traits_at_a_month_with_per_window_truth():
    bank = SyntheticBank(GeneratorConfig(customers=2000, months=24, seed=5, change_share=0.2, drift_share=0.1))
    truth = bank.micro_segments()
    moved = bank.change_start < 24
    assert 0.25 < moved.mean() < 0.35
    old, new = np.argsort(-bank.traits, 1)[:, :2], np.argsort(-bank.new_traits, 1)[:, :2]
    assert ((old[:, 0] != new[:, 0]) & (old[:, 1] != new[:, 1]))[moved].all()
    abrupt = moved & (bank.change_length == 1)
    rows = np.flatnonzero(abrupt)
    s = bank.change_start[rows]
    assert (truth[rows, s] != truth[rows, s - 1]).all()  # the label flips in the change month
    assert (truth[~moved] == truth[~moved, :1]).all()  # and never for the others
    assert (bank.truth["micro_segment"].to_numpy() == truth[:, -1]).all()


def test_no_change_and_no_season_spend_exactly_as_before_changes_existed():
    base = SyntheticBank(GeneratorConfig(customers=100, months=4, seed=3))
    with_changes = SyntheticBank(GeneratorConfig(customers=100, months=4, seed=3, change_share=0.5))
    unchanged = with_changes.change_start >= 4
    np.testing.assert_array_equal(base.traits, with_changes.traits)
    m0 = base.month(0)
    np.testing.assert_array_equal(m0.amount, with_changes.month(0).amount)  # months before any change agree
    assert unchanged.any()


def test_seasons_move_everybody_in_december_not_their_personality():
    flat = SyntheticBank(GeneratorConfig(customers=1500, months=12, seed=2))
    seasonal = SyntheticBank(GeneratorConfig(customers=1500, months=12, seed=2, seasonal=True))
    gifts = CATEGORIES.index("gifts")
    share = lambda b, m: (b.month(m).category == gifts).mean()  # noqa: E731
    assert share(seasonal, 11) > 2 * share(flat, 11)  # December
    assert abs(share(seasonal, 3) - share(flat, 3)) < 0.01  # April
    assert (seasonal.micro_segments() == flat.micro_segments()).all()
